//! Group commit for SQLite's single-row upserts, and the same coalescing for reads by id.
//!
//! Every statement sqlx runs on SQLite is a hand-off to the connection's worker thread and
//! back; profiling showed those wake-ups, not SQLite, were most of the cost of a request. So
//! single upserts are queued here, and one task writes whatever is waiting when the writer is
//! free as one multi-row statement (the same one a batch request uses), then answers each
//! waiter with its own row. Reads by id queue the same way and are fetched together with
//! `WHERE id IN (...)`. With one request in flight this is one single-row statement, as
//! before; under load, one hand-off serves many requests.
//!
//! A statement never holds one key twice: a repeat waits for the next statement, so the last
//! request to arrive for a key is the last one written. Statement sizes are powers of two, so
//! only a handful of distinct statements are ever prepared.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most rows one statement carries (8 bound values each, far below SQLite's limit).
const MAX_GROUP: usize = 256;
/// Requests that may wait before submitters themselves wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;

type Job<I, R> = (I, oneshot::Sender<Result<R, StoreError>>);

/// A queue of single-row upserts of one kind, written in groups by one task.
pub(super) struct Queue<I, R> {
    jobs: mpsc::Sender<Job<I, R>>,
}

impl<I: Send + 'static, R: Send + 'static> Queue<I, R> {
    /// Starts the writing task. `write` upserts distinct-key rows and returns the stored rows
    /// in input order; `key` is the upsert key. The task ends when the queue is dropped.
    pub(super) fn start<K, W, Fut>(key: fn(&I) -> K, write: W) -> Self
    where
        K: Hash + Eq + 'static,
        W: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send,
    {
        let (jobs, mut queued) = mpsc::channel::<Job<I, R>>(QUEUE_DEPTH);
        tokio::spawn(async move {
            let mut pending = VecDeque::new();
            while let Some(first) = queued.recv().await {
                pending.push_back(first);
                while pending.len() < MAX_GROUP {
                    match queued.try_recv() {
                        Ok(job) => pending.push_back(job),
                        Err(_) => break,
                    }
                }
                while !pending.is_empty() {
                    let group = take_group(&mut pending, key);
                    let (items, waiters): (Vec<I>, Vec<_>) = group.into_iter().unzip();
                    match write(items).await {
                        Ok(rows) => {
                            for (waiter, row) in waiters.into_iter().zip(rows) {
                                let _ = waiter.send(Ok(row));
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

    /// Queues `item` and waits until it is written.
    pub(super) async fn submit(&self, item: I) -> Result<R, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send((item, answer))
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answered.await.map_err(|_| StoreError::Unavailable)?
    }
}

/// Takes the next group off `pending`: jobs with distinct keys in arrival order, as many as the
/// largest power of two allows. Everything else stays queued, in order.
fn take_group<I, R, K: Hash + Eq>(
    pending: &mut VecDeque<Job<I, R>>,
    key: fn(&I) -> K,
) -> Vec<Job<I, R>> {
    let mut seen = HashSet::new();
    let mut group = Vec::new();
    let mut rest = VecDeque::with_capacity(pending.len());
    while let Some(job) = pending.pop_front() {
        if group.len() < MAX_GROUP && seen.insert(key(&job.0)) {
            group.push(job);
        } else {
            rest.push_back(job);
        }
    }
    let size = 1 << group.len().ilog2();
    for job in group.split_off(size).into_iter().rev() {
        rest.push_front(job);
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

    fn jobs(keys: &[u32]) -> VecDeque<Job<u32, ()>> {
        keys.iter().map(|k| (*k, oneshot::channel().0)).collect()
    }

    fn keys(jobs: &[Job<u32, ()>]) -> Vec<u32> {
        jobs.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn groups_have_distinct_keys_power_of_two_sizes_and_keep_arrival_order() {
        let mut pending = jobs(&[1, 2, 1, 3, 4, 5, 2]);
        let first = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&first), [1, 2, 3, 4]);
        let rest: Vec<u32> = pending.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            rest,
            [5, 1, 2],
            "the untaken distinct key first, then the repeats in order"
        );
        let second = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&second), [5, 1]);
        let third = take_group(&mut pending, |k| *k);
        assert_eq!(keys(&third), [2]);
        assert!(pending.is_empty());
    }
}
