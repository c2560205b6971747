//! Keeps a queue's tasks alive: the write queues (SQLite's one writer, MySQL's few) and
//! SQLite's coalescing readers run tasks that every request of theirs depends on, so such a
//! task must never vanish silently.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

/// Whether a supervised task is running now.
#[derive(Debug, Clone)]
pub(in crate::store) struct Liveness(Arc<AtomicBool>);

impl Liveness {
    pub(in crate::store) fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs `task` over the jobs of `queued`, and runs it again whenever it panics. The jobs the
/// panicked task held are dropped, so their requests are answered "database unavailable"; the
/// jobs still queued wait for the new task. Stops when the task ends by itself (the queue was
/// closed: its store is gone) or the runtime shuts down.
pub(in crate::store) fn supervise<J, F, Fut>(
    name: &'static str,
    queued: mpsc::Receiver<J>,
    task: F,
) -> Liveness
where
    J: Send + 'static,
    F: Fn(Arc<Mutex<mpsc::Receiver<J>>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    supervise_shared(name, Arc::new(Mutex::new(queued)), task)
}

/// `supervise` for one of several tasks that share `queued` (any queue behind a lock).
pub(in crate::store) fn supervise_shared<Q, F, Fut>(
    name: &'static str,
    queued: Arc<Mutex<Q>>,
    task: F,
) -> Liveness
where
    Q: Send + 'static,
    F: Fn(Arc<Mutex<Q>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(true));
    let liveness = Liveness(running.clone());
    tokio::spawn(async move {
        loop {
            running.store(true, Ordering::Release);
            match tokio::spawn(task(queued.clone())).await {
                Err(e) if e.is_panic() => {
                    running.store(false, Ordering::Release);
                    tracing::error!(task = name, error = %e, "a queue task panicked; restarting it");
                }
                _ => return,
            }
        }
    });
    liveness
}
