//! `REDIS_URL`: two real binaries sharing their per-IP limits and login backoff through Redis,
//! and each falling back to its own limits while Redis is away (docs/operations.md, "Several
//! instances: REDIS_URL"). The limits key on the TCP peer, so these start the binary itself.
//!
//! They need a Redis server: compiled as ignored unless `TEST_REDIS_URL` was set at build time
//! (`build.rs`: `cfg(redis_tests)`); when it was, a Redis that does not answer fails them. Each
//! test has a `REDIS_KEY_PREFIX` of its own, so they run in parallel with each other and with
//! anything else on that Redis.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::helpers::{fresh_database, Backend, ADMIN_PASSWORD};
use crate::process::{free_port, signal, start, wait_for_exit, wait_until_healthy, Running};
use crate::raw_http::{RawRequest, RawResponse};

/// The Redis of the tests, checked: a set but unusable `TEST_REDIS_URL` fails the test.
pub fn redis_url() -> String {
    let url = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(
            "TEST_REDIS_URL is set when the Redis tests were built, and must be set to run them",
        );
    let mut connection = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set, but its server refuses: {e}"));
    let pong: String = redis::cmd("PING")
        .query(&mut connection)
        .expect("TEST_REDIS_URL answers PING");
    assert_eq!(pong, "PONG");
    url
}

/// A key prefix no other test uses; its keys are deleted when the test ends.
pub struct Prefix(pub String);

impl Prefix {
    pub fn new() -> Self {
        Self(format!(
            "sellerdesk_test_{:016x}",
            rand::thread_rng().gen::<u64>()
        ))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut connection) =
            redis::Client::open(redis_url().as_str()).and_then(|client| client.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A running binary, stopped when the test ends (also when it fails).
struct Instance {
    port: u16,
    child: Running,
    console: Receiver<String>,
    /// Every console line read so far.
    lines: Vec<String>,
}

impl Instance {
    fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Self {
        let port = free_port();
        let (child, console) = start(dir, port, vars);
        // Built before the wait, so that an instance that never gets healthy is stopped too.
        let instance = Self {
            port,
            child,
            console,
            lines: Vec::new(),
        };
        wait_until_healthy(port);
        instance
    }

    fn get(&self, path: &str) -> RawResponse {
        RawRequest::get(path).send(self.port)
    }

    fn login(&self, username: &str, password: &str) -> RawResponse {
        RawRequest::post("/api/v1/auth/token")
            .form(&format!(
                "grant_type=password&username={username}&password={password}"
            ))
            .send(self.port)
    }

    /// `/health`'s `redis` field.
    fn redis_health(&self) -> String {
        let health = self.get("/health");
        assert_eq!(health.status, 200, "{}", health.raw);
        health.json()["redis"]
            .as_str()
            .unwrap_or("absent")
            .to_owned()
    }

    /// How many console lines so far contain `text`.
    fn logged(&mut self, text: &str) -> usize {
        // The log line of a request is written as its response leaves: give it a moment.
        let settle = Instant::now() + Duration::from_millis(300);
        while Instant::now() < settle {
            while let Ok(line) = self.console.try_recv() {
                self.lines.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lines.iter().filter(|line| line.contains(text)).count()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        signal(&self.child, "TERM");
        wait_for_exit(&mut self.child);
    }
}

/// `Retry-After` of a 429, in seconds.
fn retry_after(response: &RawResponse) -> u64 {
    assert_eq!(response.status, 429, "{}", response.raw);
    response
        .header("retry-after")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("a 429 says when to retry: {}", response.raw))
}

#[test]
#[cfg_attr(not(redis_tests), ignore = "TEST_REDIS_URL is not set")]
#[cfg_attr(
    all(redis_tests, not(mysql_tests)),
    ignore = "TEST_MYSQL_URL is not set"
)]
fn two_instances_on_one_database_share_one_per_ip_limit() {
    let redis = redis_url();
    let prefix = Prefix::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, _database) = runtime.block_on(fresh_database(Backend::MySql));
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix.0),
        ("RATE_LIMIT_PER_MINUTE", "10"),
    ];
    // One after the other: the first applies the migrations.
    let first = Instance::start(dir.path(), &vars);
    let second = Instance::start(dir.path(), &vars);
    assert_eq!(first.redis_health(), "ok");

    let answers: Vec<RawResponse> = (0..20)
        .map(|i| [&first, &second][i % 2].get("/api/v1/inventory"))
        .collect();

    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [[401; 10], [429; 10]].concat(),
        "10 per minute over both instances together, not 10 each"
    );
    for limited in &answers[10..] {
        let wait = retry_after(limited);
        assert!(
            (1..=6).contains(&wait),
            "one request refills every 6 s: {wait}"
        );
        assert_eq!(
            limited.json()["error_code"],
            "RATE_LIMITED",
            "{}",
            limited.raw
        );
    }
    assert_eq!(answers[0].header("x-ratelimit-remaining"), Some("9"));
    assert_eq!(answers[9].header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(first.get("/health").status, 200, "/health is never limited");
}

#[test]
#[cfg_attr(not(redis_tests), ignore = "TEST_REDIS_URL is not set")]
#[cfg_attr(
    all(redis_tests, not(mysql_tests)),
    ignore = "TEST_MYSQL_URL is not set"
)]
fn failed_logins_spread_over_two_instances_are_throttled_together() {
    let redis = redis_url();
    let prefix = Prefix::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, _database) = runtime.block_on(fresh_database(Backend::MySql));
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix.0),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "8"),
    ];
    let first = Instance::start(dir.path(), &vars);
    let second = Instance::start(dir.path(), &vars);
    let instance = |i: usize| [&first, &second][i % 2];

    // The backoff: five free failures for `admin` over both instances, then the sixth attempt
    // waits, on either instance (each alone would allow five more).
    for i in 0..5 {
        let failed = instance(i).login("admin", "not-the-password");
        assert_eq!(failed.status, 401, "failure {i} is free: {}", failed.raw);
    }
    for i in 0..2 {
        let throttled = instance(i).login("admin", "not-the-password");
        assert_eq!(
            throttled.json()["error_description"],
            "too many failed logins for this username; retry later",
            "{}",
            throttled.raw
        );
        assert_eq!(retry_after(&throttled), 1, "the first wait is one second");
    }

    // The token endpoint's per-IP limit: 8 per minute over both, of which 7 are spent.
    let last = instance(1).login("nobody", "not-the-password");
    assert_eq!(last.status, 401, "{}", last.raw);
    for i in 0..2 {
        let limited = instance(i).login("someone", "not-the-password");
        assert!(
            (1..=8).contains(&retry_after(&limited)),
            "one login refills every 7.5 s"
        );
        assert_eq!(
            limited.json()["error_code"],
            "RATE_LIMITED",
            "{}",
            limited.raw
        );
    }
}

/// A TCP proxy in front of Redis that the test can take away and bring back, on one port.
struct Outage {
    runtime: tokio::runtime::Runtime,
    port: u16,
    upstream: String,
    proxy: Option<tokio::task::JoinHandle<()>>,
}

impl Outage {
    fn new(redis_url: &str) -> Self {
        let info = redis::Client::open(redis_url)
            .unwrap()
            .get_connection_info()
            .clone();
        let upstream = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => panic!("TEST_REDIS_URL must be a TCP address for this test: {other:?}"),
        };
        let mut outage = Self {
            runtime: tokio::runtime::Runtime::new().unwrap(),
            port: free_port(),
            upstream,
            proxy: None,
        };
        outage.redis_back();
        outage
    }

    /// Starts forwarding connections to Redis again.
    fn redis_back(&mut self) {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", self.port)))
            .expect("the proxy's port is free again");
        let upstream = self.upstream.clone();
        self.proxy = Some(self.runtime.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut redis) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every forwarded connection: Redis is "down".
    fn redis_down(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.abort();
            let _ = self.runtime.block_on(proxy);
        }
    }
}

#[test]
#[cfg_attr(not(redis_tests), ignore = "TEST_REDIS_URL is not set")]
fn while_redis_is_away_each_instance_enforces_its_own_limit_and_says_so_once() {
    let mut outage = Outage::new(&redis_url());
    let prefix = Prefix::new();
    let proxied = format!("redis://127.0.0.1:{}", outage.port);
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vars = [
        ("REDIS_URL", proxied.as_str()),
        ("REDIS_KEY_PREFIX", &prefix.0),
        ("RATE_LIMIT_PER_MINUTE", "4"),
    ];
    let mut a = Instance::start(
        dir_a.path(),
        &[vars.as_slice(), &[("METRICS_ADDR", &metrics_addr)]].concat(),
    );
    let mut b = Instance::start(dir_b.path(), &vars);
    assert_eq!([a.redis_health(), b.redis_health()], ["ok", "ok"]);

    outage.redis_down();
    let statuses = |a: &Instance, b: &Instance| -> Vec<(u16, u16)> {
        (0..6)
            .map(|_| {
                (
                    a.get("/api/v1/inventory").status,
                    b.get("/api/v1/inventory").status,
                )
            })
            .collect()
    };
    assert_eq!(
        statuses(&a, &b),
        [vec![(401, 401); 4], vec![(429, 429); 2]].concat(),
        "each instance lets 4 through on its own"
    );
    assert_eq!(
        a.redis_health(),
        "unavailable",
        "and /health still answers 200"
    );
    // Past the pause after a failure, Redis is tried again, fails again, and nothing more is
    // logged about it.
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(a.get("/api/v1/inventory").status, 429);
    assert_eq!(a.redis_health(), "unavailable");
    assert_eq!(a.logged("Redis unavailable"), 1, "one warning per outage");
    assert_eq!(b.logged("Redis unavailable"), 1, "one warning per outage");
    let scrape = RawRequest::get("/metrics").send(metrics_port).text;
    assert!(scrape.contains("\nredis_up 0\n"), "{scrape}");
    let fallbacks: f64 = scrape
        .lines()
        .find_map(|line| line.strip_prefix("redis_fallbacks_total "))
        .unwrap_or_else(|| panic!("redis_fallbacks_total: {scrape}"))
        .parse()
        .unwrap();
    assert!(
        fallbacks >= 7.0,
        "every check without Redis counts: {fallbacks}"
    );

    outage.redis_back();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.redis_health() != "ok" || b.redis_health() != "ok" {
        assert!(Instant::now() < deadline, "Redis is seen again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        a.logged("Redis answers again: limits are shared"),
        1,
        "one line when it is back: {:#?}",
        a.lines
    );
    assert_eq!(
        statuses(&a, &b).concat_pairs(),
        [vec![401; 4], vec![429; 8]].concat(),
        "the shared limit again: 4 over both"
    );
    let scrape = RawRequest::get("/metrics").send(metrics_port).text;
    assert!(scrape.contains("\nredis_up 1\n"), "{scrape}");
}

/// The statuses of alternating requests, in the order they were sent.
trait ConcatPairs {
    fn concat_pairs(self) -> Vec<u16>;
}

impl ConcatPairs for Vec<(u16, u16)> {
    fn concat_pairs(self) -> Vec<u16> {
        self.into_iter().flat_map(|(a, b)| [a, b]).collect()
    }
}
