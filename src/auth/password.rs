//! Password hashing with argon2id (RFC 9106 / OWASP: 19 MiB, 2 passes, 1 lane), always on a
//! blocking thread, and never more at once than leaves a core for the async runtime: a flood
//! of logins queues here instead of starving every other request.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use tokio::sync::Semaphore;

use super::AuthError;

pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the username is unknown, so
    /// that an unknown user costs the same time as a wrong password.
    dummy_hash: String,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let dummy_hash = hash_now(&super::random_hex(16)).expect("hashing a fresh password works");
        Self {
            permits: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            dummy_hash,
        }
    }

    /// Hashes a new password (PHC string with its own salt).
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.run(move || hash_now(&password))
            .await?
            .map_err(|e| AuthError::Internal(anyhow::anyhow!("hashing failed: {e}")))
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) it checks against a dummy
    /// hash, spending the same time, and answers false.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, AuthError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let matches = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(e.into()))
    }
}

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}
