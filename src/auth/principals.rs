//! `Principals`: a short-lived cache of active users by id, so that an authenticated request
//! does not read the user table every time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::AuthUser;
use crate::store::{Store, StoreError};

/// How long a user's role, sellers and active flag are trusted before they are read again.
/// A deactivation or a change of role or sellers must take effect within 5 s on every
/// instance; changes made through this instance take effect at once (`Principals::forget`).
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(2);

/// Past this many cached users, expired entries are dropped whenever one is added.
const PRUNE_ABOVE: usize = 10_000;

/// Active users by id, each trusted for `PRINCIPAL_TTL`.
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
        if entries.len() > PRUNE_ABOVE {
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
