//! The limits one client may not exceed: the per-IP request limits (`RATE_LIMIT_PER_MINUTE` on
//! the API, `LOGIN_RATE_LIMIT_PER_MINUTE` on the token endpoint) and the failed-login backoff.
//! `Limits` is the one thing callers use: `crate::middleware::rate_limit` asks `check_rate`,
//! `crate::auth::login` asks `login_check` and reports `login_failed`/`login_succeeded`.
//!
//! Reading order:
//! - here: `Limits`, which picks at start-up where the counting happens: in this process
//!   (`embedded`, the default) or, with `REDIS_URL`, in Redis (`redis`), shared by every
//!   instance, with this process's own counters as the fallback while Redis is unreachable;
//! - `embedded`: the in-process limiters (governor's GCRA per IP, `LoginThrottle` for logins);
//! - `redis`: the same rules as Lua scripts, one round trip per check, and the outage handling
//!   (a short timeout per call, one warning per outage, a pause before Redis is tried again).
//!
//! docs/operations.md ("Several instances: REDIS_URL") says what is shared and what to alert on.

mod embedded;
pub mod redis;

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::LoginThrottle;
use crate::config::Config;
use crate::domain::Username;
use crate::middleware::ClientIp;

pub use self::embedded::Embedded;
pub use self::redis::{RedisLimits, RedisStatus};

/// Which per-IP limit: also the `limit` label of `rate_limited_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RATE_LIMIT_PER_MINUTE`, over the whole API.
    Api,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`, on the token endpoint.
    Login,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::Api => "api",
            Limit::Login => "login",
        }
    }
}

/// A request within its limit: the burst and what is left of it, for `X-RateLimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub limit: u32,
    pub remaining: u32,
}

/// A per-IP limit's rule: a burst of `per_minute` requests, refilled evenly over the minute
/// (one every `60 s / per_minute`). The generic cell rate algorithm: governor's in process,
/// the same arithmetic in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl Rate {
    /// The time one request "costs": how long after a request the bucket has refilled it.
    pub fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }
}

/// `Retry-After` in whole seconds for a wait: rounded up, so that a client which waits that
/// long is let through, and at least 1 (HTTP has no "retry after 0 seconds" that means wait).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Every limit, counted in this process or in Redis (chosen at start-up by `REDIS_URL`).
pub struct Limits {
    embedded: Embedded,
    shared: Option<RedisLimits>,
}

impl Limits {
    /// The limits `config` asks for. With `REDIS_URL` this connects lazily: an unreachable
    /// Redis at start-up only means the embedded limits apply until it answers.
    pub fn new(config: &Config) -> Self {
        Self {
            embedded: Embedded::new(
                config.rate_limit_per_minute,
                config.login_rate_limit_per_minute,
            ),
            shared: config.redis.as_ref().map(RedisLimits::new),
        }
    }

    /// The rule of a per-IP limit; `None` when it is off (0 per minute).
    pub fn rate(&self, which: Limit) -> Option<Rate> {
        self.embedded.rate(which)
    }

    /// Counts one request of `client` (already its bucket: see `rate_limit::bucket`) against
    /// `which`; `Err(wait)` when it is over the limit. Limits that are off always allow.
    pub async fn check_rate(&self, which: Limit, client: IpAddr) -> Result<Allowed, Duration> {
        let Some(rate) = self.rate(which) else {
            return Ok(Allowed {
                limit: 0,
                remaining: 0,
            });
        };
        if let Some(shared) = &self.shared {
            if let Some(verdict) = shared.check_rate(which, rate, client).await {
                return verdict;
            }
        }
        self.embedded.check_rate(which, client)
    }

    /// `Err(wait)` when this client must wait before its next login attempt for `username`.
    pub async fn login_check(&self, username: &Username, client: ClientIp) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            if let Some(verdict) = shared.login_check(username, client).await {
                return verdict;
            }
        }
        self.embedded.throttle.check(username, client)
    }

    /// Counts a failed login of this client for `username`.
    pub async fn login_failed(&self, username: &Username, client: ClientIp) {
        if let Some(shared) = &self.shared {
            if shared.login_failed(username, client).await {
                return;
            }
        }
        self.embedded.throttle.failed(username, client);
    }

    /// Forgets this client's failures for `username` after it logged in.
    pub async fn login_succeeded(&self, username: &Username, client: ClientIp) {
        // Both: failures counted here during an outage must not outlive the success either.
        self.embedded.throttle.succeeded(username, client);
        if let Some(shared) = &self.shared {
            shared.login_succeeded(username, client).await;
        }
    }

    /// Whether Redis answers now; `None` without `REDIS_URL`. For `/health`.
    pub async fn redis_status(&self) -> Option<RedisStatus> {
        match &self.shared {
            Some(shared) => Some(shared.status().await),
            None => None,
        }
    }

    /// The in-process login backoff (what applies without Redis).
    pub fn embedded_throttle(&self) -> &LoginThrottle {
        &self.embedded.throttle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        for (wait, secs) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1_001), 2),
            (Duration::from_millis(5_999), 6),
            (Duration::from_secs(300), 300),
        ] {
            assert_eq!(retry_after_secs(wait), secs, "{wait:?}");
        }
    }

    #[test]
    fn a_rate_refills_one_request_every_minute_divided_by_the_limit() {
        assert_eq!(Rate { per_minute: 60 }.interval(), Duration::from_secs(1));
        assert_eq!(Rate { per_minute: 10 }.interval(), Duration::from_secs(6));
        assert_eq!(
            Rate { per_minute: 7 }.interval(),
            Duration::from_nanos(8_571_428_571)
        );
    }
}
