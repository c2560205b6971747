//! Multi-row upserts on SQLite, which batches and the group-commit queue both write through.
//!
//! The rows travel as one bound value, a JSON array of arrays, which the statement unpacks with
//! `json_each`. So the SQL is the same for any number of rows: one small prepared statement per
//! table instead of one per row count (each ~1 MB at 1000 rows, and sqlx caches up to 100 of
//! them per connection, so varied batch sizes grew the process by ~100 MB), and no per-value
//! binding in sqlx, which copies every bound string.
//!
//! One query carries two statements: the `INSERT … ON CONFLICT DO UPDATE` of every row (one
//! statement, so all rows or none), then a `SELECT` that returns the id and `create_time` of
//! each row, by its position in the input, as one JSON value. sqlx moves every result row across
//! a thread and copies each of its values; profiling showed that per-row cost (a `RETURNING` of
//! whole rows), not SQLite, was most of a batch's time (bench/RESULTS.md). The stored record is
//! the input itself plus those two values and the statement's time.
//!
//! Both statements run in one hand-off to the connection's thread. They are not wrapped in a
//! transaction, which would cost two more: this process has one writer connection, so nothing
//! of ours runs between them.

use std::fmt::Write;
use std::sync::Arc;

use sqlx::SqlitePool;

use super::{parse_stored_time, sqlite_timestamp};
use crate::domain::{Inventory, InventoryInput, SalesTarget, SalesTargetInput, Timestamp};
use crate::store::group_commit::{key_hash, Queue};
use crate::store::StoreError;

/// One kind of record as an upsert writes it.
pub(super) trait Upsert: Sized {
    type Stored;
    const TABLE: &'static str;
    /// The columns `to_json` writes, in its order (`create_time` and `update_time` follow).
    const COLUMNS: &'static [&'static str];
    /// The unique key, as positions in `COLUMNS`; every other column is replaced on conflict.
    const KEY: &'static [usize];

    /// Appends this row's values as a JSON array, in `COLUMNS` order.
    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;

    /// The hash of the unique key.
    fn key_hash(&self) -> u64;

    fn stored(self, id: i64, create_time: Timestamp, update_time: Timestamp) -> Self::Stored;
}

impl Upsert for SalesTargetInput {
    type Stored = SalesTarget;
    const TABLE: &'static str = "sales_targets";
    const COLUMNS: &'static [&'static str] = &[
        "seller_id",
        "parent_asin",
        "market_place_id",
        "period",
        "sales_target_cents",
    ];
    const KEY: &'static [usize] = &[0, 1, 2, 3];

    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
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
        key_hash(self.key())
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
    const TABLE: &'static str = "inventory";
    const COLUMNS: &'static [&'static str] = &[
        "seller_id",
        "parent_asin",
        "child_asin",
        "seller_sku",
        "market_place_id",
        "inventory",
    ];
    const KEY: &'static [usize] = &[0, 4, 3];

    fn to_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
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
        key_hash(self.key())
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
    row: T,
    json: String,
    key: u64,
}

impl<T: Upsert> Encoded<T> {
    pub(super) fn new(row: T) -> Result<Self, StoreError> {
        let mut json = Vec::with_capacity(128);
        row.to_json(&mut json)
            .map_err(|e| sqlx::Error::Encode(e.into()))?;
        let json = String::from_utf8(json).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let key = row.key_hash();
        Ok(Self { row, json, key })
    }

    /// The row's key hash (see `group_commit::key_hash`).
    pub(super) fn key(&self) -> u64 {
        self.key
    }
}

/// Encodes `rows` for the queue.
pub(super) fn encode<T: Upsert>(rows: Vec<T>) -> Result<Vec<Encoded<T>>, StoreError> {
    rows.into_iter().map(Encoded::new).collect()
}

/// The group-commit queue of `T` upserts on the writer connection. The statement is built once.
pub(super) fn upsert_queue<T>(writer: &SqlitePool) -> Queue<Encoded<T>, T::Stored>
where
    T: Upsert + Send + 'static,
    T::Stored: Send + 'static,
{
    let sql: Arc<str> = statement::<T>().into();
    let writer = writer.clone();
    Queue::start(Encoded::key, move |rows: Vec<Encoded<T>>| {
        let (writer, sql) = (writer.clone(), sql.clone());
        async move { upsert(&writer, &sql, rows).await }
    })
}

/// Upserts `rows` (distinct keys) with `sql` (`statement::<T>()`), all or none, and returns the
/// stored records in input order.
async fn upsert<T: Upsert>(
    writer: &SqlitePool,
    sql: &str,
    rows: Vec<Encoded<T>>,
) -> Result<Vec<T::Stored>, StoreError> {
    let now = Timestamp::now();
    let now_text = sqlite_timestamp(now);
    let mut json = String::with_capacity(rows.iter().map(|r| r.json.len() + 1).sum::<usize>() + 2);
    json.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&row.json);
    }
    json.push(']');
    let placed: String = sqlx::query_scalar(sql)
        .bind(json)
        .bind(now_text.as_str())
        .fetch_one(writer)
        .await?;

    let placed: Vec<(usize, i64, &str)> =
        serde_json::from_str(&placed).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let mut found = vec![None; rows.len()];
    for (position, id, created) in placed {
        let created = if created == now_text {
            now
        } else {
            parse_stored_time(created)?
        };
        if let Some(slot) = found.get_mut(position) {
            *slot = Some((id, created));
        }
    }
    rows.into_iter()
        .zip(found)
        .map(|(encoded, found)| {
            let (id, created) = found.ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
            Ok(encoded.row.stored(id, created, now))
        })
        .collect()
}

/// The two statements (see the module comment): `?1` is the rows, `?2` the time.
fn statement<T: Upsert>() -> String {
    let value = |c: usize| format!("value ->> {c}");
    let values: Vec<String> = (0..T::COLUMNS.len()).map(value).collect();
    let key: Vec<&str> = T::KEY.iter().map(|&c| T::COLUMNS[c]).collect();
    let mut sql = String::with_capacity(1024);
    let _ = write!(
        sql,
        "INSERT INTO {table} ({columns}, create_time, update_time) \
         SELECT {values}, ?2, ?2 FROM json_each(?1) WHERE true \
         ON CONFLICT ({key}) DO UPDATE SET ",
        table = T::TABLE,
        columns = T::COLUMNS.join(", "),
        values = values.join(", "),
        key = key.join(", "),
    );
    for (c, column) in T::COLUMNS.iter().enumerate() {
        if !T::KEY.contains(&c) {
            let _ = write!(sql, "{column} = excluded.{column}, ");
        }
    }
    let _ = write!(
        sql,
        "update_time = excluded.update_time; \
         SELECT json_group_array(json_array(j.key, t.id, t.create_time)) \
         FROM json_each(?1) AS j JOIN {} AS t ON ",
        T::TABLE
    );
    for (i, &c) in T::KEY.iter().enumerate() {
        let and = if i == 0 { "" } else { " AND " };
        let _ = write!(sql, "{and}t.{} = j.value ->> {c}", T::COLUMNS[c]);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_for_any_number_of_rows() {
        assert_eq!(
            statement::<SalesTargetInput>(),
            "INSERT INTO sales_targets (seller_id, parent_asin, market_place_id, period, \
             sales_target_cents, create_time, update_time) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2, ?2 \
             FROM json_each(?1) WHERE true \
             ON CONFLICT (seller_id, parent_asin, market_place_id, period) DO UPDATE SET \
             sales_target_cents = excluded.sales_target_cents, \
             update_time = excluded.update_time; \
             SELECT json_group_array(json_array(j.key, t.id, t.create_time)) \
             FROM json_each(?1) AS j JOIN sales_targets AS t \
             ON t.seller_id = j.value ->> 0 AND t.parent_asin = j.value ->> 1 \
             AND t.market_place_id = j.value ->> 2 AND t.period = j.value ->> 3"
        );
    }
}
