//! `require_token`: the authentication layer of the protected router (`crate::routes`).
//!
//! It runs before any extractor of the handler, so a request without a valid access token is
//! answered 401 before its path, query or body is looked at: an anonymous client learns nothing
//! from validation messages. The token is checked once here; handlers read the caller with the
//! `AuthUser` extractor.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::caller::Authenticated;
use crate::error::ApiError;
use crate::AppState;

/// Lets a request with a valid bearer token of an active user, of the user's current token
/// version, through, with the caller in its
/// extensions and `user_id` on its span; answers anything else 401 (`WWW-Authenticate:
/// Bearer`, with `error="invalid_token"` when a token was sent).
pub async fn require_token(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    match authenticate(&app, req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Authenticated, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized { token_sent: false });
    };
    let invalid = || ApiError::Unauthorized { token_sent: true };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(invalid)?;
    let bearer = app.auth.keys.verify(token).ok_or_else(invalid)?;
    let user = app
        .auth
        .principals
        .load(app.store.as_ref(), bearer)
        .await?
        .ok_or_else(invalid)?;
    // The request log line names the caller (see `crate::middleware::request_span`).
    tracing::Span::current().record("user_id", bearer.user_id);
    Ok(Authenticated(user))
}
