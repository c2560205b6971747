//! SQL that is the same text on SQLite and MySQL, written once.
//!
//! Both databases take `?` placeholders, and sqlx's API is the same for both; only the database
//! type differs. So these statements are functions generic over the backend, collected on the
//! type `Shared<DB>` so that the trait bounds every statement needs (how each value binds and
//! decodes on `DB`) are written once per file, on its `impl` block, rather than on every
//! function. The few things the two dialects do differently are the `Backend` trait's.
//!
//! The functions take a connection and do not begin or commit: the backend decides where a
//! transaction starts and ends (SQLite's write queue runs many operations in one; MySQL gives
//! each operation its own and repeats it on a deadlock).
//!
//! - `audit.rs`: the audit log, appended and read;
//! - `idempotency.rs`: idempotency keys, claimed, completed and released;
//! - `users.rs`: users, their sellers, refresh tokens;
//! - `records.rs`: records by table (get, list, incremental-sync pages, low stock, lookup)
//!   and the delete of a sales target;
//! - `books.rs`: the ledger, read, and the consistency check;
//! - `conditional.rs`: upserts with `If-Match` / `If-None-Match`, one row at a time;
//! - `stock.rs`: writes to one row's stock (adjust, thresholds, delete) with their ledger
//!   entries, and the pieces every stock operation uses;
//! - `reservations.rs`: hold, release, commit and expire reservations, and read them;
//! - `events.rs`: the event outbox, appended in the transaction of each change, and read;
//! - `webhooks.rs`: webhooks, their delivery log, and the delivery state and lease the worker
//!   keeps on each webhook;
//! - `purge.rs`: rows no request can use again (refresh tokens, idempotency keys, events,
//!   webhook delivery attempts),
//!   deleted by the background work;
//! - `filter.rs`: the `WHERE` clause of a list, with its values bound.

mod audit;
mod books;
mod conditional;
mod events;
mod filter;
mod idempotency;
mod purge;
mod records;
mod reservations;
mod stock;
mod users;
mod webhooks;

use std::marker::PhantomData;

use super::StoreError;

pub(super) use records::{InventoryTable, SalesTargetTable, Table};

/// The result of a stock operation as the `Store` trait answers it: a refusal becomes
/// `StoreError::Stock`.
pub(super) fn settled<T>(outcome: Result<Outcome<T>, StoreError>) -> Result<T, StoreError> {
    Ok(outcome??)
}

/// What the two databases do differently, as far as the shared statements are concerned.
pub(super) trait Backend: sqlx::Database {
    /// Appended to a `SELECT` inside a transaction whose rows must stay as read until commit:
    /// `FOR UPDATE` on MySQL. SQLite needs nothing: its one writer holds the whole database.
    const LOCK_ROWS: &'static str;

    /// Appended to a `SELECT` inside a transaction that claims rows for work every instance
    /// does on its own (the expiry sweep): `FOR UPDATE SKIP LOCKED` on MySQL, so that
    /// instances sharing a database each take rows no other holds, and none waits for another
    /// (or for a request holding the row). SQLite needs nothing: its one writer holds the
    /// whole database.
    const CLAIM_ROWS: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// The id an `INSERT` of one row gave it.
    fn last_insert_id(done: &Self::QueryResult) -> i64;

    /// A query for the id the next reservation will get, where the backend can know it ahead
    /// (SQLite: its one writer is the only one inserting), so that many are inserted in one
    /// statement; `None` where other writers may take ids meanwhile (MySQL).
    const NEXT_RESERVATION_ID: Option<&'static str>;

    /// A statement run just before a transaction inserts its events, whose lock it holds to
    /// its commit, where ids are handed out at insert rather than at commit (MySQL): so events
    /// commit in id order, and a reader paging by id never passes one still to come. `None`
    /// where one writer commits at a time (SQLite).
    const EVENT_LOCK: Option<&'static str>;
}

impl Backend for sqlx::Sqlite {
    const LOCK_ROWS: &'static str = "";
    const CLAIM_ROWS: &'static str = "";
    // `reservations` is AUTOINCREMENT: ids are never reused, so the next one follows the
    // highest ever given (kept in `sqlite_sequence`, absent until the first insert).
    const NEXT_RESERVATION_ID: Option<&'static str> =
        Some("SELECT COALESCE(MAX(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'reservations'");
    const EVENT_LOCK: Option<&'static str> = None;

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn last_insert_id(done: &sqlx::sqlite::SqliteQueryResult) -> i64 {
        done.last_insert_rowid()
    }
}

impl Backend for sqlx::MySql {
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const CLAIM_ROWS: &'static str = " FOR UPDATE SKIP LOCKED";
    const NEXT_RESERVATION_ID: Option<&'static str> = None;
    const EVENT_LOCK: Option<&'static str> =
        Some("UPDATE event_sequence SET batches = batches + 1 WHERE id = 1");

    fn rows_affected(done: &sqlx::mysql::MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    fn last_insert_id(done: &sqlx::mysql::MySqlQueryResult) -> i64 {
        // Ids are BIGINT, positive and far below i64::MAX.
        i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX)
    }
}

/// The shared statements, for backend `DB` (see the module comment).
pub(super) struct Shared<DB>(PhantomData<DB>);

/// A boxed future that may move between threads, as the operations below return.
pub(super) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The outcome of a stock operation: done, or refused by a stock rule (in which case it wrote
/// nothing, so the transaction around it may still commit the other work it holds).
pub(super) type Outcome<T> = Result<T, crate::domain::StockError>;

/// A store operation that a backend runs on one of its connections, inside a transaction the
/// backend begins and commits: statements on `conn`, with the arguments `args`. A plain
/// function, so that the backend may run it again (after a deadlock, or alone after its group
/// failed) without cloning anything.
pub(super) type Operation<Conn, A, T> =
    for<'c> fn(&'c mut Conn, &'c A) -> BoxFuture<'c, Result<T, StoreError>>;
