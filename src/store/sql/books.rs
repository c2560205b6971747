//! The books, read: the stock ledger (every change to a row's units, newest first) and the
//! consistency check, which holds every row against the rules the ledger must keep
//! (`docs/stock.md`). The same SQL on both databases; reads only.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, Filter};
use super::{Backend, Shared};
use crate::domain::{
    ConsistencyReport, Inconsistency, Issue, LedgerEntry, LedgerFilter, Marketplace, Note,
    PageRequest, Scope, SellerId, SellerSku,
};
use crate::store::rows::{InventoryRow, LedgerRow, Text, LEDGER_COLUMNS};
use crate::store::{Listed, StoreError};

/// Per row: its numbers, what its ledger adds up to, and what its active reservations hold.
/// `CAST` because MySQL sums integers as DECIMAL.
const ROW_TOTALS: &str = "\
    SELECT i.id, i.seller_id, i.seller_sku, i.inventory, i.reserved, \
        COALESCE(l.quantity, 0), COALESCE(l.reserved, 0), COALESCE(h.held, 0) \
    FROM inventory i \
    LEFT JOIN (SELECT inventory_id, CAST(SUM(quantity_change) AS SIGNED INTEGER) AS quantity, \
            CAST(SUM(reserved_change) AS SIGNED INTEGER) AS reserved \
        FROM inventory_ledger GROUP BY inventory_id) l ON l.inventory_id = i.id \
    LEFT JOIN (SELECT it.inventory_id, CAST(SUM(it.quantity) AS SIGNED INTEGER) AS held \
        FROM reservation_items it JOIN reservations r ON r.id = it.reservation_id \
        WHERE r.status = 'active' GROUP BY it.inventory_id) h ON h.inventory_id = i.id";

/// Ledger entries of existing rows whose numbers do not follow: `after` is not `before` plus
/// the change, or `before` is not the previous entry's `after` (zero for a row's first entry).
const BROKEN_ENTRIES: &str = "\
    SELECT e.inventory_id, e.id, e.inventory_before, e.inventory_after, e.quantity_change, \
        e.reserved_before, e.reserved_after, e.reserved_change, \
        COALESCE(e.previous_inventory, 0), COALESCE(e.previous_reserved, 0) \
    FROM (SELECT l.*, \
            LAG(inventory_after) OVER (PARTITION BY inventory_id ORDER BY id) AS previous_inventory, \
            LAG(reserved_after) OVER (PARTITION BY inventory_id ORDER BY id) AS previous_reserved \
        FROM inventory_ledger l WHERE inventory_id IN (SELECT id FROM inventory)) e \
    WHERE e.inventory_after <> e.inventory_before + e.quantity_change \
        OR e.reserved_after <> e.reserved_before + e.reserved_change \
        OR e.inventory_before <> COALESCE(e.previous_inventory, 0) \
        OR e.reserved_before <> COALESCE(e.previous_reserved, 0) \
    ORDER BY e.inventory_id, e.id";

type RowTotals = (i64, Text, Text, i64, i64, i64, i64, i64);
type EntryNumbers = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> InventoryRow: FromRow<'r, DB::Row>,
    for<'r> LedgerRow: FromRow<'r, DB::Row>,
    for<'r> RowTotals: FromRow<'r, DB::Row>,
    for<'r> EntryNumbers: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Ledger entries matching `filter` within `scope`, newest first.
    pub async fn ledger(
        conn: &mut DB::Connection,
        filter: &LedgerFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<LedgerEntry>, StoreError> {
        let conditions = Filter::default()
            .eq_int("inventory_id", filter.inventory_id)
            .eq("seller_id", filter.seller_id.as_ref().map(SellerId::as_str))
            .eq(
                "market_place_id",
                filter.market_place_id.as_ref().map(Marketplace::as_str),
            )
            .eq(
                "seller_sku",
                filter.seller_sku.as_ref().map(SellerSku::as_str),
            )
            .eq("type", filter.entry_type.map(|t| t.as_str()))
            .eq_int("operator_id", filter.operator_id)
            .eq("reference", filter.reference.as_ref().map(Note::as_str))
            .since("create_time", filter.since)
            .until("create_time", filter.until)
            .scope(scope);
        Self::page::<LedgerRow>(
            conn,
            LEDGER_COLUMNS,
            "inventory_ledger",
            &conditions,
            "id DESC",
            page,
        )
        .await
        .map(Listed::convert)
    }

    /// Whether the ledger has entries of the row with this id (which may be deleted).
    pub async fn has_ledger(
        conn: &mut DB::Connection,
        inventory_id: i64,
    ) -> Result<bool, StoreError> {
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM inventory_ledger WHERE inventory_id = ? LIMIT 1")
                .bind(inventory_id)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(found.is_some())
    }

    /// Checks every row (of one seller, if given) against the rules of the books: nothing
    /// oversold, `reserved` equal to what active reservations hold, and a ledger that adds up
    /// to the row and whose entries follow one from another. Reads only.
    pub async fn check_consistency(
        conn: &mut DB::Connection,
        seller: Option<&SellerId>,
    ) -> Result<ConsistencyReport, StoreError> {
        let (conditions, values) = Filter::default()
            .eq("i.seller_id", seller.map(SellerId::as_str))
            .to_sql();
        let totals = format!("{ROW_TOTALS}{conditions} ORDER BY i.id");
        let rows: Vec<RowTotals> = bind(sqlx::query_as(&totals), &values)
            .fetch_all(&mut *conn)
            .await?;
        let broken: Vec<EntryNumbers> =
            sqlx::query_as(BROKEN_ENTRIES).fetch_all(&mut *conn).await?;
        let mut broken_by_row: HashMap<i64, Vec<EntryNumbers>> = HashMap::new();
        for entry in broken {
            broken_by_row.entry(entry.0).or_default().push(entry);
        }

        let mut report = ConsistencyReport::default();
        for (id, seller_id, sku, inventory, reserved, ledger_quantity, ledger_reserved, held) in
            rows
        {
            report.checked += 1;
            let problem = |issue, field, entry_id, expected, actual| Inconsistency {
                inventory_id: id,
                seller_id: SellerId::from_stored(seller_id.0.clone()),
                seller_sku: SellerSku::from_stored(sku.0.clone()),
                issue,
                field,
                entry_id,
                expected,
                actual,
            };
            let mut found = Vec::new();
            if inventory < reserved {
                found.push(problem(
                    Issue::Oversold,
                    "available",
                    None,
                    0,
                    inventory - reserved,
                ));
            }
            if reserved != held {
                found.push(problem(
                    Issue::ReservedMismatch,
                    "reserved",
                    None,
                    held,
                    reserved,
                ));
            }
            if inventory != ledger_quantity {
                found.push(problem(
                    Issue::LedgerMismatch,
                    "inventory",
                    None,
                    ledger_quantity,
                    inventory,
                ));
            }
            if reserved != ledger_reserved {
                found.push(problem(
                    Issue::LedgerMismatch,
                    "reserved",
                    None,
                    ledger_reserved,
                    reserved,
                ));
            }
            for e in broken_by_row.remove(&id).unwrap_or_default() {
                let (
                    _,
                    entry,
                    inv_before,
                    inv_after,
                    qc,
                    res_before,
                    res_after,
                    rc,
                    prev_inv,
                    prev_res,
                ) = e;
                let (expected, actual) = if inv_after != inv_before + qc {
                    (inv_before + qc, inv_after)
                } else if res_after != res_before + rc {
                    (res_before + rc, res_after)
                } else if inv_before != prev_inv {
                    (prev_inv, inv_before)
                } else {
                    (prev_res, res_before)
                };
                found.push(problem(
                    Issue::LedgerMismatch,
                    "ledger_entry",
                    Some(entry),
                    expected,
                    actual,
                ));
            }
            if !found.is_empty() {
                report.inconsistent += 1;
                report.details.extend(found);
            }
        }
        Ok(report)
    }
}
