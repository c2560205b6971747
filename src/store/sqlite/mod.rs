//! The SQLite backend: the development default, and a fine single-node production store.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent requests race for the
//! write lock, every write goes through one queue (`writer.rs`) that owns the only writer
//! connection and writes what is waiting in groups, one transaction per group. Reads use their
//! own pool and, thanks to WAL, never wait for the writer; reads by id are coalesced
//! (`reads.rs`). This backend's upserts are in `upsert.rs`; the statements shared with MySQL
//! in `store/sql/`, run here inside the writer's transactions or on a reader.

pub(super) mod error;
mod reads;
mod supervisor;
mod time;
mod upsert;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::sql::{InventoryTable, Operation, SalesTargetTable, Shared};
use super::{ConnectError, Listed, Store, StoreError, StoreOptions};
use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};
use reads::Reads;
use upsert::Encoded;
use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another process (a backup, the shell tool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Sql = Shared<Sqlite>;

pub struct SqliteStore {
    writer_pool: SqlitePool,
    reader: SqlitePool,
    writer: Writer,
    sales_targets: Reads<SalesTarget>,
    inventory: Reads<Inventory>,
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

        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            // A local file cannot go stale under us; the default ping before every use would
            // double the hand-offs to the connection's worker thread (see bench/RESULTS.md).
            .test_before_acquire(false)
            // An in-memory database lives only as long as its connection.
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            // The write queue takes the connection once per group; anything else waits its
            // turn, bounded by the 30 s request timeout.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await?;
        MIGRATOR.run(&writer_pool).await?;

        // Separate readers need a file; an in-memory database reads through its one
        // connection, between the writer's groups.
        let reader = if in_memory {
            writer_pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?
        };
        Ok(Self {
            writer: Writer::start(writer_pool.clone()),
            sales_targets: Reads::start::<SalesTargetTable>(reader.clone()),
            inventory: Reads::start::<InventoryTable>(reader.clone()),
            writer_pool,
            reader,
        })
    }

    /// Runs a read-only `operation` on a reader, in a transaction so that its statements see
    /// one state of the database.
    async fn read<A: Sync, T>(
        &self,
        args: &A,
        operation: Operation<SqliteConnection, A, T>,
    ) -> Result<T, StoreError> {
        let mut tx = self.reader.begin().await?;
        let out = operation(&mut tx, args).await?;
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if !(self.writer.is_running()
            && self.sales_targets.is_running()
            && self.inventory.is_running())
        {
            return Err(StoreError::Unavailable);
        }
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        let row = Encoded::new(item.clone())?;
        let mut stored = self.writer.upsert(vec![row]).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        self.writer.upsert(Encoded::all(items)?).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        self.sales_targets
            .get(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        let args = (filter, scope, page);
        self.read(&args, |conn, (filter, scope, page)| {
            Box::pin(Sql::list::<SalesTargetTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn delete_sales_target(&self, id: i64, scope: &Scope) -> Result<SalesTarget, StoreError> {
        self.writer
            .run((id, scope.clone()), |conn, (id, scope)| {
                Box::pin(Sql::delete::<SalesTargetTable>(conn, *id, scope))
            })
            .await
            .map(Into::into)
    }

    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError> {
        let row = Encoded::new(item.clone())?;
        let mut stored = self.writer.upsert(vec![row]).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
    ) -> Result<Vec<Inventory>, StoreError> {
        self.writer.upsert(Encoded::all(items)?).await
    }

    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        self.inventory.get(id).await?.ok_or(StoreError::NotFound)
    }

    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        let args = (filter, scope, page);
        self.read(&args, |conn, (filter, scope, page)| {
            Box::pin(Sql::list::<InventoryTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn delete_inventory(&self, id: i64, scope: &Scope) -> Result<Inventory, StoreError> {
        self.writer
            .run((id, scope.clone()), |conn, (id, scope)| {
                Box::pin(Sql::delete::<InventoryTable>(conn, *id, scope))
            })
            .await
            .map(Into::into)
    }

    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        self.writer
            .run(user.clone(), |conn, user| {
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
        self.read(&page, |conn, page| Box::pin(Sql::list_users(conn, *page)))
            .await
    }

    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        self.writer
            .run((id, patch.clone()), |conn, (id, patch)| {
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
        self.writer
            .run((user_id, token.clone()), |conn, (user_id, token)| {
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
        let args = (presented_hash.to_owned(), next_hash.to_owned(), expires_at);
        self.writer
            .run(args, |conn, (presented, next, expires_at)| {
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
        self.writer
            .run(token_hash.to_owned(), |conn, token_hash| {
                Box::pin(Sql::revoke_refresh_family(conn, token_hash))
            })
            .await
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer_pool.close().await;
    }
}
