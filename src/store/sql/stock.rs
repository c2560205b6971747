//! Writes to one inventory row's stock, the same SQL on both databases: adjustments,
//! thresholds, the delete of a row, and the pieces every stock operation uses (locking rows,
//! writing their numbers, appending ledger entries). Reservations are in `reservations.rs`.
//!
//! Each operation reads the rows it changes under a lock (`Backend::LOCK_ROWS`), asks the
//! domain's stock rules (`crate::domain::stock`) what to do, and writes the new numbers with
//! their ledger entries, inside the transaction its backend holds. A refusal (too little
//! stock, an inactive reservation) is found before anything is written and returned as
//! `Ok(Err(StockError))`, so the transaction may commit other work it carries. Inventory rows
//! are locked in id order, so two operations never wait on each other's rows in a circle.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, groups, marks, Value};
use super::{Backend, Outcome, Shared};
use crate::domain::{
    Actor, AdjustError, Adjustment, EntryNotes, ExternalId, Inventory, LedgerEntry, LedgerType,
    NewEntry, Precondition, Scope, StockError, Thresholds, Timestamp,
};
use crate::store::rows::{InventoryRow, LedgerRow, Text, INVENTORY_COLUMNS, LEDGER_COLUMNS};
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
    for<'r> LedgerRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // ---- Rows, locked ------------------------------------------------------------------

    /// The inventory row with this id, locked, if it exists and `scope` may see it.
    pub(super) async fn lock_row(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
    ) -> Result<Option<Inventory>, StoreError> {
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE id = ?{}",
            DB::LOCK_ROWS
        );
        let row: Option<InventoryRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row
            .map(Inventory::from)
            .filter(|row| scope.allows(&row.seller_id)))
    }

    /// The inventory rows with these ids, locked in id order.
    pub(super) async fn lock_rows(
        conn: &mut DB::Connection,
        ids: &[i64],
    ) -> Result<Vec<Inventory>, StoreError> {
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE id IN ({}) ORDER BY id{}",
            marks(ids.len()),
            DB::LOCK_ROWS
        );
        let values: Vec<Value> = ids.iter().map(|id| Value::Int(*id)).collect();
        let rows: Vec<InventoryRow> = bind(sqlx::query_as(&sql), &values)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(Inventory::from).collect())
    }

    /// Writes a row's stock numbers, thresholds, version and `update_time`.
    pub(super) async fn write_row(
        conn: &mut DB::Connection,
        row: &Inventory,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE inventory SET inventory = ?, reserved = ?, warning_threshold = ?, \
             critical_threshold = ?, version = ?, update_time = ? WHERE id = ?",
        )
        .bind(i64::from(row.inventory.get()))
        .bind(row.reserved)
        .bind(row.thresholds.warning)
        .bind(row.thresholds.critical)
        .bind(row.version)
        .bind(row.update_time.naive_utc())
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    // ---- The ledger ----------------------------------------------------------------------

    /// Appends `entries`, in order, for `actor` at `now`.
    pub async fn insert_entries(
        conn: &mut DB::Connection,
        entries: &[NewEntry],
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let entries: Vec<(&NewEntry, &Actor)> = entries.iter().map(|e| (e, actor)).collect();
        Self::insert_entries_of(conn, &entries, now).await
    }

    /// Appends `entries`, in order, each for its own actor, at `now`.
    pub async fn insert_entries_of(
        conn: &mut DB::Connection,
        entries: &[(&NewEntry, &Actor)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // 18 values a row: 100 rows stay well below every placeholder limit.
        for chunk in entries.chunks(100) {
            let sql = format!(
                "INSERT INTO inventory_ledger (inventory_id, seller_id, market_place_id, \
                 seller_sku, type, quantity_change, reserved_change, inventory_before, \
                 inventory_after, reserved_before, reserved_after, reason, reference, \
                 reservation_id, order_id, operator_id, request_id, create_time) VALUES {}",
                groups(chunk.len(), 18)
            );
            let mut insert = sqlx::query(&sql);
            for (entry, actor) in chunk {
                let after = entry.before.after(entry.movement);
                insert = insert
                    .bind(entry.inventory_id)
                    .bind(entry.seller_id.as_str())
                    .bind(entry.market_place_id.as_str())
                    .bind(entry.seller_sku.as_str())
                    .bind(entry.entry_type.as_str())
                    .bind(entry.movement.quantity_change)
                    .bind(entry.movement.reserved_change)
                    .bind(entry.before.inventory)
                    .bind(after.inventory)
                    .bind(entry.before.reserved)
                    .bind(after.reserved)
                    .bind(entry.notes.reason.as_ref().map(|n| n.as_str()))
                    .bind(entry.notes.reference.as_ref().map(|n| n.as_str()))
                    .bind(entry.notes.reservation_id)
                    .bind(entry.notes.order_id.as_ref().map(ExternalId::as_str))
                    .bind(actor.user_id)
                    .bind(actor.request_id.as_deref())
                    .bind(now.naive_utc());
            }
            insert.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Appends one entry and returns it as stored.
    async fn insert_entry(
        conn: &mut DB::Connection,
        entry: NewEntry,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<LedgerEntry, StoreError> {
        Self::insert_entries(conn, std::slice::from_ref(&entry), actor, now).await?;
        // The newest entry of this row is the one just written: this transaction holds the row.
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM inventory_ledger WHERE inventory_id = ? \
             ORDER BY id DESC LIMIT 1"
        );
        let row: LedgerRow = sqlx::query_as(&sql)
            .bind(entry.inventory_id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.into())
    }

    // ---- Inventory rows ------------------------------------------------------------------

    /// Adjusts the units on hand of the row with this id, by hand, with a reason, if the row
    /// meets `precondition`.
    pub async fn adjust(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
        adjustment: &Adjustment,
        precondition: &Precondition,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<(Inventory, LedgerEntry)>, StoreError> {
        let row = Self::lock_row(conn, id, scope)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !precondition.allows(Some(row.version)) {
            return Ok(Err(StockError::version_mismatch(Some(row.version))));
        }
        let before = row.stock();
        let movement = match before.adjust(adjustment.adjustment_type, adjustment.quantity) {
            Ok(movement) => movement,
            Err(AdjustError::Short(shortfall)) => {
                return Ok(Err(StockError::Insufficient(shortfall)))
            }
            Err(AdjustError::OutOfRange) => return Ok(Err(StockError::InvalidQuantity)),
        };
        let after = before.after(movement);
        let row = Inventory {
            inventory: crate::domain::Units::parse(after.inventory)
                .map_err(|_| StoreError::Stock(StockError::InvalidQuantity))?,
            version: row.version + 1,
            update_time: now.after(row.update_time),
            ..row
        };
        Self::write_row(conn, &row).await?;
        let entry = NewEntry {
            inventory_id: row.id,
            seller_id: row.seller_id.clone(),
            market_place_id: row.market_place_id.clone(),
            seller_sku: row.seller_sku.clone(),
            entry_type: LedgerType::Adjust,
            before,
            movement,
            notes: EntryNotes {
                reason: Some(adjustment.reason.clone()),
                reference: adjustment.reference.clone(),
                ..EntryNotes::default()
            },
        };
        let entry = Self::insert_entry(conn, entry, actor, now).await?;
        Ok(Ok((row, entry)))
    }

    /// Sets the warning thresholds of the row with this id, if it meets `precondition`,
    /// returning the ones it had and the row. Setting the ones it has changes nothing.
    pub async fn set_thresholds(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
        thresholds: Thresholds,
        precondition: &Precondition,
        now: Timestamp,
    ) -> Result<Outcome<(Thresholds, Inventory)>, StoreError> {
        let row = Self::lock_row(conn, id, scope)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !precondition.allows(Some(row.version)) {
            return Ok(Err(StockError::version_mismatch(Some(row.version))));
        }
        let before = row.thresholds;
        if before == thresholds {
            return Ok(Ok((before, row)));
        }
        let row = Inventory {
            thresholds,
            version: row.version + 1,
            update_time: now.after(row.update_time),
            ..row
        };
        Self::write_row(conn, &row).await?;
        Ok(Ok((before, row)))
    }

    /// Deletes the row with this id if it meets `precondition`, unless reservations hold some
    /// of it; its ledger gets a last entry taking everything to zero, and stays.
    pub async fn delete_inventory(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<Inventory>, StoreError> {
        let row = Self::lock_row(conn, id, scope)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !precondition.allows(Some(row.version)) {
            return Ok(Err(StockError::version_mismatch(Some(row.version))));
        }
        let (active,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM reservation_items i JOIN reservations r \
             ON r.id = i.reservation_id WHERE i.inventory_id = ? AND r.status = 'active'",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        if active > 0 {
            return Ok(Err(StockError::ActiveReservations));
        }
        let before = row.stock();
        let entry = NewEntry {
            inventory_id: row.id,
            seller_id: row.seller_id.clone(),
            market_place_id: row.market_place_id.clone(),
            seller_sku: row.seller_sku.clone(),
            entry_type: LedgerType::Delete,
            before,
            movement: before.delete(),
            notes: EntryNotes::default(),
        };
        Self::insert_entries(conn, std::slice::from_ref(&entry), actor, now).await?;
        sqlx::query("DELETE FROM inventory WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(Ok(row))
    }
}
