//! Error responses as the envelope: `{"code", "message", "detail"?, "request_id"}`, whoever
//! produced them (a handler, an extractor, axum's 405, the timeout layer).
//!
//! What the body says comes from the `ErrorReport` that `ApiError` leaves on its response
//! (`crate::error`); this module only writes it, with the request id. `request_context`
//! (`context.rs`) calls `wrap_error` on every response on its way out.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};

use crate::error::ErrorReport;

/// `response` with an error body rewritten as the envelope naming `request_id`; successes and
/// other services' JSON errors (OAuth2's) unchanged.
pub(super) fn wrap_error(mut response: Response<Body>, request_id: &str) -> Response<Body> {
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
    match report {
        Some(report) => render_error(response, status, report, request_id),
        None => response,
    }
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
