//! Conditional upserts (`If-Match`, `If-None-Match`), the same SQL on both databases: the row
//! of the key is read under a lock, the precondition checked against its version, and the row
//! written, all in the one transaction the backend holds, so that no write comes between the
//! check and the change (docs/api.md, "Conditional requests").
//!
//! Unconditional upserts never come here: they keep each backend's own multi-row statements
//! (and on SQLite the write queue's grouping, `sqlite/upsert.rs`). These are one row at a time,
//! as rare as conditional writes are. On MySQL the locking read of a key without a row locks
//! the gap where it would go; two transactions that both create it then deadlock, and the
//! victim is repeated (`mysql/error.rs`), finding the row the other created.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Backend, Outcome, Shared};
use crate::domain::{
    Actor, EntryNotes, Inventory, InventoryInput, NewEntry, NewEvent, Precondition, SalesTarget,
    SalesTargetInput, StockError, Timestamp, UpsertWrite,
};
use crate::store::rows::{
    InventoryRow, LedgerRow, SalesTargetRow, Text, INVENTORY_COLUMNS, SALES_TARGET_COLUMNS,
};
use crate::store::StoreError;

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> InventoryRow: FromRow<'r, DB::Row>,
    for<'r> SalesTargetRow: FromRow<'r, DB::Row>,
    for<'r> LedgerRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Creates or updates the inventory row of `item`'s key as `InventoryInput::plan` says,
    /// with its ledger entry, if the row (or its absence) meets `precondition`.
    pub async fn upsert_inventory_if(
        conn: &mut DB::Connection,
        item: &InventoryInput,
        precondition: &Precondition,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<Inventory>, StoreError> {
        let select = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory \
             WHERE seller_id = ? AND market_place_id = ? AND seller_sku = ?{}",
            DB::LOCK_ROWS
        );
        let existing: Option<InventoryRow> = sqlx::query_as(&select)
            .bind(item.seller_id.as_str())
            .bind(item.market_place_id.as_str())
            .bind(item.seller_sku.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let existing = existing.map(Inventory::from);
        let current = existing.as_ref().map(|row| row.version);
        if !precondition.allows(current) {
            return Ok(Err(StockError::version_mismatch(current)));
        }
        let level_before = existing.as_ref().map(Inventory::stock_level);
        let plan = item.clone().plan(existing, now);
        let changed = plan.write != UpsertWrite::Nothing;
        let mut row = plan.row;
        match plan.write {
            UpsertWrite::Nothing => {}
            UpsertWrite::Update => {
                sqlx::query(
                    "UPDATE inventory SET parent_asin = ?, child_asin = ?, inventory = ?, \
                     version = ?, update_time = ? WHERE id = ?",
                )
                .bind(row.parent_asin.as_str())
                .bind(row.child_asin.as_str())
                .bind(i64::from(row.inventory.get()))
                .bind(row.version)
                .bind(row.update_time.naive_utc())
                .bind(row.id)
                .execute(&mut *conn)
                .await?;
            }
            UpsertWrite::Create => {
                let done = sqlx::query(
                    "INSERT INTO inventory (seller_id, parent_asin, child_asin, seller_sku, \
                     market_place_id, inventory, reserved, version, create_time, update_time) \
                     VALUES (?, ?, ?, ?, ?, ?, 0, 1, ?, ?)",
                )
                .bind(row.seller_id.as_str())
                .bind(row.parent_asin.as_str())
                .bind(row.child_asin.as_str())
                .bind(row.seller_sku.as_str())
                .bind(row.market_place_id.as_str())
                .bind(i64::from(row.inventory.get()))
                .bind(row.create_time.naive_utc())
                .bind(row.update_time.naive_utc())
                .execute(&mut *conn)
                .await?;
                row.id = DB::last_insert_id(&done);
            }
        }
        if let Some((entry_type, before, movement)) = plan.entry {
            let entry = NewEntry {
                inventory_id: row.id,
                seller_id: row.seller_id.clone(),
                market_place_id: row.market_place_id.clone(),
                seller_sku: row.seller_sku.clone(),
                entry_type,
                before,
                movement,
                notes: EntryNotes::default(),
            };
            Self::insert_entries(conn, std::slice::from_ref(&entry), actor, now).await?;
        }
        if changed {
            let mut events = vec![NewEvent::inventory_updated(&row)];
            events.extend(level_before.and_then(|before| NewEvent::low_warning(before, &row)));
            Self::insert_events(conn, &events, now).await?;
        }
        Ok(Ok(row))
    }

    /// Creates or updates the sales target of `item`'s key, if the target (or its absence)
    /// meets `precondition`. Every write moves the version and `update_time`, as the
    /// unconditional upserts do.
    pub async fn upsert_sales_target_if(
        conn: &mut DB::Connection,
        item: &SalesTargetInput,
        precondition: &Precondition,
        now: Timestamp,
    ) -> Result<Outcome<SalesTarget>, StoreError> {
        let select = format!(
            "SELECT {SALES_TARGET_COLUMNS} FROM sales_targets WHERE seller_id = ? \
             AND parent_asin = ? AND market_place_id = ? AND period = ?{}",
            DB::LOCK_ROWS
        );
        let existing: Option<SalesTargetRow> = sqlx::query_as(&select)
            .bind(item.seller_id.as_str())
            .bind(item.parent_asin.as_str())
            .bind(item.market_place_id.as_str())
            .bind(item.period.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let existing = existing.map(SalesTarget::from);
        let current = existing.as_ref().map(|row| row.version);
        if !precondition.allows(current) {
            return Ok(Err(StockError::version_mismatch(current)));
        }
        let item = item.clone();
        let row = match existing {
            Some(old) => {
                let row = SalesTarget {
                    sales_target: item.sales_target,
                    version: old.version + 1,
                    update_time: now.after(old.update_time),
                    ..old
                };
                sqlx::query(
                    "UPDATE sales_targets SET sales_target_cents = ?, version = ?, \
                     update_time = ? WHERE id = ?",
                )
                .bind(row.sales_target.cents())
                .bind(row.version)
                .bind(row.update_time.naive_utc())
                .bind(row.id)
                .execute(&mut *conn)
                .await?;
                row
            }
            None => {
                let done = sqlx::query(
                    "INSERT INTO sales_targets (seller_id, parent_asin, market_place_id, \
                     period, sales_target_cents, version, create_time, update_time) \
                     VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                )
                .bind(item.seller_id.as_str())
                .bind(item.parent_asin.as_str())
                .bind(item.market_place_id.as_str())
                .bind(item.period.as_str())
                .bind(item.sales_target.cents())
                .bind(now.naive_utc())
                .bind(now.naive_utc())
                .execute(&mut *conn)
                .await?;
                SalesTarget {
                    id: DB::last_insert_id(&done),
                    seller_id: item.seller_id,
                    parent_asin: item.parent_asin,
                    market_place_id: item.market_place_id,
                    period: item.period,
                    sales_target: item.sales_target,
                    version: 1,
                    create_time: now,
                    update_time: now,
                }
            }
        };
        Self::insert_events(conn, &[NewEvent::sales_target_updated(&row)], now).await?;
        Ok(Ok(row))
    }
}
