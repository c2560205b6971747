//! Storage: the `Store` trait the handlers call, and one implementation per database.
//!
//! Reading order:
//! 1. this file: the `Store` trait (what the service can ask of a database) and `connect`,
//!    which picks the backend by the scheme of `DATABASE_URL`;
//! 2. `error.rs`: `StoreError`, what every operation can fail with;
//! 3. `rows.rs`: the row structs statements read into, and their conversion to domain records;
//! 4. `sql/`: SQL that is the same text on both databases (users, refresh tokens, lists,
//!    deletes), written once as functions generic over the backend;
//! 5. `sqlite/` and `mysql/`: each backend's own SQL (its upserts, as literal text) and how it
//!    runs statements: SQLite through one write queue (`sqlite/writer.rs`), MySQL through a
//!    pool with a transaction per operation.
//!
//! Every statement is parameterised. SQL text is assembled only from constant column and table
//! names, never from input.

mod error;
mod mysql;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    Inventory, InventoryFilter, InventoryInput, NewRefreshToken, NewUser, PageRequest, Rotation,
    SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, Timestamp, User, UserPatch,
};

pub use error::{ConnectError, StoreError};
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

/// The data operations of sellerdesk. One implementation per database; the same HTTP test
/// suite runs against each.
#[async_trait::async_trait] // needed: native async trait methods cannot sit behind `dyn`
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can serve statements now (reads, and for SQLite the writer).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the target for (seller, parent ASIN, marketplace, period), or updates the amount
    /// of the one that exists. Safe under any number of concurrent writes of one key.
    async fn upsert_sales_target(&self, item: &SalesTargetInput)
        -> Result<SalesTarget, StoreError>;

    /// Upserts every item in one transaction: all are written, or none. Returns the stored rows
    /// in input order. Keys must be distinct.
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
    /// Safe under any number of concurrent writes of one key.
    async fn upsert_inventory(&self, item: &InventoryInput) -> Result<Inventory, StoreError>;

    /// Upserts every item in one transaction: all are written, or none. Returns the stored rows
    /// in input order. Keys must be distinct.
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
