//! The audit log: who did what sensitive thing, from where, when. An entry is written in the
//! same transaction as the action it records, where the action writes (a delete, an
//! adjustment, a threshold change, a user's creation or change); actions that write nothing
//! (a failed login, a consistency check) get an entry of their own. Entries are never changed
//! or removed through the API. No password, token or secret ever goes into one:
//! `docs/security.md` lists what each action records.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{
    Adjustment, ConsistencyReport, Inventory, LedgerEntry, SalesTarget, SellerId, Thresholds,
    Timestamp, User, UserPatch, Webhook,
};

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A password login succeeded.
    LoginSucceeded,
    /// A password login failed: wrong credentials, an inactive user, or throttled.
    LoginFailed,
    /// A refresh token that had been replaced was presented again; its family is revoked.
    RefreshTokenReused,
    /// An admin created a user.
    UserCreated,
    /// An admin changed a user (which fields; a new password only as "changed").
    UserUpdated,
    /// A sales target was deleted.
    SalesTargetDeleted,
    /// An inventory row was deleted.
    InventoryDeleted,
    /// The units on hand of a row were adjusted by hand.
    InventoryAdjusted,
    /// The warning thresholds of a row changed.
    ThresholdsChanged,
    /// The consistency check of the books was run.
    ConsistencyChecked,
    /// A webhook was registered (its URL, event types and sellers; never its secret).
    WebhookCreated,
    /// A webhook was deleted.
    WebhookDeleted,
}

impl AuditAction {
    pub const RULE: &'static str = "must be login_succeeded, login_failed, \
        refresh_token_reused, user_created, user_updated, sales_target_deleted, \
        inventory_deleted, inventory_adjusted, thresholds_changed, consistency_checked, \
        webhook_created or webhook_deleted";
    pub const ALL: [Self; 12] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::RefreshTokenReused,
        Self::UserCreated,
        Self::UserUpdated,
        Self::SalesTargetDeleted,
        Self::InventoryDeleted,
        Self::InventoryAdjusted,
        Self::ThresholdsChanged,
        Self::ConsistencyChecked,
        Self::WebhookCreated,
        Self::WebhookDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
            Self::SalesTargetDeleted => "sales_target_deleted",
            Self::InventoryDeleted => "inventory_deleted",
            Self::InventoryAdjusted => "inventory_adjusted",
            Self::ThresholdsChanged => "thresholds_changed",
            Self::ConsistencyChecked => "consistency_checked",
            Self::WebhookCreated => "webhook_created",
            Self::WebhookDeleted => "webhook_deleted",
        }
    }

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == value)
            .ok_or(Self::RULE)
    }
}

/// The kind of thing an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditTarget {
    User,
    SalesTarget,
    Inventory,
    /// The books as a whole (the consistency check).
    Books,
    Webhook,
}

impl AuditTarget {
    pub const RULE: &'static str = "must be user, sales_target, inventory, books or webhook";
    pub const ALL: [Self; 5] = [
        Self::User,
        Self::SalesTarget,
        Self::Inventory,
        Self::Books,
        Self::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::SalesTarget => "sales_target",
            Self::Inventory => "inventory",
            Self::Books => "books",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or(Self::RULE)
    }
}

/// An entry to write: the action, what it is about and its particulars. Who did it comes
/// from the `Actor`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub action: AuditAction,
    pub target: Option<(AuditTarget, String)>,
    /// The particulars of the action, as a JSON object (never a password, token or secret).
    pub detail: Value,
}

impl NewAudit {
    pub fn new(action: AuditAction, detail: Value) -> Self {
        Self {
            action,
            target: None,
            detail,
        }
    }

    /// The same entry, about `target` number `id`.
    pub fn on(self, target: AuditTarget, id: impl ToString) -> Self {
        Self {
            target: Some((target, id.to_string())),
            ..self
        }
    }
}

/// The entries of the actions that write, with what each records.
impl NewAudit {
    /// A user was created: their name, role, sellers and whether active (no password).
    pub fn user_created(user: &User) -> Self {
        let detail = json!({
            "username": user.username,
            "role": user.role.as_str(),
            "seller_ids": user.seller_ids,
            "is_active": user.is_active,
        });
        Self::new(AuditAction::UserCreated, detail).on(AuditTarget::User, user.id)
    }

    /// A user was changed: the new value of each field changed, and for a new password only
    /// that it changed.
    pub fn user_updated(id: i64, patch: &UserPatch) -> Self {
        let mut changed = serde_json::Map::new();
        if let Some(active) = patch.is_active {
            changed.insert("is_active".into(), active.into());
        }
        if let Some(role) = patch.role {
            changed.insert("role".into(), role.as_str().into());
        }
        if let Some(sellers) = &patch.seller_ids {
            changed.insert("seller_ids".into(), json!(sellers));
        }
        if patch.password_hash.is_some() {
            changed.insert("password".into(), "changed".into());
        }
        Self::new(AuditAction::UserUpdated, json!({ "changed": changed })).on(AuditTarget::User, id)
    }

    /// A sales target was deleted: its key and amount.
    pub fn sales_target_deleted(row: &SalesTarget) -> Self {
        let detail = json!({
            "seller_id": row.seller_id,
            "parent_asin": row.parent_asin,
            "market_place_id": row.market_place_id,
            "period": row.period,
            "sales_target": row.sales_target,
        });
        Self::new(AuditAction::SalesTargetDeleted, detail).on(AuditTarget::SalesTarget, row.id)
    }

    /// An inventory row was deleted: its key and the units it had.
    pub fn inventory_deleted(row: &Inventory) -> Self {
        let detail = json!({
            "seller_id": row.seller_id,
            "market_place_id": row.market_place_id,
            "seller_sku": row.seller_sku,
            "inventory": row.inventory.get(),
        });
        Self::new(AuditAction::InventoryDeleted, detail).on(AuditTarget::Inventory, row.id)
    }

    /// Units on hand were adjusted: the request, the numbers before and after, and the ledger
    /// entry that explains them.
    pub fn inventory_adjusted(adjustment: &Adjustment, entry: &LedgerEntry) -> Self {
        let detail = json!({
            "adjustment_type": adjustment.adjustment_type,
            "quantity": adjustment.quantity,
            "reason": adjustment.reason,
            "reference": adjustment.reference,
            "inventory_before": entry.inventory_before,
            "inventory_after": entry.inventory_after,
            "ledger_entry_id": entry.id,
        });
        Self::new(AuditAction::InventoryAdjusted, detail)
            .on(AuditTarget::Inventory, entry.inventory_id)
    }

    /// A row's thresholds changed: both, before and after.
    pub fn thresholds_changed(id: i64, before: Thresholds, after: Thresholds) -> Self {
        let detail = json!({
            "before": { "warning_threshold": before.warning, "critical_threshold": before.critical },
            "after": { "warning_threshold": after.warning, "critical_threshold": after.critical },
        });
        Self::new(AuditAction::ThresholdsChanged, detail).on(AuditTarget::Inventory, id)
    }

    /// The consistency check ran (of one seller, or every row): what it found.
    pub fn consistency_checked(seller: Option<&SellerId>, report: &ConsistencyReport) -> Self {
        let detail = json!({
            "seller_id": seller,
            "checked": report.checked,
            "inconsistent": report.inconsistent,
        });
        Self::new(AuditAction::ConsistencyChecked, detail)
    }
}

/// The entries of webhook changes: what the webhook is, never its secret.
impl NewAudit {
    /// A webhook was registered: its URL, event types and sellers.
    pub fn webhook_created(webhook: &Webhook) -> Self {
        Self::new(AuditAction::WebhookCreated, webhook_detail(webhook))
            .on(AuditTarget::Webhook, webhook.id)
    }

    /// A webhook was deleted: its URL, event types and sellers.
    pub fn webhook_deleted(webhook: &Webhook) -> Self {
        Self::new(AuditAction::WebhookDeleted, webhook_detail(webhook))
            .on(AuditTarget::Webhook, webhook.id)
    }
}

/// A webhook as its audit entries record it: the URL without its query (a receiver may put a
/// token there; `?***` says there was one), the event types and the sellers.
fn webhook_detail(webhook: &Webhook) -> Value {
    let url = match webhook.url.split_once(['?', '#']) {
        Some((base, _)) => format!("{base}?***"),
        None => webhook.url.clone(),
    };
    json!({
        "url": url,
        "event_types": webhook.event_types,
        "seller_ids": webhook.seller_ids,
    })
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    #[schema(example = 42)]
    pub id: i64,
    pub time: Timestamp,
    /// The user who acted (or tried to log in as); null when unknown.
    #[schema(example = 1)]
    pub user_id: Option<i64>,
    #[schema(example = "admin")]
    pub username: Option<String>,
    pub action: AuditAction,
    pub target_type: Option<AuditTarget>,
    #[schema(example = "17")]
    pub target_id: Option<String>,
    #[schema(example = "203.0.113.7")]
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    /// The particulars of the action (see `docs/security.md`).
    #[schema(value_type = Object, example = json!({"adjustment_type": "decrease", "quantity": 5, "reason": "damaged in transit"}))]
    pub detail: Value,
}

/// The filters of `GET /api/v1/audit-log`; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user_id: Option<i64>,
    pub action: Option<AuditAction>,
    pub target_type: Option<AuditTarget>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
}
