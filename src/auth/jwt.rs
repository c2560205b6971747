//! Access tokens: HS256/384/512 JWTs with `sub`, `exp`, `iat`, `jti`, `typ = "access"` and
//! `ver`, the user's token version when the token was issued (a password change or a
//! deactivation raises it, and the authentication layer refuses tokens of an older one).
//!
//! Only the configured algorithm verifies; `alg: none`, other algorithms, bad signatures,
//! expired tokens, tokens not yet valid (`nbf`) and tokens issued in the future (`iat`), each
//! beyond a few seconds of clock leeway, all fail. Refresh tokens are not JWTs
//! at all (see `crate::auth::login`), so neither kind can pass for the other.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{Config, JwtAlgorithm};
use crate::domain::Timestamp;

/// Clock difference tolerated between the issuer and a verifier.
const LEEWAY_SECONDS: u64 = 5;
const ACCESS_TYPE: &str = "access";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: String,
    /// The user's `token_version` at issue (`crate::domain::User`).
    pub ver: i64,
    /// Not before: sellerdesk never sets it, but a token that carries one is honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// Whom a valid access token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bearer {
    pub user_id: i64,
    /// The user's token version when the token was issued; only the current one is accepted.
    pub token_version: i64,
}

/// The signing and verifying keys, built once from the configuration.
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: std::time::Duration,
}

impl JwtKeys {
    pub fn new(config: &Config) -> Self {
        let algorithm = match config.algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Hs384 => Algorithm::HS384,
            JwtAlgorithm::Hs512 => Algorithm::HS512,
        };
        let secret = config.secret_key.expose().as_bytes();
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            algorithm,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl: config.access_token_ttl,
        }
    }

    /// Lifetime of an access token, in seconds (`expires_in`).
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// A new access token for `user_id`, whose current token version is `token_version`.
    pub fn issue(&self, user_id: i64, token_version: i64) -> String {
        let now = Timestamp::now();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now.unix(),
            exp: now.plus(self.ttl).unix(),
            jti: super::random_hex(16),
            typ: ACCESS_TYPE.to_owned(),
            ver: token_version,
            nbf: None,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it to forge expired or mistyped tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .expect("HMAC signing of plain claims cannot fail")
    }

    /// The user of a valid access token, or `None` for any kind of invalid token.
    pub fn verify(&self, token: &str) -> Option<Bearer> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        if data.claims.typ != ACCESS_TYPE {
            return None;
        }
        // jsonwebtoken checks `exp` and `nbf` but not `iat`: a token "issued" in the future
        // was not issued by a verifier whose clock agrees with ours.
        let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(i64::MAX);
        if data.claims.iat > Timestamp::now().unix().saturating_add(leeway) {
            return None;
        }
        Some(Bearer {
            user_id: data.claims.sub.parse().ok()?,
            token_version: data.claims.ver,
        })
    }
}
