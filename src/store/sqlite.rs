//! The SQLite backend: the development default, and a fine single-node production store.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent requests race for the
//! write lock (and surface "database is locked"), every write goes through a pool of exactly
//! one connection, so writes queue fairly inside the application; reads use their own pool and,
//! thanks to WAL, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::group_commit::Queue;
use super::{
    in_input_order, inventory_conditions, inventory_input_key, inventory_key, list_rows,
    push_inventory_values, push_sales_values, sales_conditions, sales_input_key, sales_key,
    scope_condition, ConnectError, InventoryRow, Listed, SalesTargetRow, Store, StoreError,
    StoreOptions, Table, INVENTORY, INVENTORY_INSERT, SALES_INSERT, SALES_TARGETS,
};
use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another process (a backup, the shell tool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Single-row upserts, written in groups (see `group_commit`).
    sales: Queue<SalesTargetInput, SalesTarget>,
    inventory: Queue<InventoryInput, Inventory>,
    /// Reads by id, coalesced the same way into `WHERE id IN (...)`.
    sales_reads: Queue<i64, Option<SalesTarget>>,
    inventory_reads: Queue<i64, Option<Inventory>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, ConnectError> {
        let connect = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing on a process crash; only an OS crash or power
            // loss can roll back the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A local file cannot go stale under us; the default ping before every use would
            // double the hand-offs to the connection's worker thread (see bench/RESULTS.md).
            .test_before_acquire(false)
            // An in-memory database lives only as long as its connection.
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            // Writes queue here, so the wait may be long under load; the 30 s request timeout
            // bounds it.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await?;
        MIGRATOR.run(&writer).await?;

        // Separate readers need a file; an in-memory database reads through its one connection.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?
        };
        let sales = {
            let writer = writer.clone();
            Queue::start(sales_input_key, move |items: Vec<SalesTargetInput>| {
                let writer = writer.clone();
                async move { write_sales_targets(&writer, &items).await }
            })
        };
        let inventory = {
            let writer = writer.clone();
            Queue::start(inventory_input_key, move |items: Vec<InventoryInput>| {
                let writer = writer.clone();
                async move { write_inventories(&writer, &items).await }
            })
        };
        let sales_reads = {
            let reader = reader.clone();
            Queue::start(
                |id: &i64| *id,
                move |ids: Vec<i64>| {
                    let reader = reader.clone();
                    async move {
                        rows_by_ids::<SalesTargetRow, SalesTarget>(&reader, SALES_TARGETS, &ids)
                            .await
                    }
                },
            )
        };
        let inventory_reads = {
            let reader = reader.clone();
            Queue::start(
                |id: &i64| *id,
                move |ids: Vec<i64>| {
                    let reader = reader.clone();
                    async move { rows_by_ids::<InventoryRow, Inventory>(&reader, INVENTORY, &ids).await }
                },
            )
        };
        Ok(Self {
            writer,
            reader,
            sales,
            inventory,
            sales_reads,
            inventory_reads,
        })
    }

    async fn delete<R>(&self, table: Table, id: i64, scope: &Scope) -> Result<R, StoreError>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let (scope_sql, binds) = scope_condition(scope);
        let sql = format!(
            "DELETE FROM {} WHERE id = ?{scope_sql} RETURNING {}",
            table.name, table.columns
        );
        let mut query = sqlx::query_as::<_, R>(&sql).bind(id);
        for value in binds {
            query = query.bind(value);
        }
        Ok(query.fetch_one(&self.writer).await?)
    }
}

/// `at` as the text sqlx stores for a `NaiveDateTime` on SQLite (`%F %T%.f`), formatted once per
/// statement instead of once per bound value: formatting was ~9% of a batch's CPU.
fn sqlite_timestamp(at: Timestamp) -> String {
    at.naive_utc().format("%F %T%.f").to_string()
}

/// Upserts distinct-key sales targets with one multi-row statement (all or none), returning
/// the stored rows in input order. Batches and the group-commit queue both write through it.
async fn write_sales_targets(
    writer: &SqlitePool,
    items: &[SalesTargetInput],
) -> Result<Vec<SalesTarget>, StoreError> {
    let now = sqlite_timestamp(Timestamp::now());
    let mut qb = QueryBuilder::<Sqlite>::new(SALES_INSERT);
    push_sales_values(&mut qb, items, now.as_str());
    qb.push(
        " ON CONFLICT (seller_id, parent_asin, market_place_id, period) DO UPDATE SET \
           sales_target_cents = excluded.sales_target_cents, update_time = excluded.update_time \
         RETURNING ",
    )
    .push(SALES_TARGETS.columns);
    let rows: Vec<SalesTargetRow> = qb.build_query_as().fetch_all(writer).await?;
    let rows = rows.into_iter().map(SalesTarget::from).collect();
    in_input_order(items, rows, sales_input_key, sales_key)
}

/// Upserts distinct-key inventory rows with one multi-row statement (all or none), returning
/// the stored rows in input order. Batches and the group-commit queue both write through it.
async fn write_inventories(
    writer: &SqlitePool,
    items: &[InventoryInput],
) -> Result<Vec<Inventory>, StoreError> {
    let now = sqlite_timestamp(Timestamp::now());
    let mut qb = QueryBuilder::<Sqlite>::new(INVENTORY_INSERT);
    push_inventory_values(&mut qb, items, now.as_str());
    qb.push(
        " ON CONFLICT (seller_id, market_place_id, seller_sku) DO UPDATE SET \
           parent_asin = excluded.parent_asin, child_asin = excluded.child_asin, \
           inventory = excluded.inventory, update_time = excluded.update_time \
         RETURNING ",
    )
    .push(INVENTORY.columns);
    let rows: Vec<InventoryRow> = qb.build_query_as().fetch_all(writer).await?;
    let rows = rows.into_iter().map(Inventory::from).collect();
    in_input_order(items, rows, inventory_input_key, inventory_key)
}

/// The rows of `table` with these (distinct) ids, in the order of `ids`; `None` where none.
async fn rows_by_ids<Row, T>(
    reader: &SqlitePool,
    table: Table,
    ids: &[i64],
) -> Result<Vec<Option<T>>, StoreError>
where
    Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    T: From<Row> + HasId,
{
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {} FROM {} WHERE id IN (",
        table.columns, table.name
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
    let rows: Vec<Row> = qb.build_query_as().fetch_all(reader).await?;
    let mut by_id: std::collections::HashMap<i64, T> = rows
        .into_iter()
        .map(T::from)
        .map(|row| (row.id(), row))
        .collect();
    Ok(ids.iter().map(|id| by_id.remove(id)).collect())
}

/// A stored record's id, for matching coalesced reads to their requests.
trait HasId {
    fn id(&self) -> i64;
}

impl HasId for SalesTarget {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for Inventory {
    fn id(&self) -> i64 {
        self.id
    }
}

/// Users and refresh tokens: the SQL shared with the other backend.
mod auth {
    auth_queries!(sqlx::Sqlite, "");
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        self.sales.submit(item.clone()).await
    }

    async fn upsert_sales_targets(
        &self,
        items: &[SalesTargetInput],
    ) -> Result<Vec<SalesTarget>, StoreError> {
        write_sales_targets(&self.writer, items).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        self.sales_reads
            .submit(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        list_rows::<_, SalesTargetRow>(
            &self.reader,
            SALES_TARGETS,
            sales_conditions(filter),
            scope,
            page,
        )
        .await
        .map(Listed::convert)
    }

    async fn delete_sales_target(&self, id: i64, scope: &Scope) -> Result<SalesTarget, StoreError> {
        self.delete::<SalesTargetRow>(SALES_TARGETS, id, scope)
            .await
            .map(Into::into)
    }

    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError> {
        self.inventory.submit(item.clone()).await
    }

    async fn upsert_inventories(
        &self,
        items: &[InventoryInput],
    ) -> Result<Vec<Inventory>, StoreError> {
        write_inventories(&self.writer, items).await
    }

    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        self.inventory_reads
            .submit(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        list_rows::<_, InventoryRow>(
            &self.reader,
            INVENTORY,
            inventory_conditions(filter),
            scope,
            page,
        )
        .await
        .map(Listed::convert)
    }

    async fn delete_inventory(&self, id: i64, scope: &Scope) -> Result<Inventory, StoreError> {
        self.delete::<InventoryRow>(INVENTORY, id, scope)
            .await
            .map(Into::into)
    }

    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let id = auth::create_user(&self.writer, user).await?;
        auth::get_user(&self.writer, id).await
    }

    async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        auth::get_user(&self.reader, id).await
    }

    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        auth::find_login(&self.reader, username).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError> {
        auth::list_users(&self.reader, page).await
    }

    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        auth::update_user(&self.writer, id, patch).await?;
        auth::get_user(&self.writer, id).await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        auth::count_users(&self.reader).await
    }

    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        auth::insert_refresh_token(&self.writer, user_id, token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Rotation, StoreError> {
        auth::rotate_refresh_token(&self.writer, presented_hash, next_hash, expires_at).await
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError> {
        auth::revoke_refresh_family(&self.writer, token_hash).await
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
