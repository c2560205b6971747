//! HTTPS only: `add_hsts` tells browsers to stay on HTTPS, and `require_https` refuses requests
//! that reached us in plain HTTP around a TLS-terminating proxy.
//!
//! With our own TLS (`TLS_CERT_PATH`) every connection is HTTPS and only HSTS applies; the
//! plain-HTTP redirect listener lives in `crate::server`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;

use crate::config::Config;
use crate::error::ApiError;

/// Whether requests arrive through a TLS-terminating proxy whose `X-Forwarded-Proto` must say
/// `https` (`TLS_TERMINATED_UPSTREAM`), so that nothing in production is served in plain HTTP.
/// Without our own TLS only; with it, every connection is HTTPS anyway.
fn tls_upstream(config: &Config) -> bool {
    config.tls_terminated_upstream && config.tls.is_none()
}

/// Behind a TLS-terminating proxy, refuses (403 "HTTPS required") a request whose trusted
/// `X-Forwarded-Proto` is not `https`: a plain request that reached us around the proxy, or a
/// proxy listener that forgot to redirect. `/health` is exempt for load balancers' checks.
pub async fn require_https(
    State(config): State<Arc<Config>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    if !tls_upstream(&config) || req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let trusted =
        peer.is_some_and(|ip| config.trusted_proxies.iter().any(|cidr| cidr.contains(ip)));
    // The proxy nearest to us appends last, so the last value is the one it vouches for.
    let proto = req
        .headers()
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .map(|v| v.trim().to_ascii_lowercase());
    if trusted && proto.as_deref() == Some("https") {
        next.run(req).await
    } else {
        ApiError::Forbidden("HTTPS required".into()).into_response()
    }
}

/// `Strict-Transport-Security` on every response when clients reach us over HTTPS (our own TLS
/// or a TLS proxy in front), so browsers never try plain HTTP again.
pub async fn add_hsts(
    State(config): State<Arc<Config>>,
    mut response: Response<Body>,
) -> Response<Body> {
    if config.tls.is_some() || config.tls_terminated_upstream {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}
