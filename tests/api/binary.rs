//! The real binary, where the process matters: default SQLite file, `migrate`, bad
//! configuration, and graceful shutdown on SIGTERM and SIGINT.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_sellerdesk");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary in `dir` with a clean environment plus `vars`.
pub fn command(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "info");
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Starts the server; its console output arrives line by line on the receiver.
pub fn start(
    dir: &Path,
    port: u16,
    vars: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let port = port.to_string();
    let mut all = vec![("PORT", port.as_str())];
    all.extend_from_slice(vars);
    let mut child = command(dir, &[], &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// Logs in with the password grant over raw HTTP and returns the access token.
fn login(port: u16, username: &str, password: &str) -> String {
    let form = format!("grant_type=password&username={username}&password={password}");
    let response = http(
        port,
        &format!(
            "POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {response}"))
        .to_owned()
}

/// Sends raw HTTP/1.1 and returns the whole response text.
pub fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn wait_until_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http(
            port,
            "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ) {
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the server became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the server exited after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    let request = format!(
        "POST /api/v1/sales/target HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = http(port, &request).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""sales_target":19.99"#), "{response}");

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
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/inventory HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&server, "INT");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(second.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);

    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the in-flight request finished: {response:?}"
    );
    assert!(wait_for_exit(&mut server).success());
    // And the server no longer accepts connections.
    assert!(http(port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n").is_err());
}

/// The status line and `Retry-After` of a GET with the given extra headers.
pub fn status_of(port: u16, path: &str, extra: &str) -> (u16, Option<String>) {
    let response = http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
    .unwrap();
    let status = response[9..12].parse().unwrap();
    let retry_after = response.lines().find_map(|line| {
        line.to_ascii_lowercase()
            .strip_prefix("retry-after: ")
            .map(str::to_owned)
    });
    (status, retry_after)
}

#[test]
fn the_sixth_request_in_a_minute_is_429_whatever_x_forwarded_for_says() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(dir.path(), port, &[("RATE_LIMIT_PER_MINUTE", "5")]);
    wait_until_healthy(port);

    for i in 0..5 {
        let (status, _) = status_of(
            port,
            "/api/v1/inventory",
            &format!("X-Forwarded-For: 198.51.100.{i}\r\n"),
        );
        assert_eq!(
            status, 401,
            "request {i} is within the limit (and has no token)"
        );
    }
    let (status, retry_after) = status_of(
        port,
        "/api/v1/inventory",
        "X-Forwarded-For: 198.51.100.99\r\n",
    );
    assert_eq!(
        status, 429,
        "rotating X-Forwarded-For does not open a new bucket"
    );
    assert!(retry_after.is_some_and(|s| s.trim().parse::<u64>().is_ok_and(|n| n >= 1)));
    let body = http(
        port,
        "GET /docs/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(
        body.contains(r#""code":429"#) && body.contains("request_id"),
        "429 in the envelope: {body}"
    );
    for _ in 0..20 {
        assert_eq!(
            status_of(port, "/health", "").0,
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
            let (status, _) = status_of(
                port,
                "/api/v1/inventory",
                &format!("X-Forwarded-For: {client}\r\n"),
            );
            assert_eq!(status, 401, "{client} request {i}");
        }
        let (status, _) = status_of(
            port,
            "/api/v1/inventory",
            &format!("X-Forwarded-For: {client}\r\n"),
        );
        assert_eq!(status, 429, "{client}'s sixth request");
    }
    // A client that puts its own guess left of what the proxy appended gains nothing.
    let (status, _) = status_of(
        port,
        "/api/v1/inventory",
        "X-Forwarded-For: 203.0.113.50, 198.51.100.1\r\n",
    );
    assert_eq!(status, 429);
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
        let form = "grant_type=password&username=nobody&password=guess";
        let response = http(
            port,
            &format!(
                "POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                form.len()
            ),
        )
        .unwrap();
        response[9..12].parse::<u16>().unwrap()
    };
    assert_eq!([attempt(), attempt(), attempt()], [401, 401, 401]);
    assert_eq!(attempt(), 429);
    assert_eq!(
        status_of(port, "/api/v1/auth/me", "").0,
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
                        let request = format!(
                            "POST /api/v1/inventory HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        http(port, &request).is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
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
    let response = http(
        port,
        &format!("GET /api/v1/inventory?size=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    assert!(
        response.contains(r#""total":320"#),
        "every acknowledged row is there: {response}"
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(
        dir.path(),
        &["migrate"],
        &[("DATABASE_URL", "sqlite://migrated.db")],
    )
    .output()
    .unwrap();
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
        let output = command(dir.path(), &[], &[(name, value)]).output().unwrap();
        assert!(!output.status.success(), "{name}={value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert!(
            !stderr.contains(value) || name == "PORT" || name == "RATE_LIMIT_PER_MINUTE",
            "secrets are not echoed: {stderr}"
        );
    }
    let unknown = command(dir.path(), &["frobnicate"], &[]).output().unwrap();
    assert!(!unknown.status.success());
}

/// Not a pass/fail test: prints how long `/health` and an authenticated GET take while 50
/// logins (argon2id each) are in flight. Run it on a release build:
/// `cargo test --release --test api -- --ignored --nocapture latency_during_a_login_flood`
#[test]
#[ignore = "a measurement; run it by hand (see the doc comment)"]
fn latency_during_a_login_flood() {
    const PASSWORD: &str = "flood-admin-password";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[("ADMIN_PASSWORD", PASSWORD), ("RUST_LOG", "warn")],
    );
    wait_until_healthy(port);
    let token = login(port, "admin", PASSWORD);

    let timed = |request: &str| {
        let started = Instant::now();
        let response = http(port, request).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        started.elapsed()
    };
    let health = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned();
    let me = format!("GET /api/v1/auth/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    let idle = (timed(&health), timed(&me));

    // Usernames differ so that the failed-login throttle never kicks in; most are unknown,
    // which costs the same argon2 verification as a real one.
    let flood: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let user = if i % 5 == 0 { "admin".to_owned() } else { format!("user{i}") };
                let form = format!("grant_type=password&username={user}&password={PASSWORD}");
                let request = format!(
                    "POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                    form.len()
                );
                let started = Instant::now();
                let _ = http(port, &request);
                started.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let mut during_health = Vec::new();
    let mut during_me = Vec::new();
    while !flood.iter().all(|t| t.is_finished()) {
        during_health.push(timed(&health));
        during_me.push(timed(&me));
        std::thread::sleep(Duration::from_millis(20));
    }
    let logins: Vec<Duration> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    signal(&server, "TERM");
    wait_for_exit(&mut server);

    let summary = |samples: &mut Vec<Duration>| {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        format!(
            "n={} p50={:?} p99={:?} max={:?}",
            samples.len(),
            at(0.5),
            at(0.99),
            samples[samples.len() - 1]
        )
    };
    let mut logins = logins;
    println!(
        "idle: /health {:?}, GET /api/v1/auth/me {:?}",
        idle.0, idle.1
    );
    println!("during 50 logins: /health {}", summary(&mut during_health));
    println!(
        "during 50 logins: GET /api/v1/auth/me {}",
        summary(&mut during_me)
    );
    println!("the 50 logins themselves: {}", summary(&mut logins));
}
