//! Keeps a queue's task alive: the SQLite write queue and the coalescing readers each run one
//! task that every request of theirs depends on, so such a task must never vanish silently.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

/// Whether a supervised task is running now.
#[derive(Debug, Clone)]
pub(super) struct Liveness(Arc<AtomicBool>);

impl Liveness {
    pub(super) fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs `task` over the jobs of `queued`, and runs it again whenever it panics. The jobs the
/// panicked task held are dropped, so their requests are answered "database unavailable"; the
/// jobs still queued wait for the new task. Stops when the task ends by itself (the queue was
/// closed: its store is gone) or the runtime shuts down.
pub(super) fn supervise<J, F, Fut>(
    name: &'static str,
    queued: mpsc::Receiver<J>,
    task: F,
) -> Liveness
where
    J: Send + 'static,
    F: Fn(Arc<Mutex<mpsc::Receiver<J>>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(true));
    let liveness = Liveness(running.clone());
    let queued = Arc::new(Mutex::new(queued));
    tokio::spawn(async move {
        loop {
            running.store(true, Ordering::Release);
            match tokio::spawn(task(queued.clone())).await {
                Err(e) if e.is_panic() => {
                    running.store(false, Ordering::Release);
                    tracing::error!(task = name, error = %e, "a SQLite queue task panicked; restarting it");
                }
                _ => return,
            }
        }
    });
    liveness
}
