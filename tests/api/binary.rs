//! The real binary, where the process matters: default SQLite file, `migrate`, bad
//! configuration, rate limits, durability, and graceful shutdown on SIGTERM and SIGINT.

use std::io::Write;
use std::time::Duration;

use crate::process::{
    command, free_port, login, output_within, signal, start, wait_for_exit, wait_until_healthy,
};

/// How long a run that must stop by itself (a refused start-up, `migrate`) may take.
const EXIT_WITHIN: Duration = Duration::from_secs(20);
use crate::raw_http::{connect, RawRequest, RawResponse};

#[test]
fn with_no_configuration_it_serves_on_a_new_sqlite_file_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, console) = start(dir.path(), port, &[]);
    wait_until_healthy(port);
    assert!(
        dir.path().join("sellerdesk.db").exists(),
        "the default database file was created"
    );
    // No users existed: an admin was created and its random password printed once.
    let password = console
        .try_iter()
        .find_map(|line| line.trim().strip_prefix("password: ").map(str::to_owned))
        .expect("the generated admin password is printed");
    let token = login(port, "admin", &password);

    let body = r#"{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","market_place_id":"US","period":"2026-11","sales_target":19.99}"#;
    let response = RawRequest::post("/api/v1/sales/target")
        .bearer(&token)
        .json(body)
        .send(port);
    assert_eq!(response.status, 200, "{}", response.raw);
    assert!(
        response.text.contains(r#""sales_target":19.99"#),
        "{}",
        response.raw
    );

    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}

#[test]
fn a_request_in_flight_when_sigint_arrives_is_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[("ADMIN_PASSWORD", "a-known-admin-password")],
    );
    wait_until_healthy(port);
    let token = login(port, "admin", "a-known-admin-password");

    // Send the headers and half the body, then signal, then the rest.
    let body = r#"{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU0000000001","market_place_id":"US","inventory":5}"#;
    let request = RawRequest::post("/api/v1/inventory")
        .bearer(&token)
        .json(body)
        .to_bytes();
    let (first, second) = request.split_at(request.len() - (body.len() - body.len() / 2));
    let mut stream = connect(port).unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&server, "INT");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(second).unwrap();
    let response = RawResponse::read_what_arrives(&mut stream);

    assert_eq!(
        response.status, 200,
        "the in-flight request finished: {:?}",
        response.raw
    );
    assert!(wait_for_exit(&mut server).success());
    // And the server no longer accepts connections.
    assert!(RawRequest::get("/health").try_send(port).is_err());
}

/// `GET path` with `X-Forwarded-For: forwarded_for` (no token).
fn get_forwarded_for(port: u16, path: &str, forwarded_for: &str) -> RawResponse {
    RawRequest::get(path)
        .header("X-Forwarded-For", forwarded_for)
        .send(port)
}

#[test]
fn the_sixth_request_in_a_minute_is_429_whatever_x_forwarded_for_says() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(dir.path(), port, &[("RATE_LIMIT_PER_MINUTE", "5")]);
    wait_until_healthy(port);

    for i in 0..5 {
        let response = get_forwarded_for(port, "/api/v1/inventory", &format!("198.51.100.{i}"));
        assert_eq!(
            response.status, 401,
            "request {i} is within the limit (and has no token)"
        );
    }
    let limited = get_forwarded_for(port, "/api/v1/inventory", "198.51.100.99");
    assert_eq!(
        limited.status, 429,
        "rotating X-Forwarded-For does not open a new bucket"
    );
    let retry_after = limited.header("retry-after");
    assert!(retry_after.is_some_and(|s| s.trim().parse::<u64>().is_ok_and(|n| n >= 1)));
    let docs = RawRequest::get("/docs/").send(port);
    let envelope = docs.json();
    assert!(
        envelope["code"] == 429 && envelope["request_id"].is_string(),
        "429 in the envelope: {}",
        docs.raw
    );
    for _ in 0..20 {
        assert_eq!(
            RawRequest::get("/health").send(port).status,
            200,
            "/health is never limited"
        );
    }
    signal(&server, "TERM");
    wait_for_exit(&mut server);
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("RATE_LIMIT_PER_MINUTE", "5"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    );
    wait_until_healthy(port);

    for client in ["198.51.100.1", "198.51.100.2"] {
        for i in 0..5 {
            let response = get_forwarded_for(port, "/api/v1/inventory", client);
            assert_eq!(response.status, 401, "{client} request {i}");
        }
        let sixth = get_forwarded_for(port, "/api/v1/inventory", client);
        assert_eq!(sixth.status, 429, "{client}'s sixth request");
    }
    // A client that puts its own guess left of what the proxy appended gains nothing.
    let spoofed = get_forwarded_for(port, "/api/v1/inventory", "203.0.113.50, 198.51.100.1");
    assert_eq!(spoofed.status, 429);
    signal(&server, "TERM");
    wait_for_exit(&mut server);
}

#[test]
fn the_token_endpoint_has_a_stricter_limit_against_password_guessing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(dir.path(), port, &[("LOGIN_RATE_LIMIT_PER_MINUTE", "3")]);
    wait_until_healthy(port);
    let attempt = || {
        RawRequest::post("/api/v1/auth/token")
            .form("grant_type=password&username=nobody&password=guess")
            .send(port)
            .status
    };
    assert_eq!([attempt(), attempt(), attempt()], [401, 401, 401]);
    assert_eq!(attempt(), 429);
    assert_eq!(
        RawRequest::get("/api/v1/auth/me").send(port).status,
        401,
        "other endpoints keep their own budget"
    );
    signal(&server, "TERM");
    wait_for_exit(&mut server);
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vars = [
        ("ADMIN_PASSWORD", "durable-admin-password"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let (mut server, _console) = start(dir.path(), port, &vars);
    wait_until_healthy(port);
    let token = login(port, "admin", "durable-admin-password");

    // Concurrent single upserts (written through group commit) and a batch, all acknowledged.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let token = token.clone();
            std::thread::spawn(move || {
                (0..40)
                    .filter(|i| {
                        let body = format!(
                            r#"{{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU{w:03}{i:07}","market_place_id":"US","inventory":{i}}}"#
                        );
                        RawRequest::post("/api/v1/inventory")
                            .bearer(&token)
                            .json(&body)
                            .try_send(port)
                            .is_ok_and(|r| r.status == 200)
                    })
                    .count()
            })
        })
        .collect();
    let acknowledged: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(acknowledged, 320);
    signal(&server, "KILL");
    server.wait().unwrap();

    let (mut server, _console) = start(dir.path(), port, &vars);
    wait_until_healthy(port);
    let token = login(port, "admin", "durable-admin-password");
    let response = RawRequest::get("/api/v1/inventory?size=1")
        .bearer(&token)
        .send(port);
    assert_eq!(
        response.json()["data"]["meta"]["total"],
        320,
        "every acknowledged row is there: {}",
        response.raw
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = output_within(
        command(
            dir.path(),
            &["migrate"],
            &[("DATABASE_URL", "sqlite://migrated.db")],
        ),
        EXIT_WITHIN,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("migrated.db").exists());
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("PORT", "eighty"),
        ("SECRET_KEY", "short"),
        ("RATE_LIMIT_PER_MINUTE", "lots"),
    ] {
        let output = output_within(command(dir.path(), &[], &[(name, value)]), EXIT_WITHIN);
        assert!(!output.status.success(), "{name}={value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert!(
            !stderr.contains(value) || name == "PORT" || name == "RATE_LIMIT_PER_MINUTE",
            "secrets are not echoed: {stderr}"
        );
    }
    let unknown = output_within(command(dir.path(), &["frobnicate"], &[]), EXIT_WITHIN);
    assert!(!unknown.status.success());
}

#[test]
fn a_published_secret_key_or_a_short_admin_password_stops_start_up_in_development_too() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        (
            "SECRET_KEY",
            "change-me-to-a-random-string-of-at-least-32-bytes",
        ),
        ("SECRET_KEY", "bench-secret-key-bench-secret-key-0123456789"),
        ("ADMIN_PASSWORD", "hunter2x"),
    ] {
        // On a port of its own: a regression would otherwise start serving on 8000.
        let port = free_port().to_string();
        let vars = [("APP_ENV", "development"), ("PORT", &port), (name, value)];
        let output = output_within(command(dir.path(), &[], &vars), EXIT_WITHIN);
        assert!(!output.status.success(), "{name}={value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(!stderr.contains(value), "not echoed: {stderr}");
    }
}
