//! The limits counted in this process: governor's keyed GCRA per client bucket for the per-IP
//! limits, `LoginThrottle` for the failed-login backoff. Without `REDIS_URL` these are the
//! limits; with it, what each instance falls back to while Redis is unreachable.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::RateLimiter;
use tower_governor::governor::GovernorConfigBuilder;

use super::{Allowed, Limit, Rate};
use crate::auth::LoginThrottle;

/// How often per-IP state of clients that went quiet is dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type KeyedLimiter = RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// One per-IP limit in this process.
struct PerIp {
    rate: Rate,
    limiter: Arc<KeyedLimiter>,
}

impl PerIp {
    /// `None` for a limit that is off (0 per minute).
    fn new(per_minute: u32) -> Option<Self> {
        let burst = NonZeroU32::new(per_minute)?;
        let rate = Rate { per_minute };
        // tower_governor's configuration builds the limiter: a GCRA state per client, with the
        // state information `X-RateLimit-Remaining` needs. Our middleware calls it rather than
        // tower_governor's layer, so that the Redis limits can stand in for it.
        let config = GovernorConfigBuilder::default()
            .period(rate.interval())
            .burst_size(burst.get())
            .use_headers()
            .finish()
            .expect("a non-zero burst and period");
        let limiter: Arc<KeyedLimiter> = config.limiter().clone();
        prune_quiet_clients(&limiter);
        Some(Self { rate, limiter })
    }

    fn check(&self, client: IpAddr) -> Result<Allowed, Duration> {
        match self.limiter.check_key(&client) {
            Ok(snapshot) => Ok(Allowed {
                limit: self.rate.per_minute,
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// Drops the state of IPs whose buckets are full again, so that traffic from millions of
/// addresses cannot grow memory without bound. The task ends when the limiter is dropped.
fn prune_quiet_clients(limiter: &Arc<KeyedLimiter>) {
    let limiter = Arc::downgrade(limiter);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PRUNE_EVERY).await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
}

/// Every limit, in this process.
pub struct Embedded {
    api: Option<PerIp>,
    login: Option<PerIp>,
    pub throttle: LoginThrottle,
}

impl Embedded {
    pub fn new(api_per_minute: u32, login_per_minute: u32) -> Self {
        Self {
            api: PerIp::new(api_per_minute),
            login: PerIp::new(login_per_minute),
            throttle: LoginThrottle::default(),
        }
    }

    fn limit(&self, which: Limit) -> Option<&PerIp> {
        match which {
            Limit::Api => self.api.as_ref(),
            Limit::Login => self.login.as_ref(),
        }
    }

    pub fn rate(&self, which: Limit) -> Option<Rate> {
        self.limit(which).map(|limit| limit.rate)
    }

    pub fn check_rate(&self, which: Limit, client: IpAddr) -> Result<Allowed, Duration> {
        match self.limit(which) {
            Some(limit) => limit.check(client),
            None => Ok(Allowed {
                limit: 0,
                remaining: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_passes_then_the_client_waits_about_one_interval() {
        let embedded = Embedded::new(10, 0);
        let client = IpAddr::from([203, 0, 113, 1]);
        for i in 0..10u32 {
            let allowed = embedded.check_rate(Limit::Api, client).expect("within");
            assert_eq!(allowed.remaining, 9 - i);
        }
        let wait = embedded
            .check_rate(Limit::Api, client)
            .expect_err("the 11th waits");
        assert!(wait <= Duration::from_secs(6) && wait > Duration::from_secs(5));
        assert!(embedded
            .check_rate(Limit::Api, IpAddr::from([203, 0, 113, 2]))
            .is_ok());
        assert!(
            embedded.check_rate(Limit::Login, client).is_ok(),
            "a limit of 0 is off"
        );
    }
}
