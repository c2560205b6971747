//! The row structs that statements read into, shared by both backends, and their conversion to
//! the domain records the rest of the service sees. Column lists live beside their structs, so
//! a new column is added in one place per table here, plus the backends' upserts.

use chrono::NaiveDateTime;

use crate::domain::{
    Asin, Inventory, Marketplace, Money, Period, Role, SalesTarget, SellerId, SellerSku, Timestamp,
    Units, User, Username,
};

/// A text column as both backends return it. MariaDB and MySQL flag columns of a binary
/// collation (`utf8mb4_bin`, which we use so that keys compare exactly, as on SQLite) as
/// `VARBINARY`, and sqlx will not decode those as `String` (sqlx issue #3387); this accepts both.
pub(super) struct Text(pub String);

impl sqlx::Type<sqlx::MySql> for Text {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <String as sqlx::Type<sqlx::MySql>>::type_info()
    }

    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::MySql>>::compatible(ty)
            || <Vec<u8> as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Text {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        // Checks UTF-8 whatever the column's flags say.
        <&str as sqlx::Decode<sqlx::MySql>>::decode(value).map(|s| Self(s.to_owned()))
    }
}

impl sqlx::Type<sqlx::Sqlite> for Text {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Text {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <String as sqlx::Decode<sqlx::Sqlite>>::decode(value).map(Self)
    }
}

/// The columns `SalesTargetRow` reads, in a `SELECT` of table `sales_targets`.
pub(super) const SALES_TARGET_COLUMNS: &str = "id, seller_id, parent_asin, market_place_id, \
     period, sales_target_cents, create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct SalesTargetRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    market_place_id: Text,
    period: Text,
    sales_target_cents: i64,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl From<SalesTargetRow> for SalesTarget {
    fn from(r: SalesTargetRow) -> Self {
        Self {
            id: r.id,
            seller_id: SellerId::from_stored(r.seller_id.0),
            parent_asin: Asin::from_stored(r.parent_asin.0),
            market_place_id: Marketplace::from_stored(r.market_place_id.0),
            period: Period::from_stored(r.period.0),
            sales_target: Money::from_cents(r.sales_target_cents),
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

/// The columns `InventoryRow` reads, in a `SELECT` of table `inventory`.
pub(super) const INVENTORY_COLUMNS: &str = "id, seller_id, parent_asin, child_asin, seller_sku, \
     market_place_id, inventory, create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct InventoryRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    child_asin: Text,
    seller_sku: Text,
    market_place_id: Text,
    inventory: i32,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl From<InventoryRow> for Inventory {
    fn from(r: InventoryRow) -> Self {
        Self {
            id: r.id,
            seller_id: SellerId::from_stored(r.seller_id.0),
            parent_asin: Asin::from_stored(r.parent_asin.0),
            child_asin: Asin::from_stored(r.child_asin.0),
            seller_sku: SellerSku::from_stored(r.seller_sku.0),
            market_place_id: Marketplace::from_stored(r.market_place_id.0),
            inventory: Units::from_stored(r.inventory),
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

/// The columns `UserRow` reads, in a `SELECT` of table `users` (never the password hash).
pub(super) const USER_COLUMNS: &str = "id, username, role, is_active, create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: i64,
    username: Text,
    role: Text,
    is_active: bool,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl UserRow {
    /// The user, with the sellers read from `user_sellers`.
    pub fn into_user(self, seller_ids: Vec<SellerId>) -> User {
        User {
            id: self.id,
            username: Username::from_stored(self.username.0),
            // The column has a CHECK constraint; anything else would be a corrupt row.
            role: Role::parse(&self.role.0).unwrap_or(Role::Seller),
            seller_ids,
            is_active: self.is_active,
            create_time: Timestamp::from_naive_utc(self.create_time),
            update_time: Timestamp::from_naive_utc(self.update_time),
        }
    }
}
