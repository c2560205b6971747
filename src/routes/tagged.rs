//! `Tagged`: the answer of every endpoint that returns one versioned row (inventory, sales
//! target, reservation): the envelope with the row's version as a strong entity tag,
//! `ETag: "<version>"`; for a `GET`, 304 (no body, the `ETag` kept) when the client's copy is
//! current, or 412 when its `If-Match` names another version (docs/api.md, "Conditional
//! requests").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::domain::{Precondition, ReadOutcome, StockError, Versioned};
use crate::error::{ApiError, Envelope};

/// A single-row answer and its `ETag`.
pub struct Tagged<T> {
    version: i64,
    envelope: Envelope<T>,
    location: Option<String>,
    not_modified: bool,
}

impl<T: Versioned> Tagged<T> {
    /// 200 with `data`, tagged with its version.
    pub fn new(data: T) -> Self {
        Self::with_version(data.version(), data)
    }

    /// 201 with `data`, tagged with its version, and its `Location`.
    pub fn created(data: T, location: String) -> Self {
        Self {
            version: data.version(),
            envelope: Envelope::created(data),
            location: Some(location),
            not_modified: false,
        }
    }
}

impl<T> Tagged<T> {
    /// 200 with `data`, tagged with `version` (for an answer that wraps a row, such as an
    /// adjustment's row and its ledger entry).
    pub fn with_version(version: i64, data: T) -> Self {
        Self {
            version,
            envelope: Envelope::success(data),
            location: None,
            not_modified: false,
        }
    }

    /// The answer to a `GET` under the request's conditions: this one; 304 when
    /// `If-None-Match` names the current version (or is `*`); 412 `VERSION_MISMATCH` when
    /// `If-Match` names another.
    pub fn unless_current(mut self, precondition: &Precondition) -> Result<Self, ApiError> {
        match precondition.on_read(self.version) {
            ReadOutcome::Send => Ok(self),
            ReadOutcome::NotModified => {
                self.not_modified = true;
                Ok(self)
            }
            ReadOutcome::Failed => Err(StockError::version_mismatch(Some(self.version)).into()),
        }
    }
}

/// `"<version>"`: a strong entity tag.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = if self.not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let status = StatusCode::from_u16(self.envelope.code).unwrap_or(StatusCode::OK);
            (status, Json(self.envelope)).into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag(self.version));
        if let Some(location) = self.location.filter(|_| !self.not_modified) {
            if let Ok(value) = HeaderValue::from_str(&location) {
                headers.insert(header::LOCATION, value);
            }
        }
        response
    }
}
