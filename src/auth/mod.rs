//! Authentication and authorisation: who the caller is and what they may touch.
//!
//! Reading order:
//! - `layer`: `require_token`, the layer on the protected router that checks the bearer token
//!   once per request and leaves the caller on it;
//! - `caller`: `AuthUser`, that caller as handlers extract it, and its permission checks;
//! - `login`: the token flows (password grant, refresh rotation, revocation), in `AuthError`
//!   terms; `crate::routes::auth` puts OAuth2 HTTP around them;
//! - `jwt` (access tokens), `password` (argon2id), `throttle` (failed-login backoff, used
//!   through `crate::limits`),
//!   `principals` (the short-lived user cache), `bootstrap` (the first admin), `error`.

pub mod bootstrap;
pub mod caller;
pub mod error;
pub mod jwt;
pub mod layer;
pub mod login;
pub mod password;
pub mod principals;
pub mod throttle;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Config;

pub use bootstrap::{bootstrap_admin, BootstrapAdmin};
pub use caller::AuthUser;
pub use error::AuthError;
pub use jwt::JwtKeys;
pub use password::Passwords;
pub use principals::{Principals, PRINCIPAL_TTL};
pub use throttle::LoginThrottle;

/// Everything authentication needs, built once at start-up.
pub struct AuthState {
    pub keys: JwtKeys,
    pub passwords: Passwords,
    pub principals: Principals,
}

impl AuthState {
    pub fn new(config: &Config) -> Self {
        Self {
            keys: JwtKeys::new(config),
            passwords: Passwords::new(),
            principals: Principals::default(),
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
