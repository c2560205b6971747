//! What MySQL's and MariaDB's error numbers mean to us, and repeating deadlock victims.

use std::future::Future;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlDatabaseError;

use crate::store::StoreError;

/// Error numbers that mean "the database cannot serve us right now" rather than "this statement
/// is wrong": too many connections, access denied, unknown database (dropped under us),
/// shutdown in progress, lock wait timeout, connection killed.
const UNAVAILABLE: [u16; 8] = [1040, 1044, 1045, 1049, 1053, 1205, 1317, 1927];
const ER_LOCK_DEADLOCK: u16 = 1213;

/// InnoDB may pick concurrent writers of one key as deadlock victims; an operation passed to
/// `retry_on_deadlock` is safe to repeat, so it is, this many times in all.
const DEADLOCK_ATTEMPTS: u32 = 8;

/// The server's error number (`1213`), when `e` comes from MySQL or MariaDB.
fn number(e: &dyn DatabaseError) -> Option<u16> {
    e.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// Whether `e` is MySQL saying it cannot serve us right now (see `UNAVAILABLE`).
pub(in crate::store) fn is_unavailable(e: &dyn DatabaseError) -> bool {
    number(e).is_some_and(|n| UNAVAILABLE.contains(&n))
}

fn is_deadlock(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(sqlx::Error::Database(d)) if number(&**d) == Some(ER_LOCK_DEADLOCK))
}

/// Whether an attempt that failed with `e` after `tries` attempts in all should run again
/// (after `pause_after_deadlock`): a deadlock victim, `DEADLOCK_ATTEMPTS` times in all.
pub(super) fn retry_deadlock(e: &StoreError, tries: u32) -> bool {
    is_deadlock(e) && tries < DEADLOCK_ATTEMPTS
}

/// A growing pause with jitter after the `tries`-th attempt was a deadlock victim, so that
/// victims of one deadlock do not meet again in step: 2–4 ms, 4–8 ms, ... up to 256 ms.
pub(super) async fn pause_after_deadlock(tries: u32) {
    let base = 1u64 << tries.min(8);
    let pause = base + rand::random::<u64>() % base;
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// Runs `attempt` again while InnoDB reports a deadlock, with a short growing pause. Every
/// operation passed here is safe to repeat from the start (its transaction was rolled back).
pub(super) async fn retry_on_deadlock<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if retry_deadlock(&e, tries) => {
                pause_after_deadlock(tries).await;
                tries += 1;
            }
            result => return result,
        }
    }
}
