//! The upserts of SQLite: the SQL of each table, and how a group of rows is written with it.
//!
//! The rows of a statement travel as one bound value, a JSON array of rows (each a JSON array,
//! in the column order its statement names: arrays parse faster than objects with named
//! fields, ~15% of a batch's throughput), which the statement unpacks with `json_each`. So
//! the SQL is one constant for any number of rows: one
//! small prepared statement per table instead of one per row count (each ~1 MB at 1000 rows,
//! cached up to 100 per connection), and no per-value binding in sqlx, which copies every bound
//! string.
//!
//! Each constant holds two statements, run in one hand-off to the connection's thread: the
//! `INSERT … ON CONFLICT DO UPDATE` of every row, then a `SELECT` of the id and `create_time` of
//! each input row, by its position in the input, as one JSON value. sqlx moves every result row
//! across a thread and copies each of its values; profiling showed that per-row cost (a
//! `RETURNING` of whole rows), not SQLite, was most of a batch's time (bench/RESULTS.md). The
//! stored record is the input itself plus those two values and the statement's time.

use sqlx::SqliteConnection;

use super::time::{parse_stored_time, stored_time};
use crate::domain::{Inventory, InventoryInput, SalesTarget, SalesTargetInput, Timestamp};
use crate::store::StoreError;

/// Creates or updates every sales target in `?1`, a JSON array of rows, each
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

/// Creates or updates every inventory row in `?1`, a JSON array of rows, each
/// `[seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory]`; `?2` is the
/// time of the write. Then reports `[position, id, create_time]` of each input row.
const UPSERT_INVENTORY: &str = "\
    INSERT INTO inventory \
        (seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, create_time, update_time) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, ?2, ?2 \
    FROM json_each(?1) WHERE true \
    ON CONFLICT (seller_id, market_place_id, seller_sku) DO UPDATE SET \
        parent_asin = excluded.parent_asin, \
        child_asin = excluded.child_asin, \
        inventory = excluded.inventory, \
        update_time = excluded.update_time; \
    SELECT json_group_array(json_array(j.key, t.id, t.create_time)) \
    FROM json_each(?1) AS j JOIN inventory AS t \
        ON t.seller_id = j.value ->> 0 AND t.market_place_id = j.value ->> 4 \
        AND t.seller_sku = j.value ->> 3";

/// One kind of record as its upsert writes it.
pub(super) trait Upsert: Sized + Send + 'static {
    type Stored: Send + 'static;
    /// The statement (see the constants above).
    const SQL: &'static str;

    /// Appends this row as the JSON object the statement reads.
    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;

    /// A hash of the row's key, so that the write queue can keep one key out of a group twice.
    fn key_hash(&self) -> u64;

    fn stored(self, id: i64, create_time: Timestamp, update_time: Timestamp) -> Self::Stored;
}

/// A hash of a key: enough to keep one key out of a group twice (two keys that collide only
/// make a job wait for the next group).
fn hash_of(key: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl Upsert for SalesTargetInput {
    type Stored = SalesTarget;
    const SQL: &'static str = UPSERT_SALES_TARGETS;

    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // The order `UPSERT_SALES_TARGETS` reads.
        let row = (
            self.seller_id.as_str(),
            self.parent_asin.as_str(),
            self.market_place_id.as_str(),
            self.period.as_str(),
            self.sales_target.cents(),
        );
        serde_json::to_writer(out, &row)
    }

    fn key_hash(&self) -> u64 {
        hash_of(self.key())
    }

    fn stored(self, id: i64, create_time: Timestamp, update_time: Timestamp) -> SalesTarget {
        SalesTarget {
            id,
            seller_id: self.seller_id,
            parent_asin: self.parent_asin,
            market_place_id: self.market_place_id,
            period: self.period,
            sales_target: self.sales_target,
            create_time,
            update_time,
        }
    }
}

impl Upsert for InventoryInput {
    type Stored = Inventory;
    const SQL: &'static str = UPSERT_INVENTORY;

    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // The order `UPSERT_INVENTORY` reads.
        let row = (
            self.seller_id.as_str(),
            self.parent_asin.as_str(),
            self.child_asin.as_str(),
            self.seller_sku.as_str(),
            self.market_place_id.as_str(),
            self.inventory.get(),
        );
        serde_json::to_writer(out, &row)
    }

    fn key_hash(&self) -> u64 {
        hash_of(self.key())
    }

    fn stored(self, id: i64, create_time: Timestamp, update_time: Timestamp) -> Inventory {
        Inventory {
            id,
            seller_id: self.seller_id,
            parent_asin: self.parent_asin,
            child_asin: self.child_asin,
            seller_sku: self.seller_sku,
            market_place_id: self.market_place_id,
            inventory: self.inventory,
            create_time,
            update_time,
        }
    }
}

/// A row ready for the write queue: encoded and its key hashed by the request's own task, so
/// that the one task feeding the writer, whose every microsecond the writer waits for, only
/// concatenates.
pub(super) struct Encoded<T> {
    pub row: T,
    json: String,
    pub key: u64,
}

impl<T: Upsert> Encoded<T> {
    pub(super) fn new(row: T) -> Result<Self, StoreError> {
        let mut json = Vec::with_capacity(160);
        row.to_json(&mut json).map_err(StoreError::codec)?;
        let json = String::from_utf8(json).map_err(StoreError::codec)?;
        let key = row.key_hash();
        Ok(Self { row, json, key })
    }

    /// Encodes every row of a batch.
    pub(super) fn all(rows: Vec<T>) -> Result<Vec<Self>, StoreError> {
        rows.into_iter().map(Self::new).collect()
    }
}

/// Where the statement put a row: its id and `create_time` (the input is the rest of it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    pub id: i64,
    pub create_time: Timestamp,
}

/// Upserts `rows` (distinct keys) at time `now` with `T::SQL`, all or none, and returns where
/// each row was placed, in input order.
pub(super) async fn write<'a, T: Upsert>(
    conn: &mut SqliteConnection,
    rows: impl Iterator<Item = &'a Encoded<T>>,
    now: Timestamp,
) -> Result<Vec<Placed>, StoreError> {
    let now_text = stored_time(now);
    let mut json = String::with_capacity(4096);
    json.push('[');
    let mut count = 0;
    for row in rows {
        if count > 0 {
            json.push(',');
        }
        json.push_str(&row.json);
        count += 1;
    }
    json.push(']');
    if count == 0 {
        return Ok(Vec::new());
    }
    let placed: String = sqlx::query_scalar(T::SQL)
        .bind(json)
        .bind(now_text.as_str())
        .fetch_one(&mut *conn)
        .await?;

    let placed: Vec<(usize, i64, &str)> =
        serde_json::from_str(&placed).map_err(StoreError::codec)?;
    let mut found = vec![None; count];
    for (position, id, created) in placed {
        let create_time = if created == now_text {
            now
        } else {
            parse_stored_time(created)?
        };
        if let Some(slot) = found.get_mut(position) {
            *slot = Some(Placed { id, create_time });
        }
    }
    found
        .into_iter()
        .map(|placed| placed.ok_or(StoreError::Db(sqlx::Error::RowNotFound)))
        .collect()
}
