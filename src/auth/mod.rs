//! Authentication and authorisation: who the caller is (`AuthUser`, from the bearer token) and
//! what they may touch (`Scope`, `may_write`, `may_read`, ...), and the token flows
//! (`login`: password grant, refresh rotation, revocation) in `AuthError` terms;
//! `crate::routes::auth` puts OAuth2 HTTP around them.

pub mod bootstrap;
pub mod error;
pub mod jwt;
pub mod login;
pub mod password;
pub mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::{Role, Scope, SellerId, User, Username};
use crate::error::ApiError;
use crate::store::{Store, StoreError};
use crate::AppState;

pub use bootstrap::{bootstrap_admin, BootstrapAdmin};
pub use error::AuthError;
pub use jwt::JwtKeys;
pub use password::Passwords;
pub use throttle::LoginThrottle;

/// How long a user's role, sellers and active flag are trusted before they are read again.
/// A deactivation or a change of role or sellers must take effect within 5 s on every
/// instance; changes made through this instance take effect at once (`Principals::forget`).
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(2);

/// Everything authentication needs, built once at start-up.
pub struct AuthState {
    pub keys: JwtKeys,
    pub passwords: Passwords,
    pub principals: Principals,
    pub throttle: LoginThrottle,
}

impl AuthState {
    pub fn new(config: &Config) -> Self {
        Self {
            keys: JwtKeys::new(config),
            passwords: Passwords::new(),
            principals: Principals::default(),
            throttle: LoginThrottle::default(),
        }
    }
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a refresh token: SHA-256, hex. The token has 256 random bits, so a fast
/// hash is enough; a database leak does not reveal usable tokens.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub seller_ids: Vec<SellerId>,
}

impl AuthUser {
    /// The sellers whose rows this caller may see and change.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::Seller => Scope::Sellers(self.seller_ids.clone()),
        }
    }

    fn owns(&self, seller: &SellerId) -> bool {
        self.role == Role::Admin || self.seller_ids.contains(seller)
    }

    /// Writing another seller's row is forbidden (403).
    pub fn may_write(&self, seller: &SellerId) -> Result<(), ApiError> {
        if self.owns(seller) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "you may not write data of this seller_id".into(),
            ))
        }
    }

    /// Writing a batch with any foreign seller is forbidden (403), naming the first such item.
    pub fn may_write_all<'s>(
        &self,
        sellers: impl Iterator<Item = &'s SellerId>,
    ) -> Result<(), ApiError> {
        for (index, seller) in sellers.enumerate() {
            if !self.owns(seller) {
                return Err(ApiError::Forbidden(
                    format!("item {index}: you may not write data of this seller_id").into(),
                ));
            }
        }
        Ok(())
    }

    /// Reading another seller's row by id looks exactly like a missing row (404).
    pub fn may_read(&self, seller: &SellerId) -> Result<(), ApiError> {
        if self.owns(seller) {
            Ok(())
        } else {
            Err(ApiError::NotFound("no such resource"))
        }
    }

    /// Filtering a list by a foreign seller is forbidden (403).
    pub fn may_filter(&self, seller: Option<&SellerId>) -> Result<(), ApiError> {
        seller.map_or(Ok(()), |s| {
            if self.owns(s) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "you may not read data of this seller_id".into(),
                ))
            }
        })
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }
}

impl From<User> for AuthUser {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            role: user.role,
            seller_ids: user.seller_ids,
        }
    }
}

/// A short-lived cache of active users by id, so that a request does not read the user table
/// every time, yet deactivation and role changes take effect within `PRINCIPAL_TTL`.
#[derive(Default)]
pub struct Principals {
    entries: RwLock<HashMap<i64, (Instant, Arc<AuthUser>)>>,
}

impl Principals {
    /// The active user with this id, from the cache or the store. `None` when the user is
    /// unknown or inactive.
    pub async fn load(
        &self,
        store: &dyn Store,
        id: i64,
    ) -> Result<Option<Arc<AuthUser>>, StoreError> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some((at, user)) = cached {
            if at.elapsed() < PRINCIPAL_TTL {
                return Ok(Some(user));
            }
        }
        let user = match store.get_user(id).await {
            Ok(user) if user.is_active => Arc::new(AuthUser::from(user)),
            Ok(_) | Err(StoreError::NotFound) => {
                self.forget(id);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Keep the map small: expired entries go whenever it grows.
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < PRINCIPAL_TTL);
        }
        entries.insert(id, (Instant::now(), user.clone()));
        Ok(Some(user))
    }

    /// Drops the cached copy, so the next request reads the user again.
    pub fn forget(&self, id: i64) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized { token_sent: false });
        };
        let invalid = ApiError::Unauthorized { token_sent: true };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::Unauthorized { token_sent: true })?;
        let id = app.auth.keys.verify(token).ok_or(invalid)?;
        let user = app
            .auth
            .principals
            .load(app.store.as_ref(), id)
            .await?
            .ok_or(ApiError::Unauthorized { token_sent: true })?;
        // The request log line names the caller (see `middleware::request_span`).
        tracing::Span::current().record("user_id", id);
        Ok(AuthUser::clone(&user))
    }
}
