//! Get, list and delete of sales targets and inventory rows: the same SQL on both databases.
//! (Each backend writes its own upserts, in its own dialect: `sqlite/upsert.rs`,
//! `mysql/upsert.rs`.)

use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Backend, Shared};
use crate::domain::{
    Asin, InventoryFilter, Marketplace, PageRequest, Period, SalesTargetFilter, Scope, SellerId,
    SellerSku,
};
use crate::store::rows::{InventoryRow, SalesTargetRow, INVENTORY_COLUMNS, SALES_TARGET_COLUMNS};
use crate::store::{Listed, StoreError};

/// A table of records: its name, the columns its row struct reads, and the filters of its list.
pub(in crate::store) trait Table {
    const NAME: &'static str;
    const COLUMNS: &'static str;
    type Row;
    type Filter;

    /// The equality conditions of a list query: constant column names and the values to bind.
    fn conditions(filter: &Self::Filter) -> Vec<(&'static str, &str)>;
}

pub(in crate::store) struct SalesTargetTable;

impl Table for SalesTargetTable {
    const NAME: &'static str = "sales_targets";
    const COLUMNS: &'static str = SALES_TARGET_COLUMNS;
    type Row = SalesTargetRow;
    type Filter = SalesTargetFilter;

    fn conditions(f: &SalesTargetFilter) -> Vec<(&'static str, &str)> {
        present([
            ("seller_id", f.seller_id.as_ref().map(SellerId::as_str)),
            ("parent_asin", f.parent_asin.as_ref().map(Asin::as_str)),
            (
                "market_place_id",
                f.market_place_id.as_ref().map(Marketplace::as_str),
            ),
            ("period", f.period.as_ref().map(Period::as_str)),
        ])
    }
}

pub(in crate::store) struct InventoryTable;

impl Table for InventoryTable {
    const NAME: &'static str = "inventory";
    const COLUMNS: &'static str = INVENTORY_COLUMNS;
    type Row = InventoryRow;
    type Filter = InventoryFilter;

    fn conditions(f: &InventoryFilter) -> Vec<(&'static str, &str)> {
        present([
            ("seller_id", f.seller_id.as_ref().map(SellerId::as_str)),
            (
                "market_place_id",
                f.market_place_id.as_ref().map(Marketplace::as_str),
            ),
            ("parent_asin", f.parent_asin.as_ref().map(Asin::as_str)),
            ("child_asin", f.child_asin.as_ref().map(Asin::as_str)),
            ("seller_sku", f.seller_sku.as_ref().map(SellerSku::as_str)),
        ])
    }
}

/// The filters that were given.
fn present<'a, const N: usize>(
    filters: [(&'static str, Option<&'a str>); N],
) -> Vec<(&'static str, &'a str)> {
    filters
        .into_iter()
        .filter_map(|(column, value)| Some((column, value?)))
        .collect()
}

/// `conditions` restricted to `scope`, as SQL (`col = ? AND ...`, empty for none) and the values
/// to bind, in order.
fn where_clause<'a>(
    conditions: Vec<(&'static str, &'a str)>,
    scope: &'a Scope,
) -> (String, Vec<&'a str>) {
    let mut parts: Vec<String> = Vec::new();
    let mut binds: Vec<&'a str> = Vec::new();
    for (column, value) in conditions {
        parts.push(format!("{column} = ?"));
        binds.push(value);
    }
    if let Scope::Sellers(sellers) = scope {
        if sellers.is_empty() {
            parts.push("1 = 0".to_owned());
        } else {
            let marks = vec!["?"; sellers.len()].join(", ");
            parts.push(format!("seller_id IN ({marks})"));
            binds.extend(sellers.iter().map(SellerId::as_str));
        }
    }
    (parts.join(" AND "), binds)
}

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// The row of table `T` with this id, or `NotFound`.
    pub async fn get<T: Table>(conn: &mut DB::Connection, id: i64) -> Result<T::Row, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let sql = format!("SELECT {} FROM {} WHERE id = ?", T::COLUMNS, T::NAME);
        Ok(sqlx::query_as(&sql).bind(id).fetch_one(&mut *conn).await?)
    }

    /// One page of the rows of `T` matching `filter` within `scope`, ordered by id, and how many
    /// match in all. Call inside a transaction, so that the two agree.
    pub async fn list<T: Table>(
        conn: &mut DB::Connection,
        filter: &T::Filter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<T::Row>, StoreError>
    where
        for<'r> T::Row: FromRow<'r, DB::Row> + Send + Unpin,
    {
        let (conditions, binds) = where_clause(T::conditions(filter), scope);
        let where_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {conditions}")
        };
        let count_sql = format!("SELECT COUNT(*) FROM {}{where_sql}", T::NAME);
        let rows_sql = format!(
            "SELECT {} FROM {}{where_sql} ORDER BY id LIMIT ? OFFSET ?",
            T::COLUMNS,
            T::NAME
        );
        let mut count = sqlx::query_scalar::<DB, i64>(&count_sql);
        let mut rows = sqlx::query_as::<DB, T::Row>(&rows_sql);
        for value in &binds {
            count = count.bind(*value);
            rows = rows.bind(*value);
        }
        let total = count.fetch_one(&mut *conn).await?;
        let items = rows
            .bind(i64::from(page.size))
            .bind(page.offset())
            .fetch_all(&mut *conn)
            .await?;
        Ok(Listed {
            items,
            total: u64::try_from(total).unwrap_or_default(),
        })
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
        let (in_scope, binds) = where_clause(Vec::new(), scope);
        let and_in_scope = if in_scope.is_empty() {
            String::new()
        } else {
            format!(" AND {in_scope}")
        };
        let select = format!(
            "SELECT {} FROM {} WHERE id = ?{and_in_scope}{}",
            T::COLUMNS,
            T::NAME,
            DB::LOCK_ROWS
        );
        let mut query = sqlx::query_as::<DB, T::Row>(&select).bind(id);
        for value in binds {
            query = query.bind(value);
        }
        let row = query.fetch_one(&mut *conn).await?;
        let delete = format!("DELETE FROM {} WHERE id = ?", T::NAME);
        sqlx::query(&delete).bind(id).execute(&mut *conn).await?;
        Ok(row)
    }
}
