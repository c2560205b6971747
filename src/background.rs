//! Work the service does on its own, beside requests: the reservation expiry sweep.
//!
//! A reservation holds its units until `expires_at` and no longer than about a second after:
//! every `SWEEP_EVERY` each instance expires what has run out (`Store::expire_reservations`,
//! which looks before it writes and takes each reservation under a lock, so instances sharing
//! a database never expire one twice). Each round runs as a task of its own, so a failure or
//! a panic in one is logged and the next round goes on.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::Store;

/// How often overdue reservations are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most reservations one round expires (one transaction); the next round takes the rest.
const SWEEP_LIMIT: i64 = 500;

/// The running background tasks; dropping this (or `stop`) ends them.
pub struct Background {
    sweep: JoinHandle<()>,
}

impl Background {
    /// Starts the background tasks on `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        Self {
            sweep: tokio::spawn(sweep_forever(store)),
        }
    }

    /// Ends the background tasks (at shutdown, before the store closes).
    pub fn stop(&self) {
        self.sweep.abort();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn sweep_forever(store: Arc<dyn Store>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let store = store.clone();
        let round = tokio::spawn(async move { store.expire_reservations(SWEEP_LIMIT).await });
        match round.await {
            Ok(Ok(expired)) => {
                failing = false;
                if expired.reservations > 0 {
                    tracing::info!(
                        reservations = expired.reservations,
                        units = expired.quantity,
                        "expired reservations"
                    );
                }
            }
            // Logged once per outage, not every half second.
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "the reservation expiry sweep failed; retrying");
            }
            Ok(Err(_)) => {}
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "a reservation expiry round panicked");
            }
            Err(_) => return,
        }
    }
}
