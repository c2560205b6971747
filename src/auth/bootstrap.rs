//! The first admin: created at start-up when the user table is empty, so that a new
//! installation can be logged into at all.

use crate::config::Config;
use crate::domain::{Actor, NewUser, Role, Username};
use crate::store::{Store, StoreError};

use super::{random_hex, AuthError, Passwords};

/// Bytes of randomness in a generated admin password (24 hex digits).
const GENERATED_PASSWORD_BYTES: usize = 12;

/// The first admin was created; `generated_password` is set when no `ADMIN_PASSWORD` was given.
pub struct BootstrapAdmin {
    pub generated_password: Option<String>,
}

/// With no users at all, creates `admin` with `ADMIN_PASSWORD`, or with a random password that
/// is returned so the caller can show it once. `None` when users already exist.
pub async fn bootstrap_admin(
    store: &dyn Store,
    config: &Config,
    passwords: &Passwords,
) -> Result<Option<BootstrapAdmin>, AuthError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (random_hex(GENERATED_PASSWORD_BYTES), true),
    };
    let user = NewUser {
        username: Username::parse("admin").expect("'admin' is a valid username"),
        password_hash: passwords.hash(&password).await?,
        role: Role::Admin,
        seller_ids: Vec::new(),
    };
    match store.create_user(&user, &Actor::system()).await {
        Ok(_) => Ok(Some(BootstrapAdmin {
            generated_password: generated.then_some(password),
        })),
        // Another instance starting at the same moment created it first.
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
