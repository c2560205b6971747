//! Checkpoints of the write-ahead log, off the writer's thread.
//!
//! With WAL, a commit appends the pages it changed to the log; a checkpoint copies them back
//! into the database file and flushes both to disk (with `synchronous=NORMAL`, the only
//! flushes there are). By default SQLite checkpoints inside the commit that takes the log past
//! 1,000 pages, so on the one writer's thread: under a write load the queue then stood still
//! while the disk flushed, several times a second (bench/RESULTS.md, "Checkpoints off the
//! writer"). Here a task of its own checkpoints on a connection of its own, shortly after
//! writes. Its checkpoints are PASSIVE: they copy what they can without ever waiting for the
//! writer or a reader, and the writer goes on appending meanwhile.
//!
//! The writer's own automatic checkpoint stays, at `BACKSTOP_PAGES`: should this task fall
//! behind or stop, the log still cannot grow without bound.

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The writer checkpoints by itself only once the log holds this many pages (4 KiB each):
/// ten times SQLite's default, and a size this task's checkpoints keep it far below.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The least time between two checkpoints, so that under a write load each copies what a few
/// groups wrote (a page written again meanwhile is copied once) rather than one group at a
/// time. Short, because a checkpoint's size is what the writer feels: the disk's flush of a
/// large one stalls the appends to the log. Measured against 20, 100 and 500 ms
/// (bench/RESULTS.md, "Checkpoints off the writer"): the same throughput as 20 ms, and the
/// lowest p99 (500 ms doubled it).
const PAUSE: Duration = Duration::from_millis(5);

/// The checkpointing task and its connection; the task stops at `close` or when this is
/// dropped.
pub(super) struct Checkpointer {
    task: JoinHandle<()>,
    pool: SqlitePool,
}

impl Checkpointer {
    /// Opens a connection of its own (not a reader's: a checkpoint waits on the disk) and
    /// checkpoints through it after each time `written` is notified.
    pub(super) async fn start(
        connect: SqliteConnectOptions,
        written: Arc<Notify>,
    ) -> Result<Self, sqlx::Error> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        let checkpoints = pool.clone();
        let task = tokio::spawn(async move {
            let mut wrote = std::pin::pin!(written.notified());
            loop {
                wrote.as_mut().await;
                // Made before the checkpoint, so that a write from now on (while it copies or
                // pauses) wakes the next round: the end of a burst is not left in the log.
                wrote.set(written.notified());
                checkpoint(&checkpoints).await;
                tokio::time::sleep(PAUSE).await;
            }
        });
        Ok(Self { task, pool })
    }

    /// Stops the task, then closes its connection.
    pub(super) async fn close(&self) {
        self.task.abort();
        self.pool.close().await;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One PASSIVE checkpoint. A failure is logged and left to the next one (or to the backstop):
/// nothing is lost by a checkpoint that did not run, the log only stays longer.
async fn checkpoint(pool: &SqlitePool) {
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "checkpoint of the SQLite write-ahead log failed");
    }
}
