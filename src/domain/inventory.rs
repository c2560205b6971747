//! Inventory: what a client sends (`InventoryInput`) and what is stored (`Inventory`).

use serde::Serialize;
use utoipa::ToSchema;

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

/// A stored inventory row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = InventoryView)]
pub struct Inventory {
    #[schema(example = 1)]
    pub id: i64,
    pub seller_id: SellerId,
    pub parent_asin: Asin,
    pub child_asin: Asin,
    pub seller_sku: SellerSku,
    pub market_place_id: Marketplace,
    pub inventory: Units,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

impl Inventory {
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
