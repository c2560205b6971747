//! Stock: the numbers of an inventory row (units on hand, reserved, available), its warning
//! thresholds and level, and the rule of every change to them. The rules are plain functions
//! of the current numbers; the store reads the row under a lock, asks them, and writes what
//! they return together with its ledger entry, so both databases obey the same rules.
//! `docs/stock.md` explains the model.

use serde::Serialize;
use utoipa::ToSchema;

use super::{ascii_token, SellerSku};

/// The most units a row can hold: both databases keep `inventory` in a signed 32-bit column.
pub const MAX_UNITS: i64 = i32::MAX as i64;

/// How a row's available units compare with its thresholds; worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    Ok,
    Warning,
    Critical,
    OutOfStock,
}

impl StockLevel {
    pub const RULE: &'static str = "must be warning, critical or out_of_stock";

    /// `out_of_stock` when nothing is available, else `critical` at or below the critical
    /// threshold, else `warning` at or below the warning threshold, else `ok`.
    pub fn of(available: i64, thresholds: Thresholds) -> Self {
        let at_or_below =
            |threshold: Option<i32>| threshold.is_some_and(|t| available <= i64::from(t));
        if available <= 0 {
            Self::OutOfStock
        } else if at_or_below(thresholds.critical) {
            Self::Critical
        } else if at_or_below(thresholds.warning) {
            Self::Warning
        } else {
            Self::Ok
        }
    }

    /// A level a low-stock query can ask for (`ok` is not low).
    pub fn parse_low(value: &str) -> Result<Self, &'static str> {
        match value {
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            "out_of_stock" => Ok(Self::OutOfStock),
            _ => Err(Self::RULE),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::OutOfStock => "out_of_stock",
        }
    }
}

/// The levels below which a row is low on stock; either may be unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warning: Option<i32>,
    pub critical: Option<i32>,
}

impl Thresholds {
    pub const ORDER_RULE: &'static str =
        "must not be above warning_threshold (critical is the lower level)";

    /// Both thresholds, when set together, need `critical ≤ warning`.
    pub fn new(warning: Option<i32>, critical: Option<i32>) -> Result<Self, &'static str> {
        match (warning, critical) {
            (Some(w), Some(c)) if c > w => Err(Self::ORDER_RULE),
            _ => Ok(Self { warning, critical }),
        }
    }
}

/// The stock numbers of a row. `available` may be negative: an upsert reports the units on hand
/// as the marketplace counts them, even below what is reserved (the row is then oversold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub inventory: i64,
    pub reserved: i64,
}

/// A change to a row's stock, as its ledger entry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub quantity_change: i64,
    pub reserved_change: i64,
}

/// What was asked for, and what there was, when a change would leave too little.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Shortfall {
    #[schema(example = 5)]
    pub requested: i64,
    #[schema(example = 3)]
    pub available: i64,
}

impl Stock {
    pub fn available(self) -> i64 {
        self.inventory - self.reserved
    }

    /// The numbers after `movement`.
    pub fn after(self, movement: Movement) -> Self {
        Self {
            inventory: self.inventory + movement.quantity_change,
            reserved: self.reserved + movement.reserved_change,
        }
    }

    /// A manual adjustment. A decrease or set that would leave fewer units than are reserved
    /// is short; an increase past `MAX_UNITS` is out of range.
    pub fn adjust(self, kind: AdjustmentType, quantity: i64) -> Result<Movement, AdjustError> {
        let inventory = match kind {
            AdjustmentType::Increase => self.inventory + quantity,
            AdjustmentType::Decrease => self.inventory - quantity,
            AdjustmentType::Set => quantity,
        };
        if inventory > MAX_UNITS {
            return Err(AdjustError::OutOfRange);
        }
        if inventory - self.reserved < 0 {
            return Err(AdjustError::Short(Shortfall {
                requested: quantity,
                available: self.available(),
            }));
        }
        Ok(Movement {
            quantity_change: inventory - self.inventory,
            reserved_change: 0,
        })
    }

    /// Holds `quantity` units for a reservation, if that many are available.
    pub fn reserve(self, quantity: i64) -> Result<Movement, Shortfall> {
        if self.available() < quantity {
            return Err(Shortfall {
                requested: quantity,
                available: self.available(),
            });
        }
        Ok(Movement {
            quantity_change: 0,
            reserved_change: quantity,
        })
    }

    /// Gives back `quantity` held units (a release or an expiry).
    pub fn release(self, quantity: i64) -> Movement {
        Movement {
            quantity_change: 0,
            reserved_change: -quantity,
        }
    }

    /// Deducts `quantity` held units for an order: they leave the shelf and the hold. Short
    /// only when the units on hand were reported below the reservation since (an oversold row).
    pub fn commit(self, quantity: i64) -> Result<Movement, Shortfall> {
        if self.inventory < quantity {
            return Err(Shortfall {
                requested: quantity,
                available: self.inventory,
            });
        }
        Ok(Movement {
            quantity_change: -quantity,
            reserved_change: -quantity,
        })
    }

    /// The row leaves the books: everything on hand and held goes to zero.
    pub fn delete(self) -> Movement {
        Movement {
            quantity_change: -self.inventory,
            reserved_change: -self.reserved,
        }
    }
}

/// Why an adjustment cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustError {
    /// It would leave fewer units than are reserved.
    Short(Shortfall),
    /// It would take the units on hand past `MAX_UNITS`.
    OutOfRange,
}

/// How an adjustment changes the units on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdjustmentType {
    Increase,
    Decrease,
    Set,
}

impl AdjustmentType {
    pub const RULE: &'static str = "must be increase, decrease or set";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "increase" => Ok(Self::Increase),
            "decrease" => Ok(Self::Decrease),
            "set" => Ok(Self::Set),
            _ => Err(Self::RULE),
        }
    }
}

/// A validated manual adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub adjustment_type: AdjustmentType,
    /// 1 to `MAX_UNITS`; 0 is allowed only for `set`.
    pub quantity: i64,
    pub reason: Note,
    pub reference: Option<Note>,
}

impl Adjustment {
    pub const QUANTITY_RULE: &'static str = "must be an integer from 1 to 2147483647";
    pub const SET_QUANTITY_RULE: &'static str = "must be an integer from 0 to 2147483647";

    /// The quantity rule of `kind`: at least 1, except that a set may be 0.
    pub fn check_quantity(kind: AdjustmentType, quantity: i64) -> Result<i64, &'static str> {
        match kind {
            AdjustmentType::Set if (0..=MAX_UNITS).contains(&quantity) => Ok(quantity),
            AdjustmentType::Set => Err(Self::SET_QUANTITY_RULE),
            _ if (1..=MAX_UNITS).contains(&quantity) => Ok(quantity),
            _ => Err(Self::QUANTITY_RULE),
        }
    }
}

/// A quantity of a reservation item: 1 to `MAX_UNITS`.
pub fn parse_quantity(value: i64) -> Result<i64, &'static str> {
    if (1..=MAX_UNITS).contains(&value) {
        Ok(value)
    } else {
        Err(Adjustment::QUANTITY_RULE)
    }
}

/// A free-text note a person wrote (an adjustment's reason or reference): 1 to 200 characters,
/// no control characters, stored as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "cycle count")]
pub struct Note(String);

impl Note {
    pub const RULE: &'static str = "must be 1 to 200 characters, without control characters";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let length = value.chars().count();
        if (1..=200).contains(&length) && !value.chars().any(char::is_control) {
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

/// An identifier from another system (a cart or order reference, an order id): 1 to 64 of
/// `A-Z a-z 0-9 . _ : -`, stored as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "cart:7f3a9c")]
pub struct ExternalId(String);

impl ExternalId {
    pub const RULE: &'static str = "must be 1 to 64 letters, digits or . _ : -";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if ascii_token(value, 1, 64, allowed) {
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

/// One item of a reservation that could not be held: which, and why (see `StockError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShortItem {
    #[schema(example = 0)]
    pub index: usize,
    pub seller_sku: SellerSku,
    #[schema(example = 5)]
    pub requested: i64,
    #[schema(example = 3)]
    pub available: i64,
}

impl ShortItem {
    /// Item `index` (SKU `seller_sku`) is short by `shortfall`.
    pub fn new(index: usize, seller_sku: &SellerSku, shortfall: Shortfall) -> Self {
        Self {
            index,
            seller_sku: seller_sku.clone(),
            requested: shortfall.requested,
            available: shortfall.available,
        }
    }
}

/// A reservation item whose SKU has no row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MissingSku {
    #[schema(example = 1)]
    pub index: usize,
    pub seller_sku: SellerSku,
}

/// Why a stock operation was refused. Every refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// An adjustment would leave fewer units than are reserved.
    #[error("not enough inventory")]
    Insufficient(Shortfall),
    /// Reservation or commit items that are short, each with its index.
    #[error("not enough inventory")]
    InsufficientItems(Vec<ShortItem>),
    /// The result would be past `MAX_UNITS`.
    #[error("the quantity would take the inventory past 2147483647")]
    InvalidQuantity,
    /// The row has active reservations and cannot be deleted.
    #[error("the row has active reservations")]
    ActiveReservations,
    /// Reservation items whose SKU has no row for the seller and marketplace.
    #[error("no inventory row for these SKUs")]
    SkuNotFound(Vec<MissingSku>),
    #[error("no such reservation")]
    ReservationNotFound,
    #[error("the reservation has expired")]
    ReservationExpired,
    #[error("the reservation is not active")]
    ReservationNotActive,
    /// A conditional write (`If-Match`, `If-None-Match`) found the row at another version, or
    /// no row (`current_version` null), or a row where it wanted none. Nothing was written.
    #[error("the row is not at the version the request expects")]
    VersionMismatch(VersionMismatch),
}

/// What a refused conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct VersionMismatch {
    /// The row's version now; null when there is no row.
    #[schema(example = 4)]
    pub current_version: Option<i64>,
}

impl StockError {
    /// The refusal of a conditional write on a row at `current` (`None`: no row).
    pub fn version_mismatch(current: Option<i64>) -> Self {
        Self::VersionMismatch(VersionMismatch {
            current_version: current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(inventory: i64, reserved: i64) -> Stock {
        Stock {
            inventory,
            reserved,
        }
    }

    #[test]
    fn the_level_is_the_worst_threshold_reached() {
        let t = Thresholds::new(Some(10), Some(3)).unwrap();
        for (available, level) in [
            (-2, StockLevel::OutOfStock),
            (0, StockLevel::OutOfStock),
            (1, StockLevel::Critical),
            (3, StockLevel::Critical),
            (4, StockLevel::Warning),
            (10, StockLevel::Warning),
            (11, StockLevel::Ok),
        ] {
            assert_eq!(StockLevel::of(available, t), level, "{available}");
        }
        assert_eq!(StockLevel::of(1, Thresholds::default()), StockLevel::Ok);
        assert_eq!(
            Thresholds::new(Some(3), Some(10)),
            Err(Thresholds::ORDER_RULE)
        );
        assert!(Thresholds::new(None, Some(10)).is_ok());
    }

    #[test]
    fn adjustments_never_leave_less_than_is_reserved_nor_more_than_fits() {
        let s = stock(10, 4);
        let change = |kind, q| s.adjust(kind, q).map(|m| m.quantity_change);
        assert_eq!(change(AdjustmentType::Increase, 5), Ok(5));
        assert_eq!(change(AdjustmentType::Decrease, 6), Ok(-6));
        assert_eq!(
            change(AdjustmentType::Decrease, 7),
            Err(AdjustError::Short(Shortfall {
                requested: 7,
                available: 6
            }))
        );
        assert_eq!(change(AdjustmentType::Set, 4), Ok(-6));
        assert!(matches!(
            change(AdjustmentType::Set, 3),
            Err(AdjustError::Short(_))
        ));
        assert_eq!(
            change(AdjustmentType::Increase, MAX_UNITS - 9),
            Err(AdjustError::OutOfRange)
        );
        assert_eq!(
            change(AdjustmentType::Increase, MAX_UNITS - 10),
            Ok(MAX_UNITS - 10)
        );
    }

    #[test]
    fn reservations_hold_only_what_is_available_and_commits_deduct_both() {
        let s = stock(10, 4);
        assert_eq!(s.reserve(6).map(|m| s.after(m)), Ok(stock(10, 10)));
        assert_eq!(
            s.reserve(7),
            Err(Shortfall {
                requested: 7,
                available: 6
            })
        );
        assert_eq!(s.after(s.release(4)), stock(10, 0));
        assert_eq!(s.commit(4).map(|m| s.after(m)), Ok(stock(6, 0)));
        let oversold = stock(2, 4);
        assert!(oversold.reserve(1).is_err());
        assert!(oversold.commit(4).is_err(), "inventory never goes below 0");
        assert_eq!(oversold.after(oversold.delete()), stock(0, 0));
    }

    #[test]
    fn notes_and_external_ids_follow_their_rules() {
        assert!(Note::parse("cycle count").is_ok());
        assert!(Note::parse(&"é".repeat(200)).is_ok());
        for bad in ["", "line\nbreak", &"x".repeat(201)] {
            assert!(Note::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ExternalId::parse("order:2026-11.7_a").is_ok());
        for bad in ["", "has space", "slash/", &"x".repeat(65)] {
            assert!(ExternalId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Adjustment::check_quantity(AdjustmentType::Set, 0), Ok(0));
        assert!(Adjustment::check_quantity(AdjustmentType::Increase, 0).is_err());
        assert!(Adjustment::check_quantity(AdjustmentType::Decrease, MAX_UNITS + 1).is_err());
    }
}

/// What a consistency check found wrong with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    /// Fewer units on hand than are reserved (`available < 0`): an upsert reported less stock
    /// than reservations hold.
    Oversold,
    /// `reserved` differs from the units its active reservations hold.
    ReservedMismatch,
    /// The ledger does not explain the row: its changes do not add up to the row's numbers, or
    /// an entry's numbers do not follow from the one before.
    LedgerMismatch,
}

/// One problem of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Inconsistency {
    #[schema(example = 1)]
    pub inventory_id: i64,
    pub seller_id: super::SellerId,
    pub seller_sku: SellerSku,
    pub issue: Issue,
    /// Which number is off: `available`, `reserved`, `inventory`, or `ledger_entry` (an entry
    /// whose numbers do not follow; `entry_id` names it).
    #[schema(example = "reserved")]
    pub field: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<i64>,
    /// What the rule says the number should be (for `oversold`: at least this).
    #[schema(example = 4)]
    pub expected: i64,
    #[schema(example = 6)]
    pub actual: i64,
}

/// What a consistency check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsistencyReport {
    /// Rows checked.
    #[schema(example = 120)]
    pub checked: u64,
    /// Rows with at least one problem.
    #[schema(example = 1)]
    pub inconsistent: u64,
    pub details: Vec<Inconsistency>,
}
