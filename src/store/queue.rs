//! What the two write queues share (SQLite's `sqlite/writer/`, MySQL's `mysql/writer.rs`):
//! how a group is taken off the queue, the connection it is written on, how a job learns its
//! group's timing, and the group metrics. Each queue keeps its own jobs and its own way of
//! writing a group.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The connection for the next group: the one the writer kept from its last group, else a
/// fresh one from `pool`.
pub(in crate::store) async fn connection<DB: sqlx::Database>(
    kept: &mut Option<sqlx::pool::PoolConnection<DB>>,
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::pool::PoolConnection<DB>, StoreError> {
    match kept.take() {
        Some(held) => Ok(held),
        None => Ok(pool.acquire().await?),
    }
}

/// A job waiting in a write queue.
pub(in crate::store) trait Grouped {
    /// Whether its request is gone (timed out, client hung up): it is dropped unwritten.
    fn abandoned(&self) -> bool;
    /// How much of a group it takes (each upserted row one, any other job one), and the hashes
    /// of its upsert keys.
    fn rows_and_keys(&self) -> (usize, Vec<u64>);
}

/// Takes the next group off `pending`: jobs in arrival order whose keys are distinct from each
/// other and from every earlier job left waiting, up to `max_rows` rows (the first job
/// always). Everything else stays queued, in order, so that within one writer the upserts of
/// one key are written in arrival order (the last to arrive wins; MySQL's several writers each
/// take groups, and two groups on different writers keep no order between them, as two
/// transactions of their own would not). Abandoned jobs are dropped.
pub(in crate::store) fn take_group<J: Grouped>(
    pending: &mut VecDeque<J>,
    max_rows: usize,
) -> Vec<J> {
    let mut seen = HashSet::new();
    let mut group = Vec::new();
    let mut rows = 0;
    let mut rest = VecDeque::with_capacity(pending.len());
    while let Some(job) = pending.pop_front() {
        if job.abandoned() {
            continue;
        }
        let (size, keys) = job.rows_and_keys();
        let fits = group.is_empty() || rows + size <= max_rows;
        let clashes = keys.iter().any(|k| seen.contains(k));
        seen.extend(keys);
        if fits && !clashes {
            rows += size;
            group.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *pending = rest;
    group
}

/// Records a group's size in the metrics (`write_group_size`: jobs, `write_group_rows`: rows);
/// without a metrics recorder each is one atomic load.
pub(in crate::store) fn record_group(jobs: usize, rows: usize) {
    metrics::histogram!("write_group_size").record(usize_f64(jobs));
    metrics::histogram!("write_group_rows").record(usize_f64(rows));
}

/// A count as a histogram sample (counts here are far below 2^52, so exact).
#[allow(clippy::cast_precision_loss)]
fn usize_f64(n: usize) -> f64 {
    n as f64
}

/// Moves the jobs already waiting on `jobs` into `pending`, without waiting, until `pending`
/// holds `max` (each job is at least one row of a group, so more would not fit one group).
pub(in crate::store) fn take_waiting<J>(
    jobs: &mut mpsc::Receiver<J>,
    pending: &mut VecDeque<J>,
    max: usize,
) {
    while pending.len() < max {
        match jobs.try_recv() {
            Ok(job) => pending.push_back(job),
            Err(_) => break,
        }
    }
}

/// A job's answer, with the timing of its group.
pub(in crate::store) type Answered<T> = (Result<T, StoreError>, Timing);

/// Queues `job` on `jobs` and waits for its answer on `answer`; logs (at `debug`, inside the
/// request's span) how long it waited for its group and how long the group's SQL took, as
/// `queue` ("sqlite write", "mysql write").
pub(in crate::store) async fn submit<J, T>(
    jobs: &mpsc::Sender<J>,
    job: J,
    answer: oneshot::Receiver<Answered<T>>,
    queue: &'static str,
) -> Result<T, StoreError> {
    let submitted = Instant::now();
    jobs.send(job).await.map_err(|_| StoreError::Unavailable)?;
    // A closed reply means a writer task dropped the job without answering: it panicked.
    let (result, timing) = answer.await.map_err(|_| StoreError::Unavailable)?;
    timing.log(submitted, result.is_ok(), queue);
    result
}

/// When a job's group began, how long the group's SQL took and how many jobs it held: sent
/// back with the answer, so that the submitter can tell its wait in the queue from its SQL.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct Timing {
    pub(in crate::store) began: Instant,
    pub(in crate::store) sql: Duration,
    pub(in crate::store) jobs: usize,
}

impl Timing {
    /// For a group that began at `began` and has just ended.
    pub(in crate::store) fn since(began: Instant, jobs: usize) -> Self {
        Self {
            began,
            sql: began.elapsed(),
            jobs,
        }
    }

    /// Logs (at `debug`, inside the request's span) how long a job submitted at `submitted`
    /// waited for its group and how long the group's SQL took.
    pub(in crate::store) fn log(&self, submitted: Instant, ok: bool, queue: &'static str) {
        tracing::debug!(
            queue_wait_ms = millis(self.began.saturating_duration_since(submitted)),
            sql_ms = millis(self.sql),
            group_jobs = self.jobs,
            ok,
            "{queue}"
        );
    }
}

/// `duration` in milliseconds, for a log field.
pub(in crate::store) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
