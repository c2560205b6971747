//! The SQLite backend: the development default, and a fine single-node production store.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent requests race for the
//! write lock, every write goes through one queue (`writer.rs`) that owns the only writer
//! connection and writes what is waiting in groups, one transaction per group. Reads use their
//! own pool and, thanks to WAL, never wait for the writer; reads by id are coalesced
//! (`reads.rs`). This file is the backend's `Engine` (`store/engine.rs` builds the `Store` on
//! it); its upserts are in `upsert.rs`; the statements shared with MySQL are in `store/sql/`,
//! run inside the writer's transactions or on a reader.

mod checkpoint;
pub(super) mod error;
mod reads;
mod time;
mod upsert;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::engine::{pool_gauges, Engine};
use super::sql::{InventoryTable, Operation, SalesTargetTable};
use super::{ConnectError, Durability, StoreError, StoreGauges, StoreOptions};
use crate::domain::stockroom::{Answer, ReservationOp};
use crate::domain::{Actor, Inventory, InventoryInput, SalesTarget, SalesTargetInput};
use checkpoint::Checkpointer;
use reads::Reads;
use upsert::Encoded;
use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another process (a backup, the shell tool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer_pool: SqlitePool,
    reader: SqlitePool,
    writer: Writer,
    sales_targets: Reads<SalesTarget>,
    inventory: Reads<Inventory>,
    /// Notified after writes commit (`Store::event_signal`).
    events: std::sync::Arc<tokio::sync::Notify>,
    /// Checkpoints the write-ahead log off the writer's thread (none for an in-memory
    /// database, which has no log).
    checkpointer: Option<Checkpointer>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, ConnectError> {
        let connect = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
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
            // The log is checkpointed by a task of its own (`checkpoint.rs`); the writer only
            // as a backstop.
            .connect_with(
                connect
                    .clone()
                    .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES.to_string()),
            )
            .await?;
        MIGRATOR.run(&writer_pool).await?;

        // Separate readers need a file; an in-memory database reads through its one
        // connection, between the writer's groups.
        let reader = if in_memory {
            writer_pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.sqlite_readers())
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.clone())
                .await?
        };
        let events = std::sync::Arc::default();
        let checkpointer = if in_memory {
            None
        } else {
            Some(Checkpointer::start(connect, std::sync::Arc::clone(&events)).await?)
        };
        Ok(Self {
            checkpointer,
            writer: Writer::start(writer_pool.clone(), std::sync::Arc::clone(&events)),
            sales_targets: Reads::start::<SalesTargetTable>(reader.clone()),
            inventory: Reads::start::<InventoryTable>(reader.clone()),
            writer_pool,
            reader,
            events,
        })
    }
}

#[async_trait::async_trait]
impl Engine for SqliteStore {
    type DB = Sqlite;

    /// None: the one writer commits in the order of its times (each group takes its time when
    /// the group before it has committed, and `Timestamp::now` only moves forward), so a
    /// reader that has seen a time has seen every write at or before it (docs/sync.md).
    const SYNC_LAG: Duration = Duration::ZERO;

    /// Runs `operation` in the write queue, inside its group's transaction.
    async fn write<A, T>(
        &self,
        args: A,
        operation: Operation<SqliteConnection, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.writer.run(args, operation).await
    }

    /// Runs `operation` on a reader, in a transaction so that its statements see one state of
    /// the database; readers never wait for the writer.
    async fn read<A, T>(
        &self,
        args: &A,
        operation: Operation<SqliteConnection, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync,
        T: Send,
    {
        let mut tx = self.reader.begin().await?;
        let out = operation(&mut tx, args).await?;
        tx.commit().await?;
        Ok(out)
    }

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

    /// In the write queue, run together with the other reservation operations of its group.
    async fn reservation(&self, op: ReservationOp) -> Result<Answer, StoreError> {
        self.writer.reservation(op).await
    }

    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        self.writer
            .upsert(Encoded::all(items)?, &Actor::system())
            .await
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
    ) -> Result<Vec<Inventory>, StoreError> {
        self.writer.upsert(Encoded::all(items)?, actor).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<Option<SalesTarget>, StoreError> {
        self.sales_targets.get(id).await
    }

    async fn get_inventory(&self, id: i64) -> Result<Option<Inventory>, StoreError> {
        self.inventory.get(id).await
    }

    /// The readers' pool (the writer's one connection is the queue's), and the queue.
    fn gauges(&self) -> StoreGauges {
        let (in_use, idle) = pool_gauges(&self.reader);
        StoreGauges {
            connections_in_use: in_use,
            connections_idle: idle,
            write_queue_depth: Some(self.writer.queue_depth()),
        }
    }

    async fn close(&self) {
        self.reader.close().await;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        self.writer_pool.close().await;
    }

    fn event_signal(&self) -> &std::sync::Arc<tokio::sync::Notify> {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PRAGMA synchronous` of the writer and of a reader, opened with `durability`.
    async fn synchronous_of(durability: Durability) -> (i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("durability.db").display());
        let store = SqliteStore::connect(&StoreOptions {
            url,
            max_connections: Some(2),
            acquire_timeout: Duration::from_secs(5),
            durability,
        })
        .await
        .unwrap();
        let writer = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer_pool)
            .await
            .unwrap();
        let reader = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        store.close().await;
        (writer, reader)
    }

    #[tokio::test]
    async fn every_connection_commits_as_durably_as_configured() {
        // SQLite's numbers: NORMAL is 1, FULL is 2.
        assert_eq!(synchronous_of(Durability::Full).await, (2, 2));
        assert_eq!(synchronous_of(Durability::Normal).await, (1, 1));
    }

    /// The size of the reader pool opened with `max_connections`.
    async fn readers_of(max_connections: Option<u32>) -> u32 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("readers.db").display());
        let store = SqliteStore::connect(&StoreOptions {
            url,
            max_connections,
            acquire_timeout: Duration::from_secs(5),
            durability: Durability::Normal,
        })
        .await
        .unwrap();
        let readers = store.reader.options().get_max_connections();
        store.close().await;
        readers
    }

    #[tokio::test]
    async fn the_writer_checkpoints_the_log_only_as_a_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&file_options(&dir)).await.unwrap();
        let writer: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.writer_pool)
            .await
            .unwrap();
        assert_eq!(writer, i64::from(checkpoint::BACKSTOP_PAGES));
        store.close().await;
    }

    #[tokio::test]
    async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&file_options(&dir)).await.unwrap();
        let file = dir.path().join("store.db");
        let before = std::fs::metadata(&file).unwrap().len();
        // ~570 log frames (pages) of rows, ledger entries and events: short of SQLite's default
        // threshold (1,000), far short of the writer's backstop, so only the checkpointer can
        // have copied them from the log into the file.
        for batch in 0..10 {
            let items = (0..100)
                .map(|n| writer::tests::inventory(batch * 100 + n))
                .collect();
            store
                .upsert_inventories(items, &Actor::system())
                .await
                .unwrap();
        }
        let grown = |len: u64| len >= before + 1024 * 1024;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !grown(std::fs::metadata(&file).unwrap().len()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes (log: {} bytes)",
                std::fs::metadata(&file).unwrap().len(),
                std::fs::metadata(dir.path().join("store.db-wal")).map_or(0, |m| m.len()),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.close().await;
    }

    fn file_options(dir: &tempfile::TempDir) -> StoreOptions {
        StoreOptions {
            url: format!("sqlite://{}", dir.path().join("store.db").display()),
            max_connections: Some(2),
            acquire_timeout: Duration::from_secs(5),
            durability: Durability::Normal,
        }
    }

    #[tokio::test]
    async fn readers_default_to_one_per_core_and_at_least_two() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(readers_of(None).await as usize, cores.max(2));
        assert_eq!(readers_of(Some(1)).await, 1);
        assert_eq!(readers_of(Some(12)).await, 12);
    }
}
