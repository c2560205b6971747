//! `ValidJson<T>`: the body of a JSON request, read into `T` through an `ObjectReader`.
//!
//! Only the request-level checks live here (content type, body size, well-formed JSON); what a
//! valid object is, field by field, is `object/`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use serde_json::value::RawValue;

use super::object::{read_object, FromJsonObject};
use crate::error::{ApiError, FieldError, Problems};

/// The body, as `T`, of a request whose content type is JSON. Any problem rejects the request:
/// 415 for another content type, 413 past the route's body limit, 422 for malformed JSON or
/// invalid fields.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: FromJsonObject> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = body_of(req, state).await?;
        parse(&body).map(Self)
    }
}

/// A JSON body that may be left out: `None` for an empty body (whatever its content type),
/// else the body read as `ValidJson` reads it.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: FromJsonObject> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers().get(header::CONTENT_TYPE));
        let body = body_of(req, state).await?;
        if body.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&body).map(|value| Self(Some(value)))
    }
}

/// The bytes of the body, within the route's limit (413 beyond it).
async fn body_of<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("could not read the request body")
        }
    })
}

/// `body` as a `T`, or every problem with it (malformed JSON, invalid fields) as a 422.
fn parse<T: FromJsonObject>(body: &[u8]) -> Result<T, ApiError> {
    let mut errors = Problems::new();
    let value = match serde_json::from_slice::<&RawValue>(body) {
        Ok(raw) => read_object::<T>(raw, None, "body", &mut errors),
        Err(e) => {
            let message = format!(
                "is not valid JSON: {} at line {} column {}",
                describe(&e),
                e.line(),
                e.column()
            );
            errors.push(FieldError::new("body", message));
            None
        }
    };
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// `application/json`, optionally with parameters (`; charset=utf-8`), or a `+json` type.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// serde_json's own text names the problem but also repeats the position; keep the category.
fn describe(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_json_suffixed_content_types_count_as_json() {
        for (content_type, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/json", false),
            ("application/jsonx", false),
            ("text/plain", false),
        ] {
            let value = HeaderValue::from_static(content_type);
            assert_eq!(is_json(Some(&value)), json, "{content_type}");
        }
        assert!(!is_json(None));
    }
}
