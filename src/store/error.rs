//! What a store operation can fail with. `crate::error` maps `StoreError` to HTTP, in one place.
//!
//! sqlx reports failures as `sqlx::Error`; the conversion here keeps the distinctions a client
//! needs (no such row, a duplicate, the database cannot serve us right now) and nothing else.
//! Which server error numbers mean what is each backend's own knowledge: `sqlite/error.rs` and
//! `mysql/error.rs` decode their databases' errors, this file only asks them.

use super::{mysql, sqlite};
use crate::domain::StockError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique key is taken (a username).
    #[error("already exists")]
    Conflict,
    /// The database cannot serve requests right now (down, locked, out of connections).
    #[error("database unavailable")]
    Unavailable,
    /// A stock rule refused the operation; nothing was written.
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error(transparent)]
    Db(sqlx::Error),
}

impl StoreError {
    /// The same failure again, for every waiter of a failed group write (sqlx errors cannot be
    /// cloned; the text of an unexpected one is kept for the log).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::Conflict => Self::Conflict,
            Self::Unavailable => Self::Unavailable,
            Self::Stock(e) => Self::Stock(e.clone()),
            Self::Db(inner) => Self::Db(sqlx::Error::Protocol(inner.to_string())),
        }
    }

    /// A value that could not be written or read back as expected.
    pub(crate) fn codec(problem: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Db(sqlx::Error::Decode(problem.into()))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => Self::Conflict,
            sqlx::Error::Database(d)
                if sqlite::error::is_unavailable(&**d) || mysql::error::is_unavailable(&**d) =>
            {
                Self::Unavailable
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable,
            _ => Self::Db(e),
        }
    }
}

/// Why the database could not be opened at start-up. Never carries the URL: it may hold a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with sqlite:, mysql: or mariadb:")]
    UnsupportedScheme,
    #[error("cannot open the database: {0}")]
    Open(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot apply migrations: another instance held the migration lock for {0} s")]
    MigrationLock(u64),
}
