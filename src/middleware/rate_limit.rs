//! Per-client-IP rate limiting with tower_governor: `RATE_LIMIT_PER_MINUTE` on the API,
//! `LOGIN_RATE_LIMIT_PER_MINUTE` on the token endpoint, so that one client cannot flood the
//! service or guess passwords at speed. `/health` is never limited.
//!
//! The key is the `ClientIp` that `request_context` resolved (the TCP peer, or, only when the
//! peer is a trusted proxy, the address `X-Forwarded-For` names), through `bucket`: an IPv6
//! client is limited per /64, an IPv4-mapped one as the IPv4 address it carries. tower_governor's own
//! `SmartIpKeyExtractor` believes any client's headers, so a client could pick its own bucket;
//! it is deliberately not used.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::Router;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::ClientIp;
use crate::error::ApiError;

/// How often per-IP state of clients that went quiet is dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Rate-limits by the client IP that `request_context` put on the request.
#[derive(Debug, Clone, Copy)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions()
            .get::<ClientIp>()
            .and_then(|client| client.0)
            .map(bucket)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The bucket of a client address: an IPv4 address is its own; an IPv6 address shares one
/// with its whole /64, the block one subscriber is usually given, so that a client cannot get
/// a fresh bucket per request by walking its own 2^64 addresses. An IPv4-mapped IPv6 address
/// (`::ffff:198.51.100.7`, a dual-stack listener's view of an IPv4 peer) is the IPv4 address.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::from(u64::MAX))).into()),
        },
    }
}

/// Which limit refused a request: the `limit` label of `rate_limited_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RATE_LIMIT_PER_MINUTE`, over the whole API.
    Api,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`, on the token endpoint.
    Login,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Api => "api",
            Limit::Login => "login",
        }
    }
}

/// `router` limited to `per_minute` requests per client IP (a burst of `per_minute`, refilled
/// evenly over the minute); unchanged when `per_minute` is 0. Refusals are counted in
/// `rate_limited_requests_total{limit}`.
pub fn limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    per_minute: u32,
    which: Limit,
) -> Router<S> {
    if per_minute == 0 {
        return router;
    }
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientIpKey)
        .period(Duration::from_secs(60) / per_minute)
        .burst_size(per_minute)
        .use_headers()
        .finish()
        .expect("a non-zero rate gives a non-zero period and burst");
    let config = Arc::new(config);
    // Drop the state of IPs whose buckets are full again, so that traffic from millions of
    // addresses cannot grow memory without bound. The task ends when the limiter is dropped.
    let limiter = Arc::downgrade(config.limiter());
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
    router.layer(
        GovernorLayer::new(config).error_handler(move |error| too_many_requests(error, which)),
    )
}

fn too_many_requests(error: GovernorError, which: Limit) -> axum::http::Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
            metrics::counter!("rate_limited_requests_total", "limit" => which.label()).increment(1);
            let mut response = ApiError::RateLimited {
                retry_after: wait_time.max(1),
            }
            .into_response();
            if let Some(headers) = headers {
                for (name, value) in headers.iter() {
                    response.headers_mut().entry(name).or_insert(value.clone());
                }
            }
            response
        }
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => {
            ApiError::Internal(anyhow::anyhow!("rate limiter could not key the request"))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for (client, key) in [
            ("198.51.100.7", "198.51.100.7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            ("2001:db8:1:2::1", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
        ] {
            assert_eq!(bucket(ip(client)), ip(key), "{client}");
        }
    }
}
