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
//! Only a writer can start the log over from its beginning, and only when it begins a
//! transaction with every page of the log already copied. Under a steady write load the next
//! group begins before this task catches up, so the log grows until the writer's own automatic
//! checkpoint, kept at `BACKSTOP_PAGES`, runs in a commit: by then this task has copied nearly
//! all of it, so that checkpoint is short, and the log starts over. The `-wal` file therefore
//! reaches ~40 MB under load (SQLite reuses it rather than shrinking it).
//!
//! Not under `supervise`: the task runs no code that can panic but a statement whose failure
//! it logs, and were it gone, the writer's backstop would still checkpoint: no request waits
//! or fails for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The writer checkpoints by itself only once the log holds this many pages (4 KiB each, so
/// ~40 MB): ten times SQLite's default. A lower one was not measured.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The least time between two checkpoints, so that under a write load each copies what a few
/// groups wrote (a page written again meanwhile is copied once) rather than one group at a
/// time. Short, because a checkpoint's size is what the writer feels: the larger each was, the
/// higher the p99. Measured against 20, 100 and 500 ms (bench/RESULTS.md, "Checkpoints off the
/// writer"): the same throughput as 20 ms, and the lowest p99 (500 ms doubled it).
const PAUSE: Duration = Duration::from_millis(5);

/// Copies what it can of the log into the database file without waiting for anyone; answers
/// one row: `busy` (1 if it could not run at all), the pages in the log, the pages copied.
const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// The checkpointing task and its connection; the task stops at `close` or when this is
/// dropped.
pub(super) struct Checkpointer {
    task: JoinHandle<()>,
    pool: SqlitePool,
}

impl Checkpointer {
    /// Opens a connection of its own (not a reader's: a checkpoint waits on the disk) and
    /// checkpoints through it after writes (each time `written` is notified), until the log is
    /// copied.
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
            // Once at the start too: a write may have come before this task first ran.
            let mut behind = true;
            loop {
                if !behind {
                    wrote.as_mut().await;
                }
                // Made before the checkpoint, so that a write from now on (while it copies or
                // pauses) wakes the next round: the end of a burst is not left in the log.
                wrote.set(written.notified());
                behind = !checkpoint(&checkpoints).await;
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

/// One PASSIVE checkpoint; true when it copied the whole log. A checkpoint that could not copy
/// everything (a reader still needed older pages, or the writer's backstop held the lock)
/// leaves the rest to the next round, even with no write to wake it. A failure is logged and
/// left to the next write (or to the backstop): nothing is lost by a checkpoint that did not
/// run, the log only stays longer.
async fn checkpoint(pool: &SqlitePool) -> bool {
    let began = Instant::now();
    match sqlx::query_as::<_, (i64, i64, i64)>(CHECKPOINT)
        .fetch_one(pool)
        .await
    {
        Ok((busy, log, copied)) => {
            tracing::debug!(
                busy,
                log,
                copied,
                took_ms = began.elapsed().as_secs_f64() * 1e3,
                "checkpoint of the SQLite write-ahead log"
            );
            busy == 0 && copied >= log
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint of the SQLite write-ahead log failed");
            true
        }
    }
}
