//! The limits in Redis (`REDIS_URL`), so that every instance counts against the same budget:
//! N instances behind a load balancer allow one client `RATE_LIMIT_PER_MINUTE`, not N times it.
//!
//! Each check is one round trip and atomic: a Lua script (`EVALSHA`; redis-rs loads it on
//! `NOSCRIPT`) that reads, decides and writes in one step, with Redis's own clock (`TIME`), so
//! that instances whose clocks differ still agree. The rules are the embedded ones:
//! - per-IP limits: GCRA, a burst of `per_minute` refilled one request every
//!   `60 s / per_minute` (governor's algorithm). The key holds the "theoretical arrival time"
//!   in microseconds and expires when the bucket is full again;
//! - login backoff: a hash of (failure count, time of the last failure) per (username, client
//!   network), expiring `MEMORY` after the last failure; the wait itself is
//!   `throttle::backoff`, the same function the embedded throttle uses.
//!
//! Keys: `{REDIS_KEY_PREFIX}:rate:{api|login}:{client bucket}` and
//! `{REDIS_KEY_PREFIX}:login-failures:{sha256(username)}:{client network}`. No token or
//! password is ever part of a key, and the username only as its hash.
//!
//! When Redis does not answer (refused, or no reply within `CALL_TIMEOUT`) the caller falls back
//! to its embedded limits (`None` here). One warning per outage, then Redis is left alone for
//! `RETRY_AFTER_FAILURE` (requests meanwhile go straight to the fallback), then the next call
//! tries again; the first answer after an outage logs one info line. `redis_up` (0/1) and
//! `redis_fallbacks_total` say the same to Prometheus.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use sha2::{Digest, Sha256};

use super::{Allowed, Limit, Rate};
use crate::auth::throttle;
use crate::config::RedisConfig;
use crate::domain::Username;
use crate::middleware::rate_limit::bucket;
use crate::middleware::ClientIp;

/// The longest a request waits for Redis before its instance decides alone: a hung Redis must
/// not stall requests.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed call, how long every call goes straight to the embedded limits before Redis
/// is tried again, so that an outage does not cost each request a timeout.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// GCRA. KEYS[1]: the bucket. ARGV[1]: the interval per request in µs; ARGV[2]: the burst.
/// Returns {1, remaining} when allowed (and counted), {0, wait in µs} when not.
const RATE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval)}
";

/// KEYS[1]: a (username, client) failure record. Returns {} without failures, else
/// {count, milliseconds since the last failure}.
const FAILURES_SCRIPT: &str = r"
local f = redis.call('HMGET', KEYS[1], 'count', 'last')
if not f[1] then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {tonumber(f[1]), now - tonumber(f[2])}
";

/// KEYS[1]: a (username, client) failure record. ARGV[1]: how long it is kept after its last
/// failure, in ms. Counts one failure; returns the count.
const FAILED_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
";

/// Whether Redis answers, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisStatus {
    Ok,
    Unavailable,
}

impl RedisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisStatus::Ok => "ok",
            RedisStatus::Unavailable => "unavailable",
        }
    }
}

/// What this instance last saw of Redis.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// Not asked yet.
    Unknown,
    Up,
    /// Failed; not asked again before `retry_at`.
    Down {
        retry_at: Instant,
    },
}

/// The limits in Redis, with this instance's view of whether Redis is there.
pub struct RedisLimits {
    connection: ConnectionManager,
    prefix: String,
    link: Mutex<Link>,
    rate: Script,
    failures: Script,
    failed: Script,
}

impl RedisLimits {
    /// Connects lazily: nothing is sent before the first check, so an instance starts (on its
    /// embedded limits) while Redis is down.
    pub fn new(config: &RedisConfig) -> Self {
        let client = redis::Client::open(config.url.expose())
            .expect("REDIS_URL was checked when the configuration was read");
        // Reconnection is paced by `RETRY_AFTER_FAILURE` here, not by the manager's backoff.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, manager)
            .expect("a connection manager without push subscriptions");
        tracing::info!(key_prefix = %config.key_prefix,
            "rate limits and the login backoff are shared through Redis (REDIS_URL)");
        Self {
            connection,
            prefix: config.key_prefix.clone(),
            link: Mutex::new(Link::Unknown),
            rate: Script::new(RATE_SCRIPT),
            failures: Script::new(FAILURES_SCRIPT),
            failed: Script::new(FAILED_SCRIPT),
        }
    }

    /// One request of `client` against `which`; `None` when Redis cannot say.
    pub async fn check_rate(
        &self,
        which: Limit,
        rate: Rate,
        client: IpAddr,
    ) -> Option<Result<Allowed, Duration>> {
        let key = rate_key(&self.prefix, which, client);
        let interval = micros(rate.interval());
        let reply: (i64, i64) = self
            .call(true, |mut c| async move {
                self.rate
                    .key(key)
                    .arg(interval)
                    .arg(rate.per_minute)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(rate_verdict(rate, reply))
    }

    /// `Err(wait)` when this client must wait before its next login for `username`; `None`
    /// when Redis cannot say.
    pub async fn login_check(
        &self,
        username: &Username,
        client: ClientIp,
    ) -> Option<Result<(), Duration>> {
        let key = failures_key(&self.prefix, username, client);
        let reply: Vec<i64> = self
            .call(true, |mut c| async move {
                self.failures.key(key).invoke_async(&mut c).await
            })
            .await?;
        let [count, since_last] = reply[..] else {
            return Some(Ok(()));
        };
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let since_last = Duration::from_millis(u64::try_from(since_last).unwrap_or(0));
        Some(match throttle::backoff(count) {
            Some(wait) if wait > since_last => Err(wait - since_last),
            _ => Ok(()),
        })
    }

    /// Counts a failed login; `false` when Redis did not take it.
    pub async fn login_failed(&self, username: &Username, client: ClientIp) -> bool {
        let key = failures_key(&self.prefix, username, client);
        let memory = u64::try_from(throttle::MEMORY.as_millis()).unwrap_or(u64::MAX);
        self.call(true, |mut c| async move {
            self.failed
                .key(key)
                .arg(memory)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .is_some()
    }

    /// Forgets this client's failures for `username`.
    pub async fn login_succeeded(&self, username: &Username, client: ClientIp) {
        let key = failures_key(&self.prefix, username, client);
        let _ = self
            .call(true, |mut c| async move {
                redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await
            })
            .await;
    }

    /// Whether Redis answers a `PING` now (without asking while an outage's pause lasts).
    pub async fn status(&self) -> RedisStatus {
        let pong = self
            .call(false, |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await;
        match pong {
            Some(_) => RedisStatus::Ok,
            None => RedisStatus::Unavailable,
        }
    }

    /// Runs `command` on the shared connection within `CALL_TIMEOUT`, keeping track of the
    /// outage state; `None` when Redis was not asked or did not answer. `fallback`: the
    /// caller decides alone without an answer (counted in `redis_fallbacks_total`).
    async fn call<'a, T, F, Fut>(&'a self, fallback: bool, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>> + 'a,
    {
        let answer = if self.may_ask() {
            match tokio::time::timeout(CALL_TIMEOUT, command(self.connection.clone())).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", CALL_TIMEOUT.as_millis())),
            }
        } else {
            Err(String::new())
        };
        match answer {
            Ok(answer) => {
                self.answered();
                Some(answer)
            }
            Err(error) => {
                if !error.is_empty() {
                    self.failed_call(&error);
                }
                if fallback {
                    metrics::counter!("redis_fallbacks_total").increment(1);
                }
                None
            }
        }
    }

    /// Whether to ask Redis now: always, except during an outage's pause. The first caller
    /// after the pause asks; the pause is pushed on so that the others do not all ask too.
    fn may_ask(&self) -> bool {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        match *link {
            Link::Down { retry_at } => {
                let now = Instant::now();
                if now < retry_at {
                    return false;
                }
                *link = Link::Down {
                    retry_at: now + RETRY_AFTER_FAILURE,
                };
                true
            }
            Link::Unknown | Link::Up => true,
        }
    }

    fn answered(&self) {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if let Link::Down { .. } = *link {
            tracing::info!("Redis answers again: limits are shared across instances again");
        }
        *link = Link::Up;
        metrics::gauge!("redis_up").set(1.0);
    }

    fn failed_call(&self, error: &str) {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*link, Link::Down { .. }) {
            tracing::warn!(error,
                "Redis unavailable: each instance enforces its own limits until Redis answers again");
        }
        *link = Link::Down {
            retry_at: Instant::now() + RETRY_AFTER_FAILURE,
        };
        metrics::gauge!("redis_up").set(0.0);
    }
}

/// The key of a per-IP limit's bucket (`client` is already the bucket address).
pub fn rate_key(prefix: &str, which: Limit, client: IpAddr) -> String {
    format!("{prefix}:rate:{}:{client}", which.label())
}

/// The key of a (username, client network) failure record: the username only as its SHA-256,
/// the client as the network the embedded throttle counts by.
pub fn failures_key(prefix: &str, username: &Username, client: ClientIp) -> String {
    let name: String = Sha256::digest(username.as_str().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match client.0 {
        Some(ip) => format!("{prefix}:login-failures:{name}:{}", bucket(ip)),
        None => format!("{prefix}:login-failures:{name}:unknown"),
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The rate script's reply as a verdict: `(1, remaining)` allowed, `(0, wait in µs)` not.
fn rate_verdict(rate: Rate, (allowed, value): (i64, i64)) -> Result<Allowed, Duration> {
    let value = u64::try_from(value).unwrap_or(0);
    if allowed == 1 {
        Ok(Allowed {
            limit: rate.per_minute,
            remaining: u32::try_from(value).unwrap_or(u32::MAX),
        })
    } else {
        Err(Duration::from_micros(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_keys_carry_the_prefix_the_limit_and_the_bucket() {
        let v4 = IpAddr::from([203, 0, 113, 7]);
        assert_eq!(
            rate_key("sellerdesk", Limit::Api, v4),
            "sellerdesk:rate:api:203.0.113.7"
        );
        let v6 = bucket("2001:db8:1:2::9".parse().unwrap());
        assert_eq!(
            rate_key("blue", Limit::Login, v6),
            "blue:rate:login:2001:db8:1:2::"
        );
    }

    #[test]
    fn failure_keys_hash_the_username_and_count_by_client_network() {
        let alice = Username::parse("alice").unwrap();
        let from = |ip: &str| ClientIp(Some(ip.parse().unwrap()));
        let key = failures_key("sellerdesk", &alice, from("::ffff:203.0.113.7"));
        assert_eq!(
            key,
            "sellerdesk:login-failures:\
             2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90:203.0.113.7"
        );
        assert!(!key.contains("alice"), "the username only as its hash");
        assert_eq!(
            failures_key("p", &alice, from("2001:db8:1:2::1")),
            failures_key("p", &alice, from("2001:db8:1:2:ffff::9")),
            "one /64 is one client"
        );
        assert!(failures_key("p", &alice, ClientIp(None)).ends_with(":unknown"));
    }

    #[test]
    fn the_rate_reply_becomes_remaining_requests_or_a_wait() {
        let rate = Rate { per_minute: 10 };
        assert_eq!(
            rate_verdict(rate, (1, 9)),
            Ok(Allowed {
                limit: 10,
                remaining: 9
            })
        );
        assert_eq!(
            rate_verdict(rate, (0, 5_400_001)),
            Err(Duration::from_micros(5_400_001))
        );
        assert_eq!(
            super::super::retry_after_secs(Duration::from_micros(5_400_001)),
            6
        );
    }
}
