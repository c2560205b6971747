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
//! carry stock, a version and a ledger, so their upsert first reads the rows of the group's
//! keys, works out each row with `InventoryInput::plan` (the same rule MySQL follows), then
//! writes the new rows, the changed rows and their ledger entries in one more hand-off, in one
//! transaction. When those upserts are the group's only write, their own statements begin and
//! commit that transaction (`Transaction::Yours`): no hand-off is spent on `BEGIN`/`COMMIT`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

use super::time::{parse_stored_time, stored_time};
use crate::domain::{
    Actor, Asin, Inventory, InventoryInput, SalesTarget, SalesTargetInput, Thresholds, Timestamp,
    Units, UpsertWrite,
};
use crate::store::StoreError;

/// Creates or updates every sales target in `?1`, rows of
/// `[seller_id, parent_asin, market_place_id, period, sales_target_cents]`; `?2` is the time of
/// the write. Then reports `[position, id, create_time]` of each input row.
const UPSERT_SALES_TARGETS: &str = "\
    INSERT INTO sales_targets \
        (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2, ?2 \
    FROM json_each(?1) WHERE true \
    ON CONFLICT (seller_id, parent_asin, market_place_id, period) DO UPDATE SET \
        sales_target_cents = excluded.sales_target_cents, \
        update_time = excluded.update_time; \
    SELECT json_group_array(json_array(j.key, t.id, t.create_time)) \
    FROM json_each(?1) AS j JOIN sales_targets AS t \
        ON t.seller_id = j.value ->> 0 AND t.parent_asin = j.value ->> 1 \
        AND t.market_place_id = j.value ->> 2 AND t.period = j.value ->> 3";

/// The stored state of the rows whose keys are in `?1` (input rows, see `Encoded`), as
/// `[position, id, parent_asin, child_asin, inventory, reserved, warning_threshold,
/// critical_threshold, version, create_time, update_time]`.
const READ_INVENTORY: &str = "\
    SELECT json_group_array(json_array(j.key, t.id, t.parent_asin, t.child_asin, t.inventory, \
        t.reserved, t.warning_threshold, t.critical_threshold, t.version, t.create_time, \
        t.update_time)) \
    FROM json_each(?1) AS j JOIN inventory AS t \
        ON t.seller_id = j.value ->> 0 AND t.market_place_id = j.value ->> 4 \
        AND t.seller_sku = j.value ->> 3";

/// Writes the rows of `?1` at time `?2`: rows of `[seller_id, parent_asin, child_asin,
/// seller_sku, market_place_id, inventory, position, id, version]`, where a row without an id
/// (null) is inserted and a row with one updated to the version its plan gave it. Then appends
/// the ledger entries of `?3`, rows of `[seller_id, parent_asin, child_asin, seller_sku,
/// market_place_id, inventory, type, quantity_change, inventory_before, inventory_after,
/// reserved, operator_id, request_id]`, each found by key. Reports `[position, id]` of each
/// inserted row.
const WRITE_INVENTORY: &str = "\
    INSERT INTO inventory (seller_id, parent_asin, child_asin, seller_sku, market_place_id, \
        inventory, reserved, version, create_time, update_time) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, 0, 1, \
        ?2, ?2 \
    FROM json_each(?1) WHERE value ->> 7 IS NULL; \
    UPDATE inventory SET parent_asin = j.value ->> 1, child_asin = j.value ->> 2, \
        inventory = j.value ->> 5, version = j.value ->> 8, update_time = ?2 \
    FROM json_each(?1) AS j WHERE inventory.id = j.value ->> 7; \
    INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, seller_sku, type, \
        quantity_change, reserved_change, inventory_before, inventory_after, reserved_before, \
        reserved_after, operator_id, request_id, create_time) \
    SELECT t.id, t.seller_id, t.market_place_id, t.seller_sku, e.value ->> 6, e.value ->> 7, 0, \
        e.value ->> 8, e.value ->> 9, e.value ->> 10, e.value ->> 10, e.value ->> 11, \
        e.value ->> 12, ?2 \
    FROM json_each(?3) AS e JOIN inventory AS t \
        ON t.seller_id = e.value ->> 0 AND t.market_place_id = e.value ->> 4 \
        AND t.seller_sku = e.value ->> 3 \
    ORDER BY e.key; \
    SELECT json_group_array(json_array(j.value ->> 6, t.id)) \
    FROM json_each(?1) AS j JOIN inventory AS t \
        ON t.seller_id = j.value ->> 0 AND t.market_place_id = j.value ->> 4 \
        AND t.seller_sku = j.value ->> 3 \
    WHERE j.value ->> 7 IS NULL";

/// Who opens and closes the transaction an upsert writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transaction {
    /// The write queue has begun it and will commit it.
    Open,
    /// These upserts are the group's only write: if they need a transaction, their first
    /// statement begins it and their last commits it.
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

    /// Writes `rows` (distinct keys; each with the actor whose request it is) at `now`, all or
    /// none, in the transaction `tx` says, and returns the stored records in input order.
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

    /// One statement, atomic by itself: no transaction of its own, whatever `tx` says.
    async fn write(
        conn: &mut SqliteConnection,
        rows: &[(&Encoded<Self>, &Actor)],
        now: Timestamp,
        _tx: Transaction,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        let now_text = stored_time(now);
        let json = json_array(rows.iter().map(|(row, _)| *row), |_, _| {});
        let placed: String = sqlx::query_scalar(UPSERT_SALES_TARGETS)
            .bind(json)
            .bind(now_text.as_str())
            .fetch_one(&mut *conn)
            .await?;
        let placed: Vec<(usize, i64, &str)> =
            serde_json::from_str(&placed).map_err(StoreError::codec)?;
        let mut stored: Vec<Option<SalesTarget>> = rows.iter().map(|_| None).collect();
        for (position, id, created) in placed {
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

/// A stored row as `READ_INVENTORY` reports it.
#[derive(Deserialize)]
struct StoredInventory<'a>(
    usize,
    i64,
    &'a str,
    &'a str,
    i32,
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
        // The order `READ_INVENTORY` and `WRITE_INVENTORY` read.
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
        let keys = json_array(rows.iter().map(|(row, _)| *row), |_, _| {});
        let found: String = first(
            sqlx::query_scalar(&in_transaction(READ_INVENTORY, yours, false))
                .bind(keys)
                .fetch_all(&mut *conn)
                .await?,
        )?;
        let found: Vec<StoredInventory> =
            serde_json::from_str(&found).map_err(StoreError::codec)?;
        let mut existing: Vec<Option<Inventory>> = rows.iter().map(|_| None).collect();
        for stored in found {
            if let (Some(slot), Some((row, _))) = (existing.get_mut(stored.0), rows.get(stored.0)) {
                *slot = Some(stored_row(&row.row, &stored)?);
            }
        }

        let plans: Vec<_> = rows
            .iter()
            .zip(existing)
            .map(|((row, _), old)| row.row.clone().plan(old, now))
            .collect();
        let written: Vec<usize> = (0..rows.len())
            .filter(|&i| plans[i].write != UpsertWrite::Nothing)
            .collect();
        if written.is_empty() {
            if yours {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
            }
            return Ok(plans.into_iter().map(|plan| plan.row).collect());
        }
        // `[fields, position, id, version]`: no id (null) for a row to insert.
        let changes = json_array(written.iter().map(|&i| rows[i].0), |json, n| {
            let plan = &plans[written[n]];
            let _ = match plan.write {
                UpsertWrite::Update => {
                    write!(json, ",{},{},{}", written[n], plan.row.id, plan.row.version)
                }
                _ => write!(json, ",{},null,null", written[n]),
            };
        });
        let with_entries: Vec<usize> = written
            .iter()
            .copied()
            .filter(|&i| plans[i].entry.is_some())
            .collect();
        let entries = json_array(with_entries.iter().map(|&i| rows[i].0), |json, n| {
            let i = with_entries[n];
            let actor = rows[i].1;
            if let Some((entry_type, before, movement)) = &plans[i].entry {
                // `[fields, type, quantity_change, inventory_before, inventory_after, reserved,
                // operator_id, request_id]`
                let after = before.after(*movement);
                let operator = actor.user_id.map_or("null".to_owned(), |id| id.to_string());
                let request = actor.request_id.as_deref().map_or("null".to_owned(), |id| {
                    serde_json::Value::from(id).to_string()
                });
                let _ = write!(
                    json,
                    ",\"{}\",{},{},{},{},{operator},{request}",
                    entry_type.as_str(),
                    movement.quantity_change,
                    before.inventory,
                    after.inventory,
                    before.reserved
                );
            }
        });
        let created: String = first(
            sqlx::query_scalar(&in_transaction(WRITE_INVENTORY, false, yours))
                .bind(changes)
                .bind(now_text.as_str())
                .bind(entries)
                .fetch_all(&mut *conn)
                .await?,
        )?;
        let created: Vec<(usize, i64)> =
            serde_json::from_str(&created).map_err(StoreError::codec)?;
        let mut records: Vec<Inventory> = plans.into_iter().map(|plan| plan.row).collect();
        for (position, id) in created {
            if let Some(record) = records.get_mut(position) {
                record.id = id;
            }
        }
        if records.iter().any(|record| record.id == 0) {
            return Err(StoreError::Db(sqlx::Error::RowNotFound));
        }
        Ok(records)
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

/// The stored row of `input`'s key, from what `READ_INVENTORY` reported.
fn stored_row(input: &InventoryInput, stored: &StoredInventory) -> Result<Inventory, StoreError> {
    Ok(Inventory {
        id: stored.1,
        seller_id: input.seller_id.clone(),
        parent_asin: Asin::from_stored(stored.2.to_owned()),
        child_asin: Asin::from_stored(stored.3.to_owned()),
        seller_sku: input.seller_sku.clone(),
        market_place_id: input.market_place_id.clone(),
        inventory: Units::from_stored(stored.4),
        reserved: stored.5,
        thresholds: Thresholds {
            warning: stored.6,
            critical: stored.7,
        },
        version: stored.8,
        create_time: parse_stored_time(stored.9)?,
        update_time: parse_stored_time(stored.10)?,
    })
}
