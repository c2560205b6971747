//! Prometheus metrics on a listener of their own (`METRICS_ADDR`), against the real binary:
//! the metrics recorder is global to a process, so each test starts a server of its own.
//! What each series means: docs/operations.md.

use std::time::{Duration, Instant};

use crate::helpers::{fresh_database, inventory_body, reservation_body, Backend, ADMIN_PASSWORD};
use crate::process::{
    command, free_port, login, output_within, signal, start, wait_for_exit, wait_until_healthy,
};
use crate::raw_http::{connect, RawRequest};

#[test]
fn metrics_count_requests_by_route_template_limits_logins_and_the_store_on_sqlite() {
    requests_limits_logins_and_the_store_are_measured(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
fn metrics_count_requests_by_route_template_limits_logins_and_the_store_on_mysql() {
    requests_limits_logins_and_the_store_are_measured(Backend::MySql);
}

/// The lines of a scrape that are samples of `name` (with or without labels), not its
/// `# HELP`/`# TYPE` comments.
fn samples<'a>(scrape: &'a str, name: &str) -> Vec<&'a str> {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include every one of `labels`.
fn value(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<&str> = samples(scrape, name)
        .into_iter()
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect();
    assert!(
        matching.len() <= 1,
        "one sample of {name} {labels:?}: {matching:?}"
    );
    matching
        .first()
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
}

fn requests_limits_logins_and_the_store_are_measured(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, database) = runtime.block_on(fresh_database(backend));
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("DATABASE_URL", &url),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("METRICS_ADDR", &metrics_addr),
            // The admin's login and one failure pass; the third attempt is refused.
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "2"),
        ],
    );
    wait_until_healthy(port);
    let token = login(port, "admin", ADMIN_PASSWORD);

    let created = RawRequest::post("/api/v1/inventory")
        .bearer(&token)
        .json(&inventory_body(serde_json::json!({})).to_string())
        .send(port);
    assert_eq!(created.status, 200, "{}", created.raw);
    let id = created.json()["data"]["id"].as_i64().unwrap();
    for _ in 0..2 {
        let read = RawRequest::get(&format!("/api/v1/inventory/{id}"))
            .bearer(&token)
            .send(port);
        assert_eq!(read.status, 200, "{}", read.raw);
    }
    let held = RawRequest::post("/api/v1/reservations")
        .bearer(&token)
        .json(&reservation_body(serde_json::json!({})).to_string())
        .send(port);
    assert_eq!(held.status, 201, "{}", held.raw);
    let unknown = RawRequest::get("/api/v1/nowhere/12345").send(port);
    assert_eq!(unknown.status, 404);
    let attempt = || {
        RawRequest::post("/api/v1/auth/token")
            .form("grant_type=password&username=admin&password=not-the-password")
            .send(port)
            .status
    };
    assert_eq!([attempt(), attempt()], [401, 429]);

    let scrape = RawRequest::get("/metrics").send(metrics_port);
    assert_eq!(scrape.status, 200, "{}", scrape.raw);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        scrape.raw
    );
    let text = scrape.text.as_str();

    // Requests by method, route template and status; never the raw path.
    let route = r#"route="/api/v1/inventory/{id}""#;
    assert_eq!(
        value(
            text,
            "http_requests_total",
            &[r#"method="GET""#, route, r#"status="200""#]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            text,
            "http_requests_total",
            &[
                r#"method="POST""#,
                r#"route="/api/v1/inventory""#,
                r#"status="200""#
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            text,
            "http_requests_total",
            &[r#"route="unmatched""#, r#"status="404""#]
        ),
        Some(1.0),
        "an unknown path counts as unmatched: {text}"
    );
    assert_eq!(
        value(
            text,
            "http_requests_total",
            &[r#"route="/api/v1/auth/token""#, r#"status="429""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&format!("/api/v1/inventory/{id}\"")) && !text.contains("nowhere"),
        "raw paths never become labels: {text}"
    );
    assert_eq!(
        value(
            text,
            "http_request_duration_seconds_count",
            &[r#"method="GET""#, route]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            text,
            "http_request_duration_seconds_bucket",
            &[r#"method="GET""#, route, r#"le="+Inf""#]
        ),
        Some(2.0),
        "latency is a histogram with buckets: {text}"
    );

    // Limits and logins.
    assert_eq!(
        value(text, "rate_limited_requests_total", &[r#"limit="login""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(text, "login_failures_total", &[]),
        Some(1.0),
        "{text}"
    );

    // The store, sampled when scraped.
    assert_eq!(value(text, "reservations_active", &[]), Some(1.0), "{text}");
    let in_use = value(text, "db_pool_connections", &[r#"state="in_use""#]);
    assert!(in_use.is_some(), "the pool's connections in use: {text}");
    // The pool's idle connections, sampled at each scrape. A background task (the expiry
    // sweep, a purge) can hold the pool's only connection at the moment of one scrape, so
    // scrape again until it is back.
    let idle_at = |scrape: &str| value(scrape, "db_pool_connections", &[r#"state="idle""#]);
    let mut later = scrape.text.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !idle_at(&later).is_some_and(|n| n >= 1.0) {
        assert!(
            Instant::now() < deadline,
            "the pool's idle connections: {later}"
        );
        std::thread::sleep(Duration::from_millis(50));
        later = RawRequest::get("/metrics").send(metrics_port).text;
    }
    assert_eq!(value(text, "write_queue_depth", &[]), Some(0.0), "{text}");
    // SQLite: the inventory write and the reservation went through the queue; MySQL's queue
    // carries upserts only.
    let groups = match backend {
        Backend::Sqlite => 2.0,
        Backend::MySql => 1.0,
    };
    assert!(
        value(text, "write_group_size_count", &[]).is_some_and(|n| n >= groups),
        "{text}"
    );
    assert!(
        value(text, "write_group_rows_count", &[]).is_some_and(|n| n >= groups),
        "{text}"
    );

    // Metrics are served at /metrics on their own listener only.
    assert_eq!(RawRequest::get("/").send(metrics_port).status, 404);
    assert_eq!(RawRequest::get("/metrics").send(port).status, 404);

    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
    assert!(
        connect(metrics_port).is_err(),
        "the metrics listener stopped with the server"
    );
    drop(database);
}

#[test]
fn without_metrics_addr_no_metrics_listener_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, console) = start(dir.path(), port, &[]);
    wait_until_healthy(port);
    assert_eq!(
        RawRequest::get("/metrics").send(port).status,
        404,
        "the API listener never serves metrics"
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
    let printed: Vec<String> = console.try_iter().collect();
    assert!(
        printed.iter().any(|line| line.contains("listening (HTTP)")),
        "the console was read: {printed:?}"
    );
    assert!(
        !printed.iter().any(|line| line.contains("serving metrics")),
        "no metrics listener: {printed:?}"
    );
}

#[test]
fn a_metrics_addr_that_cannot_be_used_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["9100", "localhost:9100", "127.0.0.1:0"] {
        let output = output_within(
            command(dir.path(), &[], &[("METRICS_ADDR", bad)]),
            Duration::from_secs(20),
        );
        assert!(!output.status.success(), "METRICS_ADDR={bad} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("METRICS_ADDR: must be an address with a port"),
            "{stderr}"
        );
    }
    // A port another process holds: start-up stops, naming the variable.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let port = free_port().to_string();
    let output = output_within(
        command(
            dir.path(),
            &[],
            &[("PORT", port.as_str()), ("METRICS_ADDR", addr.as_str())],
        ),
        Duration::from_secs(20),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (METRICS_ADDR)")),
        "{stderr}"
    );
}

#[test]
fn a_request_refused_by_the_api_limit_is_counted_under_its_route() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("METRICS_ADDR", &metrics_addr),
            ("RATE_LIMIT_PER_MINUTE", "2"),
        ],
    );
    wait_until_healthy(port);
    let statuses: Vec<u16> = (0..3)
        .map(|_| RawRequest::get("/api/v1/inventory").send(port).status)
        .collect();
    assert_eq!(statuses, [401, 401, 429]);

    let text = RawRequest::get("/metrics").send(metrics_port).text;
    assert_eq!(
        value(&text, "rate_limited_requests_total", &[r#"limit="api""#]),
        Some(1.0),
        "{text}"
    );
    assert!(
        samples(&text, "rate_limited_requests_total")
            .iter()
            .all(|line| !line.contains(r#"limit="login""#)),
        "the login limit refused nothing: {text}"
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[r#"route="/api/v1/inventory""#, r#"status="429""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[r#"route="/api/v1/inventory""#, r#"status="401""#]
        ),
        Some(2.0),
        "{text}"
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}
