//! Reservations, the same SQL on both databases: hold units (all items or none), release,
//! commit for an order, expire; each with its ledger entries, inside the transaction its
//! backend holds. A reservation is locked before the inventory rows it holds, and those in id
//! order, so two operations never wait on each other's rows in a circle. Like every stock
//! operation (`stock.rs`), a refusal is found before anything is written and returned as
//! `Ok(Err(StockError))`.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, groups, marks, Value};
use super::records::ReservationTable;
use super::{Backend, Outcome, Shared};
use crate::domain::{
    Actor, EntryNotes, ExternalId, Inventory, LedgerType, MissingSku, NewEntry, NewReservation,
    PageRequest, Released, Reservation, ReservationFilter, ReservationItem, ReservationStatus,
    Scope, SellerId, ShortItem, StockError, Timestamp,
};
use crate::store::rows::{
    InventoryRow, LedgerRow, ReservationItemRow, ReservationRow, Text, RESERVATION_COLUMNS,
};
use crate::store::{Listed, StoreError};

/// How a reservation ends when it stops holding its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Ending<'a> {
    /// Released by its owner: the units are available again.
    Release,
    /// Ran out: the units are available again.
    Expire,
    /// Committed for this order: the units leave the shelf.
    Commit(&'a ExternalId),
}

impl Ending<'_> {
    fn status(self) -> ReservationStatus {
        match self {
            Self::Release => ReservationStatus::Released,
            Self::Expire => ReservationStatus::Expired,
            Self::Commit(_) => ReservationStatus::Committed,
        }
    }

    fn entry_type(self) -> LedgerType {
        match self {
            Self::Release => LedgerType::Release,
            Self::Expire => LedgerType::Expire,
            Self::Commit(_) => LedgerType::Commit,
        }
    }
}

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
    /// Holds the units of every item, all or none, and records the reservation.
    pub async fn reserve(
        conn: &mut DB::Connection,
        new: &NewReservation,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<Reservation>, StoreError> {
        // Find the rows' ids first, then lock them by id, in id order, as every other stock
        // operation does: locking them through the key index would take them in SKU order,
        // and two operations taking rows in different orders can wait on each other. A row
        // deleted or created between the two reads is then simply absent or unseen: the
        // reservation happened after the delete, or before the create.
        let sql = format!(
            "SELECT id FROM inventory WHERE seller_id = ? AND market_place_id = ? \
             AND seller_sku IN ({})",
            marks(new.items.len()),
        );
        let mut values = vec![
            Value::Text(new.seller_id.as_str()),
            Value::Text(new.market_place_id.as_str()),
        ];
        values.extend(new.items.iter().map(|i| Value::Text(i.seller_sku.as_str())));
        let ids: Vec<(i64,)> = bind(sqlx::query_as(&sql), &values)
            .fetch_all(&mut *conn)
            .await?;
        let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
        let rows = if ids.is_empty() {
            Vec::new()
        } else {
            Self::lock_rows(conn, &ids).await?
        };
        let mut rows: HashMap<_, Inventory> = rows
            .into_iter()
            .map(|row| (row.seller_sku.clone(), row))
            .collect();

        let missing: Vec<MissingSku> = new
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| !rows.contains_key(&item.seller_sku))
            .map(|(index, item)| MissingSku {
                index,
                seller_sku: item.seller_sku.clone(),
            })
            .collect();
        if !missing.is_empty() {
            return Ok(Err(StockError::SkuNotFound(missing)));
        }
        let mut planned = Vec::with_capacity(new.items.len());
        let mut short = Vec::new();
        for (index, item) in new.items.iter().enumerate() {
            let row = &rows[&item.seller_sku];
            match row.stock().reserve(item.quantity) {
                Ok(movement) => planned.push((item, row.id, movement)),
                Err(shortfall) => short.push(ShortItem {
                    index,
                    seller_sku: item.seller_sku.clone(),
                    requested: shortfall.requested,
                    available: shortfall.available,
                }),
            }
        }
        if !short.is_empty() {
            return Ok(Err(StockError::InsufficientItems(short)));
        }

        let expires_at = now.plus(std::time::Duration::from_secs(
            u64::try_from(new.expires_minutes).unwrap_or(0) * 60,
        ));
        let done = sqlx::query(
            "INSERT INTO reservations (seller_id, market_place_id, reservation_type, \
             reference_id, status, expires_at, created_by, create_time, update_time) \
             VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)",
        )
        .bind(new.seller_id.as_str())
        .bind(new.market_place_id.as_str())
        .bind(new.reservation_type.as_str())
        .bind(new.reference_id.as_str())
        .bind(expires_at.naive_utc())
        .bind(actor.user_id)
        .bind(now.naive_utc())
        .bind(now.naive_utc())
        .execute(&mut *conn)
        .await?;
        let reservation_id = DB::last_insert_id(&done);

        let mut items = Vec::with_capacity(new.items.len());
        let mut entries = Vec::with_capacity(new.items.len());
        for (item, inventory_id, movement) in planned {
            let row = rows.get_mut(&item.seller_sku).ok_or(StoreError::NotFound)?;
            let before = row.stock();
            row.reserved = before.after(movement).reserved;
            row.version += 1;
            row.update_time = now;
            Self::write_row(conn, row).await?;
            entries.push(NewEntry {
                inventory_id,
                seller_id: row.seller_id.clone(),
                market_place_id: row.market_place_id.clone(),
                seller_sku: row.seller_sku.clone(),
                entry_type: LedgerType::Reserve,
                before,
                movement,
                notes: EntryNotes {
                    reservation_id: Some(reservation_id),
                    ..EntryNotes::default()
                },
            });
            items.push(ReservationItem {
                inventory_id,
                seller_sku: item.seller_sku.clone(),
                quantity: item.quantity,
            });
        }
        let sql = format!(
            "INSERT INTO reservation_items (reservation_id, position, inventory_id, seller_sku, \
             quantity) VALUES {}",
            groups(items.len(), 5)
        );
        let mut insert = sqlx::query(&sql);
        for (position, item) in items.iter().enumerate() {
            insert = insert
                .bind(reservation_id)
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .bind(item.inventory_id)
                .bind(item.seller_sku.as_str())
                .bind(item.quantity);
        }
        insert.execute(&mut *conn).await?;
        Self::insert_entries(conn, &entries, actor, now).await?;

        Ok(Ok(Reservation {
            id: reservation_id,
            seller_id: new.seller_id.clone(),
            market_place_id: new.market_place_id.clone(),
            reservation_type: new.reservation_type,
            reference_id: new.reference_id.clone(),
            status: ReservationStatus::Active,
            items,
            expires_at,
            order_id: None,
            created_by: actor.user_id,
            create_time: now,
            update_time: now,
        }))
    }

    /// The reservation with this id, locked, with its items.
    async fn lock_reservation(
        conn: &mut DB::Connection,
        id: i64,
    ) -> Result<Option<Reservation>, StoreError> {
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?{}",
            DB::LOCK_ROWS
        );
        let Some(row): Option<ReservationRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let items: Vec<ReservationItemRow> = sqlx::query_as(
            "SELECT reservation_id, inventory_id, seller_sku, quantity FROM reservation_items \
             WHERE reservation_id = ? ORDER BY position",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(row.into_reservation(
            items.into_iter().map(ReservationItem::from).collect(),
        )))
    }

    /// Ends the active reservation with this id as `ending` says. One that ran out is expired
    /// now instead (and the answer is `ReservationExpired`).
    pub async fn end_reservation(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
        ending: Ending<'_>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<Reservation>, StoreError> {
        let Some(reservation) = Self::lock_reservation(conn, id)
            .await?
            .filter(|r| scope.allows(&r.seller_id))
        else {
            return Ok(Err(StockError::ReservationNotFound));
        };
        match reservation.status {
            ReservationStatus::Active if reservation.expires_at <= now => {
                // An expiry only gives units back: it is never refused.
                let _expired =
                    Self::finish(conn, reservation, Ending::Expire, &Actor::system(), now).await?;
                return Ok(Err(StockError::ReservationExpired));
            }
            ReservationStatus::Active => {}
            ReservationStatus::Expired => return Ok(Err(StockError::ReservationExpired)),
            ReservationStatus::Released | ReservationStatus::Committed => {
                return Ok(Err(StockError::ReservationNotActive))
            }
        }
        Self::finish(conn, reservation, ending, actor, now).await
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
        let mut released = Released::default();
        for (id,) in ids {
            let ending =
                Self::end_reservation(conn, id, &Scope::All, Ending::Release, actor, now).await?;
            if let Ok(reservation) = ending {
                released.reservations += 1;
                released.quantity += reservation.quantity();
            }
        }
        Ok(released)
    }

    /// Expires up to `limit` reservations whose time ran out by `now`, oldest first.
    pub async fn expire_due(
        conn: &mut DB::Connection,
        now: Timestamp,
        limit: i64,
    ) -> Result<Released, StoreError> {
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= ? \
             ORDER BY expires_at, id LIMIT ?",
        )
        .bind(now.naive_utc())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut expired = Released::default();
        for (id,) in ids {
            // Another instance may have ended it since the query: only active ones expire.
            let Some(reservation) = Self::lock_reservation(conn, id)
                .await?
                .filter(|r| r.status == ReservationStatus::Active && r.expires_at <= now)
            else {
                continue;
            };
            let quantity = reservation.quantity();
            if Self::finish(conn, reservation, Ending::Expire, &Actor::system(), now)
                .await?
                .is_ok()
            {
                expired.reservations += 1;
                expired.quantity += quantity;
            }
        }
        Ok(expired)
    }

    /// Ends an active, locked reservation: moves its units (back to available, or off the
    /// shelf for a commit), writes the ledger and the reservation's new status.
    async fn finish(
        conn: &mut DB::Connection,
        reservation: Reservation,
        ending: Ending<'_>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome<Reservation>, StoreError> {
        let ids: Vec<i64> = reservation.items.iter().map(|i| i.inventory_id).collect();
        let mut rows: HashMap<i64, Inventory> = Self::lock_rows(conn, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let mut moves = Vec::with_capacity(reservation.items.len());
        let mut short = Vec::new();
        for (index, item) in reservation.items.iter().enumerate() {
            // A row with active reservations cannot be deleted, so it is there.
            let row = rows.get(&item.inventory_id).ok_or(StoreError::NotFound)?;
            let before = row.stock();
            let movement = match ending {
                Ending::Release | Ending::Expire => Ok(before.release(item.quantity)),
                Ending::Commit(_) => before.commit(item.quantity),
            };
            match movement {
                Ok(movement) => moves.push((item.inventory_id, movement)),
                Err(shortfall) => short.push(ShortItem {
                    index,
                    seller_sku: item.seller_sku.clone(),
                    requested: shortfall.requested,
                    available: shortfall.available,
                }),
            }
        }
        if !short.is_empty() {
            return Ok(Err(StockError::InsufficientItems(short)));
        }

        let mut entries = Vec::with_capacity(moves.len());
        for (inventory_id, movement) in moves {
            let row = rows.get_mut(&inventory_id).ok_or(StoreError::NotFound)?;
            let before = row.stock();
            let after = before.after(movement);
            row.inventory = crate::domain::Units::parse(after.inventory)
                .map_err(|_| StoreError::Stock(StockError::InvalidQuantity))?;
            row.reserved = after.reserved;
            row.version += 1;
            row.update_time = now;
            Self::write_row(conn, row).await?;
            entries.push(NewEntry {
                inventory_id,
                seller_id: row.seller_id.clone(),
                market_place_id: row.market_place_id.clone(),
                seller_sku: row.seller_sku.clone(),
                entry_type: ending.entry_type(),
                before,
                movement,
                notes: EntryNotes {
                    reservation_id: Some(reservation.id),
                    order_id: match ending {
                        Ending::Commit(order) => Some(order.clone()),
                        _ => None,
                    },
                    ..EntryNotes::default()
                },
            });
        }
        Self::insert_entries(conn, &entries, actor, now).await?;

        let order_id = match ending {
            Ending::Commit(order) => Some(order.clone()),
            _ => None,
        };
        let status = ending.status();
        sqlx::query(
            "UPDATE reservations SET status = ?, order_id = ?, update_time = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(order_id.as_ref().map(ExternalId::as_str))
        .bind(now.naive_utc())
        .bind(reservation.id)
        .execute(&mut *conn)
        .await?;
        Ok(Ok(Reservation {
            status,
            order_id,
            update_time: now,
            ..reservation
        }))
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
