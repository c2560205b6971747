//! Group commit for SQLite's upserts, and the same coalescing for reads by id.
//!
//! Every statement sqlx runs on SQLite is a hand-off to the connection's worker thread and
//! back; profiling showed those wake-ups, not SQLite, were most of the cost of a request. So
//! writes are queued here, single upserts and batches alike, and one task writes whatever is
//! waiting when the writer is free as one multi-row statement, then answers each waiter with
//! its own rows. Reads by id queue the same way and are fetched together with
//! `WHERE id IN (...)`. With one request in flight this is one statement of that request's
//! rows, as before; under load, one hand-off serves many requests.
//!
//! A statement never holds one key twice: a job with a key already in the statement waits for
//! the next one, and so does every later job sharing a key with a waiting job, so writes of a
//! key land in arrival order (the last to arrive wins). One statement is all or nothing, so each
//! job (a batch request) still is.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most rows one statement carries; a larger job (a batch of up to 1000) is written alone.
/// Larger groups wrote 100-row batches ~15% faster, but the process then peaked at ~90 MiB
/// instead of ~60 (bench/RESULTS.md).
const MAX_ROWS: usize = 256;
/// Jobs that may wait before submitters themselves wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;

/// The rows of one request, and where to send what became of them.
type Job<I, R> = (Vec<I>, oneshot::Sender<Result<Vec<R>, StoreError>>);

/// A queue of writes (or reads) of one kind, carried out in groups by one task.
pub(super) struct Queue<I, R> {
    jobs: mpsc::Sender<Job<I, R>>,
}

/// A row's key, for keeping one key out of a statement twice. A hash is enough: two keys that
/// collide only make a job wait for the next statement.
pub(super) fn key_hash(key: impl Hash) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl<I: Send + 'static, R: Send + 'static> Queue<I, R> {
    /// Starts the task. `write` handles distinct-key rows and returns a result per row, in
    /// input order; `key` gives a row's key (see `key_hash`). The task ends with the queue.
    pub(super) fn start<W, Fut>(key: fn(&I) -> u64, write: W) -> Self
    where
        W: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send,
    {
        let (jobs, mut queued) = mpsc::channel::<Job<I, R>>(QUEUE_DEPTH);
        tokio::spawn(async move {
            let mut pending = VecDeque::new();
            while let Some(first) = queued.recv().await {
                pending.push_back(first);
                while pending.len() < MAX_ROWS {
                    match queued.try_recv() {
                        Ok(job) => pending.push_back(job),
                        Err(_) => break,
                    }
                }
                while !pending.is_empty() {
                    let group = take_group(&mut pending, key);
                    let sizes: Vec<usize> = group.iter().map(|(rows, _)| rows.len()).collect();
                    let (rows, waiters): (Vec<Vec<I>>, Vec<_>) = group.into_iter().unzip();
                    match write(rows.into_iter().flatten().collect()).await {
                        Ok(results) => {
                            let mut results = results.into_iter();
                            for (waiter, size) in waiters.into_iter().zip(sizes) {
                                let _ = waiter.send(Ok(results.by_ref().take(size).collect()));
                            }
                        }
                        Err(e) => {
                            for waiter in waiters {
                                let _ = waiter.send(Err(copy_of(&e)));
                            }
                        }
                    }
                }
            }
        });
        Self { jobs }
    }

    /// Queues `rows` (distinct keys) and waits until they are handled, all together.
    pub(super) async fn submit(&self, rows: Vec<I>) -> Result<Vec<R>, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send((rows, answer))
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answered.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Queues one row.
    pub(super) async fn submit_one(&self, row: I) -> Result<R, StoreError> {
        self.submit(vec![row])
            .await?
            .pop()
            .ok_or(StoreError::Unavailable)
    }
}

/// Takes the next group off `pending`: jobs in arrival order whose keys are distinct from each
/// other and from every earlier job left waiting, up to `MAX_ROWS` rows (the first job always).
/// Everything else stays queued, in order. A job whose request is gone (timed out, or the client
/// hung up) before its turn is dropped unwritten: nobody was told it would be written, and under
/// overload the writer should not spend itself on answers nobody will read.
fn take_group<I, R>(pending: &mut VecDeque<Job<I, R>>, key: fn(&I) -> u64) -> Vec<Job<I, R>> {
    let mut seen = HashSet::new();
    let mut group = Vec::new();
    let mut rows = 0;
    let mut rest = VecDeque::with_capacity(pending.len());
    while let Some(job) = pending.pop_front() {
        if job.1.is_closed() {
            continue;
        }
        let keys: Vec<u64> = job.0.iter().map(key).collect();
        let fits = group.is_empty() || rows + job.0.len() <= MAX_ROWS;
        let clashes = keys.iter().any(|k| seen.contains(k));
        seen.extend(keys);
        if fits && !clashes {
            rows += job.0.len();
            group.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *pending = rest;
    group
}

/// The same failure for every waiter of a failed statement (sqlx errors cannot be cloned).
fn copy_of(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Unavailable => StoreError::Unavailable,
        StoreError::Db(inner) => StoreError::Db(sqlx::Error::Protocol(inner.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = oneshot::Receiver<Result<Vec<()>, StoreError>>;

    /// Jobs with these keys, and their waiters (keep them: a job without one is dropped).
    fn jobs(keys: &[&[u64]]) -> (VecDeque<Job<u64, ()>>, Vec<Answer>) {
        keys.iter()
            .map(|k| {
                let (answer, answered) = oneshot::channel();
                ((k.to_vec(), answer), answered)
            })
            .unzip()
    }

    #[test]
    fn a_job_whose_request_is_gone_is_dropped_unwritten() {
        let (mut pending, _waiting) = jobs(&[&[1], &[2]]);
        let (gone, answered) = oneshot::channel();
        drop(answered);
        pending.insert(1, (vec![9], gone));
        let group = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&group), [[1], [2]]);
        assert!(pending.is_empty());
    }

    fn keys(jobs: &[Job<u64, ()>]) -> Vec<Vec<u64>> {
        jobs.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn groups_have_distinct_keys_and_keep_arrival_order() {
        let (mut pending, _waiting) = jobs(&[&[1], &[2], &[1], &[3], &[2], &[1]]);
        let first = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&first), [[1], [2], [3]]);
        let rest: Vec<Vec<u64>> = keys(pending.make_contiguous());
        assert_eq!(rest, [[1], [2], [1]], "the repeats, in order");
        let second = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&second), [[1], [2]]);
        let third = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&third), [[1]]);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_job_sharing_a_key_with_a_waiting_job_waits_behind_it() {
        // [1, 2] clashes on 1 and waits; [2] must not overtake it, [3] may.
        let (mut pending, _waiting) = jobs(&[&[1], &[1, 2], &[2], &[3]]);
        let first = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&first), [vec![1], vec![3]]);
        assert_eq!(keys(pending.make_contiguous()), [vec![1, 2], vec![2]]);
        let second = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&second), [vec![1, 2]]);
        let third = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&third), [vec![2]]);
    }

    #[test]
    fn a_group_holds_at_most_max_rows_but_always_its_first_job() {
        let big: Vec<u64> = (0..MAX_ROWS as u64 + 5).collect();
        let half: Vec<u64> = (10_000..10_000 + MAX_ROWS as u64 / 2).collect();
        let other_half: Vec<u64> = (20_000..20_000 + MAX_ROWS as u64 / 2).collect();
        let more: Vec<u64> = vec![30_000];
        let (mut pending, _waiting) = jobs(&[&big, &half, &other_half, &more]);
        assert_eq!(keys(&take_group(&mut pending, |k| *k)), [big]);
        assert_eq!(
            keys(&take_group(&mut pending, |k| *k)),
            [half, other_half],
            "{} rows fit exactly",
            MAX_ROWS
        );
        assert_eq!(keys(&take_group(&mut pending, |k| *k)), [more]);
    }
}
