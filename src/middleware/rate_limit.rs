//! Per-client-IP rate limiting: `RATE_LIMIT_PER_MINUTE` on the API,
//! `LOGIN_RATE_LIMIT_PER_MINUTE` on the token endpoint, so that one client cannot flood the
//! service or guess passwords at speed. `/health` is never limited.
//!
//! The key is the `ClientIp` that `request_context` resolved (the TCP peer, or, only when the
//! peer is a trusted proxy, the address `X-Forwarded-For` names), through `bucket`: an IPv6
//! client is limited per /64, an IPv4-mapped one as the IPv4 address it carries. A client's
//! own headers never pick its bucket.
//!
//! The counting is `crate::limits::Limits`' (in this process, or in Redis with `REDIS_URL`);
//! this layer only asks it and answers 429 with `Retry-After` (whole seconds, rounded up) and
//! `X-RateLimit-After`, or passes the request on and adds `X-RateLimit-Limit` and
//! `X-RateLimit-Remaining` to its response.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::ClientIp;
use crate::error::ApiError;
pub use crate::limits::Limit;
use crate::limits::{retry_after_secs, Limits};

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const AFTER: HeaderName = HeaderName::from_static("x-ratelimit-after");

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

/// `router` limited per client IP by `limits`' rule for `which` (a burst of `per_minute`,
/// refilled evenly over the minute); unchanged when that limit is off (0). Refusals are counted
/// in `rate_limited_requests_total{limit}`.
pub fn limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: Arc<Limits>,
    which: Limit,
) -> Router<S> {
    if limits.rate(which).is_none() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        (limits, which),
        enforce,
    ))
}

async fn enforce(
    State((limits, which)): State<(Arc<Limits>, Limit)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(client) = request
        .extensions()
        .get::<ClientIp>()
        .and_then(|client| client.0)
    else {
        return ApiError::Internal(anyhow::anyhow!("rate limiter could not key the request"))
            .into_response();
    };
    match limits.check_rate(which, bucket(client)).await {
        Ok(allowed) => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(LIMIT, HeaderValue::from(allowed.limit));
            headers.insert(REMAINING, HeaderValue::from(allowed.remaining));
            response
        }
        Err(wait) => {
            metrics::counter!("rate_limited_requests_total", "limit" => which.label()).increment(1);
            let retry_after = retry_after_secs(wait);
            let mut response = ApiError::RateLimited { retry_after }.into_response();
            let headers = response.headers_mut();
            headers.insert(AFTER, HeaderValue::from(retry_after));
            if let Some(rate) = limits.rate(which) {
                headers.insert(LIMIT, HeaderValue::from(rate.per_minute));
            }
            headers.insert(REMAINING, HeaderValue::from(0));
            response
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
