//! The row structs that statements read into, shared by both backends, and their conversion to
//! the domain records the rest of the service sees. Column lists live beside their structs, so
//! a new column is added in one place per table here, plus the backends' upserts.

use chrono::NaiveDateTime;

use super::StoreError;

use crate::domain::{
    Asin, AuditAction, AuditEntry, AuditTarget, Event, EventType, ExternalId, Fingerprint,
    IdempotencyRecord, Inventory, KeptResponse, LedgerEntry, LedgerType, Marketplace, Money, Note,
    Period, Reservation, ReservationItem, ReservationStatus, ReservationType, Role, SalesTarget,
    SellerId, SellerSku, Thresholds, Timestamp, Units, User, Username,
};
use crate::domain::{Delivery, DeliveryOutcome, Webhook, WebhookSecret, WebhookTarget};

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
     period, sales_target_cents, version, create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct SalesTargetRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    market_place_id: Text,
    period: Text,
    sales_target_cents: i64,
    version: i64,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

/// Rows a MySQL procedure returned (`mysql/upsert.rs`) are read by position, in the order of
/// the column lists here: sqlx names the columns of a prepared statement's first result set
/// from its prepare, and the prepare of a `CALL` has none, so a read by name finds nothing
/// (sqlx-mysql 0.8, `connection/executor.rs`).
impl SalesTargetRow {
    pub(super) fn by_position(row: &sqlx::mysql::MySqlRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get(0)?,
            seller_id: row.try_get(1)?,
            parent_asin: row.try_get(2)?,
            market_place_id: row.try_get(3)?,
            period: row.try_get(4)?,
            sales_target_cents: row.try_get(5)?,
            version: row.try_get(6)?,
            create_time: row.try_get(7)?,
            update_time: row.try_get(8)?,
        })
    }
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
            version: r.version,
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

/// The columns `InventoryRow` reads, in a `SELECT` of table `inventory`.
pub(super) const INVENTORY_COLUMNS: &str = "id, seller_id, parent_asin, child_asin, seller_sku, \
     market_place_id, inventory, reserved, warning_threshold, critical_threshold, version, \
     create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct InventoryRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    child_asin: Text,
    seller_sku: Text,
    market_place_id: Text,
    inventory: i32,
    reserved: i64,
    warning_threshold: Option<i32>,
    critical_threshold: Option<i32>,
    version: i64,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl InventoryRow {
    /// See `SalesTargetRow::by_position`.
    pub(super) fn by_position(row: &sqlx::mysql::MySqlRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get(0)?,
            seller_id: row.try_get(1)?,
            parent_asin: row.try_get(2)?,
            child_asin: row.try_get(3)?,
            seller_sku: row.try_get(4)?,
            market_place_id: row.try_get(5)?,
            inventory: row.try_get(6)?,
            reserved: row.try_get(7)?,
            warning_threshold: row.try_get(8)?,
            critical_threshold: row.try_get(9)?,
            version: row.try_get(10)?,
            create_time: row.try_get(11)?,
            update_time: row.try_get(12)?,
        })
    }
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
            reserved: r.reserved,
            // Stored as written through `Thresholds::new`; the database checks their range.
            thresholds: Thresholds {
                warning: r.warning_threshold,
                critical: r.critical_threshold,
            },
            version: r.version,
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

/// The columns `LedgerRow` reads, in a `SELECT` of table `inventory_ledger`.
pub(super) const LEDGER_COLUMNS: &str = "id, inventory_id, seller_id, market_place_id, \
     seller_sku, type, quantity_change, reserved_change, inventory_before, inventory_after, \
     reserved_before, reserved_after, reason, reference, reservation_id, order_id, \
     operator_id, request_id, create_time";

#[derive(sqlx::FromRow)]
pub(super) struct LedgerRow {
    id: i64,
    inventory_id: i64,
    seller_id: Text,
    market_place_id: Text,
    seller_sku: Text,
    #[sqlx(rename = "type")]
    entry_type: Text,
    quantity_change: i64,
    reserved_change: i64,
    inventory_before: i64,
    inventory_after: i64,
    reserved_before: i64,
    reserved_after: i64,
    reason: Option<Text>,
    reference: Option<Text>,
    reservation_id: Option<i64>,
    order_id: Option<Text>,
    operator_id: Option<i64>,
    request_id: Option<Text>,
    create_time: NaiveDateTime,
}

impl From<LedgerRow> for LedgerEntry {
    fn from(r: LedgerRow) -> Self {
        Self {
            id: r.id,
            inventory_id: r.inventory_id,
            seller_id: SellerId::from_stored(r.seller_id.0),
            market_place_id: Marketplace::from_stored(r.market_place_id.0),
            seller_sku: SellerSku::from_stored(r.seller_sku.0),
            // The column has a CHECK constraint; anything else would be a corrupt row.
            entry_type: LedgerType::parse(&r.entry_type.0).unwrap_or(LedgerType::Adjust),
            quantity_change: r.quantity_change,
            reserved_change: r.reserved_change,
            inventory_before: r.inventory_before,
            inventory_after: r.inventory_after,
            reserved_before: r.reserved_before,
            reserved_after: r.reserved_after,
            reason: r.reason.map(|t| Note::from_stored(t.0)),
            reference: r.reference.map(|t| Note::from_stored(t.0)),
            reservation_id: r.reservation_id,
            order_id: r.order_id.map(|t| ExternalId::from_stored(t.0)),
            operator_id: r.operator_id,
            request_id: r.request_id.map(|t| t.0),
            create_time: Timestamp::from_naive_utc(r.create_time),
        }
    }
}

/// The columns `ReservationRow` reads, in a `SELECT` of table `reservations`.
pub(super) const RESERVATION_COLUMNS: &str = "id, seller_id, market_place_id, \
     reservation_type, reference_id, status, expires_at, order_id, created_by, create_time, \
     update_time";

#[derive(sqlx::FromRow)]
pub(super) struct ReservationRow {
    pub id: i64,
    seller_id: Text,
    market_place_id: Text,
    reservation_type: Text,
    reference_id: Text,
    status: Text,
    expires_at: NaiveDateTime,
    order_id: Option<Text>,
    created_by: Option<i64>,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl ReservationRow {
    /// The reservation, with its items (read from `reservation_items`).
    pub fn into_reservation(self, items: Vec<ReservationItem>) -> Reservation {
        Reservation {
            id: self.id,
            seller_id: SellerId::from_stored(self.seller_id.0),
            market_place_id: Marketplace::from_stored(self.market_place_id.0),
            // The columns have CHECK constraints; anything else would be a corrupt row.
            reservation_type: ReservationType::parse(&self.reservation_type.0)
                .unwrap_or(ReservationType::Cart),
            reference_id: ExternalId::from_stored(self.reference_id.0),
            status: ReservationStatus::parse(&self.status.0).unwrap_or(ReservationStatus::Released),
            items,
            expires_at: Timestamp::from_naive_utc(self.expires_at),
            order_id: self.order_id.map(|t| ExternalId::from_stored(t.0)),
            created_by: self.created_by,
            create_time: Timestamp::from_naive_utc(self.create_time),
            update_time: Timestamp::from_naive_utc(self.update_time),
        }
    }
}

/// An item of a reservation, with the reservation it belongs to.
#[derive(sqlx::FromRow)]
pub(super) struct ReservationItemRow {
    pub reservation_id: i64,
    inventory_id: i64,
    seller_sku: Text,
    quantity: i64,
}

impl From<ReservationItemRow> for ReservationItem {
    fn from(r: ReservationItemRow) -> Self {
        Self {
            inventory_id: r.inventory_id,
            seller_sku: SellerSku::from_stored(r.seller_sku.0),
            quantity: r.quantity,
        }
    }
}

/// The columns `UserRow` reads, in a `SELECT` of table `users` (never the password hash).
pub(super) const USER_COLUMNS: &str =
    "id, username, role, is_active, token_version, create_time, update_time";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: i64,
    username: Text,
    role: Text,
    is_active: bool,
    token_version: i64,
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
            token_version: self.token_version,
            create_time: Timestamp::from_naive_utc(self.create_time),
            update_time: Timestamp::from_naive_utc(self.update_time),
        }
    }
}

/// The columns `AuditRow` reads, in a `SELECT` of table `audit_log`.
pub(super) const AUDIT_COLUMNS: &str = "id, time, user_id, username, action, target_type, \
     target_id, client_ip, request_id, detail";

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    time: NaiveDateTime,
    user_id: Option<i64>,
    username: Option<Text>,
    action: Text,
    target_type: Option<Text>,
    target_id: Option<Text>,
    client_ip: Option<Text>,
    request_id: Option<Text>,
    detail: Text,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            time: Timestamp::from_naive_utc(r.time),
            user_id: r.user_id,
            username: r.username.map(|t| t.0),
            // Only the service writes these columns, from the same enums; anything else would
            // be a corrupt row.
            action: AuditAction::parse(&r.action.0).unwrap_or(AuditAction::UserUpdated),
            target_type: r.target_type.and_then(|t| AuditTarget::parse(&t.0).ok()),
            target_id: r.target_id.map(|t| t.0),
            client_ip: r.client_ip.map(|t| t.0),
            request_id: r.request_id.map(|t| t.0),
            detail: serde_json::from_str(&r.detail.0).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The columns `IdempotencyRow` reads, in a `SELECT` of table `idempotency_keys`.
pub(super) const IDEMPOTENCY_COLUMNS: &str =
    "fingerprint, locked_until, status, headers, body, expires_at";

#[derive(sqlx::FromRow)]
pub(super) struct IdempotencyRow {
    fingerprint: Vec<u8>,
    locked_until: Option<NaiveDateTime>,
    status: Option<i64>,
    headers: Option<Text>,
    body: Option<Vec<u8>>,
    expires_at: NaiveDateTime,
}

impl TryFrom<IdempotencyRow> for IdempotencyRecord {
    type Error = StoreError;

    fn try_from(r: IdempotencyRow) -> Result<Self, StoreError> {
        let fingerprint = Fingerprint::from_slice(&r.fingerprint)
            .ok_or_else(|| StoreError::codec("an idempotency fingerprint is not 32 bytes"))?;
        let response = match r.status {
            None => None,
            Some(status) => Some(KeptResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::codec("a kept status is out of range"))?,
                headers: match r.headers {
                    Some(text) => serde_json::from_str(&text.0).map_err(StoreError::codec)?,
                    None => Vec::new(),
                },
                body: r.body.unwrap_or_default(),
            }),
        };
        Ok(Self {
            fingerprint,
            response,
            locked_until: r.locked_until.map(Timestamp::from_naive_utc),
            expires_at: Timestamp::from_naive_utc(r.expires_at),
        })
    }
}

/// The columns `EventRow` reads, in a `SELECT` of table `events`.
pub(super) const EVENT_COLUMNS: &str = "id, event_type, occurred_at, seller_id, data";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    event_type: Text,
    occurred_at: NaiveDateTime,
    seller_id: Text,
    data: Text,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        // Only the service writes these columns, from `EventType` and serialised rows: anything
        // else is a corrupt row, reported as such.
        let corrupt = |what: &str| StoreError::codec(format!("event {}: bad {what}", r.id));
        Ok(Self {
            id: r.id,
            event_type: EventType::parse(&r.event_type.0).map_err(|_| corrupt("type"))?,
            occurred_at: Timestamp::from_naive_utc(r.occurred_at),
            seller_id: SellerId::parse(&r.seller_id.0).map_err(|_| corrupt("seller_id"))?,
            data: serde_json::value::RawValue::from_string(r.data.0)
                .map_err(|_| corrupt("data"))?,
        })
    }
}

/// The columns `WebhookRow` reads, in a `SELECT` of table `webhooks`.
pub(super) const WEBHOOK_COLUMNS: &str = "id, url, event_types, seller_ids, secret, created_by, \
     create_time, last_event_id, attempts, failing_since, next_attempt_at";

#[derive(sqlx::FromRow)]
pub(super) struct WebhookRow {
    id: i64,
    url: Text,
    event_types: Text,
    seller_ids: Option<Text>,
    secret: Text,
    created_by: i64,
    create_time: NaiveDateTime,
    last_event_id: i64,
    attempts: i64,
    failing_since: Option<NaiveDateTime>,
    next_attempt_at: Option<NaiveDateTime>,
}

impl TryFrom<WebhookRow> for WebhookTarget {
    type Error = StoreError;

    fn try_from(r: WebhookRow) -> Result<Self, StoreError> {
        // Only the service writes these columns, from checked values.
        let corrupt = |what: &str| StoreError::codec(format!("webhook {}: bad {what}", r.id));
        let event_types = EventType::parse_list(&r.event_types.0).map_err(|_| corrupt("types"))?;
        let seller_ids = match &r.seller_ids {
            None => None,
            Some(text) => {
                let names: Vec<String> =
                    serde_json::from_str(&text.0).map_err(|_| corrupt("seller_ids"))?;
                let sellers = names
                    .iter()
                    .map(|s| SellerId::parse(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| corrupt("seller_ids"))?;
                Some(sellers)
            }
        };
        Ok(Self {
            webhook: Webhook {
                id: r.id,
                url: r.url.0,
                event_types,
                seller_ids,
                created_by: r.created_by,
                create_time: Timestamp::from_naive_utc(r.create_time),
                last_event_id: r.last_event_id,
                failing_since: r.failing_since.map(Timestamp::from_naive_utc),
                next_attempt_at: r.next_attempt_at.map(Timestamp::from_naive_utc),
            },
            secret: WebhookSecret::from_stored(r.secret.0),
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
        })
    }
}

/// The columns `DeliveryRow` reads, in a `SELECT` of table `webhook_deliveries`.
pub(super) const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, attempt, attempted_at, \
     status_code, error, latency_ms, outcome";

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: i64,
    attempt: i64,
    attempted_at: NaiveDateTime,
    status_code: Option<i64>,
    error: Option<Text>,
    latency_ms: i64,
    outcome: Text,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            attempt: u32::try_from(r.attempt).unwrap_or(u32::MAX),
            attempted_at: Timestamp::from_naive_utc(r.attempted_at),
            status_code: r.status_code.and_then(|s| u16::try_from(s).ok()),
            error: r.error.map(|t| t.0),
            latency_ms: u64::try_from(r.latency_ms).unwrap_or_default(),
            // Only the service writes this column, from `DeliveryOutcome`.
            outcome: DeliveryOutcome::parse(&r.outcome.0).unwrap_or(DeliveryOutcome::Failed),
        }
    }
}
