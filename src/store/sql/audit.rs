//! The audit log: entries appended inside the transaction of the action they record, and read
//! newest first. The same SQL on both databases.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::Filter;
use super::{Backend, Shared};
use crate::domain::{Actor, AuditEntry, AuditFilter, NewAudit, PageRequest, Timestamp};
use crate::store::rows::{AuditRow, InventoryRow, Text, AUDIT_COLUMNS};
use crate::store::{Listed, StoreError};

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> AuditRow: FromRow<'r, DB::Row>,
    for<'r> InventoryRow: FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Appends `entry`, done by `actor` at `now`.
    pub async fn insert_audit(
        conn: &mut DB::Connection,
        entry: &NewAudit,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (target_type, target_id) = match &entry.target {
            Some((kind, id)) => (Some(kind.as_str()), Some(id.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO audit_log (time, user_id, username, action, target_type, target_id, \
             client_ip, request_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now.naive_utc())
        .bind(actor.user_id)
        .bind(actor.username.as_deref())
        .bind(entry.action.as_str())
        .bind(target_type)
        .bind(target_id)
        .bind(actor.client_ip.as_deref())
        .bind(actor.request_id.as_deref())
        .bind(entry.detail.to_string().as_str())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Entries matching `filter`, newest first.
    pub async fn audit_log(
        conn: &mut DB::Connection,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Listed<AuditEntry>, StoreError> {
        let conditions = Filter::default()
            .eq_int("user_id", filter.user_id)
            .eq("action", filter.action.map(|a| a.as_str()))
            .eq("target_type", filter.target_type.map(|t| t.as_str()))
            .since("time", filter.since)
            .until("time", filter.until);
        Self::page::<AuditRow>(
            conn,
            AUDIT_COLUMNS,
            "audit_log",
            &conditions,
            "id DESC",
            page,
        )
        .await
        .map(Listed::convert)
    }
}
