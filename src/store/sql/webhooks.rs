//! Webhooks and their delivery log, the same SQL on both databases (docs/webhooks.md): created
//! and deleted with their audit entries, read, and the delivery state the worker keeps on each
//! webhook row: a cursor over `events`, the failing attempts at the next event, and the lease
//! that lets only one instance deliver for a webhook at a time.

use chrono::NaiveDateTime;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::filter::Filter;
use super::{Backend, Shared};
use crate::domain::{
    Actor, Delivery, EventFilter, NewAudit, NewWebhook, NextEvent, PageRequest, Role, Scope,
    Timestamp, Webhook, WebhookProgress, WebhookTarget,
};
use crate::store::rows::{
    AuditRow, DeliveryRow, EventRow, InventoryRow, Text, UserRow, WebhookRow, DELIVERY_COLUMNS,
    WEBHOOK_COLUMNS,
};
use crate::store::{Listed, StoreError};

const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (url, event_types, seller_ids, secret, \
     created_by, create_time, last_event_id) VALUES (?, ?, ?, ?, ?, ?, ?)";

/// The newest event now: a new webhook gets the events after it.
const LAST_EVENT_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM events";

/// Webhooks with events after their cursor, not waiting for a retry, and not leased by a
/// live claim, oldest first.
const DUE_WEBHOOKS: &str = "SELECT id FROM webhooks w \
     WHERE (lease_until IS NULL OR lease_until < ?) \
     AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
     AND EXISTS (SELECT 1 FROM events e WHERE e.id > w.last_event_id) \
     AND EXISTS (SELECT 1 FROM users u WHERE u.id = w.created_by AND u.is_active = 1) \
     ORDER BY id LIMIT ?";

/// Takes the lease of a webhook whose lease is free or ran out: of instances racing for it,
/// the row lock lets one change the row, and the others find the condition false.
const CLAIM_WEBHOOK: &str = "UPDATE webhooks SET lease_owner = ?, lease_until = ? \
     WHERE id = ? AND (lease_until IS NULL OR lease_until < ?)";

/// Writes the delivery state, only while the lease is still the writer's.
const SAVE_PROGRESS: &str = "UPDATE webhooks SET last_event_id = ?, attempts = ?, \
     failing_since = ?, next_attempt_at = ?, lease_until = ? \
     WHERE id = ? AND lease_owner = ? AND lease_until > ?";

/// Extends the lease, only while it is still the writer's and has not run out (so that no
/// other instance may have claimed the webhook meanwhile).
const RENEW_WEBHOOK: &str = "UPDATE webhooks SET lease_until = ? \
     WHERE id = ? AND lease_owner = ? AND lease_until > ?";

const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, \
     attempted_at, status_code, error, latency_ms, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

const RELEASE_WEBHOOK: &str = "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL \
     WHERE id = ? AND lease_owner = ?";

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<NaiveDateTime>: Encode<'q, DB> + Type<DB>,
    for<'q> Text: Decode<'q, DB> + Type<DB>,
    for<'r> InventoryRow: FromRow<'r, DB::Row>,
    for<'r> AuditRow: FromRow<'r, DB::Row>,
    for<'r> EventRow: FromRow<'r, DB::Row>,
    for<'r> WebhookRow: FromRow<'r, DB::Row>,
    for<'r> DeliveryRow: FromRow<'r, DB::Row>,
    for<'r> UserRow: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Creates a webhook that starts after the newest event, with its audit entry.
    pub async fn insert_webhook(
        conn: &mut DB::Connection,
        new: &NewWebhook,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Webhook, StoreError> {
        let (cursor,): (i64,) = sqlx::query_as(LAST_EVENT_ID).fetch_one(&mut *conn).await?;
        let types: Vec<&str> = new.event_types.iter().map(|t| t.as_str()).collect();
        let sellers = new
            .seller_ids
            .as_ref()
            .map(|s| serde_json::to_string(s).map_err(StoreError::codec))
            .transpose()?;
        let created_by = actor
            .user_id
            .ok_or_else(|| StoreError::codec("a webhook needs the user who creates it"))?;
        let done = sqlx::query(INSERT_WEBHOOK)
            .bind(new.url.as_str())
            .bind(types.join(",").as_str())
            .bind(sellers.as_deref())
            .bind(new.secret.expose())
            .bind(created_by)
            .bind(now.naive_utc())
            .bind(cursor)
            .execute(&mut *conn)
            .await?;
        let webhook = Self::webhook(conn, DB::last_insert_id(&done))
            .await?
            .webhook;
        Self::insert_audit(conn, &NewAudit::webhook_created(&webhook), actor, now).await?;
        Ok(webhook)
    }

    /// The webhook with this id, with its secret and delivery state, or `NotFound`.
    pub async fn webhook(conn: &mut DB::Connection, id: i64) -> Result<WebhookTarget, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?");
        let row: WebhookRow = sqlx::query_as(&sql).bind(id).fetch_one(&mut *conn).await?;
        WebhookTarget::try_from(row)
    }

    /// Webhooks, of one creator if given, ordered by id.
    pub async fn webhooks(
        conn: &mut DB::Connection,
        created_by: Option<i64>,
        page: PageRequest,
    ) -> Result<Listed<Webhook>, StoreError> {
        let filter = Filter::default().eq_int("created_by", created_by);
        let listed: Listed<WebhookRow> =
            Self::page(conn, WEBHOOK_COLUMNS, "webhooks", &filter, "id", page).await?;
        let items = listed
            .items
            .into_iter()
            .map(|row| WebhookTarget::try_from(row).map(|t| t.webhook))
            .collect::<Result<_, _>>()?;
        Ok(Listed {
            items,
            total: listed.total,
        })
    }

    /// Deletes the webhook with this id (of `created_by`, if given; else `NotFound`) and its
    /// delivery log, with an audit entry; returns it as it was.
    pub async fn delete_webhook(
        conn: &mut DB::Connection,
        id: i64,
        created_by: Option<i64>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Webhook, StoreError> {
        let webhook = Self::webhook(conn, id).await?.webhook;
        if created_by.is_some_and(|owner| owner != webhook.created_by) {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Self::insert_audit(conn, &NewAudit::webhook_deleted(&webhook), actor, now).await?;
        Ok(webhook)
    }

    /// The delivery attempts of one webhook, newest first.
    pub async fn deliveries(
        conn: &mut DB::Connection,
        webhook_id: i64,
        page: PageRequest,
    ) -> Result<Listed<Delivery>, StoreError> {
        let filter = Filter::default().eq_int("webhook_id", Some(webhook_id));
        let listed: Listed<DeliveryRow> = Self::page(
            conn,
            DELIVERY_COLUMNS,
            "webhook_deliveries",
            &filter,
            "id DESC",
            page,
        )
        .await?;
        Ok(listed.convert())
    }

    /// Up to `limit` webhooks that have work at `now` and no live lease (see `DUE_WEBHOOKS`).
    pub async fn due_webhooks(
        conn: &mut DB::Connection,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now.naive_utc();
        let ids: Vec<(i64,)> = sqlx::query_as(DUE_WEBHOOKS)
            .bind(now)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Takes the lease of webhook `id` for `owner` until `until`, if nobody holds it at `now`;
    /// the webhook as claimed, or `None` when another instance holds it (or it is gone).
    pub async fn claim_webhook(
        conn: &mut DB::Connection,
        id: i64,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookTarget>, StoreError> {
        let done = sqlx::query(CLAIM_WEBHOOK)
            .bind(owner)
            .bind(until.naive_utc())
            .bind(id)
            .bind(now.naive_utc())
            .execute(&mut *conn)
            .await?;
        if DB::rows_affected(&done) != 1 {
            return Ok(None);
        }
        Self::webhook(conn, id).await.map(Some)
    }

    /// The next event a claimed webhook is to deliver (see `NextEvent`).
    pub async fn next_webhook_event(
        conn: &mut DB::Connection,
        webhook: &Webhook,
    ) -> Result<NextEvent, StoreError> {
        // Events commit in id order (see `Backend::EVENT_LOCK`), so every event up to the
        // newest one seen is there to be read: skipping past those that do not match loses
        // nothing.
        let (newest,): (i64,) = sqlx::query_as(LAST_EVENT_ID).fetch_one(&mut *conn).await?;
        if newest <= webhook.last_event_id {
            return Ok(NextEvent::Idle);
        }
        // What the webhook's creator may see now: a seller whose sellers changed gets only
        // those they still have; a deactivated user's webhooks wait until they are active.
        let creator = Self::get_user(conn, webhook.created_by).await?;
        if !creator.is_active {
            return Ok(NextEvent::Idle);
        }
        let scope = match (&webhook.seller_ids, creator.role) {
            (None, Role::Admin) => Scope::All,
            (Some(sellers), Role::Admin) => Scope::Sellers(sellers.clone()),
            (None, Role::Seller) => Scope::Sellers(creator.seller_ids),
            (Some(sellers), Role::Seller) => Scope::Sellers(
                sellers
                    .iter()
                    .filter(|s| creator.seller_ids.contains(s))
                    .cloned()
                    .collect(),
            ),
        };
        let filter = EventFilter {
            after: webhook.last_event_id,
            limit: 1,
            types: webhook.event_types.clone(),
            seller_id: None,
        };
        let mut found = Self::events(conn, &filter, &scope).await?;
        Ok(match found.pop() {
            Some(event) => NextEvent::Deliver(event),
            None => NextEvent::Skip(newest),
        })
    }

    /// Writes `progress` (and its attempt to the delivery log) if its owner still holds the
    /// lease; `false` when it does not (the lease ran out and another instance took it, or the
    /// webhook was deleted).
    pub async fn save_webhook_progress(
        conn: &mut DB::Connection,
        progress: &WebhookProgress,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(SAVE_PROGRESS)
            .bind(progress.last_event_id)
            .bind(i64::from(progress.attempts))
            .bind(progress.failing_since.map(Timestamp::naive_utc))
            .bind(progress.next_attempt_at.map(Timestamp::naive_utc))
            .bind(progress.lease_until.naive_utc())
            .bind(progress.webhook_id)
            .bind(progress.owner.as_str())
            .bind(Timestamp::now().naive_utc())
            .execute(&mut *conn)
            .await?;
        if DB::rows_affected(&done) != 1 {
            return Ok(false);
        }
        if let Some(delivery) = &progress.delivery {
            sqlx::query(INSERT_DELIVERY)
                .bind(progress.webhook_id)
                .bind(delivery.event_id)
                .bind(i64::from(delivery.attempt))
                .bind(delivery.attempted_at.naive_utc())
                .bind(delivery.status_code.map(i64::from))
                .bind(delivery.error.as_deref())
                .bind(i64::try_from(delivery.latency_ms).unwrap_or(i64::MAX))
                .bind(delivery.outcome.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(true)
    }

    /// Extends `owner`'s lease of webhook `id` to `until`; `false` when the lease is no longer
    /// `owner`'s or ran out (another instance may hold it now).
    pub async fn renew_webhook(
        conn: &mut DB::Connection,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(RENEW_WEBHOOK)
            .bind(until.naive_utc())
            .bind(id)
            .bind(owner)
            .bind(Timestamp::now().naive_utc())
            .execute(&mut *conn)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Gives up `owner`'s lease of webhook `id`, so that any instance may claim it again.
    pub async fn release_webhook(
        conn: &mut DB::Connection,
        id: i64,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(RELEASE_WEBHOOK)
            .bind(id)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
