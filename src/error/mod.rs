//! The response bodies (the success envelope `{"code": 200, "message": "Success", "data"}` and
//! the error envelope `{"code", "error_code", "message", "detail"?, "request_id"}`) and
//! `ApiError`, the one
//! error type every enveloped handler returns. Its `From<StoreError>` and `From<AuthError>` are
//! where store and auth failures become enveloped HTTP errors (the token endpoints, which answer
//! in OAuth2 terms, map `AuthError` themselves).
//!
//! `ApiError::into_response` decides the status, headers and message; the request-context
//! middleware (`crate::middleware::request_context`) then writes the error envelope, adding the
//! request id. Errors raised outside our handlers (axum's 405, a body-limit 413, a timeout) get
//! the same envelope there, so no client ever sees a bare status or a plain-text body.
//!
//! `problems.rs`: `Problems`, the bounded list of field problems a 422 carries.

mod problems;

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::domain::StockError;
use crate::store::StoreError;
use crate::webhooks::TargetError;

pub use problems::{Problems, MAX_LISTED_PROBLEMS};

/// The success envelope: `{"code": 200, "message": "Success", "data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(example = 200)]
    pub code: u16,
    #[schema(example = "Success")]
    pub message: &'static str,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn success(data: T) -> Self {
        Self {
            code: 200,
            message: "Success",
            data,
        }
    }

    /// The envelope of a 201: a resource with its own id was created.
    pub fn created(data: T) -> Self {
        Self {
            code: 201,
            message: "Success",
            data,
        }
    }
}

/// The error envelope: `{"code", "error_code", "message", "detail"?, "request_id"}`.
/// `error_code` is a stable machine-readable name (`docs/api.md` lists them); `detail` is
/// structured: the field problems of a 422, or what a stock rule found (`docs/stock.md`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = 422)]
    pub code: u16,
    #[schema(example = "VALIDATION_FAILED")]
    pub error_code: &'static str,
    #[schema(example = "validation failed")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// On a 422 that found more problems than `detail` lists (at most 100): how many more.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(null))]
    pub more_problems: Option<usize>,
    #[schema(example = "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6")]
    pub request_id: String,
}

/// One problem with one field; batch endpoints add the 0-based `index` of the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(null))]
    pub index: Option<usize>,
    #[schema(example = "seller_id")]
    pub field: Cow<'static, str>,
    #[schema(example = "must be 8 to 20 letters or digits")]
    pub message: Cow<'static, str>,
}

impl FieldError {
    pub fn new(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            index: None,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn at(mut self, index: Option<usize>) -> Self {
        self.index = index;
        self
    }
}

/// Everything a handler or extractor can fail with. The status of each variant is fixed here
/// and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Problems),
    #[error("malformed request")]
    BadRequest(&'static str),
    /// No usable access token. `token_sent` adds `error="invalid_token"` to the challenge.
    #[error("authentication required")]
    Unauthorized { token_sent: bool },
    #[error("forbidden")]
    Forbidden(Cow<'static, str>),
    #[error("not found")]
    NotFound(&'static str),
    #[error("conflict")]
    Conflict(&'static str),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Over the rate limit; the client may retry after this many seconds.
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    /// A stock rule refused the operation (see `StockError`).
    #[error(transparent)]
    Stock(#[from] StockError),
    /// An `Idempotency-Key` already used with a different request (method, path or body).
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running.
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    /// A webhook URL whose host is, or resolves to, an address webhooks may not reach, or
    /// does not resolve (docs/webhooks.md, "Which targets").
    #[error(transparent)]
    WebhookTarget(#[from] TargetError),
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Stock(e) => match e {
                StockError::InvalidQuantity => StatusCode::UNPROCESSABLE_ENTITY,
                StockError::SkuNotFound(_) | StockError::ReservationNotFound => {
                    StatusCode::NOT_FOUND
                }
                StockError::Insufficient(_)
                | StockError::InsufficientItems(_)
                | StockError::ActiveReservations
                | StockError::ReservationExpired
                | StockError::ReservationNotActive => StatusCode::CONFLICT,
                StockError::VersionMismatch(_) => StatusCode::PRECONDITION_FAILED,
            },
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::WebhookTarget(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A validation failure of a single field.
    pub fn invalid(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)].into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no such resource"),
            StoreError::Conflict => Self::Conflict("already exists"),
            StoreError::Unavailable => Self::Unavailable,
            StoreError::Stock(e) => Self::Stock(e),
            StoreError::Db(e) => Self::Internal(e.into()),
        }
    }
}

/// For enveloped endpoints that meet an `AuthError` (user management hashes passwords). The
/// token endpoints answer in OAuth2 terms instead; see `crate::routes::auth`.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => Self::Unauthorized { token_sent: false },
            AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused => {
                Self::Unauthorized { token_sent: true }
            }
            AuthError::Throttled { retry_after } => Self::RateLimited {
                retry_after: crate::limits::retry_after_secs(retry_after),
            },
            AuthError::Unavailable => Self::Unavailable,
            AuthError::Internal(e) => Self::Internal(e),
        }
    }
}

/// What an error response is to say, carried from `ApiError` to the request-context middleware,
/// which knows the request id and writes the body.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub error_code: &'static str,
    pub message: Cow<'static, str>,
    pub detail: Option<serde_json::Value>,
    /// Problems found beyond those `detail` lists.
    pub more_problems: Option<usize>,
}

impl ErrorReport {
    fn new(error_code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error_code,
            message: message.into(),
            detail: None,
            more_problems: None,
        }
    }

    fn with_detail(mut self, detail: impl Serialize) -> Self {
        self.detail = serde_json::to_value(detail).ok();
        self
    }

    /// The code and message of an error response that no `ApiError` described (axum's own 405,
    /// a timeout, a body-limit rejection).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("BAD_REQUEST", "malformed request"),
            StatusCode::UNAUTHORIZED => ("UNAUTHORIZED", "authentication required"),
            StatusCode::FORBIDDEN => ("FORBIDDEN", "forbidden"),
            StatusCode::NOT_FOUND => ("NOT_FOUND", "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "method not allowed"),
            StatusCode::REQUEST_TIMEOUT => ("REQUEST_TIMEOUT", "request timed out"),
            StatusCode::CONFLICT => ("CONFLICT", "conflict"),
            StatusCode::PRECONDITION_FAILED => ("PRECONDITION_FAILED", "precondition failed"),
            StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("UNSUPPORTED_MEDIA_TYPE", "body must be application/json")
            }
            StatusCode::UNPROCESSABLE_ENTITY => ("VALIDATION_FAILED", "validation failed"),
            StatusCode::TOO_MANY_REQUESTS => ("RATE_LIMITED", "too many requests"),
            StatusCode::SERVICE_UNAVAILABLE => ("SERVICE_UNAVAILABLE", "service unavailable"),
            s if s.is_server_error() => ("INTERNAL_ERROR", "internal server error"),
            s => (
                "REQUEST_FAILED",
                s.canonical_reason().unwrap_or("request failed"),
            ),
        };
        Self::new(code, message)
    }

    /// Renders the envelope for `status`.
    pub fn into_body(self, status: StatusCode, request_id: &str) -> ErrorBody {
        ErrorBody {
            code: status.as_u16(),
            error_code: self.error_code,
            message: self.message.into_owned(),
            detail: self.detail,
            more_problems: self.more_problems,
            request_id: request_id.to_owned(),
        }
    }
}

/// The `error_code`, message and detail of a refused stock operation.
fn stock_report(e: StockError) -> ErrorReport {
    match e {
        StockError::Insufficient(shortfall) => {
            ErrorReport::new("INSUFFICIENT_INVENTORY", "not enough available inventory")
                .with_detail(shortfall)
        }
        StockError::InsufficientItems(items) => {
            ErrorReport::new("INSUFFICIENT_INVENTORY", "not enough available inventory")
                .with_detail(items)
        }
        StockError::InvalidQuantity => ErrorReport::new(
            "INVALID_QUANTITY",
            "the quantity would take the inventory past 2147483647",
        )
        .with_detail([FieldError::new(
            "quantity",
            "would take the inventory past 2147483647",
        )]),
        StockError::ActiveReservations => ErrorReport::new(
            "ACTIVE_RESERVATIONS",
            "the row has active reservations; release or commit them first",
        ),
        StockError::SkuNotFound(missing) => {
            ErrorReport::new("SKU_NOT_FOUND", "no inventory row for some SKUs").with_detail(missing)
        }
        StockError::ReservationNotFound => {
            ErrorReport::new("RESERVATION_NOT_FOUND", "no such reservation")
        }
        StockError::ReservationExpired => {
            ErrorReport::new("RESERVATION_EXPIRED", "the reservation has expired")
        }
        StockError::ReservationNotActive => ErrorReport::new(
            "RESERVATION_NOT_ACTIVE",
            "the reservation was already released or committed",
        ),
        StockError::VersionMismatch(found) => ErrorReport::new(
            "VERSION_MISMATCH",
            "the resource is not at the version the request expects",
        )
        .with_detail(found),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = status.into_response();
        let report = match self {
            Self::Validation(problems) => {
                let (listed, more) = problems.into_parts();
                let mut report =
                    ErrorReport::new("VALIDATION_FAILED", "validation failed").with_detail(listed);
                report.more_problems = (more > 0).then_some(more);
                report
            }
            Self::BadRequest(m) => ErrorReport::new("BAD_REQUEST", m),
            Self::NotFound(m) => ErrorReport::new("NOT_FOUND", m),
            Self::Conflict(m) => ErrorReport::new("CONFLICT", m),
            Self::Forbidden(m) => ErrorReport::new("FORBIDDEN", m),
            Self::Unauthorized { token_sent } => {
                let (challenge, message) = if token_sent {
                    (
                        r#"Bearer error="invalid_token", error_description="the access token is invalid or expired""#,
                        "invalid or expired access token",
                    )
                } else {
                    ("Bearer", "authentication required")
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                ErrorReport::new("UNAUTHORIZED", message)
            }
            Self::Unavailable => ErrorReport::new("DATABASE_UNAVAILABLE", "database unavailable"),
            Self::RateLimited { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                ErrorReport::new("RATE_LIMITED", "too many requests")
            }
            Self::Stock(e) => stock_report(e),
            Self::IdempotencyKeyReused => ErrorReport::new(
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was already used with a different request \
                 (method, path or body); use a new key for a new request",
            ),
            Self::IdempotencyKeyInUse => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
                ErrorReport::new(
                    "IDEMPOTENCY_KEY_IN_USE",
                    "a request with this Idempotency-Key is still running; retry later",
                )
            }
            Self::WebhookTarget(e) => {
                let code = match e {
                    TargetError::NotAllowed => "WEBHOOK_TARGET_NOT_ALLOWED",
                    TargetError::Unresolvable => "WEBHOOK_TARGET_UNRESOLVABLE",
                };
                ErrorReport::new(code, e.to_string())
                    .with_detail([FieldError::new("url", e.to_string())])
            }
            Self::Internal(e) => {
                // The full chain goes to the log, inside the request's span; never to the client.
                tracing::error!(error = format!("{e:#}"), "internal error");
                ErrorReport::for_status(status)
            }
            Self::PayloadTooLarge | Self::UnsupportedMediaType => ErrorReport::for_status(status),
        };
        response.extensions_mut().insert(report);
        response
    }
}
