//! Webhook delivery (docs/webhooks.md): a background worker that POSTs each webhook's matching
//! events, one at a time in event order, and keeps its progress in the database.
//!
//! Reading order:
//! 1. this file: the worker. It wakes when this instance writes (the store's event signal) and
//!    at least every `POLL_EVERY` (for events other instances write), asks the store which
//!    webhooks have work (`Store::due_webhooks`), and runs each in a task of its own, at most
//!    `MAX_CONCURRENT` at a time. A task first takes the webhook's *lease* in the database
//!    (`Store::claim_webhook`): of several instances sharing the database, only the holder
//!    sends, so no delivery is sent twice at once and per-webhook order holds. It then
//!    delivers event after event, saving the cursor, the attempt and a renewed lease after
//!    each (`Store::save_webhook_progress`), and releases the lease when done;
//! 2. `client.rs`: the HTTP client, the signature headers, and the address rule (SSRF) in
//!    its resolver;
//! 3. `address.rs`: which addresses are public.
//!
//! What a webhook is, the signature and the retry schedule are `crate::domain::webhook`.
//! Delivery is at least once: an instance that stops between a receiver's 2xx and saving it
//! (or loses its lease meanwhile) leaves the event to be sent again.

mod address;
mod client;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use address::is_public;
pub use client::{check_target, Deliverer, TargetError, DELIVERY_TIMEOUT};

use crate::domain::{
    NewDelivery, NextEvent, RetryPolicy, Timestamp, WebhookProgress, WebhookTarget,
};
use crate::store::{Store, StoreError};

/// Most webhooks delivered to at once by one instance.
pub const MAX_CONCURRENT: usize = 8;
/// How often the worker looks for work written by other instances.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a claim holds a webhook without being renewed: longer than one attempt (the
/// 10 s timeout) and the write after it, so that a live holder never loses it; an instance
/// that dies holding it delays that webhook by at most this long.
pub const LEASE: Duration = Duration::from_secs(30);
/// A retry due within this long is waited for with the lease held; a later one releases it.
const HOLD_FOR_RETRY: Duration = Duration::from_secs(2);
/// Most events one claim delivers before it lets go, so that busy webhooks take turns.
const EVENTS_PER_CLAIM: usize = 100;
/// Most due webhooks read per round.
const DUE_PER_ROUND: i64 = 64;
/// Least time between two rounds woken by writes: a burst of writes (every write of this
/// instance wakes the worker) costs at most one look per this long, so the worker never
/// competes with requests for connections (a delivery starts at most this much later).
const MIN_ROUND_GAP: Duration = Duration::from_millis(100);

/// What the worker needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub allow_private: bool,
    pub retry: RetryPolicy,
}

/// The running worker: `shutdown` lets in-flight deliveries end and their leases go; dropping
/// it (or `abort`) just stops it.
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    pub fn start(store: Arc<dyn Store>, settings: WorkerSettings) -> Self {
        let (stop, stopped) = watch::channel(false);
        let worker = Run {
            store,
            deliverer: Deliverer::new(settings.allow_private),
            retry: settings.retry,
            owner: Arc::from(format!("{:016x}", rand::random::<u64>())),
            stopped,
        };
        Self {
            stop,
            task: tokio::spawn(worker.run()),
        }
    }

    /// Stops looking for work, abandons the attempts in flight (unrecorded: they are sent
    /// again later) and releases their leases, so another instance, or this one restarted,
    /// can go on at once. Gives up waiting after `DELIVERY_TIMEOUT`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(DELIVERY_TIMEOUT, self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The worker's loop and what its delivery tasks share.
struct Run {
    store: Arc<dyn Store>,
    deliverer: Deliverer,
    retry: RetryPolicy,
    /// This worker's name in the leases it takes.
    owner: Arc<str>,
    stopped: watch::Receiver<bool>,
}

/// A webhook this worker is delivering to; removed from the set when its task ends, however
/// it ends.
struct Busy {
    set: Arc<Mutex<HashSet<i64>>>,
    id: i64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

impl Run {
    async fn run(mut self) {
        let signal = self.store.event_signal();
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
        let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let mut failing = false;
        loop {
            // Registered before the read, so that a write between the read and the wait
            // still wakes the worker.
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            while let Some(ended) = tasks.try_join_next() {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "a webhook delivery task panicked");
                }
            }
            match self.store.due_webhooks(DUE_PER_ROUND).await {
                Ok(due) => {
                    failing = false;
                    for id in due {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            break;
                        };
                        let Ok(mut set) = busy.lock() else { break };
                        if !set.insert(id) {
                            continue;
                        }
                        drop(set);
                        let guard = Busy {
                            set: busy.clone(),
                            id,
                        };
                        let delivery = self.delivery(id);
                        tasks.spawn(async move {
                            delivery.run().await;
                            drop((guard, permit));
                        });
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "looking for webhook deliveries failed; retrying");
                }
                Err(_) => {}
            }
            let woken = tokio::select! {
                () = &mut notified => true,
                () = tokio::time::sleep(POLL_EVERY) => false,
                _ = self.stopped.changed() => break,
            };
            if woken {
                tokio::select! {
                    () = tokio::time::sleep(MIN_ROUND_GAP) => {}
                    _ = self.stopped.changed() => break,
                }
            }
        }
        // Each task sees the stop too, and releases its lease.
        while tasks.join_next().await.is_some() {}
    }

    fn delivery(&self, id: i64) -> Delivery {
        Delivery {
            store: self.store.clone(),
            deliverer: self.deliverer.clone(),
            retry: self.retry,
            owner: self.owner.clone(),
            stopped: self.stopped.clone(),
            id,
        }
    }
}

/// One claim of one webhook: delivers its events until none is due, then lets go.
struct Delivery {
    store: Arc<dyn Store>,
    deliverer: Deliverer,
    retry: RetryPolicy,
    owner: Arc<str>,
    stopped: watch::Receiver<bool>,
    id: i64,
}

/// Whether the lease is still ours after a step.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    Yes,
    Lost,
}

impl Delivery {
    async fn run(mut self) {
        let until = Timestamp::now().plus(LEASE);
        let target = match self.store.claim_webhook(self.id, &self.owner, until).await {
            Ok(Some(target)) => target,
            Ok(None) => return, // another instance holds it
            Err(e) => {
                tracing::warn!(webhook_id = self.id, error = %e, "claiming a webhook failed");
                return;
            }
        };
        let held = self.deliver(target).await;
        if !matches!(held, Ok(Held::Lost)) {
            if let Err(e) = &held {
                tracing::warn!(webhook_id = self.id, error = %e, "webhook delivery stopped");
            }
            if let Err(e) = self.store.release_webhook(self.id, &self.owner).await {
                // The lease runs out by itself.
                tracing::warn!(webhook_id = self.id, error = %e, "releasing a webhook failed");
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Waits `wait`; `false` if the worker is stopped meanwhile.
    async fn pause(&mut self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            _ = self.stopped.changed() => false,
        }
    }

    async fn deliver(&mut self, mut target: WebhookTarget) -> Result<Held, StoreError> {
        for _ in 0..EVENTS_PER_CLAIM {
            if self.stopping() {
                return Ok(Held::Yes);
            }
            if let Some(next) = target.webhook.next_attempt_at {
                let wait = Duration::from_micros(
                    next.micros()
                        .saturating_sub(Timestamp::now().micros())
                        .max(0)
                        .unsigned_abs(),
                );
                if wait > HOLD_FOR_RETRY || !self.pause(wait).await {
                    return Ok(Held::Yes);
                }
            }
            let event = match self.store.next_webhook_event(&target.webhook).await? {
                NextEvent::Idle => return Ok(Held::Yes),
                NextEvent::Skip(up_to) => {
                    let mut progress = self.progress(&target);
                    progress.last_event_id = up_to;
                    if !self.store.save_webhook_progress(&progress).await? {
                        return Ok(Held::Lost);
                    }
                    target.webhook.last_event_id = up_to;
                    continue;
                }
                NextEvent::Deliver(event) => event,
            };
            // The lease is checked (and extended) right before each send: an instance that
            // stalled past its lease must not send beside the one that took the webhook over.
            let until = Timestamp::now().plus(LEASE);
            if !self
                .store
                .renew_webhook(self.id, &self.owner, until)
                .await?
            {
                return Ok(Held::Lost);
            }
            let body = serde_json::to_vec(&event).map_err(StoreError::codec)?;
            let attempted_at = Timestamp::now();
            let answer = tokio::select! {
                answer = self.deliverer.send(&target.webhook.url, &target.secret, &event, body) => answer,
                // Abandoned unrecorded: the event is sent again after the restart.
                _ = self.stopped.changed() => return Ok(Held::Yes),
            };
            let now = Timestamp::now();
            let (cursor, attempts, failing_since, next_attempt_at, outcome) = self
                .retry
                .after_attempt(&target, event.id, answer.delivered(), now);
            metrics::counter!("webhook_deliveries_total", "outcome" => outcome.as_str())
                .increment(1);
            let delivery = NewDelivery {
                event_id: event.id,
                attempt: target.attempts + 1,
                attempted_at,
                status_code: answer.status,
                error: answer.error.clone(),
                latency_ms: u64::try_from(answer.latency.as_millis()).unwrap_or(u64::MAX),
                outcome,
            };
            match outcome {
                crate::domain::DeliveryOutcome::Delivered => tracing::debug!(
                    webhook_id = self.id,
                    event_id = event.id,
                    "webhook event delivered"
                ),
                crate::domain::DeliveryOutcome::Failed => tracing::info!(
                    webhook_id = self.id,
                    event_id = event.id,
                    attempt = delivery.attempt,
                    status = answer.status,
                    error = answer.error.as_deref(),
                    "webhook delivery failed; will retry"
                ),
                crate::domain::DeliveryOutcome::GivenUp => tracing::warn!(
                    webhook_id = self.id,
                    event_id = event.id,
                    attempt = delivery.attempt,
                    "webhook delivery given up after failing for the give-up time"
                ),
            }
            target.webhook.last_event_id = cursor;
            target.attempts = attempts;
            target.webhook.failing_since = failing_since;
            target.webhook.next_attempt_at = next_attempt_at;
            let mut progress = self.progress(&target);
            progress.delivery = Some(delivery);
            if !self.store.save_webhook_progress(&progress).await? {
                return Ok(Held::Lost);
            }
        }
        Ok(Held::Yes)
    }

    /// `target`'s state as it is, with the lease renewed.
    fn progress(&self, target: &WebhookTarget) -> WebhookProgress {
        WebhookProgress {
            webhook_id: self.id,
            owner: self.owner.to_string(),
            last_event_id: target.webhook.last_event_id,
            attempts: target.attempts,
            failing_since: target.webhook.failing_since,
            next_attempt_at: target.webhook.next_attempt_at,
            lease_until: Timestamp::now().plus(LEASE),
            delivery: None,
        }
    }
}
