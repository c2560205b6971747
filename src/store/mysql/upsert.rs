//! The upserts of MySQL/MariaDB: the SQL of each table, and how rows are written with it.
//!
//! A single upsert is a batch of one: one multi-row `INSERT … ON DUPLICATE KEY UPDATE`
//! (`col = VALUES(col)`, the form both MySQL 8 and MariaDB accept), then a `SELECT` of the rows
//! by key, in input order. Only the repeated `(?, ?, …)` groups are built in code.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::NaiveDateTime;
use sqlx::mysql::MySqlRow;
use sqlx::query_builder::Separated;
use sqlx::{FromRow, MySql, MySqlConnection, QueryBuilder};

use crate::domain::{
    Inventory, InventoryInput, InventoryKey, SalesTarget, SalesTargetInput, SalesTargetKey,
    Timestamp,
};
use crate::store::rows::{InventoryRow, SalesTargetRow, INVENTORY_COLUMNS, SALES_TARGET_COLUMNS};
use crate::store::StoreError;

/// Followed by `VALUES (...), ...` in this column order, then `ON_DUPLICATE`.
const INSERT_SALES_TARGETS: &str = "INSERT INTO sales_targets \
    (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) ";
const ON_DUPLICATE_SALES_TARGET: &str = " ON DUPLICATE KEY UPDATE \
    sales_target_cents = VALUES(sales_target_cents), update_time = VALUES(update_time)";
/// Followed by `((?, ?, ?, ?), ...)`, the keys of the rows just written.
const SELECT_SALES_TARGETS_BY_KEY: &str =
    "WHERE (seller_id, parent_asin, market_place_id, period) IN ";

/// Followed by `VALUES (...), ...` in this column order, then `ON_DUPLICATE`.
const INSERT_INVENTORY: &str = "INSERT INTO inventory \
    (seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, create_time, update_time) ";
const ON_DUPLICATE_INVENTORY: &str = " ON DUPLICATE KEY UPDATE \
    parent_asin = VALUES(parent_asin), child_asin = VALUES(child_asin), \
    inventory = VALUES(inventory), update_time = VALUES(update_time)";
/// Followed by `((?, ?, ?), ...)`, the keys of the rows just written.
const SELECT_INVENTORY_BY_KEY: &str = "WHERE (seller_id, market_place_id, seller_sku) IN ";

type Values<'q, 'args> = Separated<'q, 'args, MySql, &'static str>;

/// One kind of record as its upsert writes it.
pub(super) trait Upsert: Sized + Sync {
    type Row: for<'r> FromRow<'r, MySqlRow> + Send + Unpin;
    type Stored: From<Self::Row> + Send;
    /// The key a stored row and its input share (the table's unique index).
    type Key<'a>: Hash + Eq
    where
        Self: 'a;

    const INSERT: &'static str;
    const ON_DUPLICATE: &'static str;
    const COLUMNS: &'static str;
    const TABLE: &'static str;
    const WHERE_KEY_IN: &'static str;

    /// Binds the row's values, in `INSERT` column order.
    fn bind_values<'args>(&'args self, row: &mut Values<'_, 'args>, now: NaiveDateTime);
    /// Binds the row's key, in `WHERE_KEY_IN` column order.
    fn bind_key<'args>(&'args self, key: &mut Values<'_, 'args>);
    fn key(&self) -> Self::Key<'_>;
    fn key_of(stored: &Self::Stored) -> Self::Key<'_>;
}

impl Upsert for SalesTargetInput {
    type Row = SalesTargetRow;
    type Stored = SalesTarget;
    type Key<'a> = SalesTargetKey<'a>;

    const INSERT: &'static str = INSERT_SALES_TARGETS;
    const ON_DUPLICATE: &'static str = ON_DUPLICATE_SALES_TARGET;
    const COLUMNS: &'static str = SALES_TARGET_COLUMNS;
    const TABLE: &'static str = "sales_targets";
    const WHERE_KEY_IN: &'static str = SELECT_SALES_TARGETS_BY_KEY;

    fn bind_values<'args>(&'args self, row: &mut Values<'_, 'args>, now: NaiveDateTime) {
        row.push_bind(self.seller_id.as_str())
            .push_bind(self.parent_asin.as_str())
            .push_bind(self.market_place_id.as_str())
            .push_bind(self.period.as_str())
            .push_bind(self.sales_target.cents())
            .push_bind(now)
            .push_bind(now);
    }

    fn bind_key<'args>(&'args self, key: &mut Values<'_, 'args>) {
        key.push_bind(self.seller_id.as_str())
            .push_bind(self.parent_asin.as_str())
            .push_bind(self.market_place_id.as_str())
            .push_bind(self.period.as_str());
    }

    fn key(&self) -> SalesTargetKey<'_> {
        SalesTargetInput::key(self)
    }

    fn key_of(stored: &SalesTarget) -> SalesTargetKey<'_> {
        stored.key()
    }
}

impl Upsert for InventoryInput {
    type Row = InventoryRow;
    type Stored = Inventory;
    type Key<'a> = InventoryKey<'a>;

    const INSERT: &'static str = INSERT_INVENTORY;
    const ON_DUPLICATE: &'static str = ON_DUPLICATE_INVENTORY;
    const COLUMNS: &'static str = INVENTORY_COLUMNS;
    const TABLE: &'static str = "inventory";
    const WHERE_KEY_IN: &'static str = SELECT_INVENTORY_BY_KEY;

    fn bind_values<'args>(&'args self, row: &mut Values<'_, 'args>, now: NaiveDateTime) {
        row.push_bind(self.seller_id.as_str())
            .push_bind(self.parent_asin.as_str())
            .push_bind(self.child_asin.as_str())
            .push_bind(self.seller_sku.as_str())
            .push_bind(self.market_place_id.as_str())
            .push_bind(self.inventory.get())
            .push_bind(now)
            .push_bind(now);
    }

    fn bind_key<'args>(&'args self, key: &mut Values<'_, 'args>) {
        key.push_bind(self.seller_id.as_str())
            .push_bind(self.market_place_id.as_str())
            .push_bind(self.seller_sku.as_str());
    }

    fn key(&self) -> InventoryKey<'_> {
        InventoryInput::key(self)
    }

    fn key_of(stored: &Inventory) -> InventoryKey<'_> {
        stored.key()
    }
}

/// Writes `items` (distinct keys): all or none, as one statement.
pub(super) async fn insert<T: Upsert>(
    conn: &mut MySqlConnection,
    items: &[T],
    now: Timestamp,
) -> Result<(), StoreError> {
    let now = now.naive_utc();
    let mut insert = QueryBuilder::<MySql>::new(T::INSERT);
    insert.push_values(items, |mut row, item| item.bind_values(&mut row, now));
    insert.push(T::ON_DUPLICATE);
    insert.build().execute(&mut *conn).await?;
    Ok(())
}

/// The stored rows of `items`, in input order.
pub(super) async fn read_back<T: Upsert>(
    conn: &mut MySqlConnection,
    items: &[T],
) -> Result<Vec<T::Stored>, StoreError> {
    let mut select =
        QueryBuilder::<MySql>::new(format!("SELECT {} FROM {} ", T::COLUMNS, T::TABLE));
    select.push(T::WHERE_KEY_IN);
    select.push_tuples(items, |mut key, item| item.bind_key(&mut key));
    let rows: Vec<T::Row> = select.build_query_as().fetch_all(&mut *conn).await?;

    let stored: Vec<T::Stored> = rows.into_iter().map(T::Stored::from).collect();
    let position: HashMap<T::Key<'_>, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.key(), i))
        .collect();
    let places: Vec<Option<usize>> = stored
        .iter()
        .map(|row| position.get(&T::key_of(row)).copied())
        .collect();
    drop(position);
    let mut slots: Vec<Option<T::Stored>> = items.iter().map(|_| None).collect();
    for (row, place) in stored.into_iter().zip(places) {
        if let Some(i) = place {
            slots[i] = Some(row);
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.ok_or(StoreError::Db(sqlx::Error::RowNotFound)))
        .collect()
}
