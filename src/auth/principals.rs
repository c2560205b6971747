//! `Principals`: a short-lived cache of active users by id, so that an authenticated request
//! does not read the user table every time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::jwt::Bearer;
use super::AuthUser;
use crate::store::{Store, StoreError};

/// How long a user's role, sellers, active flag and token version are trusted before they are
/// read again. A deactivation, a password change or a change of role or sellers must take
/// effect within 5 s on every instance; changes made through this instance take effect at
/// once (`Principals::forget`).
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(2);

/// Past this many cached users, expired entries are dropped whenever one is added.
const PRUNE_ABOVE: usize = 10_000;

/// A cached active user.
struct Entry {
    read_at: Instant,
    token_version: i64,
    user: Arc<AuthUser>,
}

/// Active users by id, each trusted for `PRINCIPAL_TTL`.
#[derive(Default)]
pub struct Principals {
    entries: RwLock<HashMap<i64, Entry>>,
}

impl Principals {
    /// The active user a token speaks for, from the cache or the store. `None` when the user
    /// is unknown or inactive, or the token is of another token version than the user's
    /// current one (sessions ended by a password change or a deactivation).
    pub async fn load(
        &self,
        store: &dyn Store,
        bearer: Bearer,
    ) -> Result<Option<Arc<AuthUser>>, StoreError> {
        let id = bearer.user_id;
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .filter(|entry| entry.read_at.elapsed() < PRINCIPAL_TTL)
            .map(|entry| (entry.token_version, entry.user.clone()));
        match cached {
            Some((version, user)) if version == bearer.token_version => return Ok(Some(user)),
            // A token older than what this instance knows is dead. A newer one was issued
            // after a change this instance has not read yet: read it now.
            Some((version, _)) if version > bearer.token_version => return Ok(None),
            _ => {}
        }
        let stored = match store.get_user(id).await {
            Ok(user) if user.is_active => user,
            Ok(_) | Err(StoreError::NotFound) => {
                self.forget(id);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let token_version = stored.token_version;
        let user = Arc::new(AuthUser::from(stored));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, entry| entry.read_at.elapsed() < PRINCIPAL_TTL);
        }
        entries.insert(
            id,
            Entry {
                read_at: Instant::now(),
                token_version,
                user: user.clone(),
            },
        );
        Ok((token_version == bearer.token_version).then_some(user))
    }

    /// Drops the cached copy, so the next request reads the user again.
    pub fn forget(&self, id: i64) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}
