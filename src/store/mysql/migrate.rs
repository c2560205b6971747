//! Migrations on MySQL, applied once however many instances start together.
//!
//! sqlx's migrator takes a lock of its own, with `GET_LOCK(name, -1)` and without reading the
//! answer; MariaDB takes a negative timeout as "do not wait" and answers NULL at once, so two
//! instances starting together on MariaDB would both apply the same migration (and one fail
//! start-up on a duplicate key). So the migrations run under a lock taken here, with a finite
//! wait and its answer checked, on the one connection that applies them.

use std::time::Duration;

use sqlx::MySqlPool;

use crate::store::ConnectError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The lock's name: one per database on the server (a name may be at most 64 characters,
/// hence the hash of the database's name).
const LOCK: &str = "CONCAT('sellerdesk-migrate:', SHA1(DATABASE()))";

/// How long an instance waits for another to finish migrating before start-up fails.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Applies the pending migrations, under the lock (see the module comment).
pub(super) async fn migrate(pool: &MySqlPool) -> Result<(), ConnectError> {
    let mut conn = pool.acquire().await?;
    let (locked,): (Option<i64>,) = sqlx::query_as(&format!("SELECT GET_LOCK({LOCK}, ?)"))
        .bind(LOCK_WAIT.as_secs())
        .fetch_one(&mut *conn)
        .await?;
    if locked != Some(1) {
        return Err(ConnectError::MigrationLock(LOCK_WAIT.as_secs()));
    }
    let applied = MIGRATOR.run_direct(&mut *conn).await;
    // Released here, or by the server when the connection closes.
    let released = sqlx::query(&format!("SELECT RELEASE_LOCK({LOCK})"))
        .execute(&mut *conn)
        .await;
    applied?;
    released?;
    Ok(())
}
