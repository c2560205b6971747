//! What SQLite's error codes mean to us.

use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;

/// Whether `e` is SQLite saying the database is held by someone else (`SQLITE_BUSY`,
/// `SQLITE_LOCKED`, `SQLITE_BUSY_RECOVERY`) even after the busy timeout: a backup or another
/// process has it, so the request is answered 503 rather than 500.
pub(in crate::store) fn is_unavailable(e: &dyn DatabaseError) -> bool {
    e.try_downcast_ref::<SqliteError>()
        .is_some_and(|e| matches!(e.code().as_deref(), Some("5" | "6" | "517")))
}
