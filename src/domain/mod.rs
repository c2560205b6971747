//! Plain validated values shared by every endpoint (the field rules of `docs/api.md`), and the
//! records built from them.
//!
//! A value of one of these types has passed its rule; nothing downstream re-checks it. Parsing
//! returns the human sentence that goes into a 422 `detail` entry. Wire concerns (JSON types,
//! missing fields) live in `crate::extract`; storage concerns in `crate::store`.

mod audit;
mod event;
mod idempotency;
mod inventory;
mod ledger;
mod money;
mod period;
mod precondition;
mod reservation;
mod sales;
pub mod stock;
pub mod stockroom;
mod sync;
mod timestamp;
mod user;
mod webhook;

pub use audit::{AuditAction, AuditEntry, AuditFilter, AuditTarget, NewAudit};
pub use event::{Event, EventFilter, EventType, NewEvent};
pub use idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, KeptResponse, NewClaim, IDEMPOTENCY_LEASE,
    IDEMPOTENCY_TTL,
};
pub use inventory::{
    Inventory, InventoryFilter, InventoryInput, InventoryKey, InventoryLookup, InventoryView,
    LowStockFilter, UpsertPlan, UpsertWrite, MAX_LOOKUP,
};
pub use ledger::{Actor, EntryNotes, LedgerEntry, LedgerFilter, LedgerType, NewEntry};
pub use money::Money;
pub use period::Period;
pub use precondition::{Precondition, ReadOutcome, Tags, Versioned};
pub use reservation::{
    NewReservation, NewReservationItem, Released, Reservation, ReservationFilter, ReservationItem,
    ReservationStatus, ReservationType, DEFAULT_EXPIRES_MINUTES, MAX_EXPIRES_MINUTES,
    MAX_RESERVATION_ITEMS,
};
pub use sales::{SalesTarget, SalesTargetFilter, SalesTargetInput, SalesTargetKey};
pub use stock::{
    parse_quantity, AdjustError, Adjustment, AdjustmentType, ConsistencyReport, ExternalId,
    Inconsistency, Issue, MissingSku, Movement, Note, ShortItem, Shortfall, Stock, StockError,
    StockLevel, Thresholds, VersionMismatch, MAX_UNITS,
};
pub use sync::SyncPosition;
pub use timestamp::Timestamp;
pub use user::{
    distinct_sellers, NewPassword, NewRefreshToken, NewUser, Role, Rotation, User, UserPatch,
    Username,
};
pub use webhook::{
    parse_event_types, Delivery, DeliveryOutcome, NewDelivery, NewWebhook, NextEvent, RetryPolicy,
    Webhook, WebhookProgress, WebhookSecret, WebhookTarget, WebhookUrl, MAX_WEBHOOK_SELLERS,
};

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use validator::ValidateLength;

/// Whether `value` is `min..=max` long and every byte is an ASCII byte `allowed` accepts: the
/// shape of every identifier rule (seller ids, ASINs, SKUs, marketplaces, usernames).
pub(crate) fn ascii_token(value: &str, min: u64, max: u64, allowed: fn(u8) -> bool) -> bool {
    value.validate_length(Some(min), Some(max), None) && value.bytes().all(allowed)
}

/// Declares a string identifier of ASCII letters and digits with a length range.
macro_rules! alnum_id {
    ($(#[$doc:meta])* $name:ident, $min:literal ..= $max:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The rule, as the sentence a client sees when a value breaks it.
            pub const RULE: &'static str =
                concat!("must be ", $min, " to ", $max, " letters or digits");

            /// Accepts the value exactly as sent: no trimming, no case folding.
            pub fn parse(value: &str) -> Result<Self, &'static str> {
                if ascii_token(value, $min, $max, |b| b.is_ascii_alphanumeric()) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(Self::RULE)
                }
            }

            /// Wraps a value read back from storage, which was checked when it was written.
            pub(crate) fn from_stored(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .pattern(Some("^[A-Za-z0-9]+$"))
                    .description(Some(Self::RULE))
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

alnum_id!(
    /// A marketplace seller account (`seller_id`).
    SellerId, 8..=20, "A1SELLER0001"
);
alnum_id!(
    /// A parent or child Amazon Standard Identification Number.
    Asin, 10..=15, "B0PARENT0001"
);
alnum_id!(
    /// The seller's own stock-keeping unit code (`seller_sku`).
    SellerSku, 10..=30, "SKU0000000001"
);

/// A marketplace code: exactly two upper-case ASCII letters (`US`, `EU`, `JP`, `DE`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Marketplace(String);

impl Marketplace {
    pub const RULE: &'static str = "must be 2 upper-case letters, such as US";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if ascii_token(value, 2, 2, |b| b.is_ascii_uppercase()) {
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

impl utoipa::PartialSchema for Marketplace {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Z]{2}$"))
            .description(Some(Self::RULE))
            .examples([serde_json::json!("US")])
            .into()
    }
}

impl utoipa::ToSchema for Marketplace {}

/// A stock level: a whole number from 0 to 2,147,483,647 (a signed 32-bit column on both databases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Units(i32);

impl Units {
    pub const RULE: &'static str = "must be an integer from 0 to 2147483647";

    pub fn parse(value: i64) -> Result<Self, &'static str> {
        i32::try_from(value)
            .ok()
            .filter(|n| *n >= 0)
            .map(Self)
            .ok_or(Self::RULE)
    }

    pub(crate) fn from_stored(value: i32) -> Self {
        Self(value)
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

impl utoipa::PartialSchema for Units {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(0))
            .maximum(Some(i32::MAX))
            .description(Some(Self::RULE))
            .examples([serde_json::json!(120)])
            .into()
    }
}

impl utoipa::ToSchema for Units {}

/// Which sellers' rows a caller may touch: every seller (admins, the shell) or a fixed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Sellers(Vec<SellerId>),
}

impl Scope {
    pub fn allows(&self, seller: &SellerId) -> bool {
        match self {
            Scope::All => true,
            Scope::Sellers(own) => own.contains(seller),
        }
    }
}

/// A 1-based page of a list: `page` ≥ 1 and `size` from 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub const MAX_SIZE: u32 = 100;
    pub const MAX_PAGE: u32 = 1_000_000;

    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, size: 20 }
    }
}
