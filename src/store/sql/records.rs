//! Reads, the same SQL on both databases: one row by id, pages of rows (sales targets,
//! inventory, low stock, the ledger, reservations), lookups, and the consistency check; and the
//! delete of a sales target. (Each backend writes its own upserts, in its own dialect:
//! `sqlite/upsert.rs`, `mysql/upsert.rs`; stock writes are in `stock.rs`.)

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, marks, Filter, Value};
use super::{Backend, Shared};
use crate::domain::{
    Asin, ConsistencyReport, Inconsistency, Inventory, InventoryFilter, InventoryLookup, Issue,
    LedgerEntry, LedgerFilter, LowStockFilter, Marketplace, Note, PageRequest, Period, Reservation,
    ReservationFilter, ReservationItem, ReservationStatus, SalesTargetFilter, Scope, SellerId,
    SellerSku, StockLevel,
};
use crate::store::rows::{
    InventoryRow, LedgerRow, ReservationItemRow, ReservationRow, SalesTargetRow, Text,
    INVENTORY_COLUMNS, LEDGER_COLUMNS, RESERVATION_COLUMNS, SALES_TARGET_COLUMNS,
};
use crate::store::{Listed, StoreError};

/// A table of records: its name, the columns its row struct reads, and the filters of its list.
pub(in crate::store) trait Table {
    const NAME: &'static str;
    const COLUMNS: &'static str;
    type Row;
    type Filter;

    /// The list's filters as conditions.
    fn filter<'a>(filter: &'a Self::Filter, scope: &'a Scope) -> Filter<'a>;
}

pub(in crate::store) struct SalesTargetTable;

impl Table for SalesTargetTable {
    const NAME: &'static str = "sales_targets";
    const COLUMNS: &'static str = SALES_TARGET_COLUMNS;
    type Row = SalesTargetRow;
    type Filter = SalesTargetFilter;

    fn filter<'a>(f: &'a SalesTargetFilter, scope: &'a Scope) -> Filter<'a> {
        Filter::default()
            .eq("seller_id", f.seller_id.as_ref().map(SellerId::as_str))
            .eq("parent_asin", f.parent_asin.as_ref().map(Asin::as_str))
            .eq(
                "market_place_id",
                f.market_place_id.as_ref().map(Marketplace::as_str),
            )
            .eq("period", f.period.as_ref().map(Period::as_str))
            .scope(scope)
    }
}

pub(in crate::store) struct InventoryTable;

impl Table for InventoryTable {
    const NAME: &'static str = "inventory";
    const COLUMNS: &'static str = INVENTORY_COLUMNS;
    type Row = InventoryRow;
    type Filter = InventoryFilter;

    fn filter<'a>(f: &'a InventoryFilter, scope: &'a Scope) -> Filter<'a> {
        Filter::default()
            .eq("seller_id", f.seller_id.as_ref().map(SellerId::as_str))
            .eq(
                "market_place_id",
                f.market_place_id.as_ref().map(Marketplace::as_str),
            )
            .eq("parent_asin", f.parent_asin.as_ref().map(Asin::as_str))
            .eq("child_asin", f.child_asin.as_ref().map(Asin::as_str))
            .eq("seller_sku", f.seller_sku.as_ref().map(SellerSku::as_str))
            .scope(scope)
    }
}

pub(in crate::store) struct ReservationTable;

impl Table for ReservationTable {
    const NAME: &'static str = "reservations";
    const COLUMNS: &'static str = RESERVATION_COLUMNS;
    type Row = ReservationRow;
    type Filter = ReservationFilter;

    fn filter<'a>(f: &'a ReservationFilter, scope: &'a Scope) -> Filter<'a> {
        Filter::default()
            .eq("seller_id", f.seller_id.as_ref().map(SellerId::as_str))
            .eq(
                "market_place_id",
                f.market_place_id.as_ref().map(Marketplace::as_str),
            )
            .eq("status", f.status.map(ReservationStatus::as_str))
            .eq("reference_id", f.reference_id.as_ref().map(|r| r.as_str()))
            .scope(scope)
    }
}

/// The conditions of a stock level or worse, on columns of `inventory`.
fn level_or_worse(level: StockLevel) -> &'static str {
    match level {
        StockLevel::OutOfStock => "inventory - reserved <= 0",
        StockLevel::Critical => {
            "inventory - reserved <= 0 \
             OR (critical_threshold IS NOT NULL AND inventory - reserved <= critical_threshold)"
        }
        StockLevel::Warning | StockLevel::Ok => {
            "inventory - reserved <= 0 \
             OR (critical_threshold IS NOT NULL AND inventory - reserved <= critical_threshold) \
             OR (warning_threshold IS NOT NULL AND inventory - reserved <= warning_threshold)"
        }
    }
}

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
    for<'r> ReservationRow: FromRow<'r, DB::Row>,
    for<'r> ReservationItemRow: FromRow<'r, DB::Row>,
    for<'r> RowTotals: FromRow<'r, DB::Row>,
    for<'r> EntryNumbers: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// One page of `SELECT columns FROM from filter ORDER BY order`, and how many rows match in
    /// all. Call inside a transaction, so that the two agree.
    async fn page<'a, R>(
        conn: &mut DB::Connection,
        columns: &str,
        from: &str,
        filter: &Filter<'a>,
        order: &str,
        page: PageRequest,
    ) -> Result<Listed<R>, StoreError>
    where
        for<'r> R: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let (conditions, values) = filter.to_sql();
        let count_sql = format!("SELECT COUNT(*) FROM {from}{conditions}");
        let (total,): (i64,) = bind(sqlx::query_as(&count_sql), &values)
            .fetch_one(&mut *conn)
            .await?;
        let rows_sql =
            format!("SELECT {columns} FROM {from}{conditions} ORDER BY {order} LIMIT ? OFFSET ?");
        let items = bind(sqlx::query_as(&rows_sql), &values)
            .bind(i64::from(page.size))
            .bind(page.offset())
            .fetch_all(&mut *conn)
            .await?;
        Ok(Listed {
            items,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    /// The row of table `T` with this id, or `NotFound`.
    pub async fn get<T: Table>(conn: &mut DB::Connection, id: i64) -> Result<T::Row, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let sql = format!("SELECT {} FROM {} WHERE id = ?", T::COLUMNS, T::NAME);
        Ok(sqlx::query_as(&sql).bind(id).fetch_one(&mut *conn).await?)
    }

    /// One page of the rows of `T` matching `filter` within `scope`, ordered by id, and how many
    /// match in all. Call inside a transaction.
    pub async fn list<T: Table>(
        conn: &mut DB::Connection,
        filter: &T::Filter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<T::Row>, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let filter = T::filter(filter, scope);
        Self::page(conn, T::COLUMNS, T::NAME, &filter, "id", page).await
    }

    /// Deletes the row of `T` with this id if its seller is in `scope`, returning what was
    /// deleted; else `NotFound`. Call inside a transaction.
    pub async fn delete<T: Table>(
        conn: &mut DB::Connection,
        id: i64,
        scope: &Scope,
    ) -> Result<T::Row, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let (conditions, values) = Filter::default()
            .eq_int("id", Some(id))
            .scope(scope)
            .to_sql();
        let select = format!(
            "SELECT {} FROM {}{conditions}{}",
            T::COLUMNS,
            T::NAME,
            DB::LOCK_ROWS
        );
        let row = bind(sqlx::query_as(&select), &values)
            .fetch_one(&mut *conn)
            .await?;
        let delete = format!("DELETE FROM {} WHERE id = ?", T::NAME);
        sqlx::query(&delete).bind(id).execute(&mut *conn).await?;
        Ok(row)
    }

    /// Rows at `filter.level` or worse within `scope`, least available first.
    pub async fn low_stock(
        conn: &mut DB::Connection,
        filter: &LowStockFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        let conditions = Filter::default()
            .eq("seller_id", filter.seller_id.as_ref().map(SellerId::as_str))
            .eq(
                "market_place_id",
                filter.market_place_id.as_ref().map(Marketplace::as_str),
            )
            .condition(level_or_worse(filter.level))
            .scope(scope);
        let order = "inventory - reserved, id";
        Self::page::<InventoryRow>(
            conn,
            INVENTORY_COLUMNS,
            "inventory",
            &conditions,
            order,
            page,
        )
        .await
        .map(Listed::convert)
    }

    /// The rows `lookup` names, in its order; `None` where no row exists within `scope`.
    pub async fn lookup(
        conn: &mut DB::Connection,
        lookup: &InventoryLookup,
        scope: &Scope,
    ) -> Result<Vec<Option<Inventory>>, StoreError> {
        let mut found: Vec<Inventory> = Vec::new();
        match lookup {
            InventoryLookup::Ids(ids) => {
                for chunk in ids.chunks(200) {
                    let sql = format!(
                        "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE id IN ({})",
                        marks(chunk.len())
                    );
                    let values: Vec<Value> = chunk.iter().map(|id| Value::Int(*id)).collect();
                    let rows: Vec<InventoryRow> = bind(sqlx::query_as(&sql), &values)
                        .fetch_all(&mut *conn)
                        .await?;
                    found.extend(rows.into_iter().map(Inventory::from));
                }
            }
            InventoryLookup::Keys(keys) => {
                for chunk in keys.chunks(100) {
                    let one = "(seller_id = ? AND market_place_id = ? AND seller_sku = ?)";
                    let sql = format!(
                        "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE {}",
                        vec![one; chunk.len()].join(" OR ")
                    );
                    let values: Vec<Value> = chunk
                        .iter()
                        .flat_map(|(seller, market, sku)| {
                            [seller.as_str(), market.as_str(), sku.as_str()].map(Value::Text)
                        })
                        .collect();
                    let rows: Vec<InventoryRow> = bind(sqlx::query_as(&sql), &values)
                        .fetch_all(&mut *conn)
                        .await?;
                    found.extend(rows.into_iter().map(Inventory::from));
                }
            }
        }
        found.retain(|row| scope.allows(&row.seller_id));
        Ok(match lookup {
            InventoryLookup::Ids(ids) => {
                let by_id: HashMap<i64, &Inventory> = found.iter().map(|r| (r.id, r)).collect();
                ids.iter()
                    .map(|id| by_id.get(id).map(|r| (*r).clone()))
                    .collect()
            }
            InventoryLookup::Keys(keys) => {
                let by_key: HashMap<_, &Inventory> = found
                    .iter()
                    .map(|r| ((&r.seller_id, &r.market_place_id, &r.seller_sku), r))
                    .collect();
                keys.iter()
                    .map(|(s, m, k)| by_key.get(&(s, m, k)).map(|r| (*r).clone()))
                    .collect()
            }
        })
    }

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
