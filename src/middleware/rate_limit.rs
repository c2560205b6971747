//! Per-client-IP rate limiting with tower_governor: `RATE_LIMIT_PER_MINUTE` on the API,
//! `LOGIN_RATE_LIMIT_PER_MINUTE` on the token endpoint, so that one client cannot flood the
//! service or guess passwords at speed. `/health` is never limited.
//!
//! The key is the `ClientIp` that `request_context` resolved: the TCP peer, or, only when the
//! peer is a trusted proxy, the address `X-Forwarded-For` names. tower_governor's own
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
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// `router` limited to `per_minute` requests per client IP (a burst of `per_minute`, refilled
/// evenly over the minute); unchanged when `per_minute` is 0.
pub fn limit<S: Clone + Send + Sync + 'static>(router: Router<S>, per_minute: u32) -> Router<S> {
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
    router.layer(GovernorLayer::new(config).error_handler(too_many_requests))
}

fn too_many_requests(error: GovernorError) -> axum::http::Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
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
