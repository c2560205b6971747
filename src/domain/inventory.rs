//! Inventory: what a client sends (`InventoryInput`) and what is stored (`Inventory`).

use serde::Serialize;
use utoipa::ToSchema;

use super::ledger::LedgerType;
use super::stock::{Movement, Stock, StockLevel, Thresholds};
use super::{Asin, Marketplace, SellerId, SellerSku, Timestamp, Units};

/// A validated create-or-update request for the stock of one seller SKU. The upsert key is
/// (`seller_id`, `market_place_id`, `seller_sku`): a SKU is unique per seller and marketplace.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(as = InventoryRequest)]
pub struct InventoryInput {
    pub seller_id: SellerId,
    pub parent_asin: Asin,
    pub child_asin: Asin,
    pub seller_sku: SellerSku,
    pub market_place_id: Marketplace,
    pub inventory: Units,
}

/// What identifies an inventory row: a SKU is unique per seller and marketplace. The upsert key
/// of both databases (their unique index) and of batches (one key twice is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InventoryKey<'a> {
    pub seller_id: &'a SellerId,
    pub market_place_id: &'a Marketplace,
    pub seller_sku: &'a SellerSku,
}

impl InventoryInput {
    /// The row this request creates or updates.
    pub fn key(&self) -> InventoryKey<'_> {
        InventoryKey {
            seller_id: &self.seller_id,
            market_place_id: &self.market_place_id,
            seller_sku: &self.seller_sku,
        }
    }
}

/// A stored inventory row: the SKU, its units on hand, what is reserved of them, and its
/// warning thresholds. `available` and `stock_level` follow from these (see `InventoryView`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub id: i64,
    pub seller_id: SellerId,
    pub parent_asin: Asin,
    pub child_asin: Asin,
    pub seller_sku: SellerSku,
    pub market_place_id: Marketplace,
    /// Units on hand.
    pub inventory: Units,
    /// Units held by active reservations.
    pub reserved: i64,
    pub thresholds: Thresholds,
    /// 1 when the row is created, one more with every change to it.
    pub version: i64,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

/// An inventory row as clients see it.
#[derive(Serialize, ToSchema)]
pub struct InventoryView<'a> {
    #[schema(example = 1)]
    id: i64,
    seller_id: &'a SellerId,
    parent_asin: &'a Asin,
    child_asin: &'a Asin,
    seller_sku: &'a SellerSku,
    market_place_id: &'a Marketplace,
    /// Units on hand.
    inventory: Units,
    /// Units held by active reservations.
    #[schema(example = 10)]
    reserved: i64,
    /// `inventory - reserved`; negative when the units on hand were reported below what is
    /// reserved (the row is oversold).
    #[schema(example = 110)]
    available: i64,
    #[schema(example = 20, minimum = 0, maximum = 2147483647)]
    warning_threshold: Option<i32>,
    #[schema(example = 5, minimum = 0, maximum = 2147483647)]
    critical_threshold: Option<i32>,
    stock_level: StockLevel,
    #[schema(example = 3)]
    version: i64,
    create_time: Timestamp,
    update_time: Timestamp,
}

impl Serialize for Inventory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stock = self.stock();
        InventoryView {
            id: self.id,
            seller_id: &self.seller_id,
            parent_asin: &self.parent_asin,
            child_asin: &self.child_asin,
            seller_sku: &self.seller_sku,
            market_place_id: &self.market_place_id,
            inventory: self.inventory,
            reserved: self.reserved,
            available: stock.available(),
            warning_threshold: self.thresholds.warning,
            critical_threshold: self.thresholds.critical,
            stock_level: StockLevel::of(stock.available(), self.thresholds),
            version: self.version,
            create_time: self.create_time,
            update_time: self.update_time,
        }
        .serialize(serializer)
    }
}

impl utoipa::PartialSchema for Inventory {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        InventoryView::schema()
    }
}

impl ToSchema for Inventory {
    fn name() -> std::borrow::Cow<'static, str> {
        InventoryView::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        InventoryView::schemas(schemas);
    }
}

impl Inventory {
    /// The stock numbers every stock rule reads.
    pub fn stock(&self) -> Stock {
        Stock {
            inventory: i64::from(self.inventory.get()),
            reserved: self.reserved,
        }
    }

    pub fn stock_level(&self) -> StockLevel {
        StockLevel::of(self.stock().available(), self.thresholds)
    }

    /// The key of this stored row (see `InventoryKey`).
    pub fn key(&self) -> InventoryKey<'_> {
        InventoryKey {
            seller_id: &self.seller_id,
            market_place_id: &self.market_place_id,
            seller_sku: &self.seller_sku,
        }
    }
}

/// Optional equality filters of the inventory list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryFilter {
    pub seller_id: Option<SellerId>,
    pub market_place_id: Option<Marketplace>,
    pub parent_asin: Option<Asin>,
    pub child_asin: Option<Asin>,
    pub seller_sku: Option<SellerSku>,
}

/// What an upsert writes to the row of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertWrite {
    /// No row has the key: insert it.
    Create,
    /// The row changes: update it.
    Update,
    /// The row already says exactly this: write nothing.
    Nothing,
}

/// An upsert worked out against the row it finds: the row as it will be, what to write, and
/// the ledger entry's type, the stock before and the change (none when the units on hand stay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertPlan {
    pub row: Inventory,
    pub write: UpsertWrite,
    pub entry: Option<(LedgerType, Stock, Movement)>,
}

impl InventoryInput {
    /// What upserting this at `now` does to `existing`, the row of its key if there is one. A
    /// new row has version 1, nothing reserved, no thresholds, and id 0 until it is inserted.
    /// An existing row keeps its id, creation time, reservations and thresholds; a change to
    /// the ASINs or the units on hand moves its version and `update_time` (to `now`, or just
    /// past the stored one should that be later: it never moves back). Writing the same
    /// values again changes nothing, not even `update_time`.
    pub fn plan(self, existing: Option<Inventory>, now: Timestamp) -> UpsertPlan {
        let units = i64::from(self.inventory.get());
        let Some(old) = existing else {
            let created = Stock {
                inventory: 0,
                reserved: 0,
            };
            return UpsertPlan {
                row: Inventory {
                    id: 0,
                    seller_id: self.seller_id,
                    parent_asin: self.parent_asin,
                    child_asin: self.child_asin,
                    seller_sku: self.seller_sku,
                    market_place_id: self.market_place_id,
                    inventory: self.inventory,
                    reserved: 0,
                    thresholds: Thresholds::default(),
                    version: 1,
                    create_time: now,
                    update_time: now,
                },
                write: UpsertWrite::Create,
                entry: Some((
                    LedgerType::Create,
                    created,
                    Movement {
                        quantity_change: units,
                        reserved_change: 0,
                    },
                )),
            };
        };
        let before = old.stock();
        let changed = old.inventory != self.inventory
            || old.parent_asin != self.parent_asin
            || old.child_asin != self.child_asin;
        if !changed {
            return UpsertPlan {
                row: old,
                write: UpsertWrite::Nothing,
                entry: None,
            };
        }
        let entry = (old.inventory != self.inventory).then(|| {
            let movement = Movement {
                quantity_change: units - before.inventory,
                reserved_change: 0,
            };
            (LedgerType::Upsert, before, movement)
        });
        UpsertPlan {
            row: Inventory {
                parent_asin: self.parent_asin,
                child_asin: self.child_asin,
                inventory: self.inventory,
                version: old.version + 1,
                update_time: now.after(old.update_time),
                ..old
            },
            write: UpsertWrite::Update,
            entry,
        }
    }
}

/// The filters of the low-stock list: rows at `level` or worse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockFilter {
    pub seller_id: Option<SellerId>,
    pub market_place_id: Option<Marketplace>,
    pub level: StockLevel,
}

/// Most rows one lookup may name.
pub const MAX_LOOKUP: usize = 1000;

/// Rows to look up, by id or by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryLookup {
    Ids(Vec<i64>),
    Keys(Vec<(SellerId, Marketplace, SellerSku)>),
}
