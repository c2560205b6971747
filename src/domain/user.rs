//! Users and roles (`docs/auth.md`): what is stored about a user, and the changes an admin can
//! make.

use serde::Serialize;
use utoipa::ToSchema;
use validator::ValidateLength;

use super::{SellerId, Timestamp};

/// `admin` may do everything; `seller` only touches the rows of their own sellers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Seller,
}

impl Role {
    pub const RULE: &'static str = "must be admin or seller";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "admin" => Ok(Self::Admin),
            "seller" => Ok(Self::Seller),
            _ => Err(Self::RULE),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Seller => "seller",
        }
    }

    /// Whether a user of this role may act for exactly `sellers`: a seller needs at least one
    /// (with none, every request would see nothing and write nothing), and no user lists a
    /// seller twice. Checked on creation and on every change of role or sellers.
    pub fn check_sellers(self, sellers: &[SellerId]) -> Result<(), &'static str> {
        if self == Self::Seller && sellers.is_empty() {
            return Err("a seller needs at least one seller_id");
        }
        distinct_sellers(sellers)
    }
}

/// A user's sellers list each seller once (`user_sellers` could not store it twice).
pub fn distinct_sellers(sellers: &[SellerId]) -> Result<(), &'static str> {
    let mut seen = std::collections::HashSet::with_capacity(sellers.len());
    if sellers.iter().all(|seller| seen.insert(seller.as_str())) {
        Ok(())
    } else {
        Err("must not list a seller_id twice")
    }
}

/// A login name: 3 to 64 of `A-Z a-z 0-9 . _ @ -`, stored and compared exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "seller.alice")]
pub struct Username(String);

impl Username {
    pub const RULE: &'static str = "must be 3 to 64 letters, digits or . _ @ -";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-');
        if super::ascii_token(value, 3, 64, allowed) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Self::RULE)
        }
    }

    pub(crate) fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 12 to 128 bytes. Length is what makes a password strong; no other rule.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub const RULE: &'static str = "must be 12 to 128 characters";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        // validator counts characters, not bytes; the byte bound keeps hashing input small.
        if value.validate_length(Some(12), Some(128), None) && value.len() <= 512 {
            Ok(Self(value.to_owned()))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// A stored user, as shown to admins. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = UserView)]
pub struct User {
    #[schema(example = 2)]
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub seller_ids: Vec<SellerId>,
    pub is_active: bool,
    /// The version every access token of this user must carry; a password change or a
    /// deactivation adds one, which ends every session (`docs/auth.md`). Never shown.
    #[serde(skip)]
    pub token_version: i64,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

/// A user to create, with the password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub seller_ids: Vec<SellerId>,
}

/// The changes of `PATCH /api/v1/users/{id}`; `None` leaves a field as it is.
///
/// A new password or a deactivation ends every session of the user: all their refresh tokens
/// are revoked and their `token_version` goes up, so their access tokens stop working too. A
/// change of role or sellers does not: access tokens carry neither, and the next request reads
/// the new ones (`crate::auth::principals`).
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub is_active: Option<bool>,
    pub role: Option<Role>,
    pub seller_ids: Option<Vec<SellerId>>,
    pub password_hash: Option<String>,
}

impl UserPatch {
    /// Whether applying this patch ends every session of the user.
    pub fn ends_sessions(&self) -> bool {
        self.is_active == Some(false) || self.password_hash.is_some()
    }
}

/// What a refresh-token rotation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now used, and its successor belongs to this user (whose
    /// current `token_version` is given) and expires with its family at `expires_at`.
    Rotated {
        user_id: i64,
        token_version: i64,
        expires_at: Timestamp,
    },
    /// The token had already been rotated: its whole family is now revoked.
    Reused,
    /// Unknown, expired, revoked, or its user is inactive.
    Invalid,
}

/// A refresh token to store: only its hash is ever kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub family_id: String,
    /// The family's absolute expiry: the login's time plus the refresh-token lifetime, the
    /// same for every token rotated from that login.
    pub expires_at: Timestamp,
}
