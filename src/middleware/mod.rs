//! Layers between the network and the handlers.
//!
//! `request_context` is the outermost: it gives each request its id, resolves the client's IP
//! and writes every error response as the envelope of SPEC §1 (whoever produced it). Inside it,
//! tower-http's `TraceLayer` logs one line per request (`request_span`, `log_response`).
//! `rate_limit` keys its buckets by the `ClientIp` resolved here.

pub mod rate_limit;

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use rand::RngCore;

use crate::config::{Cidr, Config};
use crate::error::{ApiError, ErrorReport};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, as an extension for handlers and later layers.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// The client's IP address, as the request log and login audit see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Query parameters whose values never reach a log: any name containing one of these.
const SECRET_PARAMS: [&str; 5] = ["token", "password", "secret", "key", "code"];

/// The query string with the values of secret-looking parameters, and anything shaped like a
/// JWT, replaced by `***`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let lower = name.to_ascii_lowercase();
            if SECRET_PARAMS.iter().any(|secret| lower.contains(secret)) {
                format!("{name}=***")
            } else if value.is_empty() && !pair.contains('=') {
                redact_jwts(name)
            } else {
                format!("{}={}", redact_jwts(name), redact_jwts(value))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` with every JWT-shaped run (`eyJ…` base64url, dot, base64url, dot, base64url) masked.
pub fn redact_jwts(text: &str) -> String {
    let is_b64 =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=' || c == '%';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| !(is_b64(c) || c == '.'))
            .unwrap_or(candidate.len());
        if candidate[..end].matches('.').count() >= 2 {
            out.push_str("***");
        } else {
            out.push_str(&candidate[..end]);
        }
        // `end` ≥ 3: the match starts with "eyJ", all base64url characters.
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

/// Keeps a sane incoming `X-Request-ID` (≤ 64 of `[A-Za-z0-9._-]`), else makes a new one.
fn request_id(incoming: Option<&HeaderValue>) -> HeaderValue {
    let sane = |v: &&HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 64
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if let Some(value) = incoming.filter(sane) {
        return value.clone();
    }
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&hex).expect("hex digits are a valid header value")
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then
/// `X-Forwarded-For` is read right to left, skipping trusted hops, and the first address that
/// is not trusted is the client. A client cannot choose its own address this way: entries it
/// wrote itself are left of every address a trusted proxy appended.
pub fn resolve_client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage where an address belongs: trust nothing further left.
            Err(_) => return client,
        }
    }
    client
}

/// The TCP peer of a request: `ConnectInfo` from the server, or the `MockConnectInfo` that
/// in-process tests install (which axum's `ConnectInfo` extractor also falls back to).
fn peer_addr(req: &Request) -> Option<IpAddr> {
    let extensions = req.extensions();
    extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<std::net::SocketAddr>>()
                .map(|mock| mock.0.ip())
        })
}

/// Whether requests arrive through a TLS-terminating proxy whose `X-Forwarded-Proto` must say
/// `https` (SPEC §7). Without our own TLS only; with it, every connection is HTTPS anyway.
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
        .get::<ConnectInfo<std::net::SocketAddr>>()
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

/// The span of one request: everything the request log line reports but the outcome.
/// `user_id` is filled in by the auth extractor once it knows the caller.
pub fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(RequestId::as_str)
        .unwrap_or_default();
    let client = req
        .extensions()
        .get::<ClientIp>()
        .copied()
        .unwrap_or(ClientIp(None));
    tracing::info_span!(
        "request",
        request_id = %id,
        client_ip = %client,
        method = %req.method(),
        path = %redact_jwts(req.uri().path()),
        query = req.uri().query().map(redact_query),
        user_id = tracing::field::Empty,
    )
}

/// The request log line: one per request, with the span's fields, status and latency.
pub fn log_response(response: &Response<Body>, latency: std::time::Duration, span: &tracing::Span) {
    tracing::info!(
        parent: span,
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
}

/// Request id in, request id out; the client's address; error bodies as the envelope.
pub async fn request_context(
    State(config): State<Arc<Config>>,
    mut req: Request,
    next: Next,
) -> Response<Body> {
    let id = request_id(req.headers().get(REQUEST_ID_HEADER));
    req.extensions_mut().insert(RequestId(id.clone()));
    let client = ClientIp(
        peer_addr(&req).map(|peer| resolve_client_ip(peer, req.headers(), &config.trusted_proxies)),
    );
    req.extensions_mut().insert(client);
    let mut response = next.run(req).await;

    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // Our own errors say what to write; anyone else's error (axum's 405, a timeout) gets the
    // generic message of its status. JSON errors of other shapes (OAuth2's) are left alone.
    let report = response
        .extensions_mut()
        .remove::<ErrorReport>()
        .or_else(|| {
            let failed = status.is_client_error() || status.is_server_error();
            (failed && !is_json).then(|| ErrorReport::for_status(status))
        });
    if let Some(report) = report {
        response = render_error(response, status, report, id.to_str().unwrap_or_default());
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, id);

    response
}

/// Replaces the body of an error response with the envelope, keeping its headers.
fn render_error(
    response: Response<Body>,
    status: StatusCode,
    report: ErrorReport,
    id: &str,
) -> Response<Body> {
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&report.into_body(status, id))
        .expect("the error envelope always serialises");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn secret_query_values_and_jwts_never_reach_the_log() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        for (query, logged) in [
            ("page=2&size=10", "page=2&size=10".to_owned()),
            (
                "access_token=abc&page=1",
                "access_token=***&page=1".to_owned(),
            ),
            ("Password=hunter2", "Password=***".to_owned()),
            (
                "api_KEY=x&client_secret=y&code=z",
                "api_KEY=***&client_secret=***&code=***".to_owned(),
            ),
            (&format!("note={jwt}"), "note=***".to_owned()),
            (jwt, "***".to_owned()),
            ("seller_id=eyJ", "seller_id=eyJ".to_owned()),
        ] {
            assert_eq!(redact_query(query), logged, "{query}");
        }
        assert_eq!(
            redact_jwts(&format!("/api/v1/x/{jwt}/y")),
            "/api/v1/x/***/y"
        );
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let trusted = ["10.0.0.0/8".parse::<Cidr>().unwrap()];
        let cases = [
            // An untrusted peer is the client, whatever it claims.
            (client, "1.2.3.4", &trusted[..], client),
            (client, "1.2.3.4", &[][..], client),
            // Behind a trusted proxy: the rightmost untrusted hop.
            (proxy, "203.0.113.7", &trusted[..], client),
            (proxy, "1.2.3.4, 203.0.113.7", &trusted[..], client),
            (
                proxy,
                "1.2.3.4, 203.0.113.7, 10.0.0.9",
                &trusted[..],
                client,
            ),
            // Only trusted hops: the leftmost of them.
            (proxy, "10.0.0.9", &trusted[..], "10.0.0.9".parse().unwrap()),
            // Garbage stops the walk at the last trusted hop.
            (proxy, "203.0.113.7, nonsense", &trusted[..], proxy),
        ];
        for (peer, header, trusted, expected) in cases {
            assert_eq!(
                resolve_client_ip(peer, &xff(header), trusted),
                expected,
                "{peer} {header}"
            );
        }
        assert_eq!(
            resolve_client_ip(proxy, &axum::http::HeaderMap::new(), &trusted),
            proxy
        );
    }
}
