//! OAuth2 token endpoints: `/api/v1/auth/token` (password and refresh_token grants),
//! `/api/v1/auth/revoke` (RFC 7009) and `/api/v1/auth/me`.
//!
//! The token and revoke endpoints speak RFC 6749, not the envelope: form bodies in,
//! `{"access_token", ...}` or `{"error", "error_description"}` out, so that Swagger UI's
//! Authorize button and any standard OAuth2 client work unchanged.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{random_hex, token_hash, AuthUser};
use crate::config::Config;
use crate::domain::{NewRefreshToken, Role, Rotation, SellerId, Timestamp, Username};
use crate::error::{ApiError, Envelope};
use crate::middleware::rate_limit;
use crate::middleware::ClientIp;
use crate::AppState;

/// The auth routes; the token endpoint also has its own, stricter per-IP limit against
/// password guessing (`LOGIN_RATE_LIMIT_PER_MINUTE`).
pub fn router(config: &Config) -> OpenApiRouter<AppState> {
    let token = OpenApiRouter::new().routes(routes!(issue_token));
    let (token_router, token_doc) = token.split_for_parts();
    let token_router = rate_limit::limit(token_router, config.login_rate_limit_per_minute);
    OpenApiRouter::with_openapi(token_doc)
        .merge(OpenApiRouter::from(token_router))
        .routes(routes!(revoke_token))
        .routes(routes!(me))
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

/// An OAuth2 error (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    pub error: &'static str,
    #[schema(example = "invalid username or password")]
    pub error_description: &'static str,
}

/// A failed token request, rendered in the OAuth2 error format.
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

/// Failures inside the endpoint that are not the client's fault keep their usual envelope.
impl From<ApiError> for OAuthFailure {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "database unavailable",
            ),
            other => {
                tracing::error!(error = format!("{other:#}"), "token endpoint failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal server error",
                )
            }
        }
    }
}

impl From<crate::store::StoreError> for OAuthFailure {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
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
        (status = 400, description = "invalid_request or unsupported_grant_type", body = OAuthError),
        (status = 401, description = "invalid_grant: wrong credentials, or a bad, expired, revoked or reused refresh token", body = OAuthError),
        (status = 429, description = "too many failed logins for this username; see Retry-After", body = OAuthError),
    ))]
pub async fn issue_token(
    State(app): State<AppState>,
    Extension(client): Extension<ClientIp>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let Ok(Form(form)) = form else {
        return Err(OAuthFailure::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    };
    let username = field(&form, "username")?;
    let password = field(&form, "password")?;
    match field(&form, "grant_type")? {
        Some("password") => password_grant(&app, client, username, password).await,
        // A client that omits grant_type but sends credentials means the password grant.
        None if username.is_some() && password.is_some() => {
            password_grant(&app, client, username, password).await
        }
        Some("refresh_token") => refresh_grant(&app, field(&form, "refresh_token")?).await,
        None => Err(OAuthFailure::invalid_request("grant_type is required")),
        Some(_) => Err(OAuthFailure::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be password or refresh_token",
        )),
    }
}

async fn password_grant(
    app: &AppState,
    client: ClientIp,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Response, OAuthFailure> {
    let (Some(username), Some(password)) = (username, password) else {
        return Err(OAuthFailure::invalid_request(
            "username and password are required",
        ));
    };
    if let Err(wait) = app.auth.throttle.check(username) {
        tracing::warn!(username, client_ip = %client, "login throttled after repeated failures");
        let mut failure = OAuthFailure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_grant",
            "too many failed logins for this username; retry later",
        );
        failure.retry_after = Some(wait.as_secs().max(1));
        return Err(failure);
    }
    // Unknown users are checked against a dummy hash: same answer, same time.
    let found = app.store.find_login(username).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let verified = app.auth.passwords.verify(password, hash).await?;
    let user = match user {
        Some(user) if verified && user.is_active => user,
        _ => {
            app.auth.throttle.failed(username);
            tracing::warn!(username, client_ip = %client, "login failed");
            return Err(OAuthFailure::invalid_grant("invalid username or password"));
        }
    };
    app.auth.throttle.succeeded(username);
    let refresh = random_hex(32);
    let record = NewRefreshToken {
        token_hash: token_hash(&refresh),
        family_id: random_hex(16),
        expires_at: Timestamp::now().plus(app.config.refresh_token_ttl),
    };
    app.store.insert_refresh_token(user.id, &record).await?;
    tracing::info!(user_id = user.id, client_ip = %client, "login succeeded");
    Ok(tokens(app, user.id, refresh))
}

async fn refresh_grant(app: &AppState, presented: Option<&str>) -> Result<Response, OAuthFailure> {
    let Some(presented) = presented else {
        return Err(OAuthFailure::invalid_request("refresh_token is required"));
    };
    let next = random_hex(32);
    let expires_at = Timestamp::now().plus(app.config.refresh_token_ttl);
    match app
        .store
        .rotate_refresh_token(&token_hash(presented), &token_hash(&next), expires_at)
        .await?
    {
        Rotation::Rotated { user_id } => Ok(tokens(app, user_id, next)),
        Rotation::Reused => {
            tracing::warn!("a rotated refresh token was presented again: its family is revoked");
            Err(OAuthFailure::invalid_grant("invalid refresh token"))
        }
        Rotation::Invalid => Err(OAuthFailure::invalid_grant("invalid refresh token")),
    }
}

fn tokens(app: &AppState, user_id: i64, refresh_token: String) -> Response {
    let body = TokenResponse {
        access_token: app.auth.keys.issue(user_id),
        token_type: "bearer",
        expires_in: app.auth.keys.ttl_seconds(),
        refresh_token,
        refresh_expires_in: app.config.refresh_token_ttl.as_secs(),
    };
    (StatusCode::OK, no_store(), Json(body)).into_response()
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
        (status = 400, description = "no token parameter", body = OAuthError),
    ))]
pub async fn revoke_token(
    State(app): State<AppState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let Ok(Form(form)) = form else {
        return Err(OAuthFailure::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    };
    let Some(token) = field(&form, "token")? else {
        return Err(OAuthFailure::invalid_request("token is required"));
    };
    app.store.revoke_refresh_family(&token_hash(token)).await?;
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
