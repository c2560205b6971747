//! The upserts of MySQL/MariaDB, inside the transaction the caller holds: the write queue's
//! (`writer.rs`), for the rows of every upsert request of its group together. The SQL lives on
//! the server, as three procedures (migrations/mysql/0010_upsert_procedures.sql) that take a
//! group's rows as one JSON array argument: so a group costs one call to claim and read its
//! rows and one to write what the plan decided, whatever its size, and each call is one
//! constant statement text, prepared once per connection.
//!
//! Why. A group used to cost a statement per step (find, lock, claim, read, write, ledger,
//! event lock, events), each a round trip, and a prepare whenever its number of rows gave it a
//! statement text the connection had not seen yet: ~11 round trips a group at ~0.7 ms each
//! under load. With the procedures, single inventory upserts ran ~1.6× as fast and their p99
//! halved (bench/RESULTS.md, "MySQL upserts as stored procedures").
//!
//! What stays here: the plan of each row (`InventoryInput::plan`, shared with SQLite), which
//! needs the rows as they are once locked, so the claim returns them and the write comes
//! after; and the events, built from the rows as planned, which `write` inserts last for the
//! whole group (they take the event lock, best held only from the last statement to commit).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::MySqlConnection;

use crate::domain::{
    Actor, Inventory, InventoryInput, NewEntry, NewEvent, SalesTarget, SalesTargetInput, Timestamp,
    UpsertWrite,
};
use crate::store::rows::{InventoryRow, SalesTargetRow};
use crate::store::StoreError;

/// `rows`, which a statement returned in any order, in the order of `items`, matched by key
/// (`key` of an item, and of a row, must be the same value for the same row).
fn in_input_order<I, R, K: std::hash::Hash + PartialEq>(
    items: &[I],
    rows: Vec<R>,
    item_key: impl for<'a> Fn(&'a I) -> K,
    row_key: impl for<'a> Fn(&'a R) -> K,
) -> Result<Vec<R>, StoreError> {
    let hash = |key: K| {
        use std::hash::Hasher;
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        hasher.finish()
    };
    let mut candidates: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        candidates.entry(hash(item_key(item))).or_default().push(i);
    }
    let mut slots: Vec<Option<R>> = items.iter().map(|_| None).collect();
    for row in rows {
        let place = candidates.get(&hash(row_key(&row))).and_then(|places| {
            places
                .iter()
                .find(|&&i| item_key(&items[i]) == row_key(&row))
        });
        if let Some(&i) = place {
            slots[i] = Some(row);
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.ok_or(StoreError::Db(sqlx::Error::RowNotFound)))
        .collect()
}

/// The calls, each one constant text.
const CALL_SALES_TARGETS: &str = "CALL sales_targets_upsert(?, ?)";
const CALL_CLAIM_INVENTORY: &str = "CALL inventory_claim(?, ?)";
const CALL_WRITE: &str = "CALL upsert_write(?, ?, ?, ?)";

/// A time as the procedures read it (`DATETIME(6)` from JSON text).
struct DateTimeArg(Timestamp);

impl Serialize for DateTimeArg {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"))
    }
}

// Each row of a procedure's argument is a JSON array of its values, in the order of the
// procedure's `JSON_TABLE` columns: hence the tuple structs below, each with that order.

/// A row of `sales_targets_upsert`'s argument: seller_id, parent_asin, market_place_id,
/// period, cents.
#[derive(Serialize)]
struct SalesTargetArg<'a>(&'a str, &'a str, &'a str, &'a str, i64);

/// A row of `inventory_claim`'s argument: seller_id, market_place_id, seller_sku,
/// parent_asin, child_asin, inventory.
#[derive(Serialize)]
struct ClaimArg<'a>(&'a str, &'a str, &'a str, &'a str, &'a str, i32);

/// A row of `upsert_write`'s rows, what the plan changes of an inventory row: id,
/// parent_asin, child_asin, inventory, version, update_time.
#[derive(Serialize)]
struct RowArg<'a>(i64, &'a str, &'a str, i32, i64, DateTimeArg);

impl<'a> From<&'a Inventory> for RowArg<'a> {
    fn from(r: &'a Inventory) -> Self {
        Self(
            r.id,
            r.parent_asin.as_str(),
            r.child_asin.as_str(),
            r.inventory.get(),
            r.version,
            DateTimeArg(r.update_time),
        )
    }
}

/// A row of `upsert_write`'s ledger entries (an upsert's entry has no notes): inventory_id,
/// seller_id, market_place_id, seller_sku, type, quantity_change, reserved_change,
/// inventory_before, inventory_after, reserved_before, reserved_after, operator_id,
/// request_id.
#[derive(Serialize)]
struct EntryArg<'a>(
    i64,
    &'a str,
    &'a str,
    &'a str,
    &'static str,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<&'a str>,
);

impl<'a> EntryArg<'a> {
    fn new(entry: &'a NewEntry, actor: &'a Actor) -> Self {
        let after = entry.before.after(entry.movement);
        Self(
            entry.inventory_id,
            entry.seller_id.as_str(),
            entry.market_place_id.as_str(),
            entry.seller_sku.as_str(),
            entry.entry_type.as_str(),
            entry.movement.quantity_change,
            entry.movement.reserved_change,
            entry.before.inventory,
            after.inventory,
            entry.before.reserved,
            after.reserved,
            actor.user_id,
            actor.request_id.as_deref(),
        )
    }
}

/// A row of `upsert_write`'s events: event_type, seller_id, data.
#[derive(Serialize)]
struct EventArg<'a>(&'static str, &'a str, &'a str);

/// A procedure's JSON argument.
fn json<T: Serialize>(args: impl IntoIterator<Item = T>) -> Result<String, StoreError> {
    let args: Vec<T> = args.into_iter().collect();
    // Only strings, integers and times: serialising them cannot fail.
    serde_json::to_string(&args).map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))
}

/// Calls `call` (a procedure taking a group's rows and the time) and reads each row it returns
/// with `read`.
async fn call_for_rows<R>(
    conn: &mut MySqlConnection,
    call: &'static str,
    rows: String,
    now: Timestamp,
    read: impl Fn(&MySqlRow) -> Result<R, sqlx::Error>,
) -> Result<Vec<R>, StoreError> {
    let returned = sqlx::query(call)
        .bind(rows)
        .bind(now.naive_utc())
        .fetch_all(&mut *conn)
        .await?;
    Ok(returned.iter().map(read).collect::<Result<_, _>>()?)
}

/// What the claim of a group's inventory rows decided to write, for `write`: the rows that
/// change (by id) and their ledger entries, each with the actor of its request.
#[derive(Default)]
pub(super) struct Planned<'a> {
    rows: Vec<Inventory>,
    entries: Vec<(NewEntry, &'a Actor)>,
}

/// Creates or updates `items` (distinct keys) and returns them as stored, in input order, with
/// the events to write for them.
pub(super) async fn sales_targets(
    conn: &mut MySqlConnection,
    items: &[&SalesTargetInput],
    now: Timestamp,
) -> Result<(Vec<SalesTarget>, Vec<NewEvent>), StoreError> {
    // Rows are locked in key order, so that two groups sharing keys cannot deadlock.
    let mut order: Vec<&SalesTargetInput> = items.to_vec();
    fn key(t: &SalesTargetInput) -> (&str, &str, &str, &str) {
        (
            t.seller_id.as_str(),
            t.parent_asin.as_str(),
            t.market_place_id.as_str(),
            t.period.as_str(),
        )
    }
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    let rows = json(order.iter().map(|item| {
        SalesTargetArg(
            item.seller_id.as_str(),
            item.parent_asin.as_str(),
            item.market_place_id.as_str(),
            item.period.as_str(),
            item.sales_target.cents(),
        )
    }))?;
    let rows = call_for_rows(conn, CALL_SALES_TARGETS, rows, now, |row| {
        SalesTargetRow::by_position(row).map(SalesTarget::from)
    })
    .await?;
    let rows = in_input_order(
        items,
        rows,
        |i| key_of_target(i.key()),
        |r| key_of_target(r.key()),
    )?;
    // Every write of a sales target moves its version: each is a change.
    let events: Vec<NewEvent> = rows.iter().map(NewEvent::sales_target_updated).collect();
    Ok((rows, events))
}

/// Claims `items` (distinct keys, each with the actor whose request it is) and plans each as
/// `InventoryInput::plan` says: returns them as they will be stored, in input order, with the
/// events of the rows that change and what `write` must write for them. Runs in a
/// `READ COMMITTED` transaction (`writer.rs`): the claim finds rows by a plain read before it
/// locks them, and its last read must see them as they are once locked, not as that first
/// read's snapshot had them.
pub(super) async fn inventory<'a>(
    conn: &mut MySqlConnection,
    items: &[(&InventoryInput, &'a Actor)],
    now: Timestamp,
) -> Result<(Vec<Inventory>, Vec<NewEvent>, Planned<'a>), StoreError> {
    // New rows are claimed in key order (existing ones are locked in id order by the claim),
    // so that two groups sharing keys, or a group and a stock operation, queue rather than
    // deadlock.
    let mut order: Vec<&InventoryInput> = items.iter().map(|(item, _)| *item).collect();
    fn key(i: &InventoryInput) -> (&str, &str, &str) {
        (
            i.seller_id.as_str(),
            i.market_place_id.as_str(),
            i.seller_sku.as_str(),
        )
    }
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    let claims = json(order.iter().map(|item| {
        ClaimArg(
            item.seller_id.as_str(),
            item.market_place_id.as_str(),
            item.seller_sku.as_str(),
            item.parent_asin.as_str(),
            item.child_asin.as_str(),
            item.inventory.get(),
        )
    }))?;
    let rows = call_for_rows(conn, CALL_CLAIM_INVENTORY, claims, now, |row| {
        InventoryRow::by_position(row).map(Inventory::from)
    })
    .await?;
    let rows = in_input_order(
        items,
        rows,
        |(i, _)| key_of_row(i.key()),
        |r| key_of_row(r.key()),
    )?;

    let mut planned = Planned::default();
    let mut events = Vec::new();
    let mut stored = Vec::with_capacity(items.len());
    for (&(item, actor), row) in items.iter().zip(rows) {
        let id = row.id;
        // Version 0: this transaction just inserted the row (see `inventory_claim`).
        let existing = (row.version > 0).then_some(row);
        let level_before = existing.as_ref().map(Inventory::stock_level);
        let mut plan = item.clone().plan(existing, now);
        plan.row.id = id;
        if plan.write != UpsertWrite::Nothing {
            events.push(NewEvent::inventory_updated(&plan.row));
            events.extend(level_before.and_then(|before| NewEvent::low_warning(before, &plan.row)));
            planned.rows.push(plan.row.clone());
        }
        if let Some((entry_type, before, movement)) = plan.entry {
            let entry = NewEntry {
                inventory_id: id,
                seller_id: plan.row.seller_id.clone(),
                market_place_id: plan.row.market_place_id.clone(),
                seller_sku: plan.row.seller_sku.clone(),
                entry_type,
                before,
                movement,
                notes: Default::default(),
            };
            planned.entries.push((entry, actor));
        }
        stored.push(plan.row);
    }
    Ok((stored, events, planned))
}

/// Writes what the group planned: its inventory rows with their ledger entries (`planned`),
/// then `events`, the events of the whole group, in order, as happened at `now`.
pub(super) async fn write(
    conn: &mut MySqlConnection,
    planned: &Planned<'_>,
    events: &[NewEvent],
    now: Timestamp,
) -> Result<(), StoreError> {
    if planned.rows.is_empty() && planned.entries.is_empty() && events.is_empty() {
        return Ok(());
    }
    let rows = json(planned.rows.iter().map(RowArg::from))?;
    let entries = json(
        planned
            .entries
            .iter()
            .map(|(entry, actor)| EntryArg::new(entry, actor)),
    )?;
    let events = json(events.iter().map(|event| {
        EventArg(
            event.event_type.as_str(),
            event.seller_id.as_str(),
            event.data.as_str(),
        )
    }))?;
    sqlx::query(CALL_WRITE)
        .bind(rows)
        .bind(entries)
        .bind(events)
        .bind(now.naive_utc())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A sales target's key as owned text, for matching rows to inputs.
fn key_of_target(key: crate::domain::SalesTargetKey<'_>) -> [String; 4] {
    [
        key.seller_id.as_str().to_owned(),
        key.parent_asin.as_str().to_owned(),
        key.market_place_id.as_str().to_owned(),
        key.period.as_str().to_owned(),
    ]
}

/// An inventory row's key as owned text, for matching rows to inputs.
fn key_of_row(key: crate::domain::InventoryKey<'_>) -> [String; 3] {
    [
        key.seller_id.as_str().to_owned(),
        key.market_place_id.as_str().to_owned(),
        key.seller_sku.as_str().to_owned(),
    ]
}
