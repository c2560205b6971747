//! The MySQL 8 / MariaDB 10.6+ backend, for production.
//!
//! Written in the SQL both servers accept (no `RETURNING`; upserts in the
//! `ON DUPLICATE KEY UPDATE col = VALUES(col)` form). Every operation runs on a pooled
//! connection in a transaction of its own, begun and committed here, and is repeated from the
//! start when InnoDB picks it as a deadlock victim (`error.rs`). The statements shared with
//! SQLite are in `store/sql/`; this backend's upserts in `upsert.rs`.

pub(super) mod error;
mod upsert;

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySql, MySqlConnection, MySqlPool};

use super::sql::{InventoryTable, Operation, SalesTargetTable, Shared};
use super::{ConnectError, Listed, Store, StoreError, StoreOptions};
use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};
use error::retry_on_deadlock;
use upsert::Upsert;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

type Sql = Shared<MySql>;

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

    /// Runs `operation` in a transaction of its own, from the start again after a deadlock.
    async fn transaction<A: Sync, T>(
        &self,
        args: &A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError> {
        retry_on_deadlock(|| async move {
            let mut tx = self.pool.begin().await?;
            let out = operation(&mut tx, args).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Runs `operation` on a pooled connection, outside any transaction (single reads).
    async fn read<A: Sync, T>(
        &self,
        args: &A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        operation(&mut conn, args).await
    }

    /// Upserts `items` (distinct keys) in one transaction and returns the stored rows in input
    /// order, as this transaction wrote them.
    async fn upsert<T: Upsert>(&self, items: &[T]) -> Result<Vec<T::Stored>, StoreError> {
        self.transaction(&(items, Timestamp::now()), |conn, (items, now)| {
            Box::pin(async move {
                upsert::insert(conn, items, *now).await?;
                upsert::read_back(conn, items).await
            })
        })
        .await
    }
}

#[async_trait::async_trait]
impl Store for MySqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        let mut stored = self.upsert(std::slice::from_ref(item)).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        self.upsert(&items).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        self.read(&id, |conn, id| {
            Box::pin(Sql::get::<SalesTargetTable>(conn, *id))
        })
        .await
        .map(Into::into)
    }

    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        let args = (filter, scope, page);
        self.transaction(&args, |conn, (filter, scope, page)| {
            Box::pin(Sql::list::<SalesTargetTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn delete_sales_target(&self, id: i64, scope: &Scope) -> Result<SalesTarget, StoreError> {
        self.transaction(&(id, scope), |conn, (id, scope)| {
            Box::pin(Sql::delete::<SalesTargetTable>(conn, *id, scope))
        })
        .await
        .map(Into::into)
    }

    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError> {
        let mut stored = self.upsert(std::slice::from_ref(item)).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
    ) -> Result<Vec<Inventory>, StoreError> {
        self.upsert(&items).await
    }

    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        self.read(&id, |conn, id| {
            Box::pin(Sql::get::<InventoryTable>(conn, *id))
        })
        .await
        .map(Into::into)
    }

    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        let args = (filter, scope, page);
        self.transaction(&args, |conn, (filter, scope, page)| {
            Box::pin(Sql::list::<InventoryTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn delete_inventory(&self, id: i64, scope: &Scope) -> Result<Inventory, StoreError> {
        self.transaction(&(id, scope), |conn, (id, scope)| {
            Box::pin(Sql::delete::<InventoryTable>(conn, *id, scope))
        })
        .await
        .map(Into::into)
    }

    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        self.transaction(user, |conn, user| {
            Box::pin(async move {
                let id = Sql::create_user(conn, user).await?;
                Sql::get_user(conn, id).await
            })
        })
        .await
    }

    async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        self.read(&id, |conn, id| Box::pin(Sql::get_user(conn, *id)))
            .await
    }

    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        self.read(&username, |conn, username| {
            Box::pin(Sql::find_login(conn, username))
        })
        .await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError> {
        self.transaction(&page, |conn, page| Box::pin(Sql::list_users(conn, *page)))
            .await
    }

    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        self.transaction(&(id, patch), |conn, (id, patch)| {
            Box::pin(async move {
                Sql::update_user(conn, *id, patch).await?;
                Sql::get_user(conn, *id).await
            })
        })
        .await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        self.read(&(), |conn, ()| Box::pin(Sql::count_users(conn)))
            .await
    }

    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        self.transaction(&(user_id, token), |conn, (user_id, token)| {
            Box::pin(Sql::insert_refresh_token(conn, *user_id, token))
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // Two rotations of one token can deadlock in InnoDB (the winner's insert needs a gap
        // lock beside the index entry the loser waits on); the repeated loser then finds the
        // token used, which is the answer it should get.
        let args = (presented_hash, next_hash, expires_at);
        self.transaction(&args, |conn, (presented, next, expires_at)| {
            Box::pin(Sql::rotate_refresh_token(
                conn,
                presented,
                next,
                *expires_at,
            ))
        })
        .await
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError> {
        self.transaction(&token_hash, |conn, token_hash| {
            Box::pin(Sql::revoke_refresh_family(conn, token_hash))
        })
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
