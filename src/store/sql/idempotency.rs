//! Idempotency keys: the record of a user's key read, claimed (a new row, or over one that
//! expired or whose request died), completed with its response, and released (expired ones
//! are purged by `purge.rs`). The same SQL on both databases. What the rows mean:
//! `crate::domain::IdempotencyRecord` and migration 0007.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Backend, Shared};
use crate::domain::{IdempotencyKey, IdempotencyRecord, KeptResponse, NewClaim, Timestamp};
use crate::store::rows::{IdempotencyRow, IDEMPOTENCY_COLUMNS};
use crate::store::StoreError;

const READ_KEY: &str = "WHERE user_id = ? AND idem_key = ?";

const INSERT_CLAIM: &str = "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, \
     claim, locked_until, expires_at, create_time) VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Takes over a row that no longer counts: expired, or claimed by a request whose lease ran
/// out. The condition is checked again here, under the row's lock, so of two requests that
/// both saw the row stale, one takes it.
const TAKE_OVER_CLAIM: &str = "UPDATE idempotency_keys SET fingerprint = ?, claim = ?, \
     locked_until = ?, status = NULL, headers = NULL, body = NULL, expires_at = ?, \
     create_time = ? WHERE user_id = ? AND idem_key = ? \
     AND (expires_at <= ? OR (status IS NULL AND locked_until <= ?))";

const COMPLETE_CLAIM: &str = "UPDATE idempotency_keys SET status = ?, headers = ?, body = ?, \
     locked_until = NULL, expires_at = ? \
     WHERE user_id = ? AND idem_key = ? AND claim = ? AND status IS NULL";

const RELEASE_CLAIM: &str =
    "DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND claim = ? \
     AND status IS NULL";

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    for<'r> IdempotencyRow: FromRow<'r, DB::Row>,
{
    /// The record of `user_id`'s `key`, if there is one (expired or not: the caller decides).
    pub async fn idempotency_record(
        conn: &mut DB::Connection,
        user_id: i64,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let sql = format!("SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys {READ_KEY}");
        let row: Option<IdempotencyRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        row.map(IdempotencyRecord::try_from).transpose()
    }

    /// Inserts the claim of a key nobody holds; `false` when the key's row exists (another
    /// request inserted it first: the unique key decides).
    pub async fn insert_claim(
        conn: &mut DB::Connection,
        claim: &NewClaim,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(INSERT_CLAIM)
            .bind(claim.user_id)
            .bind(claim.key.as_str())
            .bind(&claim.fingerprint.0[..])
            .bind(claim.claim)
            .bind(claim.locked_until().naive_utc())
            .bind(claim.expires_at().naive_utc())
            .bind(claim.now.naive_utc())
            .execute(&mut *conn)
            .await;
        // A unique violation undoes only its own statement on both databases, so the
        // transaction around it (on SQLite, shared with other jobs) goes on.
        match done.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Claims a key whose row no longer counts (see `TAKE_OVER_CLAIM`); `false` when the row
    /// counts again (someone else took it, or it never was stale).
    pub async fn take_over_claim(
        conn: &mut DB::Connection,
        claim: &NewClaim,
    ) -> Result<bool, StoreError> {
        let now = claim.now.naive_utc();
        let done = sqlx::query(TAKE_OVER_CLAIM)
            .bind(&claim.fingerprint.0[..])
            .bind(claim.claim)
            .bind(claim.locked_until().naive_utc())
            .bind(claim.expires_at().naive_utc())
            .bind(now)
            .bind(claim.user_id)
            .bind(claim.key.as_str())
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Keeps `response` as the outcome of the claim `claim` of `user_id`'s `key`, until
    /// `expires_at`; `false` when the claim is no longer this request's (it was taken over).
    pub async fn complete_claim(
        conn: &mut DB::Connection,
        (user_id, key, claim): (i64, &IdempotencyKey, i64),
        response: &KeptResponse,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let headers = serde_json::to_string(&response.headers).map_err(StoreError::codec)?;
        let done = sqlx::query(COMPLETE_CLAIM)
            .bind(i64::from(response.status))
            .bind(headers.as_str())
            .bind(&response.body[..])
            .bind(expires_at.naive_utc())
            .bind(user_id)
            .bind(key.as_str())
            .bind(claim)
            .execute(&mut *conn)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Deletes the claim `claim` of `user_id`'s `key` if it is still this request's and has no
    /// response: its request failed, and a retry is to run again.
    pub async fn release_claim(
        conn: &mut DB::Connection,
        (user_id, key, claim): (i64, &IdempotencyKey, i64),
    ) -> Result<(), StoreError> {
        sqlx::query(RELEASE_CLAIM)
            .bind(user_id)
            .bind(key.as_str())
            .bind(claim)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
