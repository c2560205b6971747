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

impl SalesTargetInput {
    /// The upsert key, for spotting the same row twice in one batch.
    pub fn key(&self) -> (&SellerId, &Asin, &Marketplace, &Period) {
        (
            &self.seller_id,
            &self.parent_asin,
            &self.market_place_id,
            &self.period,
        )
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
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

/// Optional equality filters of the sales-target list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesTargetFilter {
    pub seller_id: Option<SellerId>,
    pub parent_asin: Option<Asin>,
    pub market_place_id: Option<Marketplace>,
    pub period: Option<Period>,
}
