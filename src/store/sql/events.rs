//! The event outbox, the same SQL on both databases: events inserted inside the transaction of
//! the change they record, and read back by id for `GET /api/v1/events` (docs/api.md, "Event
//! feed"). Events older than the retention are purged (`purge.rs`).

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::{bind, groups, marks, Value};
use super::{Backend, Shared};
use crate::domain::{Event, EventFilter, NewEvent, Scope, Timestamp};
use crate::store::rows::{EventRow, Text, EVENT_COLUMNS};
use crate::store::StoreError;

/// Most events one `INSERT` carries (4 values each).
const CHUNK: usize = 250;

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
{
    /// Appends `events`, in order, as happened at `now`, in the caller's transaction (which
    /// should commit soon after: on MySQL this holds `Backend::EVENT_LOCK` until then).
    pub async fn insert_events(
        conn: &mut DB::Connection,
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(lock) = DB::EVENT_LOCK {
            sqlx::query(lock).execute(&mut *conn).await?;
        }
        let at = now.naive_utc();
        for chunk in events.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO events (event_type, occurred_at, seller_id, data) VALUES {}",
                groups(chunk.len(), 4)
            );
            let mut insert = sqlx::query(&sql);
            for event in chunk {
                insert = insert
                    .bind(event.event_type.as_str())
                    .bind(at)
                    .bind(event.seller_id.as_str())
                    .bind(event.data.as_str());
            }
            insert.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> EventRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// The events after `filter.after` that `filter` and `scope` allow, in id order, at most
    /// `filter.limit`.
    pub async fn events(
        conn: &mut DB::Connection,
        filter: &EventFilter,
        scope: &Scope,
    ) -> Result<Vec<Event>, StoreError> {
        let mut values = vec![Value::Int(filter.after)];
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > ?");
        if !filter.types.is_empty() {
            sql.push_str(&format!(
                " AND event_type IN ({})",
                marks(filter.types.len())
            ));
            values.extend(filter.types.iter().map(|t| Value::Text(t.as_str())));
        }
        if let Some(seller) = &filter.seller_id {
            sql.push_str(" AND seller_id = ?");
            values.push(Value::Text(seller.as_str()));
        }
        if let Scope::Sellers(own) = scope {
            if own.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(" AND seller_id IN ({})", marks(own.len())));
            values.extend(own.iter().map(|s| Value::Text(s.as_str())));
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        values.push(Value::Int(i64::from(filter.limit)));
        let rows: Vec<EventRow> = bind(sqlx::query_as(&sql), &values)
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter().map(Event::try_from).collect()
    }
}
