//! The token flows behind `/api/v1/auth/token` and `/api/v1/auth/revoke`: the password grant,
//! refresh-token rotation and revocation. They speak `AuthError`; the route
//! (`crate::routes::auth`) parses the OAuth2 form and renders the OAuth2 answer.
//!
//! Refresh tokens are 256 random bits, stored only as their SHA-256 (`token_hash`). Every login
//! starts a family; each refresh replaces the token with a new one of the same family, and
//! presenting a replaced token again revokes the whole family (it was probably stolen).

use crate::domain::{NewRefreshToken, Rotation, Timestamp, Username};
use crate::middleware::ClientIp;
use crate::AppState;

use super::{random_hex, token_hash, AuthError};

/// Bytes of randomness in a refresh token (256 bits).
const REFRESH_TOKEN_BYTES: usize = 32;
/// Bytes of randomness in a family id.
const FAMILY_ID_BYTES: usize = 16;

/// What a successful grant hands out.
#[derive(Debug)]
pub struct IssuedTokens {
    /// Whose tokens they are.
    pub user_id: i64,
    pub access_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires: the refresh-token lifetime at login, less on
    /// each refresh (a family's lifetime counts from its login).
    pub refresh_expires_in: u64,
}

/// Logs `username` in with `password` (OAuth2 password grant).
///
/// A name that could not be a username (the rules of `Username`) gets the answer of a wrong
/// password at once: it never reaches the throttle, the database or the log. A client with too
/// many recent failures for this username must wait (`Throttled`) before its password is even
/// checked; other clients are not held back. An unknown user is checked against a dummy hash,
/// so that it costs the same time as a wrong password and gets the same answer. Failures are
/// logged with the username and the client's IP, never the password.
pub async fn password_grant(
    app: &AppState,
    client: ClientIp,
    username: &str,
    password: &str,
) -> Result<IssuedTokens, AuthError> {
    let Ok(username) = Username::parse(username) else {
        tracing::warn!(client_ip = %client, "login failed: not a valid username");
        metrics::counter!("login_failures_total").increment(1);
        return Err(AuthError::InvalidCredentials);
    };
    let limits = &app.limits;
    if let Err(wait) = limits.login_check(&username, client).await {
        tracing::warn!(username = username.as_str(), client_ip = %client,
            "login throttled after repeated failures");
        metrics::counter!("login_failures_total").increment(1);
        return Err(AuthError::Throttled { retry_after: wait });
    }
    let (user, hash) = match app.store.find_login(username.as_str()).await? {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let verified = app.auth.passwords.verify(password, hash).await?;
    let user = match user {
        Some(user) if verified && user.is_active => user,
        _ => {
            limits.login_failed(&username, client).await;
            tracing::warn!(username = username.as_str(), client_ip = %client, "login failed");
            metrics::counter!("login_failures_total").increment(1);
            return Err(AuthError::InvalidCredentials);
        }
    };
    limits.login_succeeded(&username, client).await;
    let refresh = random_hex(REFRESH_TOKEN_BYTES);
    let record = NewRefreshToken {
        token_hash: token_hash(&refresh),
        family_id: random_hex(FAMILY_ID_BYTES),
        expires_at: Timestamp::now().plus(app.config.refresh_token_ttl),
    };
    app.store.insert_refresh_token(user.id, &record).await?;
    tracing::info!(user_id = user.id, client_ip = %client, "login succeeded");
    Ok(issue(
        app,
        user.id,
        user.token_version,
        refresh,
        record.expires_at,
    ))
}

/// Exchanges a refresh token for a new access token and a new refresh token of the same
/// family; the presented one stops working. The new one expires with its family, at the
/// login's time plus the refresh-token lifetime: refreshing never makes a session longer. Of
/// two concurrent refreshes with one token, the store lets exactly one rotate it; the other
/// counts as reuse.
pub async fn refresh_grant(app: &AppState, presented: &str) -> Result<IssuedTokens, AuthError> {
    let next = random_hex(REFRESH_TOKEN_BYTES);
    match app
        .store
        .rotate_refresh_token(&token_hash(presented), &token_hash(&next))
        .await?
    {
        Rotation::Rotated {
            user_id,
            token_version,
            expires_at,
        } => Ok(issue(app, user_id, token_version, next, expires_at)),
        Rotation::Reused => {
            tracing::warn!("a rotated refresh token was presented again: its family is revoked");
            Err(AuthError::RefreshTokenReused)
        }
        Rotation::Invalid => Err(AuthError::InvalidRefreshToken),
    }
}

/// Revokes the family of a refresh token (RFC 7009). An unknown token is not an error: the
/// answer must not reveal whether a token was live.
pub async fn revoke(app: &AppState, token: &str) -> Result<(), AuthError> {
    app.store.revoke_refresh_family(&token_hash(token)).await?;
    Ok(())
}

fn issue(
    app: &AppState,
    user_id: i64,
    token_version: i64,
    refresh_token: String,
    refresh_expires_at: Timestamp,
) -> IssuedTokens {
    IssuedTokens {
        user_id,
        access_token: app.auth.keys.issue(user_id, token_version),
        expires_in: app.auth.keys.ttl_seconds(),
        refresh_token,
        refresh_expires_in: Timestamp::now().seconds_until(refresh_expires_at),
    }
}
