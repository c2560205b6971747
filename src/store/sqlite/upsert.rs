//! The upserts of SQLite: the SQL of each table, and how a group of rows is written with it.
//!
//! The rows of a statement travel as one bound value, a JSON array of rows, each a JSON array
//! in the order its statement's comment gives (arrays parse faster than objects with named
//! fields: ~15% of a batch's throughput), which the statements unpack with `json_each`. So the
//! SQL is one constant for any number of rows: one small prepared statement per table instead
//! of one per row count (each ~1 MB at 1000 rows, cached up to 100 per connection), and no
//! per-value binding in sqlx, which copies every bound string. Several statements go in one
//! constant and run in one hand-off to the connection's thread; results come back as one JSON
//! value, because sqlx moves every result row across a thread and copies each of its values,
//! which profiling showed was most of a batch's time (bench/RESULTS.md).
//!
//! Sales targets are one `INSERT … ON CONFLICT DO UPDATE`, atomic by itself. Inventory rows
//! carry stock, a version and a ledger: their upsert is one script (`UPSERT_INVENTORY`) that
//! writes the ledger entries, the changed rows and the new rows, following the rule of
//! `InventoryInput::plan` (which MySQL runs in Rust; here it is SQL, so that a group costs one
//! hand-off, not a read, a plan and a write). Each script also writes the events of the rows it
//! changed (the outbox, docs/api.md "Event feed"), their `data` built in SQL exactly as the API
//! serialises the row. When those upserts are the group's only write, the script begins and
//! commits the transaction itself (`Transaction::Yours`): no hand-off is spent on
//! `BEGIN`/`COMMIT`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

use super::time::{parse_stored_time, stored_time};
use crate::domain::{
    Actor, Inventory, InventoryInput, SalesTarget, SalesTargetInput, Thresholds, Timestamp,
};
use crate::store::StoreError;

/// Creates or updates every sales target in `?1`, rows of
/// `[seller_id, parent_asin, market_place_id, period, sales_target_cents]`; `?2` is the time of
/// the write. Every write moves `update_time` and the version, so each row is a change: its
/// `sales_target.updated` event is written here too, `data` built in SQL exactly as
/// `SalesTarget` serialises (times as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the amount as a number of
/// units), so that the group stays one hand-off. Then reports `[position, id, create_time,
/// version]` of each input row.
const UPSERT_SALES_TARGETS: &str = "\
    INSERT INTO sales_targets \
        (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2, ?2 \
    FROM json_each(?1) WHERE true \
    ON CONFLICT (seller_id, parent_asin, market_place_id, period) DO UPDATE SET \
        sales_target_cents = excluded.sales_target_cents, \
        update_time = excluded.update_time, version = version + 1; \
    INSERT INTO events (event_type, occurred_at, seller_id, data) \
    SELECT 'sales_target.updated', ?2, t.seller_id, json_object('sales_target', json_object( \
        'id', t.id, 'seller_id', t.seller_id, 'parent_asin', t.parent_asin, \
        'market_place_id', t.market_place_id, 'period', t.period, \
        'sales_target', t.sales_target_cents / 100.0, 'version', t.version, \
        'create_time', substr(t.create_time, 1, 10) || 'T' || substr(t.create_time, 12, 8) \
            || '.' || substr(substr(t.create_time, 21) || '000000', 1, 6) || 'Z', \
        'update_time', substr(t.update_time, 1, 10) || 'T' || substr(t.update_time, 12, 8) \
            || '.' || substr(substr(t.update_time, 21) || '000000', 1, 6) || 'Z')) \
    FROM json_each(?1) AS j JOIN sales_targets AS t \
        ON t.seller_id = j.value ->> 0 AND t.parent_asin = j.value ->> 1 \
        AND t.market_place_id = j.value ->> 2 AND t.period = j.value ->> 3 \
    ORDER BY j.key; \
    SELECT json_group_array(json_array(j.key, t.id, t.create_time, t.version)) \
    FROM json_each(?1) AS j JOIN sales_targets AS t \
        ON t.seller_id = j.value ->> 0 AND t.parent_asin = j.value ->> 1 \
        AND t.market_place_id = j.value ->> 2 AND t.period = j.value ->> 3";

/// Creates or updates every inventory row in `?1` at time `?2`, with their ledger entries, in
/// one hand-off. `?1` holds rows of `[seller_id, parent_asin, child_asin, seller_sku,
/// market_place_id, inventory, operator_id, request_id]` (the last two: whose request it is,
/// for the ledger). The statements read them, with the time, once into the connection's
/// temporary table `upserted` (extracting JSON values is the costly part; each statement then
/// reads plain columns), and follow the rule of `InventoryInput::plan`:
///
/// 1. an `upsert` ledger entry for each existing row whose units on hand change (written first:
///    it records the numbers before);
/// 2. each existing row that changes (units or ASINs) is updated, its version one more;
/// 3. each key without a row is inserted (version 1, nothing reserved);
/// 4. a `create` entry for each row inserted here (a row without any entry yet: every other
///    row has at least its `create` or opening entry);
/// 5. the events of each row created or changed here (its `update_time` is now `?2`):
///    `inventory.updated`, and `inventory.stock.low_warning` when its stock level is worse than
///    with the units it had before (`before`, read first; null for a new row, which never
///    warns). `data` is built in SQL exactly as `InventoryView` serialises (times as
///    `YYYY-MM-DDTHH:MM:SS.ffffffZ`), so that the group stays one hand-off; the tests compare it
///    with the API's answers;
/// 6. reports `[position, id, reserved, warning_threshold, critical_threshold, version,
///    create_time, update_time]` of each input row; the rest of the row is the input.
///
/// A row that already says exactly this is not touched: no entry, no version, no
/// `update_time`. Only the first statement takes parameters: sqlx numbers the parameters of a
/// statement that skips `?1` wrongly, so every later statement reads the temporary table.
const UPSERT_INVENTORY: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS upserted (position INTEGER PRIMARY KEY, seller_id TEXT, \
        parent_asin TEXT, child_asin TEXT, seller_sku TEXT, market_place_id TEXT, \
        inventory INTEGER, operator_id INTEGER, request_id TEXT, at TEXT, before INTEGER); \
    INSERT INTO temp.upserted SELECT key, value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
        value ->> 4, value ->> 5, value ->> 6, value ->> 7, ?2, NULL FROM json_each(?1); \
    UPDATE temp.upserted AS u SET before = t.inventory FROM inventory AS t \
        WHERE t.seller_id = u.seller_id AND t.market_place_id = u.market_place_id \
        AND t.seller_sku = u.seller_sku; \
    INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type, \
        quantity_change, reserved_change, inventory_before, inventory_after, reserved_before, \
        reserved_after, operator_id, request_id, create_time) \
    SELECT t.id, t.seller_id, t.market_place_id, t.seller_sku, 'upsert', \
        u.inventory - t.inventory, 0, t.inventory, u.inventory, t.reserved, t.reserved, \
        u.operator_id, u.request_id, u.at \
    FROM temp.upserted AS u JOIN inventory AS t ON t.seller_id = u.seller_id \
        AND t.market_place_id = u.market_place_id AND t.seller_sku = u.seller_sku \
    WHERE t.inventory <> u.inventory ORDER BY u.position; \
    UPDATE inventory AS t SET parent_asin = u.parent_asin, child_asin = u.child_asin, \
        inventory = u.inventory, version = t.version + 1, update_time = u.at \
    FROM temp.upserted AS u WHERE t.seller_id = u.seller_id \
        AND t.market_place_id = u.market_place_id AND t.seller_sku = u.seller_sku \
        AND (t.inventory <> u.inventory OR t.parent_asin <> u.parent_asin \
            OR t.child_asin <> u.child_asin); \
    INSERT INTO inventory (seller_id, parent_asin, child_asin, seller_sku, market_place_id, \
        inventory, reserved, version, create_time, update_time) \
    SELECT seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, 0, 1, \
        at, at FROM temp.upserted WHERE true \
    ON CONFLICT (seller_id, market_place_id, seller_sku) DO NOTHING; \
    INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type, \
        quantity_change, reserved_change, inventory_before, inventory_after, reserved_before, \
        reserved_after, operator_id, request_id, create_time) \
    SELECT t.id, t.seller_id, t.market_place_id, t.seller_sku, 'create', t.inventory, 0, 0, \
        t.inventory, 0, 0, u.operator_id, u.request_id, u.at \
    FROM temp.upserted AS u JOIN inventory AS t ON t.seller_id = u.seller_id \
        AND t.market_place_id = u.market_place_id AND t.seller_sku = u.seller_sku \
    WHERE t.version = 1 AND t.create_time = u.at \
        AND NOT EXISTS (SELECT 1 FROM inventory_ledger AS l WHERE l.inventory_id = t.id) \
    ORDER BY u.position; \
    WITH changed AS (SELECT u.position, u.at, t.seller_id, json_object('id', t.id, \
        'seller_id', t.seller_id, 'parent_asin', t.parent_asin, 'child_asin', t.child_asin, \
        'seller_sku', t.seller_sku, 'market_place_id', t.market_place_id, \
        'inventory', t.inventory, 'reserved', t.reserved, 'available', t.inventory - t.reserved, \
        'warning_threshold', t.warning_threshold, 'critical_threshold', t.critical_threshold, \
        'stock_level', CASE WHEN t.inventory - t.reserved <= 0 THEN 'out_of_stock' \
            WHEN t.inventory - t.reserved <= t.critical_threshold THEN 'critical' \
            WHEN t.inventory - t.reserved <= t.warning_threshold THEN 'warning' ELSE 'ok' END, \
        'version', t.version, \
        'create_time', substr(t.create_time, 1, 10) || 'T' || substr(t.create_time, 12, 8) || '.' \
            || substr(substr(t.create_time, 21) || '000000', 1, 6) || 'Z', \
        'update_time', substr(t.update_time, 1, 10) || 'T' || substr(t.update_time, 12, 8) || '.' \
            || substr(substr(t.update_time, 21) || '000000', 1, 6) || 'Z') AS row, \
        CASE WHEN t.inventory - t.reserved <= 0 THEN 3 \
            WHEN t.inventory - t.reserved <= t.critical_threshold THEN 2 \
            WHEN t.inventory - t.reserved <= t.warning_threshold THEN 1 ELSE 0 END AS after, \
        CASE WHEN u.before IS NOT NULL THEN CASE WHEN u.before - t.reserved <= 0 THEN 3 \
            WHEN u.before - t.reserved <= t.critical_threshold THEN 2 \
            WHEN u.before - t.reserved <= t.warning_threshold THEN 1 ELSE 0 END END AS before \
        FROM temp.upserted AS u JOIN inventory AS t ON t.seller_id = u.seller_id \
            AND t.market_place_id = u.market_place_id AND t.seller_sku = u.seller_sku \
        WHERE t.update_time = u.at) \
    INSERT INTO events (event_type, occurred_at, seller_id, data) \
    SELECT event_type, at, seller_id, data FROM ( \
        SELECT position, 0 AS n, 'inventory.updated' AS event_type, at, seller_id, \
            json_object('inventory', json(row)) AS data FROM changed \
        UNION ALL \
        SELECT position, 1, 'inventory.stock.low_warning', at, seller_id, \
            json_object('inventory', json(row), 'stock_level_before', \
                CASE before WHEN 0 THEN 'ok' WHEN 1 THEN 'warning' WHEN 2 THEN 'critical' \
                ELSE 'out_of_stock' END) \
            FROM changed WHERE before IS NOT NULL AND after > before) \
    ORDER BY position, n; \
    SELECT json_group_array(json_array(u.position, t.id, t.reserved, t.warning_threshold, \
        t.critical_threshold, t.version, t.create_time, t.update_time)) \
    FROM temp.upserted AS u JOIN inventory AS t ON t.seller_id = u.seller_id \
        AND t.market_place_id = u.market_place_id AND t.seller_sku = u.seller_sku; \
    DELETE FROM temp.upserted";

/// Who opens and closes the transaction an upsert writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transaction {
    /// The write queue has begun it and will commit it.
    Open,
    /// These upserts are the group's only write: their first statement begins it and their
    /// last commits it.
    Yours,
}

/// `sql` wrapped in `BEGIN IMMEDIATE` (before) and `COMMIT` (after) as `tx` asks.
fn in_transaction(sql: &str, begin: bool, commit: bool) -> std::borrow::Cow<'_, str> {
    match (begin, commit) {
        (false, false) => sql.into(),
        (true, false) => format!("BEGIN IMMEDIATE; {sql}").into(),
        (false, true) => format!("{sql}; COMMIT").into(),
        (true, true) => format!("BEGIN IMMEDIATE; {sql}; COMMIT").into(),
    }
}

/// One kind of record as the write queue upserts it.
pub(super) trait Upsert: Clone + Sized + Send + 'static {
    type Stored: Send + 'static;

    /// Appends this row's values as JSON array elements (no brackets), in the order the
    /// statements read them.
    fn fields(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;

    /// A hash of the row's key, so that the write queue can keep one key out of a group twice.
    fn key_hash(&self) -> u64;

    /// Writes `rows` (distinct keys; each with the actor whose request it is) at `now`, with
    /// the events of the rows it changes (the outbox), all or none, in the transaction `tx`
    /// says, and returns the stored records in input order.
    async fn write(
        conn: &mut SqliteConnection,
        rows: &[(&Encoded<Self>, &Actor)],
        now: Timestamp,
        tx: Transaction,
    ) -> Result<Vec<Self::Stored>, StoreError>;
}

/// A hash of a key: enough to keep one key out of a group twice (two keys that collide only
/// make a job wait for the next group).
fn hash_of(key: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// A row ready for the write queue: its fields encoded and its key hashed by the request's own
/// task, so that the one task feeding the writer, whose every microsecond the writer waits
/// for, only concatenates.
pub(super) struct Encoded<T> {
    pub row: T,
    fields: String,
    pub key: u64,
}

impl<T: Upsert> Encoded<T> {
    pub(super) fn new(row: T) -> Result<Self, StoreError> {
        let mut fields = Vec::with_capacity(160);
        row.fields(&mut fields).map_err(StoreError::codec)?;
        let fields = String::from_utf8(fields).map_err(StoreError::codec)?;
        let key = row.key_hash();
        Ok(Self { row, fields, key })
    }

    /// Encodes every row of a batch.
    pub(super) fn all(rows: Vec<T>) -> Result<Vec<Self>, StoreError> {
        rows.into_iter().map(Self::new).collect()
    }
}

/// Serialises `value`, a tuple, as array elements without brackets (for `Encoded::fields`).
fn members(value: &impl Serialize, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let start = out.len();
    serde_json::to_writer(&mut *out, value)?;
    // `[...]` → `...`
    out.pop();
    out.remove(start);
    Ok(())
}

/// A JSON array of `rows`, each `[fields` + `extra(i, row)` + `]`.
fn json_array<'a, T: 'a>(
    rows: impl Iterator<Item = &'a Encoded<T>>,
    mut extra: impl FnMut(&mut String, usize),
) -> String {
    let mut json = String::with_capacity(4096);
    json.push('[');
    for (i, row) in rows.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('[');
        json.push_str(&row.fields);
        extra(&mut json, i);
        json.push(']');
    }
    json.push(']');
    json
}

impl Upsert for SalesTargetInput {
    type Stored = SalesTarget;

    fn fields(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // The order `UPSERT_SALES_TARGETS` reads.
        let fields = (
            self.seller_id.as_str(),
            self.parent_asin.as_str(),
            self.market_place_id.as_str(),
            self.period.as_str(),
            self.sales_target.cents(),
        );
        members(&fields, out)
    }

    fn key_hash(&self) -> u64 {
        hash_of(self.key())
    }

    /// With `Transaction::Yours`, begins and commits the transaction itself: the upsert and
    /// its events are two writes.
    async fn write(
        conn: &mut SqliteConnection,
        rows: &[(&Encoded<Self>, &Actor)],
        now: Timestamp,
        tx: Transaction,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        let now_text = stored_time(now);
        let json = json_array(rows.iter().map(|(row, _)| *row), |_, _| {});
        let yours = tx == Transaction::Yours;
        let placed: String = first(
            sqlx::query_scalar(&in_transaction(UPSERT_SALES_TARGETS, yours, yours))
                .bind(json)
                .bind(now_text.as_str())
                .fetch_all(&mut *conn)
                .await?,
        )?;
        let placed: Vec<(usize, i64, &str, i64)> =
            serde_json::from_str(&placed).map_err(StoreError::codec)?;
        let mut stored: Vec<Option<SalesTarget>> = rows.iter().map(|_| None).collect();
        for (position, id, created, version) in placed {
            let create_time = if created == now_text {
                now
            } else {
                parse_stored_time(created)?
            };
            if let (Some(slot), Some((row, _))) = (stored.get_mut(position), rows.get(position)) {
                let input = row.row.clone();
                *slot = Some(SalesTarget {
                    id,
                    seller_id: input.seller_id,
                    parent_asin: input.parent_asin,
                    market_place_id: input.market_place_id,
                    period: input.period,
                    sales_target: input.sales_target,
                    version,
                    create_time,
                    update_time: now,
                });
            }
        }
        stored
            .into_iter()
            .map(|row| row.ok_or(StoreError::Db(sqlx::Error::RowNotFound)))
            .collect()
    }
}

/// A row as `UPSERT_INVENTORY` reports it.
#[derive(Deserialize)]
struct Written<'a>(
    usize,
    i64,
    i64,
    Option<i32>,
    Option<i32>,
    i64,
    &'a str,
    &'a str,
);

impl Upsert for InventoryInput {
    type Stored = Inventory;

    fn fields(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // The order `UPSERT_INVENTORY` reads.
        let fields = (
            self.seller_id.as_str(),
            self.parent_asin.as_str(),
            self.child_asin.as_str(),
            self.seller_sku.as_str(),
            self.market_place_id.as_str(),
            self.inventory.get(),
        );
        members(&fields, out)
    }

    fn key_hash(&self) -> u64 {
        hash_of(self.key())
    }

    async fn write(
        conn: &mut SqliteConnection,
        rows: &[(&Encoded<Self>, &Actor)],
        now: Timestamp,
        tx: Transaction,
    ) -> Result<Vec<Inventory>, StoreError> {
        let yours = tx == Transaction::Yours;
        let now_text = stored_time(now);
        // `[fields, operator_id, request_id]`
        let json = json_array(rows.iter().map(|(row, _)| *row), |json, i| {
            let actor = rows[i].1;
            let operator = actor.user_id.map_or("null".to_owned(), |id| id.to_string());
            let request = actor.request_id.as_deref().map_or("null".to_owned(), |id| {
                serde_json::Value::from(id).to_string()
            });
            let _ = write!(json, ",{operator},{request}");
        });
        let written: String = first(
            sqlx::query_scalar(&in_transaction(UPSERT_INVENTORY, yours, yours))
                .bind(json)
                .bind(now_text.as_str())
                .fetch_all(&mut *conn)
                .await?,
        )?;
        let written: Vec<Written> = serde_json::from_str(&written).map_err(StoreError::codec)?;
        let time = |text: &str| {
            if text == now_text {
                Ok(now)
            } else {
                parse_stored_time(text)
            }
        };
        let mut stored: Vec<Option<Inventory>> = rows.iter().map(|_| None).collect();
        for w in written {
            let (Some(slot), Some((row, _))) = (stored.get_mut(w.0), rows.get(w.0)) else {
                continue;
            };
            let input = row.row.clone();
            *slot = Some(Inventory {
                id: w.1,
                seller_id: input.seller_id,
                parent_asin: input.parent_asin,
                child_asin: input.child_asin,
                seller_sku: input.seller_sku,
                market_place_id: input.market_place_id,
                inventory: input.inventory,
                reserved: w.2,
                thresholds: Thresholds {
                    warning: w.3,
                    critical: w.4,
                },
                version: w.5,
                create_time: time(w.6)?,
                update_time: time(w.7)?,
            });
        }
        stored
            .into_iter()
            .map(|row| row.ok_or(StoreError::Db(sqlx::Error::RowNotFound)))
            .collect()
    }
}

/// The one value a statement reported (`fetch_all`, so that every statement of a script runs,
/// its `COMMIT` included).
fn first(values: Vec<String>) -> Result<String, StoreError> {
    values
        .into_iter()
        .next()
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
}
