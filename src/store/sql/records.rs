//! Records by table, the same SQL on both databases: one row by id, pages of rows (sales
//! targets, inventory, reservations, low stock), lookups, and the delete of a sales target.
//! (Each backend writes its own upserts, in its own dialect: `sqlite/upsert.rs`,
//! `mysql/upsert.rs`; stock writes are in `stock.rs` and `reservations.rs`; the ledger and
//! the consistency check in `books.rs`.)

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, marks, Filter, Value};
use super::{Backend, Shared};
use crate::domain::{
    Asin, Inventory, InventoryFilter, InventoryLookup, LowStockFilter, Marketplace, PageRequest,
    Period, ReservationFilter, ReservationStatus, SalesTargetFilter, Scope, SellerId, SellerSku,
    StockLevel, SyncPosition, Timestamp,
};
use crate::store::rows::{
    InventoryRow, ReservationRow, SalesTargetRow, Text, INVENTORY_COLUMNS, RESERVATION_COLUMNS,
    SALES_TARGET_COLUMNS,
};
use crate::store::{Listed, StoreError, Synced};

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
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// One page of `SELECT columns FROM from filter ORDER BY order`, and how many rows match in
    /// all. Call inside a transaction, so that the two agree.
    pub(super) async fn page<'a, R>(
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

    /// The row of `T` with this id if its seller is in `scope`, locked until the transaction
    /// ends; else `NotFound`. Call inside a transaction.
    pub async fn lock<T: Table>(
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
        Ok(bind(sqlx::query_as(&select), &values)
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Deletes the row of `T` with this id (found with `lock` first).
    pub async fn delete<T: Table>(conn: &mut DB::Connection, id: i64) -> Result<(), StoreError> {
        let delete = format!("DELETE FROM {} WHERE id = ?", T::NAME);
        sqlx::query(&delete).bind(id).execute(&mut *conn).await?;
        Ok(())
    }

    /// Up to `size` rows of `T` matching `filter` within `scope` that come after `after` in the
    /// order of incremental sync, (`update_time`, `id`), and whether more follow. With a
    /// `horizon`, only rows updated at or before it (docs/sync.md). One more row than asked
    /// is read to tell whether more follow; nothing is counted. Served by the index on
    /// (`update_time`, `id`).
    pub async fn changes<T: Table>(
        conn: &mut DB::Connection,
        filter: &T::Filter,
        scope: &Scope,
        after: SyncPosition,
        horizon: Option<Timestamp>,
        size: u32,
    ) -> Result<Synced<T::Row>, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let time = after.time.naive_utc();
        let mut filter = T::filter(filter, scope).condition_with(
            "update_time > ? OR (update_time = ? AND id > ?)",
            vec![Value::Time(time), Value::Time(time), Value::Int(after.id)],
        );
        if let Some(horizon) = horizon {
            filter =
                filter.condition_with("update_time <= ?", vec![Value::Time(horizon.naive_utc())]);
        }
        let (conditions, values) = filter.to_sql();
        let sql = format!(
            "SELECT {} FROM {}{conditions} ORDER BY update_time, id LIMIT ?",
            T::COLUMNS,
            T::NAME
        );
        let mut items: Vec<T::Row> = bind(sqlx::query_as(&sql), &values)
            .bind(i64::from(size) + 1)
            .fetch_all(&mut *conn)
            .await?;
        let has_next = items.len() > size as usize;
        items.truncate(size as usize);
        Ok(Synced { items, has_next })
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
}
