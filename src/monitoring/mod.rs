//! Prometheus metrics, served on a listener of their own when `METRICS_ADDR` is set
//! (docs/operations.md lists every series, what it means and what to alert on).
//!
//! Reading order:
//! 1. `install`: the `metrics` crate's global recorder, the Prometheus one, with the histogram
//!    buckets and the help text of every series. Only `main` installs it, and only when
//!    `METRICS_ADDR` is set: without it every `metrics::counter!(..)` in the code is a no-op
//!    (one atomic load), so there is nothing to pay for metrics nobody reads;
//! 2. `requests.rs`: `track_request` (a layer `crate::build_app` adds only with metrics on)
//!    and `mark_route` (always, in `crate::routes::router`): requests by method, route
//!    template and status, and their latency. The route is axum's `MatchedPath`, a template
//!    such as `/api/v1/inventory/{id}`, never the raw path, so clients cannot make new series;
//! 3. `router`: `GET /metrics`, which samples what is cheaper to read when scraped than to
//!    keep up to date (the connection pool, the write queue, active reservations), then renders
//!    the recorder's text.
//!
//! Elsewhere: `rate_limited_requests_total` in `middleware/rate_limit.rs`, `redis_up` and
//! `redis_fallbacks_total` in `limits/redis.rs`,
//! `login_failures_total` in `auth/login.rs`, `write_group_size`/`write_group_rows` in the
//! SQLite write queue (`store/sqlite/writer/`), `webhook_deliveries_total` in the webhook
//! worker (`webhooks/`).

mod requests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use self::requests::{mark_route, track_request, UNMATCHED};
use crate::store::Store;

/// Upper bounds of the latency buckets, in seconds: from a cached read (~1 ms) to the request
/// timeout (30 s).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the write-group size buckets (jobs or rows per group; a group carries at
/// most 256 rows, a single large batch up to 1000).
const GROUP_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1000.0];

/// How often histogram samples are folded into their buckets between scrapes, so that memory
/// stays bounded when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's metrics recorder and describes every
/// series. Once per process (a second call fails).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".to_owned()),
            &LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Prefix("write_group_".to_owned()), &GROUP_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "Requests answered, by method, route template and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response head, by method and route template."
    );
    describe_gauge!(
        "db_pool_connections",
        "Pooled database connections by state (SQLite: the readers; MySQL: its pool)."
    );
    describe_gauge!(
        "write_queue_depth",
        "SQLite writes submitted and not yet taken by the write queue."
    );
    describe_histogram!(
        "write_group_size",
        "Jobs (requests' writes) per SQLite write group, one transaction each."
    );
    describe_histogram!(
        "write_group_rows",
        "Rows per SQLite write group (each upserted row counts one, any other job one)."
    );
    describe_counter!(
        "rate_limited_requests_total",
        "Requests refused with 429 by a per-IP limit (api or login)."
    );
    describe_counter!(
        "login_failures_total",
        "Password logins refused: wrong credentials, an inactive user, or throttled."
    );
    describe_counter!(
        "webhook_deliveries_total",
        "Webhook delivery attempts by outcome: delivered, failed (retried) or given_up."
    );
    describe_gauge!(
        "redis_up",
        "With REDIS_URL: 1 while Redis answers, 0 while each instance enforces its own limits."
    );
    describe_counter!(
        "redis_fallbacks_total",
        "Limit checks answered by this instance alone because Redis did not answer (REDIS_URL)."
    );
    describe_gauge!(
        "reservations_active",
        "Reservations holding stock now, over the whole database."
    );
}

/// The metrics listener's router: `GET /metrics` only (anything else is 404). Also starts the
/// recorder's upkeep, which ends with the runtime.
pub fn router(handle: PrometheusHandle, store: Arc<dyn Store>) -> Router {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scraper { handle, store })
}

#[derive(Clone)]
struct Scraper {
    handle: PrometheusHandle,
    store: Arc<dyn Store>,
}

/// Samples the store's gauges, then renders every series in Prometheus' text format.
async fn scrape(State(scraper): State<Scraper>) -> Response {
    let gauges = scraper.store.gauges();
    metrics::gauge!("db_pool_connections", "state" => "in_use")
        .set(f64::from(gauges.connections_in_use));
    metrics::gauge!("db_pool_connections", "state" => "idle")
        .set(f64::from(gauges.connections_idle));
    if let Some(depth) = gauges.write_queue_depth {
        metrics::gauge!("write_queue_depth").set(count(depth));
    }
    match scraper.store.count_active_reservations().await {
        Ok(active) => metrics::gauge!("reservations_active").set(count_u64(active)),
        // The scrape still answers; the gauge keeps its last value.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count active reservations"),
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scraper.handle.render(),
    )
        .into_response()
}

/// A count as a gauge value (counts here are far below 2^52, so exact).
#[allow(clippy::cast_precision_loss)]
fn count(n: usize) -> f64 {
    n as f64
}

#[allow(clippy::cast_precision_loss)]
fn count_u64(n: u64) -> f64 {
    n as f64
}
