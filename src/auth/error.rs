//! `AuthError`: how logging in, refreshing, revoking, password hashing and the first-admin
//! bootstrap fail, in their own terms. No HTTP here: `crate::routes::auth` turns it into an
//! OAuth2 error response, `crate::error` into the envelope, the CLI into a message.

use std::time::Duration;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password or inactive user: deliberately one case, so that no
    /// answer tells them apart.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins for this username; the next attempt may come after `retry_after`.
    #[error("too many failed logins for this username")]
    Throttled { retry_after: Duration },
    /// A refresh token that is unknown, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A refresh token that was already rotated was presented again; its whole family is now
    /// revoked.
    #[error("a rotated refresh token was presented again")]
    RefreshTokenReused,
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable => Self::Unavailable,
            StoreError::Db(e) => Self::Internal(e.into()),
            // The flows ask the store nothing that may legitimately be missing or taken (they
            // handle those answers before converting), so either is a bug worth a 500.
            other @ (StoreError::NotFound | StoreError::Conflict | StoreError::Stock(_)) => {
                Self::Internal(anyhow::anyhow!("unexpected store answer: {other}"))
            }
        }
    }
}
