//! `Precondition`: the `If-Match` and `If-None-Match` headers of a request, read before the
//! handler runs. A header that lists no entity tag this API could have given out is a 422
//! (`detail` names the header), never silently ignored.
//!
//! The handler passes it to the store, which checks it against the row it writes, in the same
//! transaction (`crate::domain::Precondition::allows`), or to `crate::routes::Tagged` for a
//! `GET` (304, 412).

use axum::extract::FromRequestParts;
use axum::http::header::{HeaderMap, HeaderName, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;

use crate::domain::{Precondition, Tags};
use crate::error::{ApiError, FieldError, Problems};

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut problems = Problems::new();
        let if_match = read(&parts.headers, IF_MATCH, "If-Match", false, &mut problems);
        let if_none_match = read(
            &parts.headers,
            IF_NONE_MATCH,
            "If-None-Match",
            true,
            &mut problems,
        );
        if problems.is_empty() {
            Ok(Self {
                if_match,
                if_none_match,
            })
        } else {
            Err(ApiError::Validation(problems))
        }
    }
}

/// The tags of every `name` header of the request (several lines are one list), if any.
fn read(
    headers: &HeaderMap,
    name: HeaderName,
    field: &'static str,
    keep_weak: bool,
    problems: &mut Problems,
) -> Option<Tags> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let joined: Option<Vec<&str>> = lines.map(|line| line.to_str().ok()).collect();
    let parsed = joined
        .ok_or(Tags::RULE)
        .and_then(|lines| Tags::parse(&lines.join(","), keep_weak));
    parsed
        .map_err(|why| problems.push(FieldError::new(field, why)))
        .ok()
}

/// Refuses `If-Match` and `If-None-Match` where they are not supported (batches: one header
/// cannot name the versions of many rows), rather than writing unconditionally.
pub fn refuse_precondition(precondition: &Precondition) -> Result<(), ApiError> {
    let mut problems = Problems::new();
    let why = "is not supported here: send each row on its own to write it conditionally";
    if precondition.if_match.is_some() {
        problems.push(FieldError::new("If-Match", why));
    }
    if precondition.if_none_match.is_some() {
        problems.push(FieldError::new("If-None-Match", why));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(problems))
    }
}
