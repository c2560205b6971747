//! Storage: the `Store` trait the handlers call, and one implementation per database.
//!
//! Reading order:
//! 1. this file: the `Store` trait (what the service can ask of a database) and `connect`,
//!    which picks the backend by the scheme of `DATABASE_URL`;
//! 2. `error.rs`: `StoreError`, what every operation can fail with;
//! 3. `rows.rs`: the row structs statements read into, and their conversion to domain records;
//! 4. `engine.rs`: what a backend provides (how it runs an operation that writes and one that
//!    reads, plus its own upserts and reads by id), and the `Store` built on that once;
//! 5. `sql/`: SQL that is the same text on both databases (users, refresh tokens, reads,
//!    stock operations with their ledger entries), written once as functions generic over the
//!    backend;
//! 6. `sqlite/` and `mysql/`: each backend's `Engine` and its own SQL (its upserts, as literal
//!    text): SQLite runs writes through one write queue (`sqlite/writer.rs`), MySQL through a
//!    pool with a transaction per operation.
//!
//! Every statement is parameterised. SQL text is assembled only from constant column and table
//! names, never from input.

mod engine;
mod error;
mod mysql;
mod queue;
mod rows;
mod sql;
mod sqlite;
mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    Actor, Adjustment, AuditEntry, AuditFilter, ConsistencyReport, Event, EventFilter, ExternalId,
    IdempotencyKey, IdempotencyRecord, Inventory, InventoryFilter, InventoryInput, InventoryLookup,
    KeptResponse, LedgerEntry, LedgerFilter, LowStockFilter, NewAudit, NewClaim, NewRefreshToken,
    NewReservation, NewUser, PageRequest, Precondition, Released, Reservation, ReservationFilter,
    Rotation, SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, SellerId, SyncPosition,
    Thresholds, Timestamp, User, UserPatch,
};
use crate::domain::{Delivery, NewWebhook, NextEvent, Webhook, WebhookProgress, WebhookTarget};

pub use error::{ConnectError, StoreError};
// `Durability` is defined below, beside `StoreOptions`.
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

/// One page of incremental sync: rows in (`update_time`, `id`) order, and whether more follow
/// (up to the sync horizon). Not counted: a count would read every remaining row for every
/// page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> Synced<T> {
    fn convert<U: From<T>>(self) -> Synced<U> {
        Synced {
            items: self.items.into_iter().map(U::from).collect(),
            has_next: self.has_next,
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

    /// The upsert of one target, only if the target of its key (or its absence) meets
    /// `precondition` (else `StockError::VersionMismatch`, nothing written): the check and the
    /// write in one transaction.
    async fn upsert_sales_target_if(
        &self,
        item: &SalesTargetInput,
        precondition: &Precondition,
    ) -> Result<SalesTarget, StoreError>;

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

    /// Up to `size` of the targets matching `filter` within `scope` that come after `after` in
    /// the order of incremental sync, (`update_time`, `id`). Only rows every write before
    /// which has committed (docs/sync.md).
    async fn sync_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        after: SyncPosition,
        size: u32,
    ) -> Result<Synced<SalesTarget>, StoreError>;

    /// Deletes the target with this id if its seller is in `scope` (else `NotFound`) and it
    /// meets `precondition` (else `VersionMismatch`), returning it. Audited.
    async fn delete_sales_target(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<SalesTarget, StoreError>;

    /// Creates the stock row for (seller, marketplace, SKU), or updates the one that exists,
    /// with a ledger entry when the units on hand change (see `InventoryInput::plan`). Safe
    /// under any number of concurrent writes of one key.
    async fn upsert_inventory(
        &self,
        item: &InventoryInput,
        actor: &Actor,
    ) -> Result<Inventory, StoreError>;

    /// The upsert of one row, only if the row of its key (or its absence) meets
    /// `precondition` (else `StockError::VersionMismatch`, nothing written): the check and the
    /// write in one transaction.
    async fn upsert_inventory_if(
        &self,
        item: &InventoryInput,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError>;

    /// Upserts every item in one transaction: all are written, or none. Returns the stored rows
    /// in input order. Keys must be distinct.
    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
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

    /// Like `list_inventory`, in the order of incremental sync: see `sync_sales_targets`.
    async fn sync_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        after: SyncPosition,
        size: u32,
    ) -> Result<Synced<Inventory>, StoreError>;

    /// Deletes the row with this id if its seller is in `scope`, returning it; else `NotFound`.
    /// A row that does not meet `precondition` is not deleted (`VersionMismatch`), nor one
    /// that active reservations hold units of (`ActiveReservations`). Its ledger gets a last
    /// entry and stays. Audited.
    async fn delete_inventory(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError>;

    /// Adjusts the units on hand of the row with this id (within `scope`, else `NotFound`;
    /// meeting `precondition`, else `VersionMismatch`), returning the row and its ledger
    /// entry. Audited.
    async fn adjust_inventory(
        &self,
        id: i64,
        scope: &Scope,
        adjustment: &Adjustment,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<(Inventory, LedgerEntry), StoreError>;

    /// Sets the warning thresholds of the row with this id (within `scope`, else `NotFound`;
    /// meeting `precondition`, else `VersionMismatch`). Audited when they change.
    async fn set_thresholds(
        &self,
        id: i64,
        scope: &Scope,
        thresholds: Thresholds,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError>;

    /// Rows at a stock level or worse, least available first.
    async fn list_low_stock(
        &self,
        filter: &LowStockFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError>;

    /// The rows `lookup` names, in its order; `None` where no row exists within `scope`.
    async fn lookup_inventory(
        &self,
        lookup: &InventoryLookup,
        scope: &Scope,
    ) -> Result<Vec<Option<Inventory>>, StoreError>;

    /// Ledger entries matching `filter` within `scope`, newest first.
    async fn list_ledger(
        &self,
        filter: &LedgerFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<LedgerEntry>, StoreError>;

    /// Whether the ledger has entries of the row with this id (which may be deleted).
    async fn has_ledger(&self, inventory_id: i64) -> Result<bool, StoreError>;

    /// Checks every row (of one seller, if given) against the rules of the books; reads only.
    async fn check_consistency(
        &self,
        seller: Option<&SellerId>,
    ) -> Result<ConsistencyReport, StoreError>;

    /// Holds the units of every item, all or none (`SkuNotFound`, `InsufficientItems`).
    async fn create_reservation(
        &self,
        new: &NewReservation,
        actor: &Actor,
    ) -> Result<Reservation, StoreError>;

    /// The reservation with this id, or `NotFound`.
    async fn get_reservation(&self, id: i64) -> Result<Reservation, StoreError>;

    /// Reservations matching `filter` within `scope`, ordered by id.
    async fn list_reservations(
        &self,
        filter: &ReservationFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Reservation>, StoreError>;

    /// Releases the active reservation with this id (within `scope`), if it meets
    /// `precondition`: its units are available again.
    async fn release_reservation(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Reservation, StoreError>;

    /// Releases every active reservation of this seller's reference.
    async fn release_reference(
        &self,
        seller_id: &SellerId,
        reference_id: &ExternalId,
        actor: &Actor,
    ) -> Result<Released, StoreError>;

    /// Commits the active reservation with this id (within `scope`) for an order, if it meets
    /// `precondition`: its units leave the shelf.
    async fn commit_reservation(
        &self,
        id: i64,
        scope: &Scope,
        order_id: &ExternalId,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Reservation, StoreError>;

    /// Expires up to `limit` reservations whose time has run out, oldest first.
    async fn expire_reservations(&self, limit: i64) -> Result<Released, StoreError>;

    /// Creates a user with their seller links, returning it; `Conflict` if the name is taken.
    /// Audited.
    async fn create_user(&self, user: &NewUser, actor: &Actor) -> Result<User, StoreError>;

    /// The user with this id, or `NotFound`.
    async fn get_user(&self, id: i64) -> Result<User, StoreError>;

    /// The user with this username and their password hash, for logging in.
    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError>;

    /// Every user, ordered by id.
    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError>;

    /// Applies `patch` and returns the user; a deactivation or a new password ends every
    /// session (`UserPatch::ends_sessions`). Audited.
    async fn update_user(
        &self,
        id: i64,
        patch: &UserPatch,
        actor: &Actor,
    ) -> Result<User, StoreError>;

    /// How many users exist (the first start creates an admin when there are none).
    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Stores a refresh token issued to `user_id` at login.
    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError>;

    /// Uses the token with `presented_hash` and stores its successor `next_hash`, atomically;
    /// the successor expires when the family does (rotation never extends it).
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
    ) -> Result<Rotation, StoreError>;

    /// Revokes the whole family of the token with this hash (nothing if it is unknown).
    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Appends an audit entry for an action that writes nothing else (a login, a check).
    /// Actions that write record their entry in their own transaction instead.
    async fn record_audit(&self, entry: &NewAudit, actor: &Actor) -> Result<(), StoreError>;

    /// Audit entries matching `filter`, newest first.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Listed<AuditEntry>, StoreError>;

    /// Deletes up to `limit` of the rows `purge` names, in one transaction; returns how many
    /// went. Instances sharing a database may purge at once: a row is deleted, and counted,
    /// once.
    async fn purge(&self, purge: Purge, limit: i64) -> Result<u64, StoreError>;

    /// The record of `user_id`'s idempotency key `key`, expired or not (see
    /// `IdempotencyRecord::is_live`). One read.
    async fn idempotency_record(
        &self,
        user_id: i64,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Claims a key before its request runs: inserts the claim when `over_stale` is false (the
    /// key had no row), else takes over a row that no longer counts. `false` when another
    /// request holds the key: of racing claims, exactly one wins.
    async fn claim_idempotency_key(
        &self,
        claim: &NewClaim,
        over_stale: bool,
    ) -> Result<bool, StoreError>;

    /// Keeps `response` as the outcome of `claim`, for replay until `expires_at`; `false` when
    /// the claim had been taken over meanwhile.
    async fn complete_idempotency_key(
        &self,
        claim: &NewClaim,
        response: &KeptResponse,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Deletes `claim` if it still holds its key without a response, so a retry runs again.
    async fn release_idempotency_key(&self, claim: &NewClaim) -> Result<(), StoreError>;

    /// How many reservations are active now, over the whole database (every instance's).
    async fn count_active_reservations(&self) -> Result<u64, StoreError>;

    /// The connection pool and write queue as they are now, for metrics: cheap, no I/O.
    fn gauges(&self) -> StoreGauges;

    // ---- The event feed -----------------------------------------------------------------

    /// Events after `filter.after` matching `filter` within `scope`, in id order.
    async fn list_events(
        &self,
        filter: &EventFilter,
        scope: &Scope,
    ) -> Result<Vec<Event>, StoreError>;

    /// Notified (`notify_waiters`) after every write transaction of this instance commits
    /// (SQLite: after each write-queue group): long polls of the event feed wait on it.
    fn event_signal(&self) -> std::sync::Arc<tokio::sync::Notify>;

    // ---- Webhooks (docs/webhooks.md) ---------------------------------------------------

    /// Creates a webhook that gets the events written after this moment. Audited (never
    /// with its secret).
    async fn create_webhook(&self, new: &NewWebhook, actor: &Actor) -> Result<Webhook, StoreError>;

    /// The webhook with this id, or `NotFound`.
    async fn get_webhook(&self, id: i64) -> Result<Webhook, StoreError>;

    /// Webhooks, only those `created_by` this user if given, ordered by id.
    async fn list_webhooks(
        &self,
        created_by: Option<i64>,
        page: PageRequest,
    ) -> Result<Listed<Webhook>, StoreError>;

    /// Deletes the webhook with this id (only if `created_by` this user, when given; else
    /// `NotFound`) with its delivery log, returning it. Audited.
    async fn delete_webhook(
        &self,
        id: i64,
        created_by: Option<i64>,
        actor: &Actor,
    ) -> Result<Webhook, StoreError>;

    /// The delivery attempts of a webhook, newest first.
    async fn list_deliveries(
        &self,
        webhook_id: i64,
        page: PageRequest,
    ) -> Result<Listed<Delivery>, StoreError>;

    /// Up to `limit` webhooks with events to deliver now and no live lease. Reads only.
    async fn due_webhooks(&self, limit: i64) -> Result<Vec<i64>, StoreError>;

    /// Takes the delivery lease of webhook `id` for `owner` until `until`, if no other
    /// instance holds it; `None` when one does. Of instances racing, at most one wins.
    async fn claim_webhook(
        &self,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> Result<Option<WebhookTarget>, StoreError>;

    /// The next event for a claimed webhook (see `NextEvent`). Reads only.
    async fn next_webhook_event(&self, webhook: &Webhook) -> Result<NextEvent, StoreError>;

    /// Saves the delivery state (and its attempt, if any) while `progress.owner` holds the
    /// lease; `false` when it no longer does (nothing written).
    async fn save_webhook_progress(&self, progress: &WebhookProgress) -> Result<bool, StoreError>;

    /// Extends `owner`'s lease of webhook `id` to `until`, while it holds a live one; `false`
    /// when it does not (then it must not send: another instance may).
    async fn renew_webhook(
        &self,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives up `owner`'s lease of webhook `id`.
    async fn release_webhook(&self, id: i64, owner: &str) -> Result<(), StoreError>;

    /// Waits for running statements and closes every connection (graceful shutdown).
    async fn close(&self);
}

/// Rows that no request can use again, which the background work deletes (`Store::purge`),
/// each as of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Refresh tokens expired or revoked by then, oldest first. Used tokens of live families
    /// stay: presenting one again must still revoke its family.
    RefreshTokens(Timestamp),
    /// Idempotency keys past their 24 hours by then (they already count as absent), the
    /// first to expire first.
    IdempotencyKeys(Timestamp),
    /// Events that happened before then (older than the retention), oldest first.
    Events(Timestamp),
    /// Webhook delivery attempts made before then (older than the events' retention),
    /// oldest first.
    WebhookDeliveries(Timestamp),
}

impl Purge {
    /// The time the purge is as of.
    pub fn time(self) -> Timestamp {
        match self {
            Purge::RefreshTokens(at)
            | Purge::IdempotencyKeys(at)
            | Purge::Events(at)
            | Purge::WebhookDeliveries(at) => at,
        }
    }

    /// What the purge deletes, for the log.
    pub fn label(self) -> &'static str {
        match self {
            Purge::RefreshTokens(_) => "expired and revoked refresh tokens",
            Purge::IdempotencyKeys(_) => "expired idempotency keys",
            Purge::Events(_) => "events past their retention",
            Purge::WebhookDeliveries(_) => "webhook delivery attempts past their retention",
        }
    }
}

/// A moment's view of a store's connections and queue (see `Store::gauges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreGauges {
    /// Pooled connections running a statement or held by a request (SQLite: readers).
    pub connections_in_use: u32,
    /// Pooled connections open and waiting for work.
    pub connections_idle: u32,
    /// Writes waiting for SQLite's write queue; `None` for MySQL, which has none.
    pub write_queue_depth: Option<usize>,
}

/// How to open the database, from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    /// Upper bound on open connections (readers, for SQLite); `None`: the backend's default
    /// (`mysql_connections`, `sqlite_readers`).
    pub max_connections: Option<u32>,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
    /// What an acknowledged SQLite write survives (MySQL has its own settings).
    pub durability: Durability,
}

impl StoreOptions {
    /// MySQL's pool: `max_connections`, or 10.
    pub fn mysql_connections(&self) -> u32 {
        self.max_connections.unwrap_or(10)
    }

    /// SQLite's readers: `max_connections`, or one per core and at least 2. A SQLite read runs
    /// on its connection's own thread and is CPU-bound, so readers beyond the cores read no
    /// faster; each only holds its own page cache (2 MiB) and allocator pages
    /// (bench/RESULTS.md, "Peak memory": on 2 cores, 2 readers serve as many GETs per second
    /// as 8 with ~15 MiB less at peak).
    pub fn sqlite_readers(&self) -> u32 {
        self.max_connections.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |cores| u32::try_from(cores.get()).unwrap_or(u32::MAX))
                .max(2)
        })
    }
}

/// How far SQLite makes a commit durable before acknowledging it (`PRAGMA synchronous`, with the
/// write-ahead log). Both survive a crash of the process; they differ on a crash of the OS or
/// a loss of power. NORMAL is the default: FULL cost 21–37% of the write throughput on the
/// benchmark machine, over the 15% we accept for it (bench/RESULTS.md, "Durability").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: the log is flushed to disk at every commit (one flush per group of
    /// the write queue), so an acknowledged write survives an OS crash and a power loss too,
    /// on a disk that honours flushes.
    Full,
    /// `synchronous=NORMAL`: the log is flushed only at checkpoints; an OS crash or power loss
    /// can roll back the last acknowledged transactions, never corrupt the database.
    #[default]
    Normal,
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
