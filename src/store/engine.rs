//! `Engine`: what a database backend provides, and the `Store` built on it once for both.
//!
//! A backend says how it runs an operation that writes (SQLite: in its write queue's group
//! transaction; MySQL: in a transaction of its own, repeated on deadlock) and one that only
//! reads, and it brings the statements that differ by dialect (upserts, and reads by id, which
//! SQLite coalesces). Everything else a `Store` does is the SQL of `store/sql/`, run through
//! those two, so it is written here once instead of once per backend.

use std::sync::Arc;

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};
use tokio::sync::Notify;

use super::rows::{
    AuditRow, DeliveryRow, EventRow, IdempotencyRow, InventoryRow, LedgerRow, ReservationItemRow,
    ReservationRow, SalesTargetRow, Text, UserRow, WebhookRow,
};
use super::sql::{settled, Backend, InventoryTable, Operation, SalesTargetTable, Shared};
use super::{Listed, Purge, Store, StoreError, StoreGauges, Synced};
use crate::domain::stockroom::{Answer, Ending, ReservationOp};
use crate::domain::{
    Actor, Adjustment, AuditEntry, AuditFilter, ConsistencyReport, Event, EventFilter, ExternalId,
    IdempotencyKey, IdempotencyRecord, Inventory, InventoryFilter, InventoryInput, InventoryLookup,
    KeptResponse, LedgerEntry, LedgerFilter, LowStockFilter, NewAudit, NewClaim, NewEvent,
    NewRefreshToken, NewReservation, NewUser, PageRequest, Precondition, Released, Reservation,
    ReservationFilter, Rotation, SalesTarget, SalesTargetFilter, SalesTargetInput, Scope, SellerId,
    StockError, StockLevel, SyncPosition, Thresholds, Timestamp, User, UserPatch,
};
use crate::domain::{Delivery, NewWebhook, NextEvent, Webhook, WebhookProgress, WebhookTarget};

/// A connection of backend `E`.
type Conn<E> = <<E as Engine>::DB as Database>::Connection;

/// Connections of `pool` in use and idle, as sqlx counts them now (no I/O).
pub(super) fn pool_gauges<DB: Database>(pool: &sqlx::Pool<DB>) -> (u32, u32) {
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    (pool.size().saturating_sub(idle), idle)
}

/// A database backend: how it runs operations, and its own statements.
#[async_trait::async_trait]
pub(super) trait Engine: Send + Sync + 'static {
    type DB: Backend;

    /// How far behind the present incremental sync reads: a sync page holds only rows updated
    /// at least this long ago, so that every write that took an earlier time has committed
    /// (docs/sync.md). Zero where writes commit in the order of their times (SQLite's one
    /// writer).
    const SYNC_LAG: std::time::Duration;

    /// Runs an operation that writes, in a transaction, and returns its output once committed.
    async fn write<A, T>(
        &self,
        args: A,
        operation: Operation<Conn<Self>, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static;

    /// Runs an operation that only reads, so that its statements see one state of the database.
    async fn read<A, T>(
        &self,
        args: &A,
        operation: Operation<Conn<Self>, A, T>,
    ) -> Result<T, StoreError>
    where
        A: Send + Sync,
        T: Send;

    /// Answers when the database can serve statements now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Runs one operation on reservations, in a transaction (SQLite: together with the others
    /// waiting in its write queue's group, see `Shared::run_reservations`).
    async fn reservation(&self, op: ReservationOp) -> Result<Answer, StoreError>;

    /// Upserts sales targets (distinct keys) in one transaction, returning them in input order.
    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError>;

    /// Upserts inventory rows (distinct keys) with their ledger entries in one transaction,
    /// returning them in input order.
    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
    ) -> Result<Vec<Inventory>, StoreError>;

    async fn get_sales_target(&self, id: i64) -> Result<Option<SalesTarget>, StoreError>;

    async fn get_inventory(&self, id: i64) -> Result<Option<Inventory>, StoreError>;

    /// The pool and queue as they are now (see `Store::gauges`).
    fn gauges(&self) -> StoreGauges;

    /// Waits for running statements and closes every connection.
    async fn close(&self);

    /// Notified after every write transaction commits (see `Store::event_signal`).
    fn event_signal(&self) -> &Arc<Notify>;
}

/// The newest `update_time` a sync page may hold on backend `E` (`None`: no limit).
fn sync_horizon<E: Engine>() -> Option<Timestamp> {
    (!E::SYNC_LAG.is_zero()).then(|| Timestamp::now().minus(E::SYNC_LAG))
}

#[async_trait::async_trait]
impl<E> Store for E
where
    E: Engine,
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::DB>,
    for<'q> <E::DB as Database>::Arguments<'q>: IntoArguments<'q, E::DB>,
    for<'q> i64: Encode<'q, E::DB> + Decode<'q, E::DB> + Type<E::DB>,
    for<'q> bool: Encode<'q, E::DB> + Decode<'q, E::DB> + Type<E::DB>,
    for<'q> Option<i64>: Encode<'q, E::DB> + Type<E::DB>,
    for<'q> Option<i32>: Encode<'q, E::DB> + Type<E::DB>,
    for<'q> &'q str: Encode<'q, E::DB> + Type<E::DB>,
    for<'q> &'q [u8]: Encode<'q, E::DB> + Type<E::DB>,
    for<'q> Option<&'q str>: Encode<'q, E::DB> + Type<E::DB>,
    for<'q> NaiveDateTime: Encode<'q, E::DB> + Decode<'q, E::DB> + Type<E::DB>,
    for<'q> Text: Decode<'q, E::DB> + Type<E::DB>,
    for<'r> SalesTargetRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> InventoryRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> LedgerRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> ReservationRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> ReservationItemRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> UserRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> AuditRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> IdempotencyRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> EventRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> WebhookRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> DeliveryRow: FromRow<'r, <E::DB as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <E::DB as Database>::Row>,
    for<'q> Option<NaiveDateTime>: Encode<'q, E::DB> + Type<E::DB>,
    for<'r> (i64, Text, Text, i64, i64, i64, i64, i64): FromRow<'r, <E::DB as Database>::Row>,
    for<'r> (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64):
        FromRow<'r, <E::DB as Database>::Row>,
    usize: sqlx::ColumnIndex<<E::DB as Database>::Row>,
{
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        Engine::ping(self).await
    }

    // ---- Sales targets -------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn upsert_sales_target(
        &self,
        item: &SalesTargetInput,
    ) -> Result<SalesTarget, StoreError> {
        let mut stored = Engine::upsert_sales_targets(self, vec![item.clone()]).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_sales_target_if(
        &self,
        item: &SalesTargetInput,
        precondition: &Precondition,
    ) -> Result<SalesTarget, StoreError> {
        let args = (item.clone(), precondition.clone());
        settled(
            self.write(args, |conn, (item, precondition)| {
                Box::pin(Shared::upsert_sales_target_if(
                    conn,
                    item,
                    precondition,
                    Timestamp::now(),
                ))
            })
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(items = items.len()))]
    async fn upsert_sales_targets(
        &self,
        items: Vec<SalesTargetInput>,
    ) -> Result<Vec<SalesTarget>, StoreError> {
        Engine::upsert_sales_targets(self, items).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn get_sales_target(&self, id: i64) -> Result<SalesTarget, StoreError> {
        Engine::get_sales_target(self, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(page = page.page, size = page.size))]
    async fn list_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<SalesTarget>, StoreError> {
        self.read(&(filter, scope, page), |conn, (filter, scope, page)| {
            Box::pin(Shared::list::<SalesTargetTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn sync_sales_targets(
        &self,
        filter: &SalesTargetFilter,
        scope: &Scope,
        after: SyncPosition,
        size: u32,
    ) -> Result<Synced<SalesTarget>, StoreError> {
        let horizon = sync_horizon::<E>();
        self.read(
            &(filter, scope, after, horizon, size),
            |conn, (filter, scope, after, horizon, size)| {
                Box::pin(Shared::changes::<SalesTargetTable>(
                    conn, filter, scope, *after, *horizon, *size,
                ))
            },
        )
        .await
        .map(Synced::convert)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn delete_sales_target(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<SalesTarget, StoreError> {
        let args = (id, scope.clone(), precondition.clone(), actor.clone());
        settled(
            self.write(args, |conn, (id, scope, precondition, actor)| {
                Box::pin(async move {
                    let row: SalesTarget = Shared::lock::<SalesTargetTable>(conn, *id, scope)
                        .await?
                        .into();
                    if !precondition.allows(Some(row.version)) {
                        return Ok(Err(StockError::version_mismatch(Some(row.version))));
                    }
                    Shared::delete::<SalesTargetTable>(conn, *id).await?;
                    let now = Timestamp::now();
                    let event = NewEvent::sales_target_deleted(&row);
                    Shared::insert_events(conn, &[event], now).await?;
                    let audit = NewAudit::sales_target_deleted(&row);
                    Shared::insert_audit(conn, &audit, actor, now).await?;
                    Ok(Ok(row))
                })
            })
            .await,
        )
    }

    // ---- Inventory -----------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn upsert_inventory(
        &self,
        item: &InventoryInput,
        actor: &Actor,
    ) -> Result<Inventory, StoreError> {
        let mut stored = Engine::upsert_inventories(self, vec![item.clone()], actor).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    async fn upsert_inventory_if(
        &self,
        item: &InventoryInput,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError> {
        let args = (item.clone(), precondition.clone(), actor.clone());
        settled(
            self.write(args, |conn, (item, precondition, actor)| {
                Box::pin(Shared::upsert_inventory_if(
                    conn,
                    item,
                    precondition,
                    actor,
                    Timestamp::now(),
                ))
            })
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(items = items.len()))]
    async fn upsert_inventories(
        &self,
        items: Vec<InventoryInput>,
        actor: &Actor,
    ) -> Result<Vec<Inventory>, StoreError> {
        Engine::upsert_inventories(self, items, actor).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn get_inventory(&self, id: i64) -> Result<Inventory, StoreError> {
        Engine::get_inventory(self, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(page = page.page, size = page.size))]
    async fn list_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        self.read(&(filter, scope, page), |conn, (filter, scope, page)| {
            Box::pin(Shared::list::<InventoryTable>(conn, filter, scope, *page))
        })
        .await
        .map(Listed::convert)
    }

    async fn sync_inventory(
        &self,
        filter: &InventoryFilter,
        scope: &Scope,
        after: SyncPosition,
        size: u32,
    ) -> Result<Synced<Inventory>, StoreError> {
        let horizon = sync_horizon::<E>();
        self.read(
            &(filter, scope, after, horizon, size),
            |conn, (filter, scope, after, horizon, size)| {
                Box::pin(Shared::changes::<InventoryTable>(
                    conn, filter, scope, *after, *horizon, *size,
                ))
            },
        )
        .await
        .map(Synced::convert)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn delete_inventory(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError> {
        let args = (id, scope.clone(), precondition.clone(), actor.clone());
        settled(
            self.write(args, |conn, (id, scope, precondition, actor)| {
                Box::pin(async move {
                    let now = Timestamp::now();
                    let deleted =
                        Shared::delete_inventory(conn, *id, scope, precondition, actor, now)
                            .await?;
                    if let Ok(row) = &deleted {
                        let event = NewEvent::inventory_deleted(row);
                        Shared::insert_events(conn, &[event], now).await?;
                        let audit = NewAudit::inventory_deleted(row);
                        Shared::insert_audit(conn, &audit, actor, now).await?;
                    }
                    Ok(deleted)
                })
            })
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn adjust_inventory(
        &self,
        id: i64,
        scope: &Scope,
        adjustment: &Adjustment,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<(Inventory, LedgerEntry), StoreError> {
        let args = (
            id,
            scope.clone(),
            adjustment.clone(),
            precondition.clone(),
            actor.clone(),
        );
        settled(
            self.write(
                args,
                |conn, (id, scope, adjustment, precondition, actor)| {
                    Box::pin(async move {
                        let now = Timestamp::now();
                        let adjusted =
                            Shared::adjust(conn, *id, scope, adjustment, precondition, actor, now)
                                .await?;
                        if let Ok((row, entry)) = &adjusted {
                            let before = StockLevel::of(
                                entry.inventory_before - entry.reserved_before,
                                row.thresholds,
                            );
                            let mut events = vec![NewEvent::adjusted(row, entry)];
                            events.extend(NewEvent::low_warning(before, row));
                            Shared::insert_events(conn, &events, now).await?;
                            let audit = NewAudit::inventory_adjusted(adjustment, entry);
                            Shared::insert_audit(conn, &audit, actor, now).await?;
                        }
                        Ok(adjusted)
                    })
                },
            )
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn set_thresholds(
        &self,
        id: i64,
        scope: &Scope,
        thresholds: Thresholds,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Inventory, StoreError> {
        let args = (
            id,
            scope.clone(),
            thresholds,
            precondition.clone(),
            actor.clone(),
        );
        settled(
            self.write(
                args,
                |conn, (id, scope, thresholds, precondition, actor)| {
                    Box::pin(async move {
                        let now = Timestamp::now();
                        let set = Shared::set_thresholds(
                            conn,
                            *id,
                            scope,
                            *thresholds,
                            precondition,
                            now,
                        )
                        .await?;
                        let (before, row) = match set {
                            Ok(set) => set,
                            Err(refused) => return Ok(Err(refused)),
                        };
                        if before != row.thresholds {
                            let available = row.stock().available();
                            let level_before = StockLevel::of(available, before);
                            let mut events = vec![NewEvent::inventory_updated(&row)];
                            events.extend(NewEvent::low_warning(level_before, &row));
                            Shared::insert_events(conn, &events, now).await?;
                            let audit =
                                NewAudit::thresholds_changed(row.id, before, row.thresholds);
                            Shared::insert_audit(conn, &audit, actor, now).await?;
                        }
                        Ok(Ok(row))
                    })
                },
            )
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_low_stock(
        &self,
        filter: &LowStockFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Inventory>, StoreError> {
        self.read(&(filter, scope, page), |conn, (filter, scope, page)| {
            Box::pin(Shared::low_stock(conn, filter, scope, *page))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn lookup_inventory(
        &self,
        lookup: &InventoryLookup,
        scope: &Scope,
    ) -> Result<Vec<Option<Inventory>>, StoreError> {
        self.read(&(lookup, scope), |conn, (lookup, scope)| {
            Box::pin(Shared::lookup(conn, lookup, scope))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_ledger(
        &self,
        filter: &LedgerFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<LedgerEntry>, StoreError> {
        self.read(&(filter, scope, page), |conn, (filter, scope, page)| {
            Box::pin(Shared::ledger(conn, filter, scope, *page))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(inventory_id = inventory_id))]
    async fn has_ledger(&self, inventory_id: i64) -> Result<bool, StoreError> {
        self.read(&inventory_id, |conn, id| {
            Box::pin(Shared::has_ledger(conn, *id))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn check_consistency(
        &self,
        seller: Option<&SellerId>,
    ) -> Result<ConsistencyReport, StoreError> {
        self.read(&seller, |conn, seller| {
            Box::pin(Shared::check_consistency(conn, *seller))
        })
        .await
    }

    // ---- Reservations --------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_reservation(
        &self,
        new: &NewReservation,
        actor: &Actor,
    ) -> Result<Reservation, StoreError> {
        let op = ReservationOp::Reserve {
            new: new.clone(),
            actor: actor.clone(),
        };
        Ok(Engine::reservation(self, op).await??)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn get_reservation(&self, id: i64) -> Result<Reservation, StoreError> {
        self.read(&id, |conn, id| Box::pin(Shared::reservation(conn, *id)))
            .await?
            .ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_reservations(
        &self,
        filter: &ReservationFilter,
        scope: &Scope,
        page: PageRequest,
    ) -> Result<Listed<Reservation>, StoreError> {
        self.read(&(filter, scope, page), |conn, (filter, scope, page)| {
            Box::pin(Shared::reservations(conn, filter, scope, *page))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn release_reservation(
        &self,
        id: i64,
        scope: &Scope,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Reservation, StoreError> {
        let op = ReservationOp::End {
            id,
            scope: scope.clone(),
            ending: Ending::Release,
            precondition: precondition.clone(),
            actor: actor.clone(),
        };
        Ok(Engine::reservation(self, op).await??)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn release_reference(
        &self,
        seller_id: &SellerId,
        reference_id: &ExternalId,
        actor: &Actor,
    ) -> Result<Released, StoreError> {
        let args = (seller_id.clone(), reference_id.clone(), actor.clone());
        self.write(args, |conn, (seller, reference, actor)| {
            Box::pin(Shared::release_reference(
                conn,
                seller,
                reference,
                actor,
                Timestamp::now(),
            ))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn commit_reservation(
        &self,
        id: i64,
        scope: &Scope,
        order_id: &ExternalId,
        precondition: &Precondition,
        actor: &Actor,
    ) -> Result<Reservation, StoreError> {
        let op = ReservationOp::End {
            id,
            scope: scope.clone(),
            ending: Ending::Commit(order_id.clone()),
            precondition: precondition.clone(),
            actor: actor.clone(),
        };
        Ok(Engine::reservation(self, op).await??)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(limit = limit))]
    async fn expire_reservations(&self, limit: i64) -> Result<Released, StoreError> {
        // The expiry sweep asks often: look first, and write only when something is due.
        let now = Timestamp::now().naive_utc();
        if !self
            .read(&now, |conn, now| Box::pin(Shared::any_due(conn, *now)))
            .await?
        {
            return Ok(Released::default());
        }
        self.write(limit, |conn, limit| {
            Box::pin(Shared::expire_due(conn, Timestamp::now(), *limit))
        })
        .await
    }

    // ---- Users and refresh tokens --------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user(&self, user: &NewUser, actor: &Actor) -> Result<User, StoreError> {
        self.write((user.clone(), actor.clone()), |conn, (user, actor)| {
            Box::pin(async move {
                let id = Shared::create_user(conn, user).await?;
                let user = Shared::get_user(conn, id).await?;
                let audit = NewAudit::user_created(&user);
                Shared::insert_audit(conn, &audit, actor, Timestamp::now()).await?;
                Ok(user)
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        self.read(&id, |conn, id| Box::pin(Shared::get_user(conn, *id)))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        self.read(&username, |conn, username| {
            Box::pin(Shared::find_login(conn, username))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_users(&self, page: PageRequest) -> Result<Listed<User>, StoreError> {
        self.read(&page, |conn, page| {
            Box::pin(Shared::list_users(conn, *page))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn update_user(
        &self,
        id: i64,
        patch: &UserPatch,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        let args = (id, patch.clone(), actor.clone());
        self.write(args, |conn, (id, patch, actor)| {
            Box::pin(async move {
                Shared::update_user(conn, *id, patch).await?;
                let user = Shared::get_user(conn, *id).await?;
                let audit = NewAudit::user_updated(user.id, patch);
                Shared::insert_audit(conn, &audit, actor, Timestamp::now()).await?;
                Ok(user)
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn count_users(&self) -> Result<u64, StoreError> {
        self.read(&(), |conn, ()| Box::pin(Shared::count_users(conn)))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_refresh_token(
        &self,
        user_id: i64,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        self.write((user_id, token.clone()), |conn, (user_id, token)| {
            Box::pin(Shared::insert_refresh_token(conn, *user_id, token))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
    ) -> Result<Rotation, StoreError> {
        // On MySQL two rotations of one token can deadlock (the winner's insert needs a gap
        // lock beside the index entry the loser waits on); the repeated loser then finds the
        // token used, which is the answer it should get.
        let args = (presented_hash.to_owned(), next_hash.to_owned());
        self.write(args, |conn, (presented, next)| {
            Box::pin(Shared::rotate_refresh_token(conn, presented, next))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<(), StoreError> {
        self.write(token_hash.to_owned(), |conn, token_hash| {
            Box::pin(Shared::revoke_refresh_family(conn, token_hash))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(purge = ?purge, limit = limit))]
    async fn purge(&self, purge: Purge, limit: i64) -> Result<u64, StoreError> {
        self.write((purge, limit), |conn, (purge, limit)| {
            Box::pin(Shared::purge(conn, *purge, *limit))
        })
        .await
    }

    // ---- The audit log ----------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_audit(&self, entry: &NewAudit, actor: &Actor) -> Result<(), StoreError> {
        self.write((entry.clone(), actor.clone()), |conn, (entry, actor)| {
            Box::pin(Shared::insert_audit(conn, entry, actor, Timestamp::now()))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Listed<AuditEntry>, StoreError> {
        self.read(&(filter, page), |conn, (filter, page)| {
            Box::pin(Shared::audit_log(conn, filter, *page))
        })
        .await
    }

    // ---- Idempotency keys ---------------------------------------------------------------

    async fn idempotency_record(
        &self,
        user_id: i64,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read(&(user_id, key), |conn, (user_id, key)| {
            Box::pin(Shared::idempotency_record(conn, *user_id, key))
        })
        .await
    }

    // ---- The event feed -----------------------------------------------------------------

    async fn list_events(
        &self,
        filter: &EventFilter,
        scope: &Scope,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(&(filter, scope), |conn, (filter, scope)| {
            Box::pin(Shared::events(conn, filter, scope))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn count_active_reservations(&self) -> Result<u64, StoreError> {
        self.read(&(), |conn, ()| {
            Box::pin(Shared::count_active_reservations(conn))
        })
        .await
    }

    fn event_signal(&self) -> Arc<Notify> {
        Engine::event_signal(self).clone()
    }

    async fn claim_idempotency_key(
        &self,
        claim: &NewClaim,
        over_stale: bool,
    ) -> Result<bool, StoreError> {
        if over_stale {
            self.write(claim.clone(), |conn, claim| {
                Box::pin(Shared::take_over_claim(conn, claim))
            })
            .await
        } else {
            self.write(claim.clone(), |conn, claim| {
                Box::pin(Shared::insert_claim(conn, claim))
            })
            .await
        }
    }

    async fn complete_idempotency_key(
        &self,
        claim: &NewClaim,
        response: &KeptResponse,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let args = (claim.clone(), response.clone(), expires_at);
        self.write(args, |conn, (claim, response, expires_at)| {
            let held = (claim.user_id, &claim.key, claim.claim);
            Box::pin(Shared::complete_claim(conn, held, response, *expires_at))
        })
        .await
    }

    async fn release_idempotency_key(&self, claim: &NewClaim) -> Result<(), StoreError> {
        self.write(claim.clone(), |conn, claim| {
            let held = (claim.user_id, &claim.key, claim.claim);
            Box::pin(Shared::release_claim(conn, held))
        })
        .await
    }

    fn gauges(&self) -> StoreGauges {
        Engine::gauges(self)
    }

    // ---- Webhooks ------------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_webhook(&self, new: &NewWebhook, actor: &Actor) -> Result<Webhook, StoreError> {
        self.write((new.clone(), actor.clone()), |conn, (new, actor)| {
            Box::pin(Shared::insert_webhook(conn, new, actor, Timestamp::now()))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn get_webhook(&self, id: i64) -> Result<Webhook, StoreError> {
        self.read(&id, |conn, id| {
            Box::pin(async move { Ok(Shared::webhook(conn, *id).await?.webhook) })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_webhooks(
        &self,
        created_by: Option<i64>,
        page: PageRequest,
    ) -> Result<Listed<Webhook>, StoreError> {
        self.read(&(created_by, page), |conn, (created_by, page)| {
            Box::pin(Shared::webhooks(conn, *created_by, *page))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn delete_webhook(
        &self,
        id: i64,
        created_by: Option<i64>,
        actor: &Actor,
    ) -> Result<Webhook, StoreError> {
        let args = (id, created_by, actor.clone());
        self.write(args, |conn, (id, created_by, actor)| {
            Box::pin(Shared::delete_webhook(
                conn,
                *id,
                *created_by,
                actor,
                Timestamp::now(),
            ))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(webhook_id = webhook_id))]
    async fn list_deliveries(
        &self,
        webhook_id: i64,
        page: PageRequest,
    ) -> Result<Listed<Delivery>, StoreError> {
        self.read(&(webhook_id, page), |conn, (webhook_id, page)| {
            Box::pin(Shared::deliveries(conn, *webhook_id, *page))
        })
        .await
    }

    async fn due_webhooks(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        self.read(&limit, |conn, limit| {
            Box::pin(Shared::due_webhooks(conn, Timestamp::now(), *limit))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = id))]
    async fn claim_webhook(
        &self,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> Result<Option<WebhookTarget>, StoreError> {
        self.write((id, owner.to_owned(), until), |conn, (id, owner, until)| {
            Box::pin(Shared::claim_webhook(
                conn,
                *id,
                owner,
                *until,
                Timestamp::now(),
            ))
        })
        .await
    }

    async fn next_webhook_event(&self, webhook: &Webhook) -> Result<NextEvent, StoreError> {
        self.read(webhook, |conn, webhook| {
            Box::pin(Shared::next_webhook_event(conn, webhook))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(webhook_id = progress.webhook_id))]
    async fn save_webhook_progress(&self, progress: &WebhookProgress) -> Result<bool, StoreError> {
        self.write(progress.clone(), |conn, progress| {
            Box::pin(Shared::save_webhook_progress(conn, progress))
        })
        .await
    }

    async fn renew_webhook(
        &self,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write((id, owner.to_owned(), until), |conn, (id, owner, until)| {
            Box::pin(Shared::renew_webhook(conn, *id, owner, *until))
        })
        .await
    }

    async fn release_webhook(&self, id: i64, owner: &str) -> Result<(), StoreError> {
        self.write((id, owner.to_owned()), |conn, (id, owner)| {
            Box::pin(Shared::release_webhook(conn, *id, owner))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn close(&self) {
        Engine::close(self).await;
    }
}
