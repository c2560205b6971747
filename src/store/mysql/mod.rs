//! The MySQL 8 / MariaDB 10.6+ backend, for production.
//!
//! Written in the SQL both servers accept (no `RETURNING`; upserts in the
//! `ON DUPLICATE KEY UPDATE col = VALUES(col)` form). Upserts go through a write queue
//! (`writer.rs`) that writes those arriving together in one transaction; every other
//! operation runs on a pooled connection in a transaction of its own, begun and committed
//! here. Both are repeated from the start when InnoDB picks them as a deadlock victim
//! (`error.rs`). This file is the backend's `Engine` (`store/engine.rs` builds the `Store` on
//! it); the statements shared with SQLite are in `store/sql/`; this backend's upserts in
//! `upsert.rs`.

pub(super) mod error;
mod migrate;
mod upsert;
mod writer;

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySql, MySqlConnection, MySqlPool};

use super::engine::{pool_gauges, Engine};
use super::sql::{InventoryTable, Operation, SalesTargetTable, Shared};
use super::{ConnectError, StoreError, StoreGauges, StoreOptions};
use crate::domain::stockroom::{Answer, ReservationOp};
use crate::domain::{Actor, Inventory, InventoryInput, SalesTarget, SalesTargetInput, Timestamp};
use error::retry_on_deadlock;
use writer::Writer;

type Sql = Shared<MySql>;

/// Longest a write's transaction may run, from its first statement to its commit, before it is
/// rolled back and run again with a new time. The times a write stamps on its rows are taken
/// in the attempt, so a committed row's `update_time` is at most this old when the commit
/// begins: what lets incremental sync trust every time older than `SYNC_LAG` (docs/sync.md).
const MAX_WRITE_SPAN: Duration = Duration::from_secs(2);
/// How many times a write that overran `MAX_WRITE_SPAN` runs again before it is refused as
/// "database unavailable".
const OVERDUE_ATTEMPTS: u32 = 3;
/// Most writer tasks of the upsert queue (each holds a connection while work is waiting):
/// a quarter of the pool, from 1 to this.
const MAX_WRITERS: u32 = 4;

#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    /// Notified after writes commit (`Store::event_signal`).
    events: std::sync::Arc<tokio::sync::Notify>,
    /// The upserts' write queue.
    writer: std::sync::Arc<Writer>,
}

impl MySqlStore {
    /// Connects and applies pending migrations (under a lock, so several instances starting
    /// together apply each migration once: `migrate.rs`).
    pub async fn connect(options: &StoreOptions) -> Result<Self, ConnectError> {
        let url = options.url.replacen("mariadb:", "mysql:", 1);
        let connect = MySqlConnectOptions::from_str(&url)?.charset("utf8mb4");
        let connections = options.mysql_connections();
        let pool = MySqlPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        migrate::migrate(&pool).await?;
        let events = std::sync::Arc::default();
        let writers = (connections / 4).clamp(1, MAX_WRITERS);
        let writer = Writer::start(&pool, writers as usize, &events);
        Ok(Self {
            pool,
            events,
            writer: std::sync::Arc::new(writer),
        })
    }

    /// Runs a write in a transaction of its own, from the start again after a deadlock, or
    /// when it ran longer than `MAX_WRITE_SPAN` (rolled back, not committed: see there). Every
    /// operation that writes runs here; reads run in `read_transaction`. Both log (at `debug`,
    /// in the request's span) the wait for a pooled connection and `BEGIN` apart from the
    /// transaction's statements and `COMMIT`: MySQL's split of a slow request, as SQLite's
    /// write queue logs its queue wait and SQL time.
    async fn transaction<A: Sync, T>(
        &self,
        args: &A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError> {
        for _ in 0..OVERDUE_ATTEMPTS {
            let attempt = retry_on_deadlock(|| async move {
                let asked = Instant::now();
                let mut tx = self.pool.begin().await?;
                let began = Instant::now();
                let out = match operation(&mut tx, args).await {
                    Ok(_) if began.elapsed() > MAX_WRITE_SPAN => {
                        tx.rollback().await.map(|()| None).map_err(StoreError::from)
                    }
                    Ok(out) => tx
                        .commit()
                        .await
                        .map(|()| Some(out))
                        .map_err(StoreError::from),
                    Err(e) => Err(e),
                };
                log_timing(asked, began, out.is_ok());
                out
            })
            .await?;
            match attempt {
                Some(out) => {
                    // Committed: the event feed's long polls look again.
                    self.events.notify_waiters();
                    return Ok(out);
                }
                None => tracing::warn!(
                    limit_ms = MAX_WRITE_SPAN.as_millis() as u64,
                    "a write ran too long to commit with its times; running it again"
                ),
            }
        }
        Err(StoreError::Unavailable)
    }

    /// Runs an operation that only reads in a transaction of its own (one snapshot), from the
    /// start again after a deadlock.
    async fn read_transaction<A: Sync, T>(
        &self,
        args: &A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError> {
        retry_on_deadlock(|| async move {
            let asked = Instant::now();
            let mut tx = self.pool.begin().await?;
            let began = Instant::now();
            let out = operation(&mut tx, args).await;
            let out = match out {
                Ok(out) => tx.commit().await.map(|()| out).map_err(StoreError::from),
                Err(e) => Err(e),
            };
            log_timing(asked, began, out.is_ok());
            out
        })
        .await
    }
}

/// Logs (at `debug`) how long a transaction waited for its connection and `BEGIN` (from
/// `asked` to `began`) apart from its statements and `COMMIT` (since `began`).
fn log_timing(asked: Instant, began: Instant, ok: bool) {
    tracing::debug!(
        pool_wait_ms = millis(began - asked),
        sql_ms = millis(began.elapsed()),
        ok,
        "mysql transaction"
    );
}

/// `duration` in milliseconds, for a log field.
fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[async_trait::async_trait]
impl Engine for MySqlStore {
    type DB = MySql;

    /// Transactions commit in any order, not in the order of their times: a sync page holds
    /// rows only once every write that could have an earlier time has committed. A write
    /// commits within `MAX_WRITE_SPAN` of its first statement or not at all, which leaves 3 s
    /// for the commit itself (and for clocks of several instances to differ).
    const SYNC_LAG: Duration = Duration::from_secs(5);

    /// Runs `operation` in a transaction of its own, from the start again after a deadlock
    /// (or if it ran too long to commit, see `MAX_WRITE_SPAN`).
    async fn write<A, T>(
        &self,
        args: A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.transaction(&args, operation).await
    }

    /// Runs `operation` in a transaction too: its statements (a page and its count) then see
    /// one snapshot.
    async fn read<A, T>(
        &self,
        args: &A,
        operation: Operation<MySqlConnection, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync,
        T: Send,
    {
        self.read_transaction(args, operation).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_running() {
            return Err(StoreError::Unavailable);
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// One operation per transaction: InnoDB's row locks let other rows' operations run
    /// meanwhile.
    async fn reservation(&self, op: ReservationOp) -> Result<Answer, StoreError> {
        self.transaction(&op, |conn, op| {
            Box::pin(Shared::<MySql>::run_reservation(conn, op, Timestamp::now()))
        })
        .await
    }

    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        self.writer.sales_targets(items).await
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
    ) -> Result<Vec<Inventory>, StoreError> {
        self.writer.inventory(items, actor).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<Option<SalesTarget>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        found(Sql::get::<SalesTargetTable>(&mut conn, id).await)
    }

    async fn get_inventory(&self, id: i64) -> Result<Option<Inventory>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        found(Sql::get::<InventoryTable>(&mut conn, id).await)
    }

    fn gauges(&self) -> StoreGauges {
        let (in_use, idle) = pool_gauges(&self.pool);
        StoreGauges {
            connections_in_use: in_use,
            connections_idle: idle,
            write_queue_depth: Some(self.writer.queue_depth()),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn event_signal(&self) -> &std::sync::Arc<tokio::sync::Notify> {
        &self.events
    }
}

/// `Some(row)`, or `None` for `NotFound`.
fn found<R, T: From<R>>(read: Result<R, StoreError>) -> Result<Option<T>, StoreError> {
    match read {
        Ok(row) => Ok(Some(row.into())),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}
