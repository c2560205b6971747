//! Purges: rows that no request can use again, deleted a bounded number at a time by the
//! background work of every instance (`crate::background`). The same SQL on both databases.
//!
//! A purge reads the ids of the rows it will delete without locking (a locking read would,
//! on MySQL's default isolation, lock every row it scans and the gap after them, and hold back
//! the inserts of a busy table such as `events` until it commits), then deletes those ids that
//! still qualify. Instances sharing a database may purge side by side: a row both picked is deleted by
//! one and counted once, as `DELETE` counts only the rows it removed.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Type};

use super::filter::marks;
use super::{Backend, Shared};
use crate::store::{Purge, StoreError};

/// The table `purge` deletes from, which of its rows go (with one `?`: the purge's time), and
/// the order they go in.
fn rule(purge: Purge) -> (&'static str, &'static str, &'static str) {
    match purge {
        Purge::RefreshTokens(_) => (
            "refresh_tokens",
            "expires_at <= ? OR revoked_at IS NOT NULL",
            "id",
        ),
        Purge::IdempotencyKeys(_) => ("idempotency_keys", "expires_at <= ?", "expires_at, id"),
        Purge::Events(_) => ("events", "occurred_at < ?", "id"),
        Purge::WebhookDeliveries(_) => {
            ("webhook_deliveries", "attempted_at < ?", "attempted_at, id")
        }
    }
}

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    /// Deletes up to `limit` of the rows `purge` names, in its order, in the caller's
    /// transaction; returns how many went.
    pub async fn purge(
        conn: &mut DB::Connection,
        purge: Purge,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let (table, due, order) = rule(purge);
        let pick = format!("SELECT id FROM {table} WHERE {due} ORDER BY {order} LIMIT ?");
        let ids: Vec<(i64,)> = sqlx::query_as(&pick)
            .bind(purge.time().naive_utc())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // The rule again, checked under each row's lock: a row that stopped qualifying since
        // it was picked (an expired idempotency key taken over by a new request) stays.
        let delete = format!(
            "DELETE FROM {table} WHERE id IN ({}) AND ({due})",
            marks(ids.len())
        );
        let mut query = sqlx::query(&delete);
        for (id,) in ids {
            query = query.bind(id);
        }
        let query = query.bind(purge.time().naive_utc());
        Ok(DB::rows_affected(&query.execute(&mut *conn).await?))
    }
}
