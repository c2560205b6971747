//! The stockroom: what a run of reservation operations (hold, release, commit, expire) does to
//! the inventory rows and reservations it touches, worked out in memory, one operation after
//! another, in order.
//!
//! Why. Each operation needs a few reads (its reservation, its rows) and a few writes (the
//! rows' numbers, the reservation, the ledger). Run one by one, a group of them on SQLite's
//! single writer costs a dozen statements each, and every statement is a hand-off to the
//! connection's thread. Worked out here instead, a store reads everything a group touches at
//! once (`Wanted`), asks the stockroom each operation's answer in turn, and writes what
//! changed table by table (`Changes`): about ten statements for the whole group. The answers
//! are exactly those of running the operations one after another on the same rows.
//!
//! Reservations made here have no id yet: each gets a provisional one (negative, see
//! `provisional_id`) until the store has inserted it; `Changes::settle` and `settle_answer`
//! then put the real ids everywhere they appear.

use std::collections::{BTreeSet, HashMap};

use super::{
    Actor, EntryNotes, EventType, ExternalId, Inventory, LedgerType, Marketplace, MissingSku,
    NewEntry, NewEvent, NewReservation, Precondition, Reservation, ReservationItem,
    ReservationStatus, Scope, SellerId, SellerSku, ShortItem, Stock, StockError, StockLevel,
    Timestamp, Units,
};

/// One operation on reservations, with everything it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationOp {
    /// Hold the units of every item, all or none.
    Reserve { new: NewReservation, actor: Actor },
    /// End the active reservation `id` (if `scope` may see it) as `ending` says, if it meets
    /// `precondition` (`If-Match`: a reservation is at version 1 while active, 2 after).
    End {
        id: i64,
        scope: Scope,
        ending: Ending,
        precondition: Precondition,
        actor: Actor,
    },
}

/// How a reservation ends when it stops holding its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Released by its owner: the units are available again.
    Release,
    /// Ran out: the units are available again. Only a reservation that is due expires.
    Expire,
    /// Committed for this order: the units leave the shelf.
    Commit(ExternalId),
}

impl Ending {
    fn status(&self) -> ReservationStatus {
        match self {
            Self::Release => ReservationStatus::Released,
            Self::Expire => ReservationStatus::Expired,
            Self::Commit(_) => ReservationStatus::Committed,
        }
    }

    fn entry_type(&self) -> LedgerType {
        match self {
            Self::Release => LedgerType::Release,
            Self::Expire => LedgerType::Expire,
            Self::Commit(_) => LedgerType::Commit,
        }
    }

    fn order_id(&self) -> Option<ExternalId> {
        match self {
            Self::Commit(order) => Some(order.clone()),
            _ => None,
        }
    }
}

/// The answer to one operation: the reservation as it is after it, or the stock rule that
/// refused it (and then the operation changed nothing).
pub type Answer = Result<Reservation, StockError>;

/// The key of an inventory row: seller, marketplace and SKU.
pub type RowKey = (SellerId, Marketplace, SellerSku);

/// What a run of operations reads before it starts: the reservations it ends (locked, with
/// their items; their rows follow from the items) and the keys of the rows it reserves on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub reservation_ids: BTreeSet<i64>,
    pub keys: BTreeSet<RowKey>,
}

impl Wanted {
    pub fn of(ops: &[&ReservationOp]) -> Self {
        let mut wanted = Self::default();
        for op in ops {
            match op {
                ReservationOp::Reserve { new, .. } => {
                    wanted.keys.extend(new.items.iter().map(|item| {
                        (
                            new.seller_id.clone(),
                            new.market_place_id.clone(),
                            item.seller_sku.clone(),
                        )
                    }));
                }
                ReservationOp::End { id, .. } => {
                    wanted.reservation_ids.insert(*id);
                }
            }
        }
        wanted
    }
}

/// A row that an active reservation holds units of is missing: the books are broken (a row
/// with active reservations cannot be deleted), so the whole run fails instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("inventory row {0} held by an active reservation is missing")]
pub struct MissingRow(pub i64);

/// The actor of the service's own work: an expiry found due on the way.
static SYSTEM: Actor = Actor {
    user_id: None,
    username: None,
    client_ip: None,
    request_id: None,
};

/// The rows and reservations a run touches, as they stand after the operations applied so far.
pub struct Stockroom<'a> {
    now: Timestamp,
    rows: HashMap<i64, Inventory>,
    keys: HashMap<RowKey, i64>,
    reservations: HashMap<i64, Reservation>,
    changed_rows: BTreeSet<i64>,
    created: Vec<Reservation>,
    ended: BTreeSet<i64>,
    entries: Vec<(NewEntry, &'a Actor)>,
}

impl<'a> Stockroom<'a> {
    /// A stockroom holding `rows` and `reservations` (with their items) as read, at `now`.
    pub fn new(now: Timestamp, rows: Vec<Inventory>, reservations: Vec<Reservation>) -> Self {
        let keys = rows
            .iter()
            .map(|row| {
                let key = (
                    row.seller_id.clone(),
                    row.market_place_id.clone(),
                    row.seller_sku.clone(),
                );
                (key, row.id)
            })
            .collect();
        Self {
            now,
            rows: rows.into_iter().map(|row| (row.id, row)).collect(),
            keys,
            reservations: reservations.into_iter().map(|r| (r.id, r)).collect(),
            changed_rows: BTreeSet::new(),
            created: Vec::new(),
            ended: BTreeSet::new(),
            entries: Vec::new(),
        }
    }

    /// Carries out `op` on what the stockroom holds and answers it.
    pub fn apply(&mut self, op: &'a ReservationOp) -> Result<Answer, MissingRow> {
        match op {
            ReservationOp::Reserve { new, actor } => Ok(self.reserve(new, actor)),
            ReservationOp::End {
                id,
                scope,
                ending,
                precondition,
                actor,
            } => self.end(*id, scope, ending, precondition, actor),
        }
    }

    fn reserve(&mut self, new: &NewReservation, actor: &'a Actor) -> Answer {
        let mut missing = Vec::new();
        let mut row_ids = Vec::with_capacity(new.items.len());
        for (index, item) in new.items.iter().enumerate() {
            let key = (
                new.seller_id.clone(),
                new.market_place_id.clone(),
                item.seller_sku.clone(),
            );
            match self.keys.get(&key) {
                Some(&id) => row_ids.push(id),
                None => missing.push(MissingSku {
                    index,
                    seller_sku: item.seller_sku.clone(),
                }),
            }
        }
        if !missing.is_empty() {
            return Err(StockError::SkuNotFound(missing));
        }

        // Every item is checked before any is held: all or none.
        let mut short = Vec::new();
        let mut movements = Vec::with_capacity(new.items.len());
        for (index, (item, &row_id)) in new.items.iter().zip(&row_ids).enumerate() {
            match self.rows[&row_id].stock().reserve(item.quantity) {
                Ok(movement) => movements.push(movement),
                Err(shortfall) => short.push(ShortItem::new(index, &item.seller_sku, shortfall)),
            }
        }
        if !short.is_empty() {
            return Err(StockError::InsufficientItems(short));
        }

        let id = provisional_id(self.created.len());
        let mut items = Vec::with_capacity(new.items.len());
        for ((item, row_id), movement) in new.items.iter().zip(row_ids).zip(movements) {
            let notes = EntryNotes {
                reservation_id: Some(id),
                ..EntryNotes::default()
            };
            self.move_units(row_id, LedgerType::Reserve, movement, notes, actor)?;
            items.push(ReservationItem {
                inventory_id: row_id,
                seller_sku: item.seller_sku.clone(),
                quantity: item.quantity,
            });
        }
        let minutes = u64::try_from(new.expires_minutes).unwrap_or(0);
        let reservation = Reservation {
            id,
            seller_id: new.seller_id.clone(),
            market_place_id: new.market_place_id.clone(),
            reservation_type: new.reservation_type,
            reference_id: new.reference_id.clone(),
            status: ReservationStatus::Active,
            items,
            expires_at: self.now.plus(std::time::Duration::from_secs(minutes * 60)),
            order_id: None,
            created_by: actor.user_id,
            create_time: self.now,
            update_time: self.now,
        };
        self.created.push(reservation.clone());
        Ok(reservation)
    }

    fn end(
        &mut self,
        id: i64,
        scope: &Scope,
        ending: &Ending,
        precondition: &Precondition,
        actor: &'a Actor,
    ) -> Result<Answer, MissingRow> {
        // One the caller may not see is absent: 404 whatever the headers say, as for rows.
        let Some(reservation) = self
            .reservations
            .get(&id)
            .filter(|r| scope.allows(&r.seller_id))
        else {
            return Ok(Err(StockError::ReservationNotFound));
        };
        if !precondition.allows(Some(reservation.version())) {
            return Ok(Err(StockError::version_mismatch(Some(
                reservation.version(),
            ))));
        }
        let due = reservation.expires_at <= self.now;
        match (reservation.status, ending) {
            (ReservationStatus::Active, Ending::Expire) if !due => {
                // Not due (yet): an expiry never comes early.
                Ok(Err(StockError::ReservationNotActive))
            }
            (ReservationStatus::Active, Ending::Release | Ending::Commit(_)) if due => {
                // It ran out: it expires now instead, which only gives units back, and the
                // caller hears that it expired.
                let _expired = self.finish(id, &Ending::Expire, &SYSTEM)?;
                Ok(Err(StockError::ReservationExpired))
            }
            (ReservationStatus::Active, _) => self.finish(id, ending, actor),
            (ReservationStatus::Expired, _) => Ok(Err(StockError::ReservationExpired)),
            (ReservationStatus::Released | ReservationStatus::Committed, _) => {
                Ok(Err(StockError::ReservationNotActive))
            }
        }
    }

    /// Ends the active reservation `id`: moves its units (back to available, or off the shelf
    /// for a commit) with their ledger entries, and sets its new status.
    fn finish(&mut self, id: i64, ending: &Ending, actor: &'a Actor) -> Result<Answer, MissingRow> {
        let reservation = &self.reservations[&id];
        let mut movements = Vec::with_capacity(reservation.items.len());
        let mut short = Vec::new();
        for (index, item) in reservation.items.iter().enumerate() {
            let row = self
                .rows
                .get(&item.inventory_id)
                .ok_or(MissingRow(item.inventory_id))?;
            let stock = row.stock();
            let movement = match ending {
                Ending::Release | Ending::Expire => Ok(stock.release(item.quantity)),
                Ending::Commit(_) => stock.commit(item.quantity),
            };
            match movement {
                Ok(movement) => movements.push((item.inventory_id, movement)),
                Err(shortfall) => short.push(ShortItem::new(index, &item.seller_sku, shortfall)),
            }
        }
        if !short.is_empty() {
            return Ok(Err(StockError::InsufficientItems(short)));
        }
        for (row_id, movement) in movements {
            let notes = EntryNotes {
                reservation_id: Some(id),
                order_id: ending.order_id(),
                ..EntryNotes::default()
            };
            if let Err(e) = self.move_units(row_id, ending.entry_type(), movement, notes, actor) {
                return Ok(Err(e));
            }
        }
        let reservation = self.reservations.get_mut(&id).ok_or(MissingRow(id))?;
        reservation.status = ending.status();
        reservation.order_id = ending.order_id();
        reservation.update_time = self.now.after(reservation.update_time);
        self.ended.insert(id);
        Ok(Ok(reservation.clone()))
    }

    /// Applies `movement` to row `row_id` and records its ledger entry.
    fn move_units(
        &mut self,
        row_id: i64,
        entry_type: LedgerType,
        movement: crate::domain::Movement,
        notes: EntryNotes,
        actor: &'a Actor,
    ) -> Result<(), StockError> {
        let row = self
            .rows
            .get_mut(&row_id)
            .ok_or(StockError::InvalidQuantity)?;
        let before: Stock = row.stock();
        let after = before.after(movement);
        row.inventory = Units::parse(after.inventory).map_err(|_| StockError::InvalidQuantity)?;
        row.reserved = after.reserved;
        row.version += 1;
        // A row's `update_time` only moves forward (incremental sync relies on it).
        row.update_time = self.now.after(row.update_time);
        self.changed_rows.insert(row_id);
        self.entries.push((
            NewEntry {
                inventory_id: row_id,
                seller_id: row.seller_id.clone(),
                market_place_id: row.market_place_id.clone(),
                seller_sku: row.seller_sku.clone(),
                entry_type,
                before,
                movement,
                notes,
            },
            actor,
        ));
        Ok(())
    }

    /// What the run changed, to be written.
    pub fn into_changes(mut self) -> Changes<'a> {
        let rows = self
            .changed_rows
            .iter()
            .filter_map(|id| self.rows.remove(id))
            .collect();
        let ended = self
            .ended
            .iter()
            .filter_map(|id| self.reservations.remove(id))
            .collect();
        Changes {
            rows,
            created: self.created,
            ended,
            entries: self.entries,
        }
    }
}

/// What a run changed: rows with new numbers (in id order), reservations made (with
/// provisional ids until settled), reservations ended (in id order), and the ledger entries,
/// in the order the changes happened, each with who caused it.
#[derive(Debug)]
pub struct Changes<'a> {
    pub rows: Vec<Inventory>,
    pub created: Vec<Reservation>,
    pub ended: Vec<Reservation>,
    pub entries: Vec<(NewEntry, &'a Actor)>,
}

impl Changes<'_> {
    /// The events of the run (once settled), in the order the changes happened: for each
    /// ledger entry, the row as it was just after it with the reservation that moved it
    /// (`inventory.stock.reserved`, `.released`, `.expired` or `.deducted`), followed by
    /// `inventory.stock.low_warning` when that entry made the row's level worse.
    pub fn events(&self) -> Vec<NewEvent> {
        let rows: HashMap<i64, &Inventory> = self.rows.iter().map(|row| (row.id, row)).collect();
        let created: HashMap<i64, &Reservation> = self.created.iter().map(|r| (r.id, r)).collect();
        let ended: HashMap<i64, &Reservation> = self.ended.iter().map(|r| (r.id, r)).collect();
        // Entries of each row still to come: the row's version after an entry is its final
        // version less one for each later entry (every entry moved it by one).
        let mut later: HashMap<i64, i64> = HashMap::new();
        for (entry, _) in &self.entries {
            *later.entry(entry.inventory_id).or_default() += 1;
        }
        let mut events = Vec::with_capacity(self.entries.len());
        for (entry, _) in &self.entries {
            let remaining = later.entry(entry.inventory_id).or_default();
            *remaining -= 1;
            let (event_type, reservations) = match entry.entry_type {
                LedgerType::Reserve => (EventType::StockReserved, &created),
                LedgerType::Release => (EventType::StockReleased, &ended),
                LedgerType::Expire => (EventType::StockExpired, &ended),
                LedgerType::Commit => (EventType::StockDeducted, &ended),
                _ => continue,
            };
            let (Some(&row), Some(&reservation)) = (
                rows.get(&entry.inventory_id),
                entry
                    .notes
                    .reservation_id
                    .and_then(|id| reservations.get(&id)),
            ) else {
                continue;
            };
            let after = entry.before.after(entry.movement);
            let Ok(units) = Units::parse(after.inventory) else {
                continue;
            };
            let row = Inventory {
                inventory: units,
                reserved: after.reserved,
                version: row.version - *remaining,
                ..row.clone()
            };
            events.push(NewEvent::reservation(event_type, &row, reservation));
            let before = StockLevel::of(entry.before.available(), row.thresholds);
            events.extend(NewEvent::low_warning(before, &row));
        }
        events
    }

    /// Puts the real ids of the created reservations (`ids`, in the order of `created`) in
    /// place of their provisional ones.
    pub fn settle(&mut self, ids: &[i64]) {
        for reservation in &mut self.created {
            reservation.id = settled_id(reservation.id, ids);
        }
        for (entry, _) in &mut self.entries {
            entry.notes.reservation_id = entry.notes.reservation_id.map(|id| settled_id(id, ids));
        }
    }
}

/// An answer with its reservation's real id (see `Changes::settle`).
pub fn settle_answer(answer: Answer, ids: &[i64]) -> Answer {
    answer.map(|reservation| Reservation {
        id: settled_id(reservation.id, ids),
        ..reservation
    })
}

/// The provisional id of the `index`th reservation a run creates: negative, so it can never be
/// a stored id.
fn provisional_id(index: usize) -> i64 {
    -1 - i64::try_from(index).unwrap_or(i64::MAX - 1)
}

fn settled_id(id: i64, ids: &[i64]) -> i64 {
    if id >= 0 {
        return id;
    }
    usize::try_from(-1 - id)
        .ok()
        .and_then(|index| ids.get(index).copied())
        .unwrap_or(id)
}

#[cfg(test)]
mod tests;
