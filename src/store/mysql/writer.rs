//! MySQL's write queue for upserts: the upserts that arrive together are written as a group,
//! in one transaction, with a few calls to procedures that take the whole group's rows at once
//! (`upsert.rs`).
//!
//! Why. A MySQL transaction costs round trips to the server (`BEGIN`, each statement,
//! `COMMIT`) and a flush of the redo log at its commit, and every transaction that writes
//! events holds the event lock (`Backend::EVENT_LOCK`) from its events to its commit, so the
//! commits of all writers queue behind one another. Written one request per transaction,
//! single upserts stopped at ~3,500/s whatever the pool size (bench/RESULTS.md). In a group,
//! four round trips (isolation and `BEGIN`, claim, write, `COMMIT`) serve every request in it.
//!
//! Shape. Like SQLite's queue (`sqlite/writer/`, whose grouping rules `store/queue.rs` shares
//! with this one): requests queue in arrival order; a group never holds one key twice (a job
//! with a key already in the group, and every later job sharing a key with a waiting one,
//! waits for a later group); a job whose request is gone before its turn is dropped unwritten.
//! Unlike SQLite, several writer tasks (`writers` at start, each with its own connection while
//! work is waiting) take groups from the one queue, because InnoDB lets transactions on
//! different rows run at once and one group's round trips can overlap another's. So two
//! groups in flight at once may share a key; each locks its existing rows in id order (as
//! stock operations do) and claims new ones in key order, so they queue on the row locks
//! rather than deadlock, and a deadlock that does happen (InnoDB may still pick a victim, e.g.
//! over a row created between the two steps) runs the group again from the start.
//!
//! Times. Each attempt takes its time after `BEGIN`, and is rolled back and run again with a
//! new time if it ran longer than `MAX_WRITE_SPAN` before its commit (docs/sync.md), as every
//! other MySQL write is. A group of at most `MAX_ROWS_PER_GROUP` rows runs in a few ms.
//!
//! Failure. When a group fails (not a deadlock: a statement refused), it is rolled back and
//! its jobs are written again one by one, so that one bad job fails alone. Conditional upserts
//! (`If-Match`, `If-None-Match`) are not queued here: their 412 is decided inside their own
//! transaction (`Store::upsert_inventory_if`), so it can never fail a group.
//!
//! Observability and supervision as in SQLite's queue: `write_queue_depth`,
//! `write_group_size` and `write_group_rows` (docs/operations.md), each write's queue wait and
//! SQL time at `debug`; each task runs under a supervisor that restarts it after a panic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::error::{pause_after_deadlock, retry_deadlock};
use super::{upsert, MAX_WRITE_SPAN, OVERDUE_ATTEMPTS};
use crate::domain::{
    Actor, Inventory, InventoryInput, NewEvent, SalesTarget, SalesTargetInput, Timestamp,
};
use crate::store::queue::{self, Answered, Grouped, Timing};
use crate::store::supervisor::{supervise_shared, Liveness};
use crate::store::StoreError;

/// Most rows one group carries (each upserted row counts one). A larger batch (up to 1000
/// rows) is written as a group of its own.
const MAX_ROWS_PER_GROUP: usize = 256;
/// Most jobs waiting in the queue before submitters themselves wait (back-pressure).
const MAX_QUEUED_JOBS: usize = 4096;

/// The rows of an upsert request, whose they are, and, once written, the stored records.
struct Upserts<I, S> {
    items: Vec<I>,
    keys: Vec<u64>,
    actor: Actor,
    stored: Vec<S>,
    reply: oneshot::Sender<Answered<Vec<S>>>,
}

impl<I, S> Upserts<I, S> {
    fn finish(self, committed: Result<(), StoreError>, timing: Timing) {
        let _ = self.reply.send((committed.map(|()| self.stored), timing));
    }
}

/// One request's upsert, waiting for its turn.
enum Job {
    SalesTargets(Upserts<SalesTargetInput, SalesTarget>),
    Inventory(Upserts<InventoryInput, Inventory>),
}

impl Grouped for Job {
    fn abandoned(&self) -> bool {
        match self {
            Job::SalesTargets(u) => u.reply.is_closed(),
            Job::Inventory(u) => u.reply.is_closed(),
        }
    }

    fn rows_and_keys(&self) -> (usize, Vec<u64>) {
        let keys = match self {
            Job::SalesTargets(u) => &u.keys,
            Job::Inventory(u) => &u.keys,
        };
        (keys.len(), keys.clone())
    }
}

impl Job {
    fn rows(&self) -> usize {
        match self {
            Job::SalesTargets(u) => u.items.len(),
            Job::Inventory(u) => u.items.len(),
        }
    }

    fn finish(self, committed: Result<(), StoreError>, timing: Timing) {
        match self {
            Job::SalesTargets(u) => u.finish(committed, timing),
            Job::Inventory(u) => u.finish(committed, timing),
        }
    }
}

/// The queue the writer tasks share: jobs as submitted, and those a task took off the channel
/// but left for a later group (their keys clashed, or the group was full).
struct Queue {
    jobs: mpsc::Receiver<Job>,
    pending: VecDeque<Job>,
}

/// The queue of upserts, and the tasks that write them.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    tasks: Vec<Liveness>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Starts `writers` tasks (each under its supervisor) on `pool`. `written` is notified
    /// after each committed group (`Store::event_signal`).
    pub(super) fn start(pool: &MySqlPool, writers: usize, written: &Arc<Notify>) -> Self {
        let (jobs, queued) = mpsc::channel(MAX_QUEUED_JOBS);
        let queue = Arc::new(Mutex::new(Queue {
            jobs: queued,
            pending: VecDeque::new(),
        }));
        let tasks = (0..writers.max(1))
            .map(|_| {
                let (pool, written) = (pool.clone(), written.clone());
                supervise_shared("mysql writer", queue.clone(), move |queue| {
                    write_loop(pool.clone(), queue, written.clone())
                })
            })
            .collect();
        Self { jobs, tasks }
    }

    /// Jobs submitted and not yet taken by a task (a cheap read of the channel's count).
    pub(super) fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// False while a task is down (between a panic and its restart).
    pub(super) fn is_running(&self) -> bool {
        self.tasks.iter().all(Liveness::is_running)
    }

    /// Upserts sales targets (distinct keys), all or none, returned in input order.
    pub(super) async fn sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        let keys = items.iter().map(|i| hash_of(i.key())).collect();
        let (reply, answer) = oneshot::channel();
        let job = Job::SalesTargets(Upserts {
            items,
            keys,
            actor: Actor::system(),
            stored: Vec::new(),
            reply,
        });
        queue::submit(&self.jobs, job, answer, "mysql write").await
    }

    /// Upserts inventory rows (distinct keys) for `actor`, with their ledger entries, all or
    /// none, returned in input order.
    pub(super) async fn inventory(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
    ) -> Result<Vec<Inventory>, StoreError> {
        let keys = items.iter().map(|i| hash_of(i.key())).collect();
        let (reply, answer) = oneshot::channel();
        let job = Job::Inventory(Upserts {
            items,
            keys,
            actor: actor.clone(),
            stored: Vec::new(),
            reply,
        });
        queue::submit(&self.jobs, job, answer, "mysql write").await
    }
}

/// A hash of a key: enough to keep one key out of a group twice (two keys that collide only
/// make a job wait for a later group).
fn hash_of(key: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// One writer task: takes a group off the shared queue and writes it, until the queue closes.
/// Its connection is kept from one group to the next while work is waiting, and given back to
/// the pool whenever the queue runs dry or another task holds it (so an idle service holds
/// no connection for its writers).
async fn write_loop(pool: MySqlPool, queue: Arc<Mutex<Queue>>, written: Arc<Notify>) {
    let mut conn: Option<PoolConnection<MySql>> = None;
    loop {
        let group = {
            // Another task holds the queue: it is taking its group, or waiting for work
            // because there is none. Either way this one gives its connection back, so that
            // idle writers hold none (and closing the pool never waits on one).
            let mut queue = match queue.try_lock() {
                Ok(queue) => queue,
                Err(_) => {
                    conn = None;
                    queue.lock().await
                }
            };
            if queue.pending.is_empty() {
                let first = match queue.jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        conn = None;
                        match queue.jobs.recv().await {
                            Some(job) => job,
                            None => return,
                        }
                    }
                };
                queue.pending.push_back(first);
            }
            let queue = &mut *queue;
            queue::take_waiting(&mut queue.jobs, &mut queue.pending, MAX_ROWS_PER_GROUP);
            queue::take_group(&mut queue.pending, MAX_ROWS_PER_GROUP)
        };
        if group.is_empty() {
            continue; // every job taken was abandoned
        }
        let began = Instant::now();
        let mut held = match queue::connection(&mut conn, &pool).await {
            Ok(held) => held,
            Err(e) => {
                let timing = Timing::since(began, group.len());
                answer_all(group, &e, timing);
                continue;
            }
        };
        if write_and_answer(&mut held, group, &written).await {
            conn = Some(held);
        }
    }
}

/// Writes `group` in one transaction and answers its jobs; if that fails, writes each job
/// alone, so that only the one to blame fails. False when the database could not be reached
/// (the connection is then given back to its pool, which replaces a broken one).
async fn write_and_answer(
    conn: &mut MySqlConnection,
    mut group: Vec<Job>,
    written: &Notify,
) -> bool {
    let began = Instant::now();
    let jobs = group.len();
    queue::record_group(jobs, group.iter().map(Job::rows).sum());
    match write_group(conn, &mut group).await {
        Ok(()) => {
            // Committed: the event feed's long polls look again.
            written.notify_waiters();
            let timing = Timing::since(began, jobs);
            group.into_iter().for_each(|job| job.finish(Ok(()), timing));
        }
        Err(e) if matches!(e, StoreError::Unavailable) => {
            answer_all(group, &e, Timing::since(began, jobs));
            return false;
        }
        Err(e) if group.len() == 1 => answer_all(group, &e, Timing::since(began, jobs)),
        Err(_) => {
            let mut alone = group.into_iter();
            while let Some(mut job) = alone.next() {
                let outcome = write_group(conn, std::slice::from_mut(&mut job)).await;
                let lost = matches!(outcome, Err(StoreError::Unavailable));
                if outcome.is_ok() {
                    written.notify_waiters();
                }
                // The failed group's time counts as this job's SQL too: it was spent on it.
                job.finish(outcome, Timing::since(began, jobs));
                if lost {
                    // The connection is gone: the rest cannot be written on it.
                    let rest = alone.collect();
                    answer_all(rest, &StoreError::Unavailable, Timing::since(began, jobs));
                    return false;
                }
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

/// Writes `group` in a transaction, from the start again after a deadlock (with a growing
/// pause) or when it ran too long to commit with its time (`MAX_WRITE_SPAN`).
async fn write_group(conn: &mut MySqlConnection, group: &mut [Job]) -> Result<(), StoreError> {
    let mut tries = 1;
    let mut overdue = 0;
    loop {
        match attempt(conn, group).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                tracing::warn!(
                    limit_ms = MAX_WRITE_SPAN.as_millis() as u64,
                    "a write group ran too long to commit with its times; running it again"
                );
                overdue += 1;
                if overdue >= OVERDUE_ATTEMPTS {
                    return Err(StoreError::Unavailable);
                }
            }
            Err(e) if retry_deadlock(&e, tries) => {
                pause_after_deadlock(tries).await;
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Begins a `READ COMMITTED` transaction (see `upsert::inventory`) in one round trip: a query
/// without arguments goes as text, which may hold several statements (sqlx asks the server
/// for that); when one fails, those after it do not run.
///
/// The `ROLLBACK` first: a pooled connection can arrive inside a transaction. sqlx 0.8.6 gives
/// a connection back to the pool with its transaction open when the request that was beginning
/// it is dropped during `BEGIN` (a client that went away; fixed upstream in
/// launchbadge/sqlx#3980), and MySQL then refuses to change the isolation (1568). That
/// transaction is empty (nothing ran after its `BEGIN`), and sqlx only begins with this
/// statement on a connection it holds no transaction on, so the `ROLLBACK` ends that one and
/// does nothing otherwise.
const BEGIN_READ_COMMITTED: &str =
    "ROLLBACK; SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN";

/// One attempt at the group's transaction (`READ COMMITTED`): its sales targets, then its
/// inventory rows (claimed and planned, see `upsert.rs` for the order they are locked in),
/// then what the plan writes with the events of both, then the commit. True once committed
/// (each job then holds its stored records); false when it ran longer than `MAX_WRITE_SPAN`
/// and was rolled back.
async fn attempt(conn: &mut MySqlConnection, group: &mut [Job]) -> Result<bool, StoreError> {
    let mut tx = conn.begin_with(BEGIN_READ_COMMITTED).await?;
    let began = Instant::now();
    let now = Timestamp::now();
    let sales: Vec<&SalesTargetInput> = group
        .iter()
        .filter_map(|job| match job {
            Job::SalesTargets(u) => Some(u.items.iter()),
            Job::Inventory(_) => None,
        })
        .flatten()
        .collect();
    let inventory: Vec<(&InventoryInput, &Actor)> = group
        .iter()
        .filter_map(|job| match job {
            Job::Inventory(u) => Some(u.items.iter().map(|item| (item, &u.actor))),
            Job::SalesTargets(_) => None,
        })
        .flatten()
        .collect();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut sales_stored = Vec::new();
    if !sales.is_empty() {
        let (stored, written) = upsert::sales_targets(&mut tx, &sales, now).await?;
        sales_stored = stored;
        events.extend(written);
    }
    let mut inventory_stored = Vec::new();
    let mut planned = upsert::Planned::default();
    if !inventory.is_empty() {
        let (stored, written, plan) = upsert::inventory(&mut tx, &inventory, now).await?;
        inventory_stored = stored;
        events.extend(written);
        planned = plan;
    }
    upsert::write(&mut tx, &planned, &events, now).await?;
    if began.elapsed() > MAX_WRITE_SPAN {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    drop((sales, inventory, planned));
    let mut sales_stored = sales_stored.into_iter();
    let mut inventory_stored = inventory_stored.into_iter();
    for job in group.iter_mut() {
        match job {
            Job::SalesTargets(u) => {
                u.stored = sales_stored.by_ref().take(u.items.len()).collect();
            }
            Job::Inventory(u) => {
                u.stored = inventory_stored.by_ref().take(u.items.len()).collect();
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, MySqlConnection};

    use super::BEGIN_READ_COMMITTED;

    /// A connection given back to the pool inside a transaction (see `BEGIN_READ_COMMITTED`)
    /// still begins a group's transaction, and at `READ COMMITTED`.
    #[tokio::test]
    #[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
    async fn a_group_begins_read_committed_even_on_a_connection_left_in_a_transaction() {
        let url = std::env::var("TEST_MYSQL_URL").expect("TEST_MYSQL_URL is set");
        let mut conn = MySqlConnection::connect(&url).await.expect("MySQL is up");
        // A transaction the server holds and sqlx does not know of, as sqlx 0.8.6 leaves one.
        conn.execute("BEGIN").await.expect("BEGIN");
        assert!(!conn.is_in_transaction());

        let mut tx = conn
            .begin_with(BEGIN_READ_COMMITTED)
            .await
            .expect("the group's transaction begins");
        // InnoDB starts a transaction at its first read of an InnoDB table.
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.innodb_table_stats")
            .fetch_one(&mut *tx)
            .await
            .expect("a read");
        let level: String = sqlx::query_scalar(
            "SELECT trx_isolation_level FROM information_schema.innodb_trx \
             WHERE trx_mysql_thread_id = CONNECTION_ID()",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("the transaction is listed");
        assert_eq!(level, "READ COMMITTED");
        tx.rollback().await.expect("ROLLBACK");
    }
}
