//! `IdPath`: the `{id}` segment of a resource path, checked before the handler runs.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The `{id}` of a resource path: a positive 64-bit integer, else 422.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid("id", "must be a positive integer"))?;
        match text.parse::<i64>() {
            // Digits only: `parse` alone would also take "+5".
            Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(id)),
            _ => Err(ApiError::invalid("id", "must be a positive integer")),
        }
    }
}
