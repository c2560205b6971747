//! The request log: one span per request (`request_span`) and one line when its response is
//! ready (`log_response`), both handed to tower-http's `TraceLayer` in `crate::build_app`.
//!
//! Paths and query strings can carry tokens and passwords; `redact_query` and `redact_jwts`
//! mask them before anything is logged. The id and client IP the span reports are set by
//! `request_context`, which runs before this layer.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Response;

use super::{ClientIp, RequestId};

/// Query parameters whose values never reach a log: any name containing one of these.
const SECRET_PARAMS: [&str; 5] = ["token", "password", "secret", "key", "code"];

/// The span of one request: everything the request log line reports but the outcome.
/// `user_id` is filled in by the authentication layer (`crate::auth::layer`) once it knows the
/// caller.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
