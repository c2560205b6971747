//! Reservations, the same SQL on both databases: hold units (all items or none), release,
//! commit for an order, expire; each with its ledger entries, inside the transaction its
//! backend holds, and reads of reservations.
//!
//! Every operation that changes reservations is a `ReservationOp`, and any number of them run
//! together (`run_reservations`): SQLite's write queue runs all those waiting in one group, MySQL
//! one per transaction. A run reads what its operations touch in four statements, asks the
//! stockroom (`crate::domain::stockroom`) each operation's answer in turn, and writes what
//! changed with one statement per table. Reservations are locked before the inventory rows
//! they hold, and those in id order, so two runs never wait on each other's rows in a circle.
//! A refusal changes nothing and is answered as `Err(StockError)`, so the transaction may
//! commit the rest of the run.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, groups, marks, Value};
use super::records::ReservationTable;
use super::{Backend, Shared};
use crate::domain::stockroom::{
    settle_answer, Answer, Changes, Ending, ReservationOp, RowKey, Stockroom, Wanted,
};
use crate::domain::{
    Actor, ExternalId, Inventory, PageRequest, Precondition, Released, Reservation,
    ReservationFilter, ReservationItem, Scope, SellerId, Timestamp,
};
use crate::store::rows::{
    InventoryRow, LedgerRow, ReservationItemRow, ReservationRow, Text, RESERVATION_COLUMNS,
};
use crate::store::{Listed, StoreError};

/// Most rows one statement of a run reads or writes, so that no statement comes near either
/// database's limit on placeholders (the widest, a reservation insert, binds 10 a row).
const CHUNK: usize = 100;

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
    for<'r> ReservationRow: FromRow<'r, DB::Row>,
    for<'r> ReservationItemRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Carries out `ops` in order, as if one after another, and answers each.
    pub async fn run_reservations(
        conn: &mut DB::Connection,
        ops: &[&ReservationOp],
        now: Timestamp,
    ) -> Result<Vec<Answer>, StoreError> {
        let wanted = Wanted::of(ops);
        let reservations = Self::lock_reservations(conn, &wanted.reservation_ids).await?;
        let mut row_ids: BTreeSet<i64> = reservations
            .iter()
            .flat_map(|r| r.items.iter().map(|item| item.inventory_id))
            .collect();
        row_ids.extend(Self::ids_by_key(conn, &wanted.keys).await?);
        let row_ids: Vec<i64> = row_ids.into_iter().collect();
        let mut rows = Vec::with_capacity(row_ids.len());
        for chunk in row_ids.chunks(CHUNK) {
            rows.extend(Self::lock_rows(conn, chunk).await?);
        }

        let mut room = Stockroom::new(now, rows, reservations);
        let mut answers = Vec::with_capacity(ops.len());
        for &op in ops {
            // A row under an active reservation is missing: the books are broken.
            answers.push(room.apply(op).map_err(|_| StoreError::NotFound)?);
        }
        let mut changes = room.into_changes();
        let ids = Self::insert_reservations(conn, &changes.created).await?;
        changes.settle(&ids);
        Self::write_changes(conn, &changes, now).await?;
        Self::insert_events(conn, &changes.events(), now).await?;
        Ok(answers
            .into_iter()
            .map(|answer| settle_answer(answer, &ids))
            .collect())
    }

    /// The reservations with these ids, locked in id order, with their items.
    async fn lock_reservations(
        conn: &mut DB::Connection,
        ids: &BTreeSet<i64>,
    ) -> Result<Vec<Reservation>, StoreError> {
        let ids: Vec<i64> = ids.iter().copied().collect();
        let mut reservations = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id IN ({}) ORDER BY id{}",
                marks(chunk.len()),
                DB::LOCK_ROWS
            );
            let values: Vec<Value> = chunk.iter().map(|id| Value::Int(*id)).collect();
            let rows: Vec<ReservationRow> = bind(sqlx::query_as(&sql), &values)
                .fetch_all(&mut *conn)
                .await?;
            let found: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let mut items = Self::items_of(conn, &found).await?;
            reservations.extend(rows.into_iter().map(|row| {
                let own = items.remove(&row.id).unwrap_or_default();
                row.into_reservation(own)
            }));
        }
        Ok(reservations)
    }

    /// The ids of the rows with these keys (those that exist), not locked: they are locked
    /// next, by id, in id order, as every stock operation takes rows. Locking them through the
    /// key index would take them in key order, and two operations taking rows in different
    /// orders can wait on each other. A row deleted or created between the two reads is then
    /// simply absent or unseen: the reservation happened after the delete, or before the
    /// create.
    async fn ids_by_key(
        conn: &mut DB::Connection,
        keys: &BTreeSet<RowKey>,
    ) -> Result<Vec<i64>, StoreError> {
        let keys: Vec<&RowKey> = keys.iter().collect();
        let mut ids = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT id FROM inventory WHERE {}",
                vec!["(seller_id = ? AND market_place_id = ? AND seller_sku = ?)"; chunk.len()]
                    .join(" OR ")
            );
            let values: Vec<Value> = chunk
                .iter()
                .flat_map(|(seller, market, sku)| {
                    [
                        Value::Text(seller.as_str()),
                        Value::Text(market.as_str()),
                        Value::Text(sku.as_str()),
                    ]
                })
                .collect();
            let found: Vec<(i64,)> = bind(sqlx::query_as(&sql), &values)
                .fetch_all(&mut *conn)
                .await?;
            ids.extend(found.into_iter().map(|(id,)| id));
        }
        Ok(ids)
    }

    /// Inserts the reservations a run made and returns their ids, in order. Where the backend
    /// knows the next ids ahead (SQLite's one writer), all in one statement per chunk; else
    /// one by one, each taking the id the database gives it.
    async fn insert_reservations(
        conn: &mut DB::Connection,
        created: &[Reservation],
    ) -> Result<Vec<i64>, StoreError> {
        const COLUMNS: &str = "seller_id, market_place_id, reservation_type, reference_id, \
             status, expires_at, order_id, created_by, create_time, update_time";
        let mut ids = Vec::with_capacity(created.len());
        if created.is_empty() {
            return Ok(ids);
        }
        let Some(next_id) = DB::NEXT_RESERVATION_ID else {
            let sql = format!(
                "INSERT INTO reservations ({COLUMNS}) VALUES {}",
                groups(1, 10)
            );
            for reservation in created {
                let done = Self::bind_reservation(sqlx::query(&sql), reservation)
                    .execute(&mut *conn)
                    .await?;
                ids.push(DB::last_insert_id(&done));
            }
            return Ok(ids);
        };
        let (mut next,): (i64,) = sqlx::query_as(next_id).fetch_one(&mut *conn).await?;
        for chunk in created.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO reservations (id, {COLUMNS}) VALUES {}",
                groups(chunk.len(), 11)
            );
            let mut insert = sqlx::query(&sql);
            for reservation in chunk {
                insert = Self::bind_reservation(insert.bind(next), reservation);
                ids.push(next);
                next += 1;
            }
            insert.execute(&mut *conn).await?;
        }
        Ok(ids)
    }

    fn bind_reservation<'q>(
        query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
        reservation: &'q Reservation,
    ) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>> {
        query
            .bind(reservation.seller_id.as_str())
            .bind(reservation.market_place_id.as_str())
            .bind(reservation.reservation_type.as_str())
            .bind(reservation.reference_id.as_str())
            .bind(reservation.status.as_str())
            .bind(reservation.expires_at.naive_utc())
            .bind(reservation.order_id.as_ref().map(ExternalId::as_str))
            .bind(reservation.created_by)
            .bind(reservation.create_time.naive_utc())
            .bind(reservation.update_time.naive_utc())
    }

    /// Writes what a run changed (its new reservations already inserted and settled): their
    /// items, the ended reservations' status, the rows' numbers, then the ledger entries.
    async fn write_changes(
        conn: &mut DB::Connection,
        changes: &Changes<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let items: Vec<(i64, usize, &ReservationItem)> = changes
            .created
            .iter()
            .flat_map(|r| r.items.iter().enumerate().map(|(i, item)| (r.id, i, item)))
            .collect();
        for chunk in items.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO reservation_items (reservation_id, position, inventory_id, \
                 seller_sku, quantity) VALUES {}",
                groups(chunk.len(), 5)
            );
            let mut insert = sqlx::query(&sql);
            for (reservation_id, position, item) in chunk {
                insert = insert
                    .bind(*reservation_id)
                    .bind(i64::try_from(*position).unwrap_or(i64::MAX))
                    .bind(item.inventory_id)
                    .bind(item.seller_sku.as_str())
                    .bind(item.quantity);
            }
            insert.execute(&mut *conn).await?;
        }

        for chunk in changes.ended.chunks(CHUNK) {
            let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
            let sql = format!(
                "UPDATE reservations SET status = CASE id {cases} END, \
                 order_id = CASE id {cases} END, update_time = CASE id {cases} END \
                 WHERE id IN ({})",
                marks(chunk.len())
            );
            let mut update = sqlx::query(&sql);
            for r in chunk {
                update = update.bind(r.id).bind(r.status.as_str());
            }
            for r in chunk {
                update = update
                    .bind(r.id)
                    .bind(r.order_id.as_ref().map(ExternalId::as_str));
            }
            for r in chunk {
                update = update.bind(r.id).bind(r.update_time.naive_utc());
            }
            for r in chunk {
                update = update.bind(r.id);
            }
            update.execute(&mut *conn).await?;
        }

        for chunk in changes.rows.chunks(CHUNK) {
            Self::write_rows(conn, chunk).await?;
        }

        let entries: Vec<_> = changes
            .entries
            .iter()
            .map(|(entry, actor)| (entry, *actor))
            .collect();
        Self::insert_entries_of(conn, &entries, now).await
    }

    /// Writes the units on hand, reserved, the version and `update_time` of `rows`.
    async fn write_rows(conn: &mut DB::Connection, rows: &[Inventory]) -> Result<(), StoreError> {
        let cases = vec!["WHEN ? THEN ?"; rows.len()].join(" ");
        let sql = format!(
            "UPDATE inventory SET inventory = CASE id {cases} END, \
             reserved = CASE id {cases} END, version = CASE id {cases} END, \
             update_time = CASE id {cases} END WHERE id IN ({})",
            marks(rows.len())
        );
        let mut update = sqlx::query(&sql);
        for row in rows {
            update = update.bind(row.id).bind(i64::from(row.inventory.get()));
        }
        for row in rows {
            update = update.bind(row.id).bind(row.reserved);
        }
        for row in rows {
            update = update.bind(row.id).bind(row.version);
        }
        for row in rows {
            update = update.bind(row.id).bind(row.update_time.naive_utc());
        }
        for row in rows {
            update = update.bind(row.id);
        }
        update.execute(&mut *conn).await?;
        Ok(())
    }

    /// Runs one operation: what a backend without a write queue does.
    pub async fn run_reservation(
        conn: &mut DB::Connection,
        op: &ReservationOp,
        now: Timestamp,
    ) -> Result<Answer, StoreError> {
        Self::run_reservations(conn, &[op], now)
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    /// Releases every active reservation of this seller's cart (or order) reference.
    pub async fn release_reference(
        conn: &mut DB::Connection,
        seller_id: &SellerId,
        reference_id: &ExternalId,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Released, StoreError> {
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM reservations WHERE seller_id = ? AND reference_id = ? \
             AND status = 'active' ORDER BY id",
        )
        .bind(seller_id.as_str())
        .bind(reference_id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        Self::end_all(conn, ids, Ending::Release, actor, now).await
    }

    /// Expires up to `limit` reservations whose time ran out by `now`, oldest first.
    pub async fn expire_due(
        conn: &mut DB::Connection,
        now: Timestamp,
        limit: i64,
    ) -> Result<Released, StoreError> {
        // Claimed: another instance's sweep skips these, and this one skips its.
        let claim = format!(
            "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= ? \
             ORDER BY expires_at, id LIMIT ?{}",
            DB::CLAIM_ROWS
        );
        let ids: Vec<(i64,)> = sqlx::query_as(&claim)
            .bind(now.naive_utc())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        // A request (or, on SQLite, nothing) may have ended some since the query: those
        // answer "not active" under the lock the run takes, and are not counted.
        Self::end_all(conn, ids, Ending::Expire, &Actor::system(), now).await
    }

    /// Ends the reservations `ids` as `ending` says, in one run; what the ended ones held.
    async fn end_all(
        conn: &mut DB::Connection,
        ids: Vec<(i64,)>,
        ending: Ending,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Released, StoreError> {
        let ops: Vec<ReservationOp> = ids
            .into_iter()
            .map(|(id,)| ReservationOp::End {
                id,
                scope: Scope::All,
                ending: ending.clone(),
                precondition: Precondition::default(),
                actor: actor.clone(),
            })
            .collect();
        let ops: Vec<&ReservationOp> = ops.iter().collect();
        let mut released = Released::default();
        for reservation in Self::run_reservations(conn, &ops, now)
            .await?
            .into_iter()
            .flatten()
        {
            released.reservations += 1;
            released.quantity += reservation.quantity();
        }
        Ok(released)
    }

    /// Whether any active reservation ran out by `now`.
    pub async fn any_due(
        conn: &mut DB::Connection,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= ? LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(found.is_some())
    }

    /// How many reservations are active (holding stock now). An index range scan
    /// (`ix_reservations_due` starts with `status`), read when metrics are scraped.
    pub async fn count_active_reservations(conn: &mut DB::Connection) -> Result<u64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM reservations WHERE status = 'active'")
                .fetch_one(&mut *conn)
                .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// The items of these reservations, by reservation.
    async fn items_of(
        conn: &mut DB::Connection,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<ReservationItem>>, StoreError> {
        let mut items: HashMap<i64, Vec<ReservationItem>> = HashMap::new();
        if ids.is_empty() {
            return Ok(items);
        }
        let sql = format!(
            "SELECT reservation_id, inventory_id, seller_sku, quantity FROM reservation_items \
             WHERE reservation_id IN ({}) ORDER BY reservation_id, position",
            marks(ids.len())
        );
        let values: Vec<Value> = ids.iter().map(|id| Value::Int(*id)).collect();
        let rows: Vec<ReservationItemRow> = bind(sqlx::query_as(&sql), &values)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            items
                .entry(row.reservation_id)
                .or_default()
                .push(ReservationItem::from(row));
        }
        Ok(items)
    }

    /// The reservation with this id, or `None`.
    pub async fn reservation(
        conn: &mut DB::Connection,
        id: i64,
    ) -> Result<Option<Reservation>, StoreError> {
        let sql = format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?");
        let Some(row): Option<ReservationRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let mut items = Self::items_of(conn, &[id]).await?;
        Ok(Some(
            row.into_reservation(items.remove(&id).unwrap_or_default()),
        ))
    }

    /// One page of reservations matching `filter` within `scope`, ordered by id.
    pub async fn reservations(
        conn: &mut DB::Connection,
        filter: &ReservationFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Reservation>, StoreError> {
        let listed = Self::list::<ReservationTable>(conn, filter, scope, page).await?;
        let ids: Vec<i64> = listed.items.iter().map(|r| r.id).collect();
        let mut items = Self::items_of(conn, &ids).await?;
        Ok(Listed {
            items: listed
                .items
                .into_iter()
                .map(|row| {
                    let own = items.remove(&row.id).unwrap_or_default();
                    row.into_reservation(own)
                })
                .collect(),
            total: listed.total,
        })
    }
}
