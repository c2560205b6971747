//! Sales targets: what a client sends (`SalesTargetInput`) and what is stored (`SalesTarget`).

use serde::Serialize;
use utoipa::ToSchema;

use super::{Asin, Marketplace, Money, Period, SellerId, Timestamp};

/// A validated create-or-update request for one sales target. The upsert key is
/// (`seller_id`, `parent_asin`, `market_place_id`, `period`).
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(as = SalesTargetRequest)]
pub struct SalesTargetInput {
    pub seller_id: SellerId,
    pub parent_asin: Asin,
    pub market_place_id: Marketplace,
    pub period: Period,
    pub sales_target: Money,
}

/// What identifies a sales target: one amount per seller, parent ASIN, marketplace and period.
/// The upsert key of both databases (their unique index) and of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SalesTargetKey<'a> {
    pub seller_id: &'a SellerId,
    pub parent_asin: &'a Asin,
    pub market_place_id: &'a Marketplace,
    pub period: &'a Period,
}

impl SalesTargetInput {
    /// The row this request creates or updates.
    pub fn key(&self) -> SalesTargetKey<'_> {
        SalesTargetKey {
            seller_id: &self.seller_id,
            parent_asin: &self.parent_asin,
            market_place_id: &self.market_place_id,
            period: &self.period,
        }
    }
}

/// A stored sales target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = SalesTargetView)]
pub struct SalesTarget {
    #[schema(example = 1)]
    pub id: i64,
    pub seller_id: SellerId,
    pub parent_asin: Asin,
    pub market_place_id: Marketplace,
    pub period: Period,
    pub sales_target: Money,
    /// 1 when the target is created, one more with every write to it. Its `ETag` is this
    /// number, quoted.
    #[schema(example = 2)]
    pub version: i64,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

impl SalesTarget {
    /// The key of this stored row (see `SalesTargetKey`).
    pub fn key(&self) -> SalesTargetKey<'_> {
        SalesTargetKey {
            seller_id: &self.seller_id,
            parent_asin: &self.parent_asin,
            market_place_id: &self.market_place_id,
            period: &self.period,
        }
    }
}

/// Optional equality filters of the sales-target list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesTargetFilter {
    pub seller_id: Option<SellerId>,
    pub parent_asin: Option<Asin>,
    pub market_place_id: Option<Marketplace>,
    pub period: Option<Period>,
}
