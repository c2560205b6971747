//! The stock ledger: one entry for every change to a row's units on hand or reserved, written
//! in the same transaction as the change, never changed or removed afterwards, and kept after
//! its row is deleted. `docs/stock.md` says what each type means.

use serde::Serialize;
use utoipa::ToSchema;

use super::stock::{ExternalId, Movement, Note, Stock};
use super::{Marketplace, SellerId, SellerSku, Timestamp};

/// What kind of change an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LedgerType {
    /// An upsert created the row.
    Create,
    /// An upsert changed the units on hand.
    Upsert,
    /// A manual adjustment.
    Adjust,
    /// A reservation held units.
    Reserve,
    /// A reservation was released and gave its units back.
    Release,
    /// A reservation ran out and gave its units back.
    Expire,
    /// A reservation was committed for an order: its units left the shelf.
    Commit,
    /// The row was deleted; its units left the books.
    Delete,
}

impl LedgerType {
    pub const RULE: &'static str =
        "must be create, upsert, adjust, reserve, release, expire, commit or delete";
    pub const ALL: [Self; 8] = [
        Self::Create,
        Self::Upsert,
        Self::Adjust,
        Self::Reserve,
        Self::Release,
        Self::Expire,
        Self::Commit,
        Self::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Upsert => "upsert",
            Self::Adjust => "adjust",
            Self::Reserve => "reserve",
            Self::Release => "release",
            Self::Expire => "expire",
            Self::Commit => "commit",
            Self::Delete => "delete",
        }
    }

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or(Self::RULE)
    }
}

/// Who caused a change, as the ledger and the audit log record it: the user and the request,
/// or neither for the service's own work (the expiry sweep). The audit log also keeps the
/// username and the client's address (the ledger only the user's id and the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The service itself, not on anyone's behalf.
    pub fn system() -> Self {
        Self::default()
    }
}

/// The why of an entry besides its type: a reason and reference (adjustments), the
/// reservation and order it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryNotes {
    pub reason: Option<Note>,
    pub reference: Option<Note>,
    pub reservation_id: Option<i64>,
    pub order_id: Option<ExternalId>,
}

/// An entry about to be written: the row it is about, the change, and its notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub inventory_id: i64,
    pub seller_id: SellerId,
    pub market_place_id: Marketplace,
    pub seller_sku: SellerSku,
    pub entry_type: LedgerType,
    pub before: Stock,
    pub movement: Movement,
    pub notes: EntryNotes,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = LedgerEntryView)]
pub struct LedgerEntry {
    #[schema(example = 17)]
    pub id: i64,
    #[schema(example = 1)]
    pub inventory_id: i64,
    pub seller_id: SellerId,
    pub market_place_id: Marketplace,
    pub seller_sku: SellerSku,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub entry_type: LedgerType,
    #[schema(example = -5)]
    pub quantity_change: i64,
    #[schema(example = 0)]
    pub reserved_change: i64,
    #[schema(example = 120)]
    pub inventory_before: i64,
    #[schema(example = 115)]
    pub inventory_after: i64,
    #[schema(example = 10)]
    pub reserved_before: i64,
    #[schema(example = 10)]
    pub reserved_after: i64,
    pub reason: Option<Note>,
    pub reference: Option<Note>,
    pub reservation_id: Option<i64>,
    pub order_id: Option<ExternalId>,
    /// The user who made the change; null for the expiry sweep.
    pub operator_id: Option<i64>,
    pub request_id: Option<String>,
    pub create_time: Timestamp,
}

/// The filters of a ledger query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub inventory_id: Option<i64>,
    pub seller_id: Option<SellerId>,
    pub market_place_id: Option<Marketplace>,
    pub seller_sku: Option<SellerSku>,
    pub entry_type: Option<LedgerType>,
    pub operator_id: Option<i64>,
    pub reference: Option<Note>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
}
