//! Work the service does on its own, beside requests: the reservation expiry sweep, the
//! purge of refresh tokens and idempotency keys, and the event purge.
//!
//! Every instance runs this work, and instances may share a database. The expiry sweep claims
//! the reservations it expires (on MySQL `SELECT ... FOR UPDATE SKIP LOCKED`,
//! `Backend::CLAIM_ROWS` in the store), so two instances never take one at once and neither
//! waits for the other; a purge deletes rows by id, each deleted and counted once however
//! many instances purge (`store/sql/purge.rs`). Webhook delivery claims each webhook with a
//! lease (`crate::webhooks`).
//!
//! A reservation holds its units until `expires_at` and no longer than about a second after:
//! every `SWEEP_EVERY` each instance expires what has run out (`Store::expire_reservations`,
//! which looks before it writes, then claims the reservations due; one another instance
//! expired meanwhile is found ended and not counted: never expired twice).
//!
//! Every `PURGE_EVERY` each instance deletes refresh tokens that can never be used again,
//! expired or revoked, idempotency keys past their 24 hours, events older than
//! `EVENT_RETENTION_DAYS`, and webhook delivery attempts as old (`Store::purge`),
//! `PURGE_LIMIT` rows per transaction so that no write holds the database long.
//!
//! Each round runs as a task of its own, so a failure or a panic in one is logged and the
//! next round goes on.
//!
//! Beside them runs the webhook delivery worker (`crate::webhooks`), which claims each webhook
//! with a lease in the database, so instances sharing a database never deliver for one
//! webhook at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::domain::Timestamp;
use crate::store::{Purge, Store, StoreError};
use crate::webhooks::{Worker, WorkerSettings};

/// How often overdue reservations are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most reservations one round expires (one transaction); the next round takes the rest.
const SWEEP_LIMIT: i64 = 500;
/// How often expired and revoked refresh tokens are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Most rows one statement of a purge deletes; a round repeats it until done.
pub const PURGE_LIMIT: i64 = 1_000;

/// The running background tasks; dropping this (or `stop`) ends them.
pub struct Background {
    sweep: JoinHandle<()>,
    purge: JoinHandle<()>,
    event_purge: JoinHandle<()>,
    webhooks: Option<Worker>,
}

impl Background {
    /// Starts the background tasks on `store`, as `config` says (how long events are kept,
    /// where webhooks may be delivered and how they are retried).
    pub fn start(store: Arc<dyn Store>, config: &Config) -> Self {
        let event_retention = config.event_retention;
        let sweeping = store.clone();
        let purging = store.clone();
        let webhooks = Worker::start(
            store.clone(),
            WorkerSettings {
                allow_private: config.webhook_allow_private,
                retry: config.webhook_retry,
            },
        );
        Self {
            webhooks: Some(webhooks),
            event_purge: tokio::spawn(every(PURGE_EVERY, "event purge", move || {
                let store = purging.clone();
                async move {
                    // Each purge runs whether or not the other failed.
                    let events = purge_events(store.as_ref(), event_retention).await;
                    let attempts = purge_webhook_deliveries(store.as_ref(), event_retention).await;
                    events.and(attempts).map(drop)
                }
            })),
            sweep: tokio::spawn(every(SWEEP_EVERY, "reservation expiry", move || {
                expire_reservations(sweeping.clone())
            })),
            purge: tokio::spawn(every(PURGE_EVERY, "purge", move || {
                let store = store.clone();
                async move {
                    // Each purge runs whether or not the other failed.
                    let tokens = purge_refresh_tokens(store.as_ref()).await;
                    let keys = purge_idempotency_keys(store.as_ref()).await;
                    tokens.and(keys).map(drop)
                }
            })),
        }
    }

    /// Ends the background tasks at once.
    pub fn stop(&self) {
        self.sweep.abort();
        self.purge.abort();
        self.event_purge.abort();
        if let Some(webhooks) = &self.webhooks {
            webhooks.abort();
        }
    }

    /// Ends the background tasks at shutdown, before the store closes: webhook deliveries in
    /// flight are abandoned and their leases released, so that another instance (or this one,
    /// restarted) goes on with them at once.
    pub async fn shutdown(mut self) {
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.shutdown().await;
        }
        self.stop();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One round of the reservation expiry sweep.
async fn expire_reservations(store: Arc<dyn Store>) -> Result<(), StoreError> {
    let expired = store.expire_reservations(SWEEP_LIMIT).await?;
    if expired.reservations > 0 {
        tracing::info!(
            reservations = expired.reservations,
            units = expired.quantity,
            "expired reservations"
        );
    }
    Ok(())
}

/// One round of the refresh-token purge: every expired or revoked token. Returns how many
/// went.
pub async fn purge_refresh_tokens(store: &dyn Store) -> Result<u64, StoreError> {
    purge_all(store, Purge::RefreshTokens(Timestamp::now())).await
}

/// One round of the idempotency-key purge: every key past its 24 hours. Returns how many
/// went. (Expired keys count as absent before they are purged.)
pub async fn purge_idempotency_keys(store: &dyn Store) -> Result<u64, StoreError> {
    purge_all(store, Purge::IdempotencyKeys(Timestamp::now())).await
}

/// One round of the event purge: every event that happened more than `retention` ago.
/// Returns how many went.
pub async fn purge_events(store: &dyn Store, retention: Duration) -> Result<u64, StoreError> {
    purge_all(store, Purge::Events(Timestamp::now().minus(retention))).await
}

/// One round of the delivery-log purge: every webhook delivery attempt made more than
/// `retention` ago (the events' retention). Returns how many went.
pub async fn purge_webhook_deliveries(
    store: &dyn Store,
    retention: Duration,
) -> Result<u64, StoreError> {
    purge_all(
        store,
        Purge::WebhookDeliveries(Timestamp::now().minus(retention)),
    )
    .await
}

/// Deletes what `purge` names, `PURGE_LIMIT` rows per transaction until one deletes fewer,
/// so that no write holds the database long; logs and returns how many went in all.
async fn purge_all(store: &dyn Store, purge: Purge) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let deleted = store.purge(purge, PURGE_LIMIT).await?;
        purged += deleted;
        if deleted < PURGE_LIMIT.unsigned_abs() {
            break;
        }
    }
    if purged > 0 {
        tracing::info!(rows = purged, what = purge.label(), "purged");
    }
    Ok(purged)
}

/// Runs `round` every `period`, each time as a task of its own, until aborted.
async fn every<R, F>(period: Duration, task: &'static str, round: R)
where
    R: Fn() -> F + Send + 'static,
    F: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let mut failing = false;
    loop {
        tokio::time::sleep(period).await;
        match tokio::spawn(round()).await {
            Ok(Ok(())) => failing = false,
            // Logged once per outage, not every round.
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, task, "a background round failed; retrying");
            }
            Ok(Err(_)) => {}
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, task, "a background round panicked");
            }
            Err(_) => return,
        }
    }
}
