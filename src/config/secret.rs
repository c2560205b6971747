//! `Secret`, a string that never shows in `Debug` output, and the rules for the JWT signing
//! key (`SECRET_KEY`): long enough, and never a value that was ever published (in this
//! repository's examples, docs, scripts or tests), in any mode.

use rand::RngCore;

use super::env::{bad, ConfigError};

/// A secret string (signing key, password): usable, but never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Shortest signing key accepted: HMAC keys must be at least as long as the hash (RFC 7518
/// §3.2); 32 bytes covers HS256.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// Keys that anyone can read: every value this repository has ever shown as a `SECRET_KEY`
/// (its `.env.example`, the benchmark script, the test helpers) and the usual placeholders.
/// Refused in every mode, development included: a development server reachable from a network
/// signing tokens with a published key hands out admin access to anyone who reads the repo.
/// Add a value here before publishing it anywhere; examples and scripts generate theirs.
const PUBLISHED_KEYS: [&str; 7] = [
    "change-me-to-a-random-string-of-at-least-32-bytes",
    "bench-secret-key-bench-secret-key-0123456789",
    "test-secret-key-that-is-long-enough-0123456789",
    "your-secret-key",
    "changeme",
    "change-me",
    "secret",
];

/// A fresh random signing key, for development runs that set none.
pub(super) fn random_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `key` as the signing key, if it is long enough and not a published value.
pub(super) fn signing_key(key: String) -> Result<Secret, ConfigError> {
    if key.len() < MIN_SECRET_KEY_BYTES {
        return Err(bad(
            "SECRET_KEY",
            format!("must be at least {MIN_SECRET_KEY_BYTES} bytes"),
        ));
    }
    if PUBLISHED_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return Err(bad(
            "SECRET_KEY",
            "is a published placeholder; generate a random key",
        ));
    }
    Ok(Secret(key))
}
