//! Latency of cheap requests while logins (argon2id each) saturate the CPU: how long
//! `/health` and an authenticated GET take, idle and while 50 logins are in flight, against
//! the real binary of this build on a fresh SQLite file. A measurement, not a pass/fail test.
//!
//! `cargo bench --bench login_flood`   (bench profile: the release build of the binary)

use std::time::{Duration, Instant};

// The test suite's raw-HTTP client and process harness, shared rather than copied; not
// everything in them is used here.
#[allow(dead_code)]
#[path = "../tests/api/raw_http.rs"]
mod raw_http;

#[allow(dead_code)]
#[path = "../tests/api/process.rs"]
mod process;

use process::{free_port, login, signal, start, wait_for_exit, wait_until_healthy};
use raw_http::RawRequest;

const PASSWORD: &str = "flood-admin-password";
const LOGINS: usize = 50;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The per-IP limits are off: at the default 10 logins a minute, 40 of the 50 would be
    // answered 429 at once and never reach argon2 (nor would the polling below stay under 60
    // requests a minute).
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("ADMIN_PASSWORD", PASSWORD),
            ("RUST_LOG", "warn"),
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ],
    );
    wait_until_healthy(port);
    let token = login(port, "admin", PASSWORD);

    let timed = |request: &RawRequest| {
        let started = Instant::now();
        let response = request.send(port);
        assert_eq!(response.status, 200, "{}", response.raw);
        started.elapsed()
    };
    let health = RawRequest::get("/health");
    let me = RawRequest::get("/api/v1/auth/me").bearer(&token);
    let idle = (timed(&health), timed(&me));

    // Usernames differ so that the failed-login throttle never kicks in; most are unknown,
    // which costs the same argon2 verification as a real one.
    let flood: Vec<_> = (0..LOGINS)
        .map(|i| {
            std::thread::spawn(move || {
                let user = if i % 5 == 0 {
                    "admin".to_owned()
                } else {
                    format!("user{i}")
                };
                let form = format!("grant_type=password&username={user}&password={PASSWORD}");
                let request = RawRequest::post("/api/v1/auth/token").form(&form);
                let started = Instant::now();
                let status = request.try_send(port).map_or(0, |r| r.status);
                (started.elapsed(), status)
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
    let (mut logins, statuses): (Vec<Duration>, Vec<u16>) =
        flood.into_iter().map(|t| t.join().unwrap()).unzip();
    signal(&server, "TERM");
    wait_for_exit(&mut server);
    // Every login must have been verified (200 or 401); anything else did not load the CPU.
    let verified = statuses.iter().filter(|s| matches!(s, 200 | 401)).count();
    assert_eq!(verified, LOGINS, "login statuses: {statuses:?}");

    println!(
        "idle: /health {:?}, GET /api/v1/auth/me {:?}",
        idle.0, idle.1
    );
    println!(
        "during {LOGINS} logins: /health {}",
        summary(&mut during_health)
    );
    println!(
        "during {LOGINS} logins: GET /api/v1/auth/me {}",
        summary(&mut during_me)
    );
    println!("the {LOGINS} logins themselves: {}", summary(&mut logins));
}

/// Count, median, 99th percentile and maximum of `samples`.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    format!(
        "n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    )
}
