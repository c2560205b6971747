//! Idempotency keys: what a client's `Idempotency-Key` is allowed to be, the fingerprint of the
//! request it came with, and the record the store keeps of it (the claim of the first request,
//! then its response). The rules for clients are in `docs/api.md`, "Safe retries"; the layer
//! that applies them is `crate::middleware::idempotency`.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Timestamp;

/// How long a response is kept and replayed after the request that got it.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a claim blocks its key while its request runs. Longer than the request timeout
/// (`crate::REQUEST_TIMEOUT`, 30 s), so that only a claim whose process died (and so never
/// completed or released it) outlives it; such a claim may then be taken over.
pub const IDEMPOTENCY_LEASE: Duration = Duration::from_secs(60);

/// A key as a client sent it: 1 to 255 printable ASCII characters (space to `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;
    pub const RULE: &'static str = "must be 1 to 255 printable ASCII characters";

    pub fn parse(value: &[u8]) -> Result<Self, &'static str> {
        let printable = value.iter().all(|b| (0x20..=0x7e).contains(b));
        if value.is_empty() || value.len() > Self::MAX_LEN || !printable {
            return Err(Self::RULE);
        }
        // Printable ASCII is UTF-8.
        std::str::from_utf8(value)
            .map(|s| Self(s.to_owned()))
            .map_err(|_| Self::RULE)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a request's method, path with query, and body: what "the same request" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(method: &str, path_and_query: &str, body: &[u8]) -> Self {
        // Neither a method nor a request target can hold a newline, so the parts cannot run
        // into each other.
        let mut hash = Sha256::new();
        hash.update(method.as_bytes());
        hash.update(b"\n");
        hash.update(path_and_query.as_bytes());
        hash.update(b"\n");
        hash.update(body);
        Self(hash.finalize().into())
    }

    /// The fingerprint as stored; `None` when the stored value is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// A response as it is kept for replay: status, the headers a client relies on, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptResponse {
    pub status: u16,
    /// `(name, value)` of the kept headers (Content-Type, Location, ETag), names lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the store holds for one user's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: Fingerprint,
    /// The response, once the request that claimed the key finished; `None` while it runs.
    pub response: Option<KeptResponse>,
    /// While the request runs: when its claim may be taken over.
    pub locked_until: Option<Timestamp>,
    pub expires_at: Timestamp,
}

impl IdempotencyRecord {
    /// Whether the record still counts at `now`: not expired, and either finished or claimed by
    /// a request within its lease. A record that does not count is treated as absent (and its
    /// key may be claimed over it).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
            && (self.response.is_some() || self.locked_until.is_some_and(|until| until > now))
    }
}

/// A claim of a key by the request about to run with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClaim {
    pub user_id: i64,
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    /// A random token of this request: only the holder of the claim completes or releases it.
    pub claim: i64,
    pub now: Timestamp,
}

impl NewClaim {
    pub fn locked_until(&self) -> Timestamp {
        self.now.plus(IDEMPOTENCY_LEASE)
    }

    /// A claim expires with its lease's day: kept no longer than a response would be.
    pub fn expires_at(&self) -> Timestamp {
        self.now.plus(IDEMPOTENCY_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_1_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b" ~!key with spaces~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"del\x7f").is_err());
    }

    #[test]
    fn a_fingerprint_tells_method_path_and_body_apart() {
        let base = Fingerprint::of("POST", "/a?x=1", b"{}");
        assert_eq!(base, Fingerprint::of("POST", "/a?x=1", b"{}"));
        assert_ne!(base, Fingerprint::of("PUT", "/a?x=1", b"{}"));
        assert_ne!(base, Fingerprint::of("POST", "/a?x=2", b"{}"));
        assert_ne!(base, Fingerprint::of("POST", "/a?x=1", b"{ }"));
        assert_ne!(
            Fingerprint::of("POST", "/a", b"b"),
            Fingerprint::of("POST", "/ab", b"")
        );
    }
}
