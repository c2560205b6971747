//! Reads by id, coalesced: concurrent `GET …/{id}` requests of one table are answered from one
//! `SELECT … WHERE id IN (…)` on the reader pool, for the same reason the writes are grouped
//! (each statement is a hand-off to a connection's thread; see `writer.rs`). With one request in
//! flight this is that request's read.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::domain::{Inventory, SalesTarget};
use crate::store::sql::Table;
use crate::store::supervisor::{supervise, Liveness};
use crate::store::StoreError;

/// Most ids one `SELECT` asks for.
const MAX_IDS_PER_READ: usize = 256;
/// Most reads waiting before readers themselves wait (back-pressure).
const MAX_QUEUED_READS: usize = 4096;

/// One request's read: an id, and where to send the row (or `None`).
struct Read<R> {
    id: i64,
    reply: oneshot::Sender<Result<Option<R>, StoreError>>,
}

/// The coalescing reader of one table, whose rows read as `R`.
pub(super) struct Reads<R> {
    reads: mpsc::Sender<Read<R>>,
    task: Liveness,
}

/// A stored record's id, for matching a coalesced read's rows to their requests.
pub(super) trait HasId {
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

impl<R: HasId + Clone + Send + 'static> Reads<R> {
    /// Starts the task that reads table `T` from `pool`; it ends when this is dropped.
    pub(super) fn start<T>(pool: SqlitePool) -> Self
    where
        T: Table + 'static,
        T::Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
        R: From<T::Row>,
    {
        // The ids travel as one JSON value: one statement for any number of them.
        let sql: Arc<str> = format!(
            "SELECT {} FROM {} WHERE id IN (SELECT value FROM json_each(?))",
            T::COLUMNS,
            T::NAME
        )
        .into();
        let (reads, queued) = mpsc::channel::<Read<R>>(MAX_QUEUED_READS);
        let task = supervise("sqlite reader", queued, move |queued| {
            read_loop::<T, R>(pool.clone(), sql.clone(), queued)
        });
        Self { reads, task }
    }

    /// False while the task is down (between a panic and its restart).
    pub(super) fn is_running(&self) -> bool {
        self.task.is_running()
    }

    /// The row with this id, or `None`.
    pub(super) async fn get(&self, id: i64) -> Result<Option<R>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.reads
            .send(Read { id, reply })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }
}

/// Takes reads off the queue and answers them, batch by batch, until the queue closes.
async fn read_loop<T, R>(
    pool: SqlitePool,
    sql: Arc<str>,
    queued: Arc<Mutex<mpsc::Receiver<Read<R>>>>,
) where
    T: Table + 'static,
    T::Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    R: From<T::Row> + HasId + Clone + Send + 'static,
{
    let mut queued = queued.lock().await;
    let mut batch = Vec::new();
    while let Some(first) = queued.recv().await {
        batch.push(first);
        while batch.len() < MAX_IDS_PER_READ {
            match queued.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        batch.retain(|read| !read.reply.is_closed());
        answer::<T, R>(&pool, &sql, std::mem::take(&mut batch)).await;
    }
}

/// Reads the rows of `batch` with `sql` and sends each request its row.
async fn answer<T, R>(pool: &SqlitePool, sql: &str, batch: Vec<Read<R>>)
where
    T: Table,
    T::Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    R: From<T::Row> + HasId + Clone,
{
    if batch.is_empty() {
        return;
    }
    let ids: Vec<i64> = batch.iter().map(|read| read.id).collect();
    let found = async {
        let ids_json = serde_json::to_string(&ids).map_err(StoreError::codec)?;
        let rows: Vec<T::Row> = sqlx::query_as(sql).bind(ids_json).fetch_all(pool).await?;
        Ok::<_, StoreError>(
            rows.into_iter()
                .map(R::from)
                .map(|row| (row.id(), row))
                .collect::<HashMap<i64, R>>(),
        )
    }
    .await;
    match found {
        Ok(by_id) => {
            for read in batch {
                let _ = read.reply.send(Ok(by_id.get(&read.id).cloned()));
            }
        }
        Err(e) => {
            for read in batch {
                let _ = read.reply.send(Err(e.duplicate()));
            }
        }
    }
}
