//! The auth endpoints: `/api/v1/auth/token` (password and refresh_token grants) and
//! `/api/v1/auth/revoke` (RFC 7009), both public, and `/api/v1/auth/me`, which needs a token.
//!
//! The token and revoke endpoints speak RFC 6749, not the envelope: form bodies in,
//! `{"access_token", ...}` or `{"error", "error_description"}` out, so that Swagger UI's
//! Authorize button and any standard OAuth2 client work unchanged. The flows themselves live in
//! `crate::auth::login`; here the form is read and `AuthError` becomes an OAuth2 answer
//! (`From<AuthError> for OAuthFailure`, the one place that decides those statuses).

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::login::{self, IssuedTokens};
use crate::auth::{AuthError, AuthUser};
use crate::domain::{Actor, AuditAction, AuditTarget, NewAudit, Role, SellerId, Username};
use crate::error::Envelope;
use crate::middleware::rate_limit;
use crate::middleware::{ClientIp, RequestId};
use crate::AppState;

/// The endpoints that need no token: logging in, refreshing and revoking. The token endpoint
/// also has its own, stricter per-IP limit against password guessing
/// (`LOGIN_RATE_LIMIT_PER_MINUTE`).
pub fn public_router(app: &AppState) -> OpenApiRouter<AppState> {
    let (token_router, token_doc) = OpenApiRouter::new()
        .routes(routes!(issue_token))
        .split_for_parts();
    let token_router =
        rate_limit::limit(token_router, app.limits.clone(), rate_limit::Limit::Login);
    OpenApiRouter::with_openapi(token_doc)
        .merge(OpenApiRouter::from(token_router))
        .routes(routes!(revoke_token))
}

/// The endpoints that need a token.
pub fn protected_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 7200)]
    pub expires_in: u64,
    pub refresh_token: String,
    #[schema(example = 604800)]
    pub refresh_expires_in: u64,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            refresh_expires_in: tokens.refresh_expires_in,
        }
    }
}

/// An OAuth2 error (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    pub error: &'static str,
    #[schema(example = "invalid username or password")]
    pub error_description: &'static str,
}

/// A failed token or revoke request, rendered in the OAuth2 error format.
pub struct OAuthFailure {
    status: StatusCode,
    body: OAuthError,
    retry_after: Option<u64>,
}

impl OAuthFailure {
    fn new(status: StatusCode, error: &'static str, error_description: &'static str) -> Self {
        Self {
            status,
            body: OAuthError {
                error,
                error_description,
            },
            retry_after: None,
        }
    }

    fn invalid_request(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_grant", description)
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let mut response = (self.status, no_store(), Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How each failure of a token flow is answered. Wrong credentials and every kind of bad
/// refresh token look alike to the client; only the log tells them apart.
impl From<AuthError> for OAuthFailure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => Self::invalid_grant("invalid username or password"),
            AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused => {
                Self::invalid_grant("invalid refresh token")
            }
            AuthError::Throttled { retry_after } => Self {
                retry_after: Some(crate::limits::retry_after_secs(retry_after)),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "invalid_grant",
                    "too many failed logins for this username; retry later",
                )
            },
            AuthError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "database unavailable",
            ),
            AuthError::Internal(e) => {
                // The full chain goes to the log, inside the request's span; never to the client.
                tracing::error!(error = format!("{e:#}"), "token endpoint failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal server error",
                )
            }
        }
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The form of a token or revoke request; any other body is a malformed request.
fn form(
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Vec<(String, String)>, OAuthFailure> {
    body.map(|Form(form)| form).map_err(|_| {
        OAuthFailure::invalid_request("the body must be application/x-www-form-urlencoded")
    })
}

/// The one value of a form field; a repeated field is a malformed request (RFC 6749 §3.2).
fn field<'a>(form: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, OAuthFailure> {
    let mut values = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(OAuthFailure::invalid_request("a parameter is repeated")),
        (value, None) => Ok(value.filter(|v| !v.is_empty())),
    }
}

/// Exchange credentials for tokens (OAuth2 password grant), or a refresh token for new ones.
///
/// `application/x-www-form-urlencoded` body:
/// `grant_type=password&username=..&password=..` or
/// `grant_type=refresh_token&refresh_token=..`. A refresh returns a new access token **and a
/// new refresh token**; the old one stops working, and presenting it again revokes every token
/// descended from the same login. The password grant is meant for sellerdesk's own first-party
/// clients (RFC 9700 discourages it for third parties).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "grant_type=password&username=admin&password=..."),
    responses(
        (status = 200, description = "tokens issued", body = TokenResponse),
        (status = 400, description = "invalid_request or unsupported_grant_type", body = OAuthError,
            example = json!({"error": "invalid_request", "error_description": "username and password are required"})),
        (status = 401, description = "invalid_grant: wrong credentials, or a bad, expired, revoked or reused refresh token", body = OAuthError,
            example = json!({"error": "invalid_grant", "error_description": "invalid username or password"})),
        (status = 429, description = "too many failed logins for this username; see Retry-After", body = OAuthError,
            example = json!({"error": "invalid_grant", "error_description": "too many failed logins for this username; retry later"})),
        (status = 503, description = "database unavailable", body = OAuthError,
            example = json!({"error": "temporarily_unavailable", "error_description": "database unavailable"})),
    ))]
pub async fn issue_token(
    State(app): State<AppState>,
    Extension(client): Extension<ClientIp>,
    request_id: Option<Extension<RequestId>>,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let form = form(body)?;
    let username = field(&form, "username")?;
    let password = field(&form, "password")?;
    let actor = Actor {
        client_ip: client.0.map(|ip| ip.to_string()),
        request_id: request_id.map(|Extension(id)| id.as_str().to_owned()),
        ..Actor::default()
    };
    let tokens = match field(&form, "grant_type")? {
        Some("password") => password_grant(&app, client, username, password, actor).await?,
        // A client that omits grant_type but sends credentials means the password grant.
        None if username.is_some() && password.is_some() => {
            password_grant(&app, client, username, password, actor).await?
        }
        Some("refresh_token") => {
            let Some(presented) = field(&form, "refresh_token")? else {
                return Err(OAuthFailure::invalid_request("refresh_token is required"));
            };
            let refreshed = login::refresh_grant(&app, presented).await;
            if let Err(AuthError::RefreshTokenReused) = &refreshed {
                let audit = NewAudit::new(AuditAction::RefreshTokenReused, json!({}));
                app.store
                    .record_audit(&audit, &actor)
                    .await
                    .map_err(AuthError::from)?;
            }
            refreshed?
        }
        None => return Err(OAuthFailure::invalid_request("grant_type is required")),
        Some(_) => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be password or refresh_token",
            ))
        }
    };
    Ok((
        StatusCode::OK,
        no_store(),
        Json(TokenResponse::from(tokens)),
    )
        .into_response())
}

/// The password grant, and its audit entry whatever its outcome (a malformed request
/// excepted). The entry names the username only when it is a valid one, so that no arbitrary
/// text (a password typed in the wrong field, say) is kept.
async fn password_grant(
    app: &AppState,
    client: ClientIp,
    username: Option<&str>,
    password: Option<&str>,
    actor: Actor,
) -> Result<IssuedTokens, OAuthFailure> {
    let (Some(username), Some(password)) = (username, password) else {
        return Err(OAuthFailure::invalid_request(
            "username and password are required",
        ));
    };
    let granted = login::password_grant(app, client, username, password).await;
    let actor = Actor {
        username: Username::parse(username).ok().map(|_| username.to_owned()),
        user_id: granted.as_ref().ok().map(|tokens| tokens.user_id),
        ..actor
    };
    let audit = match &granted {
        Ok(tokens) => NewAudit::new(AuditAction::LoginSucceeded, json!({}))
            .on(AuditTarget::User, tokens.user_id),
        Err(AuthError::InvalidCredentials) => NewAudit::new(
            AuditAction::LoginFailed,
            json!({"reason": "invalid_credentials"}),
        ),
        Err(AuthError::Throttled { .. }) => {
            NewAudit::new(AuditAction::LoginFailed, json!({"reason": "throttled"}))
        }
        // The database or the service failed: nothing to say about the caller.
        Err(_) => return Ok(granted?),
    };
    app.store
        .record_audit(&audit, &actor)
        .await
        .map_err(AuthError::from)?;
    Ok(granted?)
}

/// Revoke a refresh token and every token rotated from the same login (RFC 7009).
///
/// Form body `token=...`. Answers 200 whether or not the token was known, so it reveals
/// nothing. Access tokens cannot be revoked; they expire (deactivating the user stops them).
#[utoipa::path(post, path = "/api/v1/auth/revoke", tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "token=<refresh token>"),
    responses(
        (status = 200, description = "revoked, or not a live token"),
        (status = 400, description = "no token parameter", body = OAuthError,
            example = json!({"error": "invalid_request", "error_description": "token is required"})),
        (status = 503, description = "database unavailable", body = OAuthError,
            example = json!({"error": "temporarily_unavailable", "error_description": "database unavailable"})),
    ))]
pub async fn revoke_token(
    State(app): State<AppState>,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let form = form(body)?;
    let Some(token) = field(&form, "token")? else {
        return Err(OAuthFailure::invalid_request("token is required"));
    };
    login::revoke(&app, token).await?;
    Ok((StatusCode::OK, no_store(), Json(serde_json::json!({}))).into_response())
}

/// The caller, as the access token identifies them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    #[schema(example = 2)]
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub seller_ids: Vec<SellerId>,
}

/// Who the access token belongs to: id, username, role and the sellers they may act for.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "the caller", body = Envelope<MeView>)))]
pub async fn me(caller: AuthUser) -> Json<Envelope<MeView>> {
    Json(Envelope::success(MeView {
        id: caller.id,
        username: caller.username,
        role: caller.role,
        seller_ids: caller.seller_ids,
    }))
}
