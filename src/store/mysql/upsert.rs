//! The upserts of MySQL/MariaDB: the SQL of each table, and how rows are written with it,
//! inside the transaction the caller holds: the write queue's (`writer.rs`), for the rows of
//! every upsert request of its group together. Only the repeated `(?, ?, …)` groups of a
//! multi-row statement are built in code; upserts use the
//! `ON DUPLICATE KEY UPDATE col = VALUES(col)` form that MySQL 8 and MariaDB both accept. Each
//! table costs a fixed number of statements whatever the number of rows; the events of the
//! changes are returned, for the caller to write once for its whole transaction (they take
//! the event lock, which is best held only from the last statement to the commit).

use std::collections::HashMap;

use sqlx::{MySql, MySqlConnection, QueryBuilder};

use crate::domain::{
    Actor, EntryNotes, Inventory, InventoryInput, NewEntry, NewEvent, SalesTarget,
    SalesTargetInput, Timestamp, UpsertWrite,
};
use crate::store::rows::{InventoryRow, SalesTargetRow, INVENTORY_COLUMNS, SALES_TARGET_COLUMNS};
use crate::store::sql::Shared;
use crate::store::StoreError;

/// Followed by `VALUES (...), ...` in this column order, then `ON_DUPLICATE_SALES_TARGET`.
const INSERT_SALES_TARGETS: &str = "INSERT INTO sales_targets \
    (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) ";
/// Every write moves the version, and `update_time` forward: past the stored one if a writer
/// that took its time earlier got the row's lock later (docs/sync.md).
const ON_DUPLICATE_SALES_TARGET: &str = " ON DUPLICATE KEY UPDATE \
    sales_target_cents = VALUES(sales_target_cents), \
    update_time = GREATEST(VALUES(update_time), update_time + INTERVAL 1 MICROSECOND), \
    version = version + 1";
/// Followed by `((?, ?, ?, ?), ...)`, the keys of the rows just written.
const SELECT_SALES_TARGETS_BY_KEY: &str =
    "WHERE (seller_id, parent_asin, market_place_id, period) IN ";

/// Followed by `VALUES (...), ...`: makes sure a row exists for every key, and locks it. A row
/// inserted here has version 0 until the upsert finishes it, so that this transaction can tell
/// the rows it created (nobody else sees an uncommitted row, and committed rows have versions
/// from 1).
const CLAIM_INVENTORY: &str = "INSERT INTO inventory \
    (seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, reserved, \
    version, create_time, update_time) ";
const ON_DUPLICATE_CLAIM: &str = " ON DUPLICATE KEY UPDATE id = id";
/// Followed by `((?, ?, ?), ...)`, the keys of the rows just claimed. A plain read: the claim
/// already holds every one of them under an exclusive lock (a locking read of a row-value
/// `IN` list could lock far more than the rows it finds, and deadlock with other batches).
const SELECT_INVENTORY_BY_KEY: &str = "WHERE (seller_id, market_place_id, seller_sku) IN ";
/// Followed by `(?, ...)`, the ids of the existing rows found by key (a plain read, which
/// locks nothing): locks them in id order before the claim, as every stock operation locks
/// its rows, so that an upsert and a release of the same two rows cannot each hold the lock
/// the other waits for (the claim, in key order, then only meets rows already its own).
const LOCK_INVENTORY_BY_ID: &str = "SELECT id FROM inventory WHERE id IN ";
/// Followed by `VALUES (...), ...` of rows that exist: writes each by id.
const WRITE_INVENTORY: &str = "INSERT INTO inventory \
    (id, seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, reserved, \
    version, create_time, update_time) ";
const ON_DUPLICATE_INVENTORY: &str = " ON DUPLICATE KEY UPDATE \
    parent_asin = VALUES(parent_asin), child_asin = VALUES(child_asin), \
    inventory = VALUES(inventory), version = VALUES(version), update_time = VALUES(update_time)";

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

/// Creates or updates `items` (distinct keys) and returns them as stored, in input order, with
/// the events to write for them.
pub(super) async fn sales_targets(
    conn: &mut MySqlConnection,
    items: &[&SalesTargetInput],
    now: Timestamp,
) -> Result<(Vec<SalesTarget>, Vec<NewEvent>), StoreError> {
    let now = now.naive_utc();
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
    let mut insert = QueryBuilder::<MySql>::new(INSERT_SALES_TARGETS);
    insert.push_values(&order, |mut row, item| {
        row.push_bind(item.seller_id.as_str())
            .push_bind(item.parent_asin.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.period.as_str())
            .push_bind(item.sales_target.cents())
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(ON_DUPLICATE_SALES_TARGET);
    insert.build().execute(&mut *conn).await?;

    let mut select = QueryBuilder::<MySql>::new(format!(
        "SELECT {SALES_TARGET_COLUMNS} FROM sales_targets {SELECT_SALES_TARGETS_BY_KEY}"
    ));
    select.push_tuples(items, |mut key, item| {
        key.push_bind(item.seller_id.as_str())
            .push_bind(item.parent_asin.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.period.as_str());
    });
    let rows: Vec<SalesTargetRow> = select.build_query_as().fetch_all(&mut *conn).await?;
    let rows: Vec<SalesTarget> = rows.into_iter().map(SalesTarget::from).collect();
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

/// Creates or updates `items` (distinct keys, each with the actor whose request it is) with
/// their ledger entries, as `InventoryInput::plan` says, and returns them as stored, in input
/// order, with the events to write for the rows that changed. Runs in a `READ COMMITTED`
/// transaction (`writer.rs`): the rows are found by a plain read before they are locked, and
/// every later plain read must see them as they are once locked, not as that first read's
/// snapshot had them.
pub(super) async fn inventory(
    conn: &mut MySqlConnection,
    items: &[(&InventoryInput, &Actor)],
    now: Timestamp,
) -> Result<(Vec<Inventory>, Vec<NewEvent>), StoreError> {
    // Existing rows are locked in id order (below), new ones claimed in key order, so that
    // two groups sharing keys, or a group and a stock operation, queue rather than deadlock.
    let mut order: Vec<&InventoryInput> = items.iter().map(|(item, _)| *item).collect();
    order.sort_by(|a, b| {
        (
            a.seller_id.as_str(),
            a.market_place_id.as_str(),
            a.seller_sku.as_str(),
        )
            .cmp(&(
                b.seller_id.as_str(),
                b.market_place_id.as_str(),
                b.seller_sku.as_str(),
            ))
    });
    let mut find = QueryBuilder::<MySql>::new(format!(
        "SELECT id FROM inventory {SELECT_INVENTORY_BY_KEY}"
    ));
    find.push_tuples(&order, |mut key, item| {
        key.push_bind(item.seller_id.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.seller_sku.as_str());
    });
    let mut ids: Vec<i64> = find.build_query_scalar().fetch_all(&mut *conn).await?;
    if !ids.is_empty() {
        ids.sort_unstable();
        let mut lock = QueryBuilder::<MySql>::new(LOCK_INVENTORY_BY_ID);
        lock.push_tuples(&ids, |mut id, value| {
            id.push_bind(*value);
        });
        lock.push(" ORDER BY id FOR UPDATE");
        lock.build().execute(&mut *conn).await?;
    }
    let time = now.naive_utc();
    let mut claim = QueryBuilder::<MySql>::new(CLAIM_INVENTORY);
    claim.push_values(&order, |mut row, item| {
        row.push_bind(item.seller_id.as_str())
            .push_bind(item.parent_asin.as_str())
            .push_bind(item.child_asin.as_str())
            .push_bind(item.seller_sku.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.inventory.get())
            .push_bind(0)
            .push_bind(0)
            .push_bind(time)
            .push_bind(time);
    });
    claim.push(ON_DUPLICATE_CLAIM);
    claim.build().execute(&mut *conn).await?;

    let mut select = QueryBuilder::<MySql>::new(format!(
        "SELECT {INVENTORY_COLUMNS} FROM inventory {SELECT_INVENTORY_BY_KEY}"
    ));
    select.push_tuples(&order, |mut key, item| {
        key.push_bind(item.seller_id.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.seller_sku.as_str());
    });
    let rows: Vec<InventoryRow> = select.build_query_as().fetch_all(&mut *conn).await?;
    let rows: Vec<Inventory> = rows.into_iter().map(Inventory::from).collect();
    let rows = in_input_order(
        items,
        rows,
        |(i, _)| key_of_row(i.key()),
        |r| key_of_row(r.key()),
    )?;

    let mut written = Vec::new();
    let mut entries = Vec::new();
    let mut events = Vec::new();
    let mut stored = Vec::with_capacity(items.len());
    for (&(item, actor), row) in items.iter().zip(rows) {
        let id = row.id;
        // Version 0: this transaction just inserted the row (see `CLAIM_INVENTORY`).
        let existing = (row.version > 0).then_some(row);
        let level_before = existing.as_ref().map(Inventory::stock_level);
        let mut plan = item.clone().plan(existing, now);
        plan.row.id = id;
        if plan.write != UpsertWrite::Nothing {
            events.push(NewEvent::inventory_updated(&plan.row));
            events.extend(level_before.and_then(|before| NewEvent::low_warning(before, &plan.row)));
            written.push(plan.row.clone());
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
                notes: EntryNotes::default(),
            };
            entries.push((entry, actor));
        }
        stored.push(plan.row);
    }
    if !written.is_empty() {
        let mut write = QueryBuilder::<MySql>::new(WRITE_INVENTORY);
        write.push_values(&written, |mut row, r| {
            row.push_bind(r.id)
                .push_bind(r.seller_id.as_str())
                .push_bind(r.parent_asin.as_str())
                .push_bind(r.child_asin.as_str())
                .push_bind(r.seller_sku.as_str())
                .push_bind(r.market_place_id.as_str())
                .push_bind(r.inventory.get())
                .push_bind(r.reserved)
                .push_bind(r.version)
                .push_bind(r.create_time.naive_utc())
                .push_bind(r.update_time.naive_utc());
        });
        write.push(ON_DUPLICATE_INVENTORY);
        write.build().execute(&mut *conn).await?;
    }
    let entries: Vec<(&NewEntry, &Actor)> = entries.iter().map(|(e, a)| (e, *a)).collect();
    Shared::<MySql>::insert_entries_of(conn, &entries, now).await?;
    Ok((stored, events))
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
