//! The SQLite backend: the development default, and a fine single-node production store.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent requests race for the
//! write lock (and surface "database is locked"), every write goes through a pool of exactly
//! one connection, so writes queue fairly inside the application; reads use their own pool and,
//! thanks to WAL, never wait for the writer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, SqlitePool};

use upsert::{encode, upsert_queue, Encoded};

mod upsert;

use super::group_commit::Queue;
use super::{
    inventory_conditions, list_rows, sales_conditions, scope_condition, ConnectError, InventoryRow,
    Listed, SalesTargetRow, Store, StoreError, StoreOptions, Table, INVENTORY, SALES_TARGETS,
};
use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another process (a backup, the shell tool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Upserts, single and batched, written in groups (see `group_commit`).
    sales: Queue<Encoded<SalesTargetInput>, SalesTarget>,
    inventory: Queue<Encoded<InventoryInput>, Inventory>,
    /// Reads by id, coalesced the same way into `WHERE id IN (...)`.
    sales_reads: Queue<i64, Option<SalesTarget>>,
    inventory_reads: Queue<i64, Option<Inventory>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, ConnectError> {
        let connect = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing on a process crash; only an OS crash or power
            // loss can roll back the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A local file cannot go stale under us; the default ping before every use would
            // double the hand-offs to the connection's worker thread (see bench/RESULTS.md).
            .test_before_acquire(false)
            // An in-memory database lives only as long as its connection.
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            // Writes queue here, so the wait may be long under load; the 30 s request timeout
            // bounds it.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await?;
        MIGRATOR.run(&writer).await?;

        // Separate readers need a file; an in-memory database reads through its one connection.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?
        };
        let sales = upsert_queue(&writer);
        let inventory = upsert_queue(&writer);
        let sales_reads = reads_queue::<SalesTargetRow, _>(&reader, SALES_TARGETS);
        let inventory_reads = reads_queue::<InventoryRow, _>(&reader, INVENTORY);
        Ok(Self {
            writer,
            reader,
            sales,
            inventory,
            sales_reads,
            inventory_reads,
        })
    }

    async fn delete<R>(&self, table: Table, id: i64, scope: &Scope) -> Result<R, StoreError>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let (scope_sql, binds) = scope_condition(scope);
        let sql = format!(
            "DELETE FROM {} WHERE id = ?{scope_sql} RETURNING {}",
            table.name, table.columns
        );
        let mut query = sqlx::query_as::<_, R>(&sql).bind(id);
        for value in binds {
            query = query.bind(value);
        }
        Ok(query.fetch_one(&self.writer).await?)
    }
}

/// `at` as the text sqlx stores for a `NaiveDateTime` on SQLite (`%F %T%.f`), formatted once per
/// statement instead of once per bound value: formatting was ~9% of a batch's CPU.
fn sqlite_timestamp(at: Timestamp) -> String {
    at.naive_utc().format(STORED_TIME).to_string()
}

/// How sqlx writes a `NaiveDateTime` into SQLite, and so how every stored time reads.
const STORED_TIME: &str = "%F %T%.f";

/// A stored time (`STORED_TIME`) read back, by position: `chrono`'s parser interprets the format
/// string for every value, and an upsert reads one per row.
fn parse_stored_time(text: &str) -> Result<Timestamp, StoreError> {
    let b = text.as_bytes();
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let parsed = (|| {
        let shape = b.len() >= 19
            && [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
                .iter()
                .all(|&(at, c)| b[at] == c);
        if !shape {
            return None;
        }
        let nanos = match &b[19..] {
            [] => 0,
            [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
                number(digits)? * 10u32.pow(9 - digits.len() as u32)
            }
            _ => return None,
        };
        let year = i32::try_from(number(&b[0..4])?).ok()?;
        let date = chrono::NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?;
        let time = chrono::NaiveTime::from_hms_nano_opt(
            number(&b[11..13])?,
            number(&b[14..16])?,
            number(&b[17..19])?,
            nanos,
        )?;
        Some(Timestamp::from_naive_utc(date.and_time(time)))
    })();
    parsed.ok_or_else(|| {
        StoreError::Db(sqlx::Error::Decode(
            format!("unexpected stored time {text:?}").into(),
        ))
    })
}

/// The queue that coalesces reads by id of `table`.
fn reads_queue<Row, T>(reader: &SqlitePool, table: Table) -> Queue<i64, Option<T>>
where
    Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    T: From<Row> + HasId + Send + 'static,
{
    // The ids travel as one JSON value: one statement for any number of them, built once.
    let sql: Arc<str> = format!(
        "SELECT {} FROM {} WHERE id IN (SELECT value FROM json_each(?))",
        table.columns, table.name
    )
    .into();
    let reader = reader.clone();
    Queue::start(
        |id: &i64| *id as u64,
        move |ids: Vec<i64>| {
            let (reader, sql) = (reader.clone(), sql.clone());
            async move { rows_by_ids::<Row, T>(&reader, &sql, &ids).await }
        },
    )
}

/// The rows with these (distinct) ids, in the order of `ids`; `None` where none. `sql` is the
/// statement `reads_queue` built.
async fn rows_by_ids<Row, T>(
    reader: &SqlitePool,
    sql: &str,
    ids: &[i64],
) -> Result<Vec<Option<T>>, StoreError>
where
    Row: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    T: From<Row> + HasId,
{
    let ids_json = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let rows: Vec<Row> = sqlx::query_as(sql).bind(ids_json).fetch_all(reader).await?;
    let mut by_id: std::collections::HashMap<i64, T> = rows
        .into_iter()
        .map(T::from)
        .map(|row| (row.id(), row))
        .collect();
    Ok(ids.iter().map(|id| by_id.remove(id)).collect())
}

/// A stored record's id, for matching coalesced reads to their requests.
trait HasId {
    fn id(&self) -> i64;
}

impl HasId for SalesTarget {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for Inventory {
    fn id(&self) -> i64 {
        self.id
    }
}

/// Users and refresh tokens: the SQL shared with the other backend.
mod auth {
    auth_queries!(sqlx::Sqlite, "");
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        self.sales.submit_one(Encoded::new(item.clone())?).await
    }

    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        self.sales.submit(encode(items)?).await
    }

    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        self.sales_reads
            .submit_one(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        list_rows::<_, SalesTargetRow>(
            &self.reader,
            SALES_TARGETS,
            sales_conditions(filter),
            scope,
            page,
        )
        .await
        .map(Listed::convert)
    }

    async fn delete_sales_target(&self, id: i64, scope: &Scope) -> Result<SalesTarget, StoreError> {
        self.delete::<SalesTargetRow>(SALES_TARGETS, id, scope)
            .await
            .map(Into::into)
    }

    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError> {
        self.inventory.submit_one(Encoded::new(item.clone())?).await
    }

    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
    ) -> Result<Vec<Inventory>, StoreError> {
        self.inventory.submit(encode(items)?).await
    }

    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        self.inventory_reads
            .submit_one(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        list_rows::<_, InventoryRow>(
            &self.reader,
            INVENTORY,
            inventory_conditions(filter),
            scope,
            page,
        )
        .await
        .map(Listed::convert)
    }

    async fn delete_inventory(&self, id: i64, scope: &Scope) -> Result<Inventory, StoreError> {
        self.delete::<InventoryRow>(INVENTORY, id, scope)
            .await
            .map(Into::into)
    }

    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let id = auth::create_user(&self.writer, user).await?;
        auth::get_user(&self.writer, id).await
    }

    async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        auth::get_user(&self.reader, id).await
    }

    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        auth::find_login(&self.reader, username).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError> {
        auth::list_users(&self.reader, page).await
    }

    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        auth::update_user(&self.writer, id, patch).await?;
        auth::get_user(&self.writer, id).await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        auth::count_users(&self.reader).await
    }

    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        auth::insert_refresh_token(&self.writer, user_id, token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Rotation, StoreError> {
        auth::rotate_refresh_token(&self.writer, presented_hash, next_hash, expires_at).await
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError> {
        auth::revoke_refresh_family(&self.writer, token_hash).await
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_read_back_as_written() {
        let mut at = Timestamp::now();
        for step_micros in [0, 1, 999, 1_000, 250_000, 1_000_000, 86_399_999_937] {
            at = at.plus(Duration::from_micros(step_micros));
            let text = sqlite_timestamp(at);
            assert_eq!(parse_stored_time(&text).unwrap(), at, "{text}");
            let by_chrono = chrono::NaiveDateTime::parse_from_str(&text, STORED_TIME).unwrap();
            assert_eq!(Timestamp::from_naive_utc(by_chrono), at, "{text}");
        }
        for text in [
            "2026-11-21 10:30:00",
            "2026-11-21 10:30:00.5",
            "2026-11-21 10:30:00.123456789",
        ] {
            let by_chrono = chrono::NaiveDateTime::parse_from_str(text, STORED_TIME).unwrap();
            assert_eq!(
                parse_stored_time(text).unwrap(),
                Timestamp::from_naive_utc(by_chrono)
            );
        }
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T10:30:00",
            "2026-13-01 00:00:00",
            "2026-11-21 10:30:00.",
            "2026-11-21 10:30:00.1234567890",
            "2026-11-21 10:30:0x",
        ] {
            assert!(parse_stored_time(bad).is_err(), "{bad}");
        }
    }
}
