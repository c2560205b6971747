//! sellerdesk: a REST API for marketplace sellers' sales targets and inventory levels.
//!
//! `build_app` assembles the whole HTTP service from an `AppState`; `main.rs` only reads the
//! configuration, opens the store and serves what this returns. Tests drive the same router.

pub mod auth;
pub mod background;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod limits;
pub mod middleware;
pub mod monitoring;
pub mod routes;
pub mod server;
pub mod store;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::AuthState;
use crate::config::Config;
use crate::limits::Limits;
use crate::store::Store;

/// How long a request may take before it is answered 503, so that a stuck database call cannot
/// hold a client (and its connection) forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Cross-origin access for the browser origins in `CORS_ORIGINS` only; with none configured,
/// no CORS headers are sent and browsers keep other sites out.
fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        // Every method and request header the API takes, and every response header a client
        // acts on (`ETag` for conditional writes), or a browser app could not use them.
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-request-id"),
            middleware::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::ETAG,
            header::RETRY_AFTER,
            middleware::IDEMPOTENT_REPLAYED,
        ])
        .max_age(Duration::from_secs(600))
}

/// What every handler can reach. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub auth: Arc<AuthState>,
    /// The per-IP limits and the login backoff (in this process, or in Redis: `REDIS_URL`).
    pub limits: Arc<Limits>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        let auth = Arc::new(AuthState::new(&config));
        let limits = Arc::new(Limits::new(&config));
        Self {
            store,
            config: Arc::new(config),
            auth,
            limits,
        }
    }
}

/// The complete service. Layers, outermost first: request metrics (only with `METRICS_ADDR`),
/// sensitive-header marking, request context (id, client IP, error envelope), request log, HSTS, HTTPS check, CORS, cache and sniffing
/// headers, panic guard, timeout, routes (where rate limits, body limits and authentication
/// sit: see `routes`).
///
/// The layers wrap the routed service once. (`Router::layer` would wrap every route, and axum
/// clones a route's whole layered stack, box by box, for each request: ~10% of the CPU of a
/// single upsert in the profile.)
pub fn build_app(state: AppState) -> Router {
    let config = state.config.clone();
    let routed = routes::router(&state).with_state(state);
    let layered = ServiceBuilder::new()
        // Nothing logs headers today; marked sensitive, they stay redacted if anything ever does.
        .layer(SetSensitiveHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::SET_COOKIE,
        ]))
        .layer(axum::middleware::from_fn_with_state(
            config.clone(),
            middleware::request_context,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::request_span)
                .on_request(())
                .on_response(middleware::log_response)
                // 5xx are logged once, where they happen, with their cause.
                .on_failure(()),
        )
        .layer(axum::middleware::map_response_with_state(
            config.clone(),
            middleware::add_hsts,
        ))
        .layer(axum::middleware::from_fn_with_state(
            config.clone(),
            middleware::require_https,
        ))
        .layer(cors(&config))
        // Responses carry sellers' data and tokens: no cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .service(routed);
    let app = Router::new().fallback_service(layered);
    // Outermost, so that it counts every answer as sent; off without METRICS_ADDR, when the
    // request path does not pay for it at all.
    match config.metrics_addr {
        Some(_) => app.layer(axum::middleware::from_fn(monitoring::track_request)),
        None => app,
    }
}
