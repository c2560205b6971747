//! Layers between the network and the handlers, and what they leave on each request.
//!
//! Reading order, which is also the order a request meets them (`crate::build_app` stacks them):
//!
//! 1. [`context`]: `request_context`, the outermost of ours (only tower-http's marking of
//!    sensitive headers wraps it). It runs first so that everything after it, including the
//!    request log and any layer that fails, can rely on a request id ([`request_id`]) and the
//!    client's address ([`client_ip`]); and it runs last on the way out, so that every error
//!    response, whoever produced it, leaves as the envelope ([`envelope`]) carrying that id.
//! 2. [`request_log`]: tower-http's `TraceLayer` opens a span per request (`request_span`) and
//!    logs one line when the response is ready (`log_response`), with secrets redacted. It sits
//!    inside `request_context` because the span reports the id and client IP set there.
//! 3. [`https`]: `add_hsts` marks responses once clients reach us over HTTPS; `require_https`
//!    refuses plain requests that went around a TLS-terminating proxy. Inside the log, so a
//!    refused request is still logged.
//! 4. [`rate_limit`]: per-client-IP limits, applied to routes (not here in the stack), keyed by
//!    the `ClientIp` that `request_context` resolved.
//! 5. [`idempotency`]: safe retries of writes with an `Idempotency-Key`, a route layer of the
//!    protected router inside its authentication (keys are per user).

mod client_ip;
mod context;
mod envelope;
mod https;
pub mod idempotency;
pub mod rate_limit;
mod request_id;
mod request_log;

pub use client_ip::{resolve_client_ip, Cidr, ClientIp};
pub use context::request_context;
pub use https::{add_hsts, require_https};
pub use idempotency::{idempotency, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use request_id::{RequestId, REQUEST_ID_HEADER};
pub use request_log::{log_response, redact_jwts, redact_query, request_span};
