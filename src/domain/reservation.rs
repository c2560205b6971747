//! Reservations: units held for a cart or an order until they are released, committed (deducted
//! for the order) or expire. `docs/stock.md` draws their life.

use serde::Serialize;
use utoipa::ToSchema;

use super::stock::ExternalId;
use super::{Marketplace, SellerId, SellerSku, Timestamp};

/// Longest hold a reservation may ask for, in minutes (7 days).
pub const MAX_EXPIRES_MINUTES: i64 = 10_080;
/// The hold when a reservation does not say.
pub const DEFAULT_EXPIRES_MINUTES: i64 = 30;
/// Most items one reservation holds.
pub const MAX_RESERVATION_ITEMS: usize = 100;

/// What the units are held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationType {
    Cart,
    Order,
}

impl ReservationType {
    pub const RULE: &'static str = "must be cart or order";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "cart" => Ok(Self::Cart),
            "order" => Ok(Self::Order),
            _ => Err(Self::RULE),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cart => "cart",
            Self::Order => "order",
        }
    }
}

/// Where a reservation is in its life: `active` holds units; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    Active,
    Released,
    Committed,
    Expired,
}

impl ReservationStatus {
    pub const RULE: &'static str = "must be active, released, committed or expired";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "active" => Ok(Self::Active),
            "released" => Ok(Self::Released),
            "committed" => Ok(Self::Committed),
            "expired" => Ok(Self::Expired),
            _ => Err(Self::RULE),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Committed => "committed",
            Self::Expired => "expired",
        }
    }
}

/// One SKU and how many of its units to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservationItem {
    pub seller_sku: SellerSku,
    pub quantity: i64,
}

/// A validated reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub seller_id: SellerId,
    pub market_place_id: Marketplace,
    pub reservation_type: ReservationType,
    pub reference_id: ExternalId,
    /// 1 to `MAX_RESERVATION_ITEMS`, distinct SKUs.
    pub items: Vec<NewReservationItem>,
    /// How long the units are held, in minutes (1 to `MAX_EXPIRES_MINUTES`).
    pub expires_minutes: i64,
}

/// One held SKU of a stored reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReservationItem {
    #[schema(example = 1)]
    pub inventory_id: i64,
    pub seller_sku: SellerSku,
    #[schema(example = 2)]
    pub quantity: i64,
}

/// A stored reservation. It serialises as `ReservationView`, with its `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: i64,
    pub seller_id: SellerId,
    pub market_place_id: Marketplace,
    pub reservation_type: ReservationType,
    pub reference_id: ExternalId,
    pub status: ReservationStatus,
    pub items: Vec<ReservationItem>,
    pub expires_at: Timestamp,
    /// Set when the reservation was committed.
    pub order_id: Option<ExternalId>,
    /// The user who made the reservation.
    pub created_by: Option<i64>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

/// A reservation as clients see it.
#[derive(Serialize, ToSchema)]
pub struct ReservationView<'a> {
    #[schema(example = 7)]
    id: i64,
    seller_id: &'a SellerId,
    market_place_id: &'a Marketplace,
    reservation_type: ReservationType,
    reference_id: &'a ExternalId,
    status: ReservationStatus,
    items: &'a Vec<ReservationItem>,
    expires_at: Timestamp,
    /// Set when the reservation was committed.
    order_id: &'a Option<ExternalId>,
    /// The user who made the reservation.
    created_by: Option<i64>,
    /// 1 while active, 2 once released, committed or expired: a reservation changes once.
    /// Its `ETag` is this number, quoted.
    #[schema(example = 1, minimum = 1, maximum = 2)]
    version: i64,
    create_time: Timestamp,
    update_time: Timestamp,
}

impl Serialize for Reservation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReservationView {
            id: self.id,
            seller_id: &self.seller_id,
            market_place_id: &self.market_place_id,
            reservation_type: self.reservation_type,
            reference_id: &self.reference_id,
            status: self.status,
            items: &self.items,
            expires_at: self.expires_at,
            order_id: &self.order_id,
            created_by: self.created_by,
            version: self.version(),
            create_time: self.create_time,
            update_time: self.update_time,
        }
        .serialize(serializer)
    }
}

impl utoipa::PartialSchema for Reservation {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ReservationView::schema()
    }
}

impl ToSchema for Reservation {
    fn name() -> std::borrow::Cow<'static, str> {
        ReservationView::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        ReservationView::schemas(schemas);
    }
}

impl Reservation {
    /// Derived, not stored: a reservation changes exactly once (from `active` to released,
    /// committed or expired), so it is at version 1 while active and 2 ever after.
    pub fn version(&self) -> i64 {
        match self.status {
            ReservationStatus::Active => 1,
            ReservationStatus::Released
            | ReservationStatus::Committed
            | ReservationStatus::Expired => 2,
        }
    }

    /// Units this reservation holds while active.
    pub fn quantity(&self) -> i64 {
        self.items.iter().map(|item| item.quantity).sum()
    }
}

/// The filters of the reservation list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservationFilter {
    pub seller_id: Option<SellerId>,
    pub market_place_id: Option<Marketplace>,
    pub status: Option<ReservationStatus>,
    pub reference_id: Option<ExternalId>,
}

/// How many reservations a release or an expiry let go, and how many units they held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Released {
    #[schema(example = 2)]
    pub reservations: u64,
    #[schema(example = 5)]
    pub quantity: i64,
}
