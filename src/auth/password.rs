//! Password hashing with argon2id (RFC 9106 / OWASP: 19 MiB, 2 passes, 1 lane), always on a
//! blocking thread, and never more at once than leaves a core for the async runtime: a flood
//! of logins queues here instead of starving every other request.
//!
//! Memory. Each hash needs its 19 MiB of blocks. Allocated and freed per hash, the allocator
//! kept the freed memory of every thread that had hashed for that thread's reuse: the dummy
//! hash, the first admin and three logins held ~70 MiB resident for good, against ~49 MiB
//! with the blocks allocated once per permit and reused (`Memory`; measured before huge pages
//! were turned off, see Cargo.toml). The PHC strings are built and checked here around
//! `Argon2::hash_password_into_with_memory`, the one call that takes its memory from us.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::AuthError;

pub struct Passwords {
    permits: Arc<Semaphore>,
    memory: Arc<Memory>,
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
        let memory = Arc::new(Memory::default());
        let dummy_hash =
            hash_now(&super::random_hex(16), &memory).expect("hashing a fresh password works");
        Self {
            permits: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            memory,
            dummy_hash,
        }
    }

    /// Hashes a new password (PHC string with its own salt).
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        let memory = Arc::clone(&self.memory);
        self.run(move || hash_now(&password, &memory))
            .await?
            .map_err(|e| AuthError::Internal(anyhow::anyhow!("hashing failed: {e}")))
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) it checks against a dummy
    /// hash, spending the same time, and answers false.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, AuthError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let memory = Arc::clone(&self.memory);
        let matches = self
            .run(move || verify_now(&password, &hash, &memory))
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

/// Argon2's working memory, kept between hashes: at most one buffer per hash running at once
/// (the permits), each allocated on first need and grown if a stored hash asks for more.
#[derive(Default)]
struct Memory(Mutex<Vec<Vec<Block>>>);

impl Memory {
    /// Runs `argon2` over `password` and `salt` into `out`, in a kept buffer.
    fn hash_into(
        &self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        let blocks = argon2.params().block_count();
        let mut buffer = self
            .0
            .lock()
            .map(|mut kept| kept.pop())
            .unwrap_or_default()
            .unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::new());
        }
        let hashed =
            argon2.hash_password_into_with_memory(password, salt, out, &mut buffer[..blocks]);
        if let Ok(mut kept) = self.0.lock() {
            kept.push(buffer);
        }
        hashed
    }
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for `password`.
fn hash_now(password: &str, memory: &Memory) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let argon2 = Argon2::default();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let output_len = argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(memory.hash_into(&argon2, password.as_bytes(), salt_bytes, out)?)
    })?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` hashes to the PHC string `hash`, with the parameters it names; the
/// outputs are compared in constant time (`Output`'s equality).
fn verify_now(password: &str, hash: &str, memory: &Memory) -> bool {
    let check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let argon2 = Argon2::new(
            Algorithm::try_from(parsed.algorithm)?,
            version,
            Params::try_from(&parsed)?,
        );
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let computed = Output::init_with(expected.len(), |out| {
            Ok(memory.hash_into(&argon2, password.as_bytes(), salt_bytes, out)?)
        })?;
        Ok(computed == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        let memory = Memory::default();
        let ours = hash_now("correct horse battery", &memory).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // The argon2 crate's own verifier accepts ours, and we accept its.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_now("correct horse battery", &theirs, &memory));
        assert!(!verify_now("correct horse batterz", &theirs, &memory));
        assert!(!verify_now("correct horse battery", "not a hash", &memory));
    }

    #[test]
    fn a_hash_with_other_parameters_is_verified_with_its_own() {
        let memory = Memory::default();
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw-with-small-params", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(verify_now("pw-with-small-params", &small, &memory));
        // The kept buffer then serves a default (larger) hash too.
        let ours = hash_now("another password", &memory).unwrap();
        assert!(verify_now("another password", &ours, &memory));
        assert_eq!(memory.0.lock().unwrap().len(), 1, "one buffer, reused");
    }
}
