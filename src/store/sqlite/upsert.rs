//! Multi-row upserts on SQLite, which batches and the group-commit queue both write through.
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
//! of ours runs between them. Parameters are plain `?`: numbered ones (`?N`) would let the
//! `SELECT` reuse the `INSERT`'s values, but sqlx looks each one up by name, and SQLite's lookup
//! is linear, which made a 100-row statement quadratic (a third of the CPU).

use std::fmt::Write;

use sqlx::query::QueryScalar;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqlitePool};

use super::{parse_stored_time, sqlite_timestamp};
use crate::domain::{Inventory, InventoryInput, SalesTarget, SalesTargetInput, Timestamp};
use crate::store::StoreError;

type Bound<'q> = QueryScalar<'q, Sqlite, String, SqliteArguments<'q>>;

/// One kind of record as an upsert writes it.
pub(super) trait Upsert: Sized {
    type Stored;
    const TABLE: &'static str;
    /// The columns `bind` binds, in its order (`create_time` and `update_time` follow).
    const COLUMNS: &'static [&'static str];
    /// The unique key, as positions in `COLUMNS`; every other column is replaced on conflict.
    const KEY: &'static [usize];

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q>;

    /// Binds the key columns, in `KEY` order.
    fn bind_key<'q>(&'q self, query: Bound<'q>) -> Bound<'q>;

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

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.seller_id.as_str())
            .bind(self.parent_asin.as_str())
            .bind(self.market_place_id.as_str())
            .bind(self.period.as_str())
            .bind(self.sales_target.cents())
    }

    fn bind_key<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.seller_id.as_str())
            .bind(self.parent_asin.as_str())
            .bind(self.market_place_id.as_str())
            .bind(self.period.as_str())
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

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.seller_id.as_str())
            .bind(self.parent_asin.as_str())
            .bind(self.child_asin.as_str())
            .bind(self.seller_sku.as_str())
            .bind(self.market_place_id.as_str())
            .bind(self.inventory.get())
    }

    fn bind_key<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.seller_id.as_str())
            .bind(self.market_place_id.as_str())
            .bind(self.seller_sku.as_str())
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

/// Upserts `items` (distinct keys), all or none, and returns the stored records in input order.
pub(super) async fn upsert<T: Upsert>(
    writer: &SqlitePool,
    items: Vec<T>,
) -> Result<Vec<T::Stored>, StoreError> {
    let now = Timestamp::now();
    let now_text = sqlite_timestamp(now);
    let sql = statement::<T>(items.len());
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for item in &items {
        query = item
            .bind(query)
            .bind(now_text.as_str())
            .bind(now_text.as_str());
    }
    for item in &items {
        query = item.bind_key(query);
    }
    let placed = query.fetch_one(writer).await?;

    let placed: Vec<(usize, i64, &str)> =
        serde_json::from_str(&placed).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let mut found = vec![None; items.len()];
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
    items
        .into_iter()
        .zip(found)
        .map(|(item, found)| {
            let (id, created) = found.ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
            Ok(item.stored(id, created, now))
        })
        .collect()
}

/// The two statements for `rows` rows (see the module comment).
fn statement<T: Upsert>(rows: usize) -> String {
    let width = T::COLUMNS.len();
    let mut sql = String::with_capacity(rows * (width * 3 + T::KEY.len() * 3 + 20) + 400);
    let _ = write!(
        sql,
        "INSERT INTO {} ({}, create_time, update_time) VALUES ",
        T::TABLE,
        T::COLUMNS.join(", ")
    );
    let values = format!("({}?, ?)", "?, ".repeat(width));
    for r in 0..rows {
        sql.push_str(if r == 0 { "" } else { ", " });
        sql.push_str(&values);
    }
    let key: Vec<&str> = T::KEY.iter().map(|&c| T::COLUMNS[c]).collect();
    let _ = write!(sql, " ON CONFLICT ({}) DO UPDATE SET ", key.join(", "));
    for (c, column) in T::COLUMNS.iter().enumerate() {
        if !T::KEY.contains(&c) {
            let _ = write!(sql, "{column} = excluded.{column}, ");
        }
    }
    sql.push_str(
        "update_time = excluded.update_time; \
         SELECT json_group_array(json_array(k.column1, t.id, t.create_time)) FROM (VALUES ",
    );
    let key_values = ", ?".repeat(key.len());
    for r in 0..rows {
        let _ = write!(sql, "{}({r}{key_values})", if r == 0 { "" } else { ", " });
    }
    let _ = write!(sql, ") AS k JOIN {} AS t ON ", T::TABLE);
    for (i, column) in key.iter().enumerate() {
        let and = if i == 0 { "" } else { " AND " };
        let _ = write!(sql, "{and}t.{column} = k.column{}", i + 2);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_upserts_then_selects_by_position() {
        assert_eq!(
            statement::<SalesTargetInput>(2),
            "INSERT INTO sales_targets (seller_id, parent_asin, market_place_id, period, \
             sales_target_cents, create_time, update_time) VALUES \
             (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (seller_id, parent_asin, market_place_id, period) DO UPDATE SET \
             sales_target_cents = excluded.sales_target_cents, \
             update_time = excluded.update_time; \
             SELECT json_group_array(json_array(k.column1, t.id, t.create_time)) FROM \
             (VALUES (0, ?, ?, ?, ?), (1, ?, ?, ?, ?)) AS k JOIN sales_targets AS t \
             ON t.seller_id = k.column2 AND t.parent_asin = k.column3 \
             AND t.market_place_id = k.column4 AND t.period = k.column5"
        );
    }
}
