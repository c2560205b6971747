//! Storage: the `Store` trait the handlers call, its error type, and the pieces both backends
//! share (row shapes, the SQL of lists). `sqlite.rs` and `mysql.rs` each implement the trait;
//! `connect` picks one by the scheme of `DATABASE_URL`.
//!
//! Every statement is parameterised. SQL text is assembled only from the constant column and
//! table names in this module, never from input.

#[macro_use]
mod auth_sql;
mod group_commit;
mod mysql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    Asin, Inventory, InventoryFilter, InventoryInput, Marketplace, Money, NewRefreshToken, NewUser,
    PageRequest, Period, Rotation, SalesTarget, SalesTargetFilter, SalesTargetInput, Scope,
    SellerId, SellerSku, StockLevel, Timestamp, User, UserPatch,
};

pub use mysql::MySqlStore;
pub use sqlite::SqliteStore;

/// One page of rows and the number of rows that match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: u64,
}

impl<T> Listed<T> {
    /// The same page with each row turned into `U` (a backend's row struct into a domain type).
    fn convert<U: From<T>>(self) -> Listed<U> {
        Listed {
            items: self.items.into_iter().map(U::from).collect(),
            total: self.total,
        }
    }
}

/// The data operations of sellerdesk. One implementation per database; the same contract tests
/// run against each.
#[async_trait::async_trait] // needed: native async trait methods cannot sit behind `dyn`
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can run a statement now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the target for (seller, parent ASIN, marketplace, period), or updates the amount
    /// of the one that exists. One atomic statement: safe under any number of concurrent writes.
    async fn upsert_sales_target(&self, item: &SalesTargetInput)
        -> Result<SalesTarget, StoreError>;

    /// Upserts every item in one transaction with multi-row statements: all are written, or
    /// none. Returns the stored rows in input order. Keys must be distinct.
    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError>;

    /// The target with this id, or `NotFound`.
    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError>;

    /// The targets matching `filter` within `scope`, ordered by id.
    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError>;

    /// Deletes the target with this id if its seller is in `scope`, returning it; else `NotFound`.
    async fn delete_sales_target(&self, id: i64, scope: &Scope) -> Result<SalesTarget, StoreError>;

    /// Creates the stock row for (seller, marketplace, SKU), or updates the one that exists.
    /// One atomic statement: safe under any number of concurrent writes.
    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError>;

    /// Upserts every item in one transaction with multi-row statements: all are written, or
    /// none. Returns the stored rows in input order. Keys must be distinct.
    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
    ) -> Result<Vec<Inventory>, StoreError>;

    /// The inventory row with this id, or `NotFound`.
    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError>;

    /// The inventory rows matching `filter` within `scope`, ordered by id.
    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError>;

    /// Deletes the row with this id if its seller is in `scope`, returning it; else `NotFound`.
    async fn delete_inventory(&self, id: i64, scope: &Scope) -> Result<Inventory, StoreError>;

    /// Creates a user with their seller links, returning it; `Conflict` if the name is taken.
    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError>;

    /// The user with this id, or `NotFound`.
    async fn get_user(&self, id: i64) -> Result<User, StoreError>;

    /// The user with this username and their password hash, for logging in.
    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError>;

    /// Every user, ordered by id.
    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError>;

    /// Applies `patch` and returns the user; deactivating revokes all their refresh tokens.
    async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, StoreError>;

    /// How many users exist (the first start creates an admin when there are none).
    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Stores a refresh token issued to `user_id` at login.
    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError>;

    /// Uses the token with `presented_hash` and stores its successor `next_hash`, atomically.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Rotation, StoreError>;

    /// Revokes the whole family of the token with this hash (nothing if it is unknown).
    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Waits for running statements and closes every connection (graceful shutdown).
    async fn close(&self);
}

/// What a store operation can fail with. `crate::error` maps it to HTTP in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Db(sqlx::Error),
}

/// MySQL/MariaDB error numbers that mean "the database cannot serve us right now" rather than
/// "this statement is wrong": too many connections, access denied, unknown database (dropped
/// under us), shutdown in progress, lock wait timeout, connection killed.
const MYSQL_UNAVAILABLE: [u16; 8] = [1040, 1044, 1045, 1049, 1053, 1205, 1317, 1927];

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => Self::Conflict,
            sqlx::Error::Database(d)
                if mysql::error_number(&**d).is_some_and(|n| MYSQL_UNAVAILABLE.contains(&n)) =>
            {
                Self::Unavailable
            }
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: the file is held elsewhere.
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("5" | "6" | "517")) => {
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

/// How to open the database, from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    /// Upper bound on open connections (readers, for SQLite).
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

/// Opens the database named by the URL scheme (`sqlite:` or `mysql:`/`mariadb:`) and applies
/// pending migrations.
pub async fn connect(options: &StoreOptions) -> Result<Arc<dyn Store>, ConnectError> {
    let scheme = options.url.split(':').next().unwrap_or_default();
    let store: Arc<dyn Store> = match scheme {
        "sqlite" => Arc::new(SqliteStore::connect(options).await?),
        "mysql" | "mariadb" => Arc::new(MySqlStore::connect(options).await?),
        _ => return Err(ConnectError::UnsupportedScheme),
    };
    Ok(store)
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
}

// ---- What both backends share ------------------------------------------------------------

const SALES_COLUMNS: &str = "id, seller_id, parent_asin, market_place_id, period, \
     sales_target_cents, create_time, update_time";
const INVENTORY_COLUMNS: &str = "id, seller_id, parent_asin, child_asin, seller_sku, \
     market_place_id, inventory, create_time, update_time";

/// A table's name and the columns its row struct reads.
#[derive(Debug, Clone, Copy)]
struct Table {
    name: &'static str,
    columns: &'static str,
}

const SALES_TARGETS: Table = Table {
    name: "sales_targets",
    columns: SALES_COLUMNS,
};
const INVENTORY: Table = Table {
    name: "inventory",
    columns: INVENTORY_COLUMNS,
};

/// A text column as both backends return it. MariaDB and MySQL flag columns of a binary
/// collation (`utf8mb4_bin`, which we use so that keys compare exactly, as on SQLite) as
/// `VARBINARY`, and sqlx will not decode those as `String` (sqlx issue #3387); this accepts both.
struct Text(String);

impl sqlx::Type<sqlx::MySql> for Text {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <String as sqlx::Type<sqlx::MySql>>::type_info()
    }

    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::MySql>>::compatible(ty)
            || <Vec<u8> as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Text {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        // Checks UTF-8 whatever the column's flags say.
        <&str as sqlx::Decode<sqlx::MySql>>::decode(value).map(|s| Self(s.to_owned()))
    }
}

impl sqlx::Type<sqlx::Sqlite> for Text {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Text {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <String as sqlx::Decode<sqlx::Sqlite>>::decode(value).map(Self)
    }
}

#[derive(sqlx::FromRow)]
struct SalesTargetRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    market_place_id: Text,
    period: Text,
    sales_target_cents: i64,
    create_time: chrono::NaiveDateTime,
    update_time: chrono::NaiveDateTime,
}

impl From<SalesTargetRow> for SalesTarget {
    fn from(r: SalesTargetRow) -> Self {
        Self {
            id: r.id,
            seller_id: SellerId::from_stored(r.seller_id.0),
            parent_asin: Asin::from_stored(r.parent_asin.0),
            market_place_id: Marketplace::from_stored(r.market_place_id.0),
            period: Period::from_stored(r.period.0),
            sales_target: Money::from_cents(r.sales_target_cents),
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

#[derive(sqlx::FromRow)]
struct InventoryRow {
    id: i64,
    seller_id: Text,
    parent_asin: Text,
    child_asin: Text,
    seller_sku: Text,
    market_place_id: Text,
    inventory: i32,
    create_time: chrono::NaiveDateTime,
    update_time: chrono::NaiveDateTime,
}

impl From<InventoryRow> for Inventory {
    fn from(r: InventoryRow) -> Self {
        Self {
            id: r.id,
            seller_id: SellerId::from_stored(r.seller_id.0),
            parent_asin: Asin::from_stored(r.parent_asin.0),
            child_asin: Asin::from_stored(r.child_asin.0),
            seller_sku: SellerSku::from_stored(r.seller_sku.0),
            market_place_id: Marketplace::from_stored(r.market_place_id.0),
            inventory: StockLevel::from_stored(r.inventory),
            create_time: Timestamp::from_naive_utc(r.create_time),
            update_time: Timestamp::from_naive_utc(r.update_time),
        }
    }
}

/// The equality conditions of a list query: constant column names and the values to bind.
type Conditions<'a> = Vec<(&'static str, &'a str)>;

fn sales_conditions(f: &SalesTargetFilter) -> Conditions<'_> {
    [
        ("seller_id", f.seller_id.as_ref().map(SellerId::as_str)),
        ("parent_asin", f.parent_asin.as_ref().map(Asin::as_str)),
        (
            "market_place_id",
            f.market_place_id.as_ref().map(Marketplace::as_str),
        ),
        ("period", f.period.as_ref().map(Period::as_str)),
    ]
    .into_iter()
    .filter_map(|(column, value)| Some((column, value?)))
    .collect()
}

fn inventory_conditions(f: &InventoryFilter) -> Conditions<'_> {
    [
        ("seller_id", f.seller_id.as_ref().map(SellerId::as_str)),
        (
            "market_place_id",
            f.market_place_id.as_ref().map(Marketplace::as_str),
        ),
        ("parent_asin", f.parent_asin.as_ref().map(Asin::as_str)),
        ("child_asin", f.child_asin.as_ref().map(Asin::as_str)),
        ("seller_sku", f.seller_sku.as_ref().map(SellerSku::as_str)),
    ]
    .into_iter()
    .filter_map(|(column, value)| Some((column, value?)))
    .collect()
}

/// A `WHERE` clause (with `?` placeholders, which SQLite and MySQL both take) and the values to
/// bind, in order, for `conditions` restricted to `scope`.
fn where_clause<'a>(conditions: &Conditions<'a>, scope: &'a Scope) -> (String, Vec<&'a str>) {
    let mut parts: Vec<String> = Vec::new();
    let mut binds: Vec<&'a str> = Vec::new();
    for (column, value) in conditions {
        parts.push(format!("{column} = ?"));
        binds.push(value);
    }
    if let Scope::Sellers(sellers) = scope {
        if sellers.is_empty() {
            parts.push("1 = 0".to_owned());
        } else {
            let marks = vec!["?"; sellers.len()].join(", ");
            parts.push(format!("seller_id IN ({marks})"));
            binds.extend(sellers.iter().map(SellerId::as_str));
        }
    }
    if parts.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", parts.join(" AND ")), binds)
    }
}

/// The scope restriction of a single-row statement by id (`... WHERE id = ?` + this).
fn scope_condition(scope: &Scope) -> (String, Vec<&str>) {
    match where_clause(&Vec::new(), scope) {
        (clause, binds) if clause.is_empty() => (String::new(), binds),
        (clause, binds) => (clause.replacen(" WHERE ", " AND ", 1), binds),
    }
}

/// Bounds under which the shared statements below run on a backend's pool.
trait Backend: sqlx::Database {}
impl Backend for sqlx::Sqlite {}
impl Backend for sqlx::MySql {}

/// The row of `table` with this id, on either backend.
async fn get_row<DB, R>(pool: &sqlx::Pool<DB>, table: Table, id: i64) -> Result<R, StoreError>
where
    DB: Backend,
    R: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let sql = format!("SELECT {} FROM {} WHERE id = ?", table.columns, table.name);
    Ok(sqlx::query_as::<DB, R>(&sql)
        .bind(id)
        .fetch_one(pool)
        .await?)
}

/// One page of `table` and its total, read in one transaction so that the two agree.
async fn list_rows<DB, R>(
    pool: &sqlx::Pool<DB>,
    table: Table,
    conditions: Conditions<'_>,
    scope: &Scope,
    page: PageRequest,
) -> Result<Listed<R>, StoreError>
where
    DB: Backend,
    R: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let (where_sql, binds) = where_clause(&conditions, scope);
    let rows_sql = format!(
        "SELECT {} FROM {}{where_sql} ORDER BY id LIMIT ? OFFSET ?",
        table.columns, table.name
    );
    let count_sql = format!("SELECT COUNT(*) FROM {}{where_sql}", table.name);
    let mut tx = pool.begin().await?;
    let mut count = sqlx::query_scalar::<DB, i64>(&count_sql);
    let mut rows = sqlx::query_as::<DB, R>(&rows_sql);
    for value in &binds {
        count = count.bind(*value);
        rows = rows.bind(*value);
    }
    let total = count.fetch_one(&mut *tx).await?;
    let items = rows
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Listed {
        items,
        total: u64::try_from(total).unwrap_or_default(),
    })
}
