//! The write queue: every write to SQLite goes through one task, which writes whatever is
//! waiting as a group, in one transaction per group.
//!
//! Why. SQLite allows one writer at a time, so concurrent requests would only race for the
//! write lock (and surface "database is locked"). And every statement sqlx runs is a hand-off
//! to the connection's own thread and back; profiling showed those hand-offs, not SQLite, were
//! most of the cost of a write (bench/RESULTS.md). So requests queue here in arrival order, and
//! the task writes each group with as few hand-offs as it can: the upserts of one table in the
//! group become one multi-row statement (`upsert.rs`), and one transaction covers the whole
//! group (begun and committed by the upserts' own statements when they are the group's only
//! write). Every change writes its events (the outbox) in the group's transaction: the
//! upserts' scripts their own, reservation runs and other operations theirs. With one request in flight a group is just that request; under load one
//! transaction serves many.
//!
//! Jobs. A job is a request's write: the rows of an upsert (single or batch), an operation on
//! reservations (hold, release, commit: all those of a group run together, reading and writing
//! each table once for the group, see `Shared::run_reservations`), or an `Operation` (any other
//! write: an adjustment, a delete, a user change, a refresh-token rotation) that runs its own
//! statements on the connection. Nobody is answered before the transaction commits.
//!
//! Order. A group never holds one upsert key twice: a job with a key already in the group
//! waits for the next one, and so does every later job sharing a key with a waiting job, so the
//! upserts of a key land in arrival order (the last to arrive wins). A job whose request is gone
//! (timed out, client hung up) before its turn is dropped unwritten.
//!
//! Failure. When a group fails, it is rolled back and its jobs are written again one by one,
//! each in a transaction of its own, so that one bad job fails alone. (A database that cannot
//! be reached fails every job at once instead.)
//!
//! Observability. Each write logs, at `debug`, its wait in the queue (from its submission to
//! the start of its group) apart from its SQL time (its group's transaction), with the size
//! of the group (`Writer::submit`); the queue's depth and the group sizes are metrics
//! (`queue_depth`, `write_group_size`, `write_group_rows`; docs/operations.md).
//!
//! Supervision. The task runs under a supervisor. Should it ever panic, the jobs it held are
//! answered "database unavailable" (503 to the client), `/health` reports the database
//! unavailable (`is_running`), and the supervisor starts the task again at once on the same
//! queue; the new task first rolls back whatever transaction the old one left open.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::upsert::{Encoded, Transaction, Upsert};
use crate::domain::stockroom::{Answer, ReservationOp};
use crate::domain::{Actor, InventoryInput, SalesTargetInput, Timestamp};
use crate::store::queue::{self, Answered, Grouped, Timing};
use crate::store::sql::{BoxFuture, Operation, Shared};
use crate::store::supervisor::{supervise, Liveness};
use crate::store::StoreError;

/// Most rows one group carries: each upserted row counts one, each other job one. A larger
/// batch (up to 1000 rows) is written as a group of its own. Groups of 512 or 1000 rows wrote
/// 100-row batches ~15% faster, but the process then peaked at ~90 MiB instead of ~60
/// (bench/RESULTS.md).
const MAX_ROWS_PER_GROUP: usize = 256;
/// Most jobs waiting in the queue before submitters themselves wait (back-pressure).
const MAX_QUEUED_JOBS: usize = 4096;

/// Where a job's answer goes.
type Reply<T> = oneshot::Sender<Answered<T>>;

/// The queue of writes, and the task that carries them out.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    task: Liveness,
}

impl Writer {
    /// Starts the task (under its supervisor) on `pool`, a pool of the one writer connection.
    /// `written` is notified after each group (`Store::event_signal`).
    pub(super) fn start(pool: SqlitePool, written: Arc<Notify>) -> Self {
        let (jobs, queued) = mpsc::channel(MAX_QUEUED_JOBS);
        let task = supervise("sqlite writer", queued, move |queued| {
            write_loop(pool.clone(), queued, written.clone())
        });
        Self { jobs, task }
    }

    /// Jobs submitted and not yet taken by the task (a cheap read of the channel's count).
    pub(super) fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// False while the task is down (between a panic and its restart).
    pub(super) fn is_running(&self) -> bool {
        self.task.is_running()
    }

    /// Upserts `rows` (distinct keys) and returns the stored records in input order, all
    /// written or none.
    pub(super) async fn upsert<T: Queued>(
        &self,
        rows: Vec<Encoded<T>>,
        actor: &Actor,
    ) -> Result<Vec<T::Stored>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = T::job(Upserts {
            rows,
            actor: actor.clone(),
            stored: Vec::new(),
            reply,
        });
        queue::submit(&self.jobs, job, answer, "sqlite write").await
    }

    /// Carries out `op` with the other reservation operations of its group, and answers it once
    /// the transaction has committed.
    pub(super) async fn reservation(&self, op: ReservationOp) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Reservation(Box::new(Reserving {
            op,
            answer: None,
            reply,
        }));
        queue::submit(&self.jobs, job, answer, "sqlite write").await
    }

    /// Runs `operation` with `args` on the writer connection, inside a group's transaction,
    /// and returns its output once the transaction has committed.
    pub(super) async fn run<A, T>(
        &self,
        args: A,
        operation: Operation<SqliteConnection, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Operation(Box::new(Pending {
            args,
            operation,
            output: None,
            reply,
        }));
        queue::submit(&self.jobs, job, answer, "sqlite write").await
    }
}

/// One request's write, waiting for its turn.
pub(super) enum Job {
    SalesTargets(Upserts<SalesTargetInput>),
    Inventory(Upserts<InventoryInput>),
    Reservation(Box<Reserving>),
    Operation(Box<dyn Operate>),
}

/// An operation on reservations and, once run, its answer.
pub(super) struct Reserving {
    op: ReservationOp,
    answer: Option<Answer>,
    reply: Reply<Answer>,
}

/// The rows of an upsert request, whose they are, and, once written, the stored records.
pub(super) struct Upserts<T: Upsert> {
    rows: Vec<Encoded<T>>,
    actor: Actor,
    stored: Vec<T::Stored>,
    reply: Reply<Vec<T::Stored>>,
}

/// The upsert kinds the queue carries: how their jobs are made and found again.
pub(super) trait Queued: Upsert {
    fn job(upserts: Upserts<Self>) -> Job;
    fn of(job: &mut Job) -> Option<&mut Upserts<Self>>;
}

impl Queued for SalesTargetInput {
    fn job(upserts: Upserts<Self>) -> Job {
        Job::SalesTargets(upserts)
    }

    fn of(job: &mut Job) -> Option<&mut Upserts<Self>> {
        match job {
            Job::SalesTargets(upserts) => Some(upserts),
            _ => None,
        }
    }
}

impl Queued for InventoryInput {
    fn job(upserts: Upserts<Self>) -> Job {
        Job::Inventory(upserts)
    }

    fn of(job: &mut Job) -> Option<&mut Upserts<Self>> {
        match job {
            Job::Inventory(upserts) => Some(upserts),
            _ => None,
        }
    }
}

/// An operation's job, with its type erased so that jobs of any output share the queue.
pub(super) trait Operate: Send {
    fn abandoned(&self) -> bool;
    /// Runs the statements and keeps the output; may run again after its group failed.
    fn run<'a>(
        &'a mut self,
        conn: &'a mut SqliteConnection,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Answers the request: the output if the transaction committed, else the failure.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>, timing: Timing);
}

struct Pending<A, T> {
    args: A,
    operation: Operation<SqliteConnection, A, T>,
    output: Option<T>,
    reply: Reply<T>,
}

impl<A: Send + Sync, T: Send> Operate for Pending<A, T> {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run<'a>(
        &'a mut self,
        conn: &'a mut SqliteConnection,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.output = Some((self.operation)(conn, &self.args).await?);
            Ok(())
        })
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>, timing: Timing) {
        let Pending { output, reply, .. } = *self;
        let answer = committed.and_then(|()| output.ok_or(StoreError::Unavailable));
        let _ = reply.send((answer, timing));
    }
}

impl Grouped for Job {
    fn abandoned(&self) -> bool {
        match self {
            Job::SalesTargets(u) => u.reply.is_closed(),
            Job::Inventory(u) => u.reply.is_closed(),
            Job::Reservation(r) => r.reply.is_closed(),
            Job::Operation(op) => op.abandoned(),
        }
    }

    /// How much of a group this job takes, and its upsert keys.
    fn rows_and_keys(&self) -> (usize, Vec<u64>) {
        fn keys<T>(rows: &[Encoded<T>]) -> Vec<u64> {
            rows.iter().map(|r| r.key).collect()
        }
        let keys = match self {
            Job::SalesTargets(u) => keys(&u.rows),
            Job::Inventory(u) => keys(&u.rows),
            Job::Reservation(_) | Job::Operation(_) => Vec::new(),
        };
        (self.rows(), keys)
    }
}

impl Job {
    /// How much of a group this job takes (see `MAX_ROWS_PER_GROUP`).
    fn rows(&self) -> usize {
        match self {
            Job::SalesTargets(u) => u.rows.len(),
            Job::Inventory(u) => u.rows.len(),
            Job::Reservation(r) => match &r.op {
                ReservationOp::Reserve { new, .. } => new.items.len().max(1),
                ReservationOp::End { .. } => 1,
            },
            Job::Operation(_) => 1,
        }
    }

    /// Answers the request once its group's transaction has committed (or failed).
    fn finish(self, committed: Result<(), StoreError>, timing: Timing) {
        match self {
            Job::SalesTargets(u) => u.finish(committed, timing),
            Job::Inventory(u) => u.finish(committed, timing),
            Job::Reservation(r) => {
                let Reserving { answer, reply, .. } = *r;
                let answer = committed.and_then(|()| answer.ok_or(StoreError::Unavailable));
                let _ = reply.send((answer, timing));
            }
            Job::Operation(op) => op.finish(committed, timing),
        }
    }
}

impl<T: Upsert> Upserts<T> {
    fn finish(self, committed: Result<(), StoreError>, timing: Timing) {
        let _ = self.reply.send((committed.map(|()| self.stored), timing));
    }
}

/// Takes jobs off the queue and writes them, group by group, until the queue closes. The
/// writer connection is kept from one group to the next while work is waiting (taking it from
/// its pool again cost ~0.4 ms a group under load: the pool takes a connection back through a
/// task of its own), and given back whenever the queue runs dry, so that closing the pool at
/// shutdown (and reading an in-memory database, which shares it) never waits on an idle
/// writer.
async fn write_loop(
    pool: SqlitePool,
    queued: Arc<Mutex<mpsc::Receiver<Job>>>,
    written: Arc<Notify>,
) {
    // A task that panicked may have left its transaction open on the connection.
    if let Ok(mut conn) = pool.acquire().await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    let mut queued = queued.lock().await;
    let mut pending = VecDeque::new();
    let mut conn: Option<PoolConnection<Sqlite>> = None;
    loop {
        let first = match queued.try_recv() {
            Ok(job) => job,
            Err(_) => {
                conn = None;
                match queued.recv().await {
                    Some(job) => job,
                    None => return,
                }
            }
        };
        pending.push_back(first);
        queue::take_waiting(&mut queued, &mut pending, MAX_ROWS_PER_GROUP);
        while !pending.is_empty() {
            let group = take_group(&mut pending);
            let began = Instant::now();
            let mut held = match queue::connection(&mut conn, &pool).await {
                Ok(held) => held,
                Err(e) => {
                    let timing = Timing::since(began, group.len());
                    answer_all(group, &e, timing);
                    continue;
                }
            };
            if write_and_answer(&mut held, group).await {
                conn = Some(held);
            }
            // The event feed's long polls look again (a failed group wakes them for nothing).
            written.notify_waiters();
        }
    }
}

/// Takes the next group off `pending` (see `queue::take_group`), up to `MAX_ROWS_PER_GROUP`
/// rows.
fn take_group(pending: &mut VecDeque<Job>) -> Vec<Job> {
    queue::take_group(pending, MAX_ROWS_PER_GROUP)
}

/// Writes `group` in one transaction and answers its jobs; if that fails, writes each job
/// alone, so that only the one to blame fails. False when the database could not be reached
/// (the connection is then given back to its pool, which replaces a broken one).
/// Records the group's size in the metrics (`write_group_size`: jobs, `write_group_rows`:
/// rows); without a metrics recorder each is one atomic load.
async fn write_and_answer(conn: &mut SqliteConnection, mut group: Vec<Job>) -> bool {
    let began = Instant::now();
    let jobs = group.len();
    let rows: usize = group.iter().map(Job::rows).sum();
    queue::record_group(jobs, rows);
    match write_group(conn, &mut group).await {
        Ok(()) => {
            let timing = Timing::since(began, jobs);
            group.into_iter().for_each(|job| job.finish(Ok(()), timing));
        }
        Err(e) if matches!(e, StoreError::Unavailable) => {
            answer_all(group, &e, Timing::since(began, jobs));
            return false;
        }
        Err(e) if group.len() == 1 => answer_all(group, &e, Timing::since(began, jobs)),
        Err(_) => {
            for mut job in group {
                let outcome = write_group(conn, std::slice::from_mut(&mut job)).await;
                // The failed group's time counts as this job's SQL too: it was spent on it.
                job.finish(outcome, Timing::since(began, jobs));
            }
        }
    }
    true
}

fn answer_all(group: Vec<Job>, e: &StoreError, timing: Timing) {
    for job in group {
        job.finish(Err(e.duplicate()), timing);
    }
}

/// The group's transaction: its upserts, table by table, then its reservation operations
/// together, then its other operations in arrival order.
/// When one table's upserts are the whole group, their statements begin and commit it
/// themselves (`Transaction::Yours`): `BEGIN` and `COMMIT` of their own would be two more
/// hand-offs to the connection's thread per group. The transaction is begun and ended with
/// plain statements, so a failure anywhere rolls it back here.
async fn write_group(conn: &mut SqliteConnection, group: &mut [Job]) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let sales = group.iter().any(|job| matches!(job, Job::SalesTargets(_)));
    let inventory = group.iter().any(|job| matches!(job, Job::Inventory(_)));
    let operations = group
        .iter()
        .any(|job| matches!(job, Job::Operation(_) | Job::Reservation(_)));
    let written = if operations || (sales && inventory) {
        write_in_transaction(conn, group, now).await
    } else {
        write_upserts::<SalesTargetInput>(conn, group, now, Transaction::Yours).await?;
        write_upserts::<InventoryInput>(conn, group, now, Transaction::Yours).await
    };
    if written.is_err() {
        // Nothing to roll back unless a transaction is open; that error says so, harmlessly.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    written
}

/// Every job of `group` inside one `BEGIN IMMEDIATE … COMMIT`.
async fn write_in_transaction(
    conn: &mut SqliteConnection,
    group: &mut [Job],
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    write_upserts::<SalesTargetInput>(conn, group, now, Transaction::Open).await?;
    write_upserts::<InventoryInput>(conn, group, now, Transaction::Open).await?;
    write_reservations(conn, group, now).await?;
    for job in group.iter_mut() {
        if let Job::Operation(op) = job {
            op.run(conn).await?;
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// The reservation operations of `group`, run together; each job keeps its answer.
async fn write_reservations(
    conn: &mut SqliteConnection,
    group: &mut [Job],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut jobs: Vec<&mut Reserving> = group
        .iter_mut()
        .filter_map(|job| match job {
            Job::Reservation(r) => Some(&mut **r),
            _ => None,
        })
        .collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let ops: Vec<&ReservationOp> = jobs.iter().map(|job| &job.op).collect();
    let answers = Shared::<Sqlite>::run_reservations(conn, &ops, now).await?;
    drop(ops);
    for (job, answer) in jobs.iter_mut().zip(answers) {
        job.answer = Some(answer);
    }
    Ok(())
}

/// The upserts of kind `T` in `group`, written together; each job keeps its stored records.
async fn write_upserts<T: Queued>(
    conn: &mut SqliteConnection,
    group: &mut [Job],
    now: Timestamp,
    tx: Transaction,
) -> Result<(), StoreError> {
    let mut jobs: Vec<&mut Upserts<T>> = group.iter_mut().filter_map(T::of).collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&Encoded<T>, &Actor)> = jobs
        .iter()
        .flat_map(|job| job.rows.iter().map(|row| (row, &job.actor)))
        .collect();
    let mut stored = T::write(conn, &rows, now, tx).await?.into_iter();
    drop(rows);
    for job in &mut jobs {
        job.stored = stored.by_ref().take(job.rows.len()).collect();
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
