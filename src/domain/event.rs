//! Events: what the outbox records of each change (docs/api.md, "Event feed"). A change builds
//! its `NewEvent`s from the rows it wrote, and the store inserts them in the change's own
//! transaction; `GET /api/v1/events` reads them back as `Event`s.
//!
//! `data` is the JSON clients already know: the row as the API returns it (`inventory` or
//! `sales_target`), and for stock events the `reservation` or the ledger entry (`transaction`,
//! as the adjust response names it) too.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{Inventory, LedgerEntry, Reservation, SalesTarget, SellerId, StockLevel, Timestamp};

/// What happened. Serialised as its dotted name, e.g. `inventory.stock.reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum EventType {
    /// A reservation now holds units of the row.
    #[serde(rename = "inventory.stock.reserved")]
    StockReserved,
    /// A reservation holding units of the row was released.
    #[serde(rename = "inventory.stock.released")]
    StockReleased,
    /// A reservation holding units of the row ran out of time.
    #[serde(rename = "inventory.stock.expired")]
    StockExpired,
    /// A reservation was committed for an order: its units left the row.
    #[serde(rename = "inventory.stock.deducted")]
    StockDeducted,
    /// The units on hand were adjusted by hand.
    #[serde(rename = "inventory.stock.adjusted")]
    StockAdjusted,
    /// The row's `stock_level` got worse (`ok` → `warning` → `critical` → `out_of_stock`).
    #[serde(rename = "inventory.stock.low_warning")]
    StockLowWarning,
    /// An upsert created or changed the row, or its thresholds changed.
    #[serde(rename = "inventory.updated")]
    InventoryUpdated,
    /// The row was deleted.
    #[serde(rename = "inventory.deleted")]
    InventoryDeleted,
    /// An upsert created or changed the sales target.
    #[serde(rename = "sales_target.updated")]
    SalesTargetUpdated,
    /// The sales target was deleted.
    #[serde(rename = "sales_target.deleted")]
    SalesTargetDeleted,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        Self::StockReserved,
        Self::StockReleased,
        Self::StockExpired,
        Self::StockDeducted,
        Self::StockAdjusted,
        Self::StockLowWarning,
        Self::InventoryUpdated,
        Self::InventoryDeleted,
        Self::SalesTargetUpdated,
        Self::SalesTargetDeleted,
    ];

    pub const RULE: &'static str = "must be a comma-separated list of event types: \
        inventory.stock.reserved, inventory.stock.released, inventory.stock.expired, \
        inventory.stock.deducted, inventory.stock.adjusted, inventory.stock.low_warning, \
        inventory.updated, inventory.deleted, sales_target.updated, sales_target.deleted";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StockReserved => "inventory.stock.reserved",
            Self::StockReleased => "inventory.stock.released",
            Self::StockExpired => "inventory.stock.expired",
            Self::StockDeducted => "inventory.stock.deducted",
            Self::StockAdjusted => "inventory.stock.adjusted",
            Self::StockLowWarning => "inventory.stock.low_warning",
            Self::InventoryUpdated => "inventory.updated",
            Self::InventoryDeleted => "inventory.deleted",
            Self::SalesTargetUpdated => "sales_target.updated",
            Self::SalesTargetDeleted => "sales_target.deleted",
        }
    }

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or(Self::RULE)
    }

    /// A comma-separated list of types (at least one, repeats allowed).
    pub fn parse_list(value: &str) -> Result<Vec<Self>, &'static str> {
        let mut types = Vec::new();
        for name in value.split(',') {
            let t = Self::parse(name.trim())?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(types)
    }
}

/// An event about to be written with the change it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub seller_id: SellerId,
    /// JSON text.
    pub data: String,
}

#[derive(Serialize)]
struct InventoryData<'a> {
    inventory: &'a Inventory,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<&'a Reservation>,
    /// The ledger entry, named as the adjust response and `/transactions` name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<&'a LedgerEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stock_level_before: Option<StockLevel>,
}

impl NewEvent {
    fn inventory(event_type: EventType, data: &InventoryData<'_>) -> Self {
        Self {
            event_type,
            seller_id: data.inventory.seller_id.clone(),
            // Serialising plain structs of strings and numbers cannot fail.
            data: serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    fn of_row(event_type: EventType, row: &Inventory) -> Self {
        Self::inventory(
            event_type,
            &InventoryData {
                inventory: row,
                reservation: None,
                transaction: None,
                stock_level_before: None,
            },
        )
    }

    /// `inventory.updated`: an upsert created or changed `row`, or its thresholds changed.
    pub fn inventory_updated(row: &Inventory) -> Self {
        Self::of_row(EventType::InventoryUpdated, row)
    }

    /// `inventory.deleted`, with the row as it was.
    pub fn inventory_deleted(row: &Inventory) -> Self {
        Self::of_row(EventType::InventoryDeleted, row)
    }

    /// A reservation event (`reserved`, `released`, `expired`, `deducted`) of one row it holds.
    pub fn reservation(event_type: EventType, row: &Inventory, reservation: &Reservation) -> Self {
        Self::inventory(
            event_type,
            &InventoryData {
                inventory: row,
                reservation: Some(reservation),
                transaction: None,
                stock_level_before: None,
            },
        )
    }

    /// `inventory.stock.adjusted`, with the ledger entry of the adjustment.
    pub fn adjusted(row: &Inventory, entry: &LedgerEntry) -> Self {
        Self::inventory(
            EventType::StockAdjusted,
            &InventoryData {
                inventory: row,
                reservation: None,
                transaction: Some(entry),
                stock_level_before: None,
            },
        )
    }

    /// `inventory.stock.low_warning` when `row`'s level is worse than `before`, else nothing.
    pub fn low_warning(before: StockLevel, row: &Inventory) -> Option<Self> {
        (row.stock_level() > before).then(|| {
            Self::inventory(
                EventType::StockLowWarning,
                &InventoryData {
                    inventory: row,
                    reservation: None,
                    transaction: None,
                    stock_level_before: Some(before),
                },
            )
        })
    }

    fn of_target(event_type: EventType, row: &SalesTarget) -> Self {
        #[derive(Serialize)]
        struct Data<'a> {
            sales_target: &'a SalesTarget,
        }
        Self {
            event_type,
            seller_id: row.seller_id.clone(),
            data: serde_json::to_string(&Data { sales_target: row })
                .unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    pub fn sales_target_updated(row: &SalesTarget) -> Self {
        Self::of_target(EventType::SalesTargetUpdated, row)
    }

    pub fn sales_target_deleted(row: &SalesTarget) -> Self {
        Self::of_target(EventType::SalesTargetDeleted, row)
    }
}

/// A stored event, as `GET /api/v1/events` returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Only grows: page with `after` set to the last id seen.
    #[schema(example = 42)]
    pub id: i64,
    #[schema(value_type = String, example = "inventory.stock.reserved")]
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    #[schema(value_type = String, example = "A1SELLER0001")]
    pub seller_id: SellerId,
    /// The row after the change (the deleted row for deletes), as the API returns it, under
    /// `inventory` or `sales_target`; with `reservation` for reservation events, `transaction`
    /// (the ledger entry) for adjustments and `stock_level_before` for low-stock warnings.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// Which events a read wants: those after `after`, of these types and seller, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub after: i64,
    pub limit: u32,
    /// Empty: every type.
    pub types: Vec<EventType>,
    pub seller_id: Option<SellerId>,
}

impl EventFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_name_and_nothing_else_does() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
            let serialised = serde_json::to_value(t).unwrap();
            assert_eq!(serialised, t.as_str());
        }
        for bad in [
            "",
            "inventory",
            "inventory.stock",
            "Inventory.updated",
            "sales_target",
        ] {
            assert_eq!(EventType::parse(bad), Err(EventType::RULE), "{bad:?}");
        }
    }

    #[test]
    fn a_list_of_types_is_comma_separated_without_repeats_and_every_name_must_be_known() {
        assert_eq!(
            EventType::parse_list("inventory.updated, inventory.deleted,inventory.updated"),
            Ok(vec![
                EventType::InventoryUpdated,
                EventType::InventoryDeleted
            ])
        );
        assert_eq!(
            EventType::parse_list("inventory.updated,"),
            Err(EventType::RULE)
        );
        assert_eq!(
            EventType::parse_list("inventory.updated,nope"),
            Err(EventType::RULE)
        );
    }
}
