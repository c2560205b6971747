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
/// `route`, the template of the route that answered (`/api/v1/inventory/{id}`), is filled in
/// once the router has matched one (`crate::monitoring::mark_route`; absent for an unknown
/// path); `user_id` by the authentication layer (`crate::auth::layer`) once it knows the caller.
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
        route = tracing::field::Empty,
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

/// `text` with every JWT-shaped run (`eyJ…` base64url, dot, base64url, dot, base64url) masked,
/// also when some of its characters are percent-encoded (`%65yJ…`, `…%2E…`, up to three
/// layers deep): the run is found in the decoded text and masked in the text as written, so
/// what is logged is never decoded (no control characters smuggled into a log line).
pub fn redact_jwts(text: &str) -> String {
    let decoded = percent_decoded(text);
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'%');
    // The original byte range of decoded byte `i`: from its start to the next one's.
    let origin = |i: usize| decoded.get(i).map_or(text.len(), |&(_, at)| at);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 3 <= decoded.len() {
        let starts_jwt = decoded[i..i + 3].iter().map(|&(b, _)| b).eq(*b"eyJ");
        if !starts_jwt {
            i += 1;
            continue;
        }
        let run = decoded[i..]
            .iter()
            .take_while(|&&(b, _)| is_b64(b) || b == b'.')
            .count();
        let dots = decoded[i..i + run]
            .iter()
            .filter(|&&(b, _)| b == b'.')
            .count();
        if dots >= 2 {
            out.push_str(text.get(copied..origin(i)).unwrap_or_default());
            out.push_str("***");
            copied = origin(i + run);
        }
        i += run;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Layers of percent-encoding `redact_jwts` looks through.
const DECODE_LAYERS: usize = 3;

/// The bytes of `text` with `%XX` escapes decoded, up to `DECODE_LAYERS` times, each with the
/// offset in `text` where what it came from starts.
fn percent_decoded(text: &str) -> Vec<(u8, usize)> {
    let mut bytes: Vec<(u8, usize)> = text.bytes().zip(0..).collect();
    for _ in 0..DECODE_LAYERS {
        if !bytes.iter().any(|&(b, _)| b == b'%') {
            break;
        }
        let mut next = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |j: usize| bytes.get(j).and_then(|&(b, _)| (b as char).to_digit(16));
            match (bytes[i].0, hex(i + 1), hex(i + 2)) {
                (b'%', Some(high), Some(low)) => {
                    // Two hex digits make one byte: high * 16 + low < 256.
                    next.push((u8::try_from(high * 16 + low).unwrap_or(0), bytes[i].1));
                    i += 3;
                }
                _ => {
                    next.push(bytes[i]);
                    i += 1;
                }
            }
        }
        bytes = next;
    }
    bytes
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

    #[test]
    fn percent_encoded_jwts_are_masked_as_written() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let dots_encoded = jwt.replace('.', "%2E");
        let e_encoded = format!("%65{}", &jwt[1..]);
        let lower = jwt.replace('.', "%2e");
        let twice = jwt.replace('.', "%252E");
        for (label, written) in [
            ("dots as %2E", dots_encoded.as_str()),
            ("e as %65", e_encoded.as_str()),
            ("dots as %2e", lower.as_str()),
            ("dots encoded twice", twice.as_str()),
        ] {
            assert_eq!(
                redact_query(&format!("note={written}&page=2")),
                "note=***&page=2",
                "{label}"
            );
            assert_eq!(
                redact_jwts(&format!("/api/v1/x/{written}/y")),
                "/api/v1/x/***/y",
                "{label}"
            );
        }
        // Encoded text that is no token is logged as written, not decoded.
        for untouched in ["a%20b%0Ac", "eyJ%2Eonly-one-dot", "%65yJ", "caf%C3%A9"] {
            assert_eq!(redact_jwts(untouched), untouched);
        }
    }
}
