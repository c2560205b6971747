//! The MySQL 8 / MariaDB 10.6+ backend, for production.
//!
//! Written in the SQL both servers accept: no `RETURNING`; upserts use
//! `ON DUPLICATE KEY UPDATE col = VALUES(col)` with `id = LAST_INSERT_ID(id)`, so that the
//! statement reports the id of the row it created or updated.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions, MySqlRow};
use sqlx::{FromRow, MySql, MySqlPool, QueryBuilder};

use super::{
    get_row, inventory_conditions, list_rows, sales_conditions, scope_condition, ConnectError,
    InventoryRow, Listed, SalesTargetRow, Store, StoreError, StoreOptions, Table, INVENTORY,
    SALES_TARGETS,
};
use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// InnoDB may pick concurrent upserts of one key as deadlock victims; the statement is safe to
/// repeat, so it is, this many times in all.
const DEADLOCK_ATTEMPTS: u32 = 5;
const ER_LOCK_DEADLOCK: u16 = 1213;

/// The server's error number (`1213`), when `e` comes from MySQL or MariaDB.
pub(super) fn error_number(e: &dyn DatabaseError) -> Option<u16> {
    e.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// An error that may be InnoDB choosing this transaction as a deadlock victim.
trait MaybeDeadlock {
    fn is_deadlock(&self) -> bool;
}

impl MaybeDeadlock for sqlx::Error {
    fn is_deadlock(&self) -> bool {
        matches!(self, sqlx::Error::Database(d) if error_number(&**d) == Some(ER_LOCK_DEADLOCK))
    }
}

impl MaybeDeadlock for StoreError {
    fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.is_deadlock())
    }
}

/// Runs `attempt` again while InnoDB reports a deadlock, with a short growing pause. Every
/// statement or transaction passed here is safe to repeat from the start.
async fn retry_on_deadlock<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: MaybeDeadlock,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_deadlock() && tries < DEADLOCK_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(2 << tries)).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    /// Connects and applies pending migrations (under the migrator's lock, so several
    /// instances starting together apply each migration once).
    pub async fn connect(options: &StoreOptions) -> Result<Self, ConnectError> {
        let url = options.url.replacen("mariadb:", "mysql:", 1);
        let connect = MySqlConnectOptions::from_str(&url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Reads the row under a lock, deletes it, and returns what was deleted.
    async fn delete<R>(&self, table: Table, id: i64, scope: &Scope) -> Result<R, StoreError>
    where
        R: for<'r> FromRow<'r, MySqlRow> + Send + Unpin,
    {
        let (scope_sql, binds) = scope_condition(scope);
        let select = format!(
            "SELECT {} FROM {} WHERE id = ?{scope_sql} FOR UPDATE",
            table.columns, table.name
        );
        let delete = format!("DELETE FROM {} WHERE id = ?", table.name);
        let mut tx = self.pool.begin().await?;
        let mut query = sqlx::query_as::<_, R>(&select).bind(id);
        for value in binds {
            query = query.bind(value);
        }
        let row = query.fetch_one(&mut *tx).await?;
        sqlx::query(&delete).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }
}

/// The columns a batch upsert writes.
const SALES_INSERT: &str = "INSERT INTO sales_targets \
     (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) ";
const INVENTORY_INSERT: &str = "INSERT INTO inventory \
     (seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, create_time, update_time) ";

/// Pushes the `VALUES (...), (...)` of a sales-target upsert.
fn push_sales_values<'a>(
    qb: &mut QueryBuilder<'a, MySql>,
    items: &'a [SalesTargetInput],
    now: NaiveDateTime,
) {
    qb.push_values(items, |mut row, item| {
        row.push_bind(item.seller_id.as_str())
            .push_bind(item.parent_asin.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.period.as_str())
            .push_bind(item.sales_target.cents())
            .push_bind(now)
            .push_bind(now);
    });
}

/// Pushes the `VALUES (...), (...)` of an inventory upsert.
fn push_inventory_values<'a>(
    qb: &mut QueryBuilder<'a, MySql>,
    items: &'a [InventoryInput],
    now: NaiveDateTime,
) {
    qb.push_values(items, |mut row, item| {
        row.push_bind(item.seller_id.as_str())
            .push_bind(item.parent_asin.as_str())
            .push_bind(item.child_asin.as_str())
            .push_bind(item.seller_sku.as_str())
            .push_bind(item.market_place_id.as_str())
            .push_bind(item.inventory.get())
            .push_bind(now)
            .push_bind(now);
    });
}

/// `rows` (in whatever order the database returned them) in the order of `inputs`, matched by
/// upsert key.
fn in_input_order<I, R, K>(
    inputs: &[I],
    rows: Vec<R>,
    input_key: impl Fn(&I) -> K,
    row_key: impl Fn(&R) -> K,
) -> Result<Vec<R>, StoreError>
where
    K: std::hash::Hash + Eq,
{
    let mut by_key: std::collections::HashMap<K, R> =
        rows.into_iter().map(|r| (row_key(&r), r)).collect();
    inputs
        .iter()
        .map(|input| {
            by_key
                .remove(&input_key(input))
                .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
        })
        .collect()
}

fn sales_key(t: &SalesTarget) -> (String, String, String, String) {
    (
        t.seller_id.as_str().to_owned(),
        t.parent_asin.as_str().to_owned(),
        t.market_place_id.as_str().to_owned(),
        t.period.as_str().to_owned(),
    )
}

fn sales_input_key(t: &SalesTargetInput) -> (String, String, String, String) {
    (
        t.seller_id.as_str().to_owned(),
        t.parent_asin.as_str().to_owned(),
        t.market_place_id.as_str().to_owned(),
        t.period.as_str().to_owned(),
    )
}

fn inventory_key(t: &Inventory) -> (String, String, String) {
    (
        t.seller_id.as_str().to_owned(),
        t.market_place_id.as_str().to_owned(),
        t.seller_sku.as_str().to_owned(),
    )
}

fn inventory_input_key(t: &InventoryInput) -> (String, String, String) {
    (
        t.seller_id.as_str().to_owned(),
        t.market_place_id.as_str().to_owned(),
        t.seller_sku.as_str().to_owned(),
    )
}

/// Users and refresh tokens: the SQL shared with the other backend.
mod auth {
    auth_queries!(sqlx::MySql, " FOR UPDATE");
}

impl MySqlStore {
    /// The batch upsert of sales targets, once; `upsert_sales_targets` retries it on deadlock.
    async fn try_upsert_sales_targets(
        &self,
        items: &[SalesTargetInput],
    ) -> Result<Vec<SalesTarget>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut insert = QueryBuilder::<MySql>::new(SALES_INSERT);
        push_sales_values(&mut insert, items, Timestamp::now().naive_utc());
        insert.push(
            " ON DUPLICATE KEY UPDATE \
               sales_target_cents = VALUES(sales_target_cents), update_time = VALUES(update_time)",
        );
        insert.build().execute(&mut *tx).await?;
        let mut select = QueryBuilder::<MySql>::new(format!(
            "SELECT {} FROM sales_targets WHERE (seller_id, parent_asin, market_place_id, period) IN ",
            SALES_TARGETS.columns
        ));
        select.push_tuples(items, |mut key, item| {
            key.push_bind(item.seller_id.as_str())
                .push_bind(item.parent_asin.as_str())
                .push_bind(item.market_place_id.as_str())
                .push_bind(item.period.as_str());
        });
        let rows: Vec<SalesTargetRow> = select.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(SalesTarget::from).collect())
    }

    /// The batch upsert of inventory, once; `upsert_inventories` retries it on deadlock.
    async fn try_upsert_inventories(
        &self,
        items: &[InventoryInput],
    ) -> Result<Vec<Inventory>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut insert = QueryBuilder::<MySql>::new(INVENTORY_INSERT);
        push_inventory_values(&mut insert, items, Timestamp::now().naive_utc());
        insert.push(
            " ON DUPLICATE KEY UPDATE \
               parent_asin = VALUES(parent_asin), child_asin = VALUES(child_asin), \
               inventory = VALUES(inventory), update_time = VALUES(update_time)",
        );
        insert.build().execute(&mut *tx).await?;
        let mut select = QueryBuilder::<MySql>::new(format!(
            "SELECT {} FROM inventory WHERE (seller_id, market_place_id, seller_sku) IN ",
            INVENTORY.columns
        ));
        select.push_tuples(items, |mut key, item| {
            key.push_bind(item.seller_id.as_str())
                .push_bind(item.market_place_id.as_str())
                .push_bind(item.seller_sku.as_str());
        });
        let rows: Vec<InventoryRow> = select.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Inventory::from).collect())
    }
}

#[async_trait::async_trait]
impl Store for MySqlStore {
    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        let rows = retry_on_deadlock(|| self.try_upsert_sales_targets(&items)).await?;
        in_input_order(&items, rows, sales_input_key, sales_key)
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
    ) -> Result<Vec<Inventory>, StoreError> {
        let rows = retry_on_deadlock(|| self.try_upsert_inventories(&items)).await?;
        in_input_order(&items, rows, inventory_input_key, inventory_key)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        let now = Timestamp::now().naive_utc();
        let done = retry_on_deadlock(|| {
            sqlx::query(
                "INSERT INTO sales_targets \
                   (seller_id, parent_asin, market_place_id, period, sales_target_cents, create_time, update_time) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), \
                   sales_target_cents = VALUES(sales_target_cents), update_time = VALUES(update_time)",
            )
            .bind(item.seller_id.as_str())
            .bind(item.parent_asin.as_str())
            .bind(item.market_place_id.as_str())
            .bind(item.period.as_str())
            .bind(item.sales_target.cents())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
        })
        .await?;
        // The id of the row created or updated (`id = LAST_INSERT_ID(id)` on update).
        let id = i64::try_from(done.last_insert_id())
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?;
        get_row::<_, SalesTargetRow>(&self.pool, SALES_TARGETS, id)
            .await
            .map(Into::into)
    }

    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        get_row::<_, SalesTargetRow>(&self.pool, SALES_TARGETS, id)
            .await
            .map(Into::into)
    }

    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        list_rows::<_, SalesTargetRow>(
            &self.pool,
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
        let now = Timestamp::now().naive_utc();
        let done = retry_on_deadlock(|| {
            sqlx::query(
                "INSERT INTO inventory \
                   (seller_id, parent_asin, child_asin, seller_sku, market_place_id, inventory, create_time, update_time) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), \
                   parent_asin = VALUES(parent_asin), child_asin = VALUES(child_asin), \
                   inventory = VALUES(inventory), update_time = VALUES(update_time)",
            )
            .bind(item.seller_id.as_str())
            .bind(item.parent_asin.as_str())
            .bind(item.child_asin.as_str())
            .bind(item.seller_sku.as_str())
            .bind(item.market_place_id.as_str())
            .bind(item.inventory.get())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
        })
        .await?;
        // The id of the row created or updated (`id = LAST_INSERT_ID(id)` on update).
        let id = i64::try_from(done.last_insert_id())
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?;
        get_row::<_, InventoryRow>(&self.pool, INVENTORY, id)
            .await
            .map(Into::into)
    }

    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        get_row::<_, InventoryRow>(&self.pool, INVENTORY, id)
            .await
            .map(Into::into)
    }

    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        list_rows::<_, InventoryRow>(
            &self.pool,
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
        let id = retry_on_deadlock(|| auth::create_user(&self.pool, user)).await?;
        auth::get_user(&self.pool, id).await
    }

    async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        auth::get_user(&self.pool, id).await
    }

    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        auth::find_login(&self.pool, username).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError> {
        auth::list_users(&self.pool, page).await
    }

    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        retry_on_deadlock(|| auth::update_user(&self.pool, id, patch)).await?;
        auth::get_user(&self.pool, id).await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        auth::count_users(&self.pool).await
    }

    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        auth::insert_refresh_token(&self.pool, user_id, token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // Two rotations of one token can deadlock in InnoDB (the winner's insert needs a gap
        // lock beside the index entry the loser waits on); the retried loser then finds the
        // token used, which is the answer it should get.
        retry_on_deadlock(|| {
            auth::rotate_refresh_token(&self.pool, presented_hash, next_hash, expires_at)
        })
        .await
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError> {
        retry_on_deadlock(|| auth::revoke_refresh_family(&self.pool, token_hash)).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
