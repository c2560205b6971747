//! Layers between the network and the handlers.
//!
//! `request_context` is the outermost: it gives each request its id, writes every error
//! response as the envelope of SPEC §1 (whoever produced it), and logs one line per request.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use rand::RngCore;

use crate::error::ErrorReport;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, as an extension for handlers and later layers.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Where the auth extractor leaves the caller's user id for the request log line.
#[derive(Debug, Clone, Default)]
pub struct UserSlot(Arc<OnceLock<i64>>);

impl UserSlot {
    pub fn set(&self, id: i64) {
        let _ = self.0.set(id);
    }

    pub fn get(&self) -> Option<i64> {
        self.0.get().copied()
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

/// Request id in, request id out; error bodies as the envelope; one log line per request.
pub async fn request_context(mut req: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let id = request_id(req.headers().get(REQUEST_ID_HEADER));
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // The path only: query strings may carry secrets and are never logged.
    let path = req.uri().path().to_owned();
    let client = ClientIp(
        req.extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
    );
    req.extensions_mut().insert(client);
    let user = UserSlot::default();
    req.extensions_mut().insert(user.clone());

    let span = tracing::info_span!("request", request_id = %id.to_str().unwrap_or_default());
    let mut response = tracing::Instrument::instrument(next.run(req), span.clone()).await;

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

    span.in_scope(|| {
        tracing::info!(
            client_ip = %client,
            method = %method,
            path = %path,
            status = status.as_u16(),
            user_id = user.get(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
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
