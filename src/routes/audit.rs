//! The audit log, read-only, for admins: `GET /api/v1/audit-log`. Entries are written by the
//! actions they record (`crate::domain::NewAudit`) and are never changed or removed through
//! the API.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{AuditAction, AuditEntry, AuditFilter, AuditTarget, Timestamp};
use crate::error::{ApiError, Envelope, FieldError};
use crate::extract::QueryReader;
use crate::routes::ledger::user_id;
use crate::routes::Page;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

/// Audit entries, newest first (admin only).
///
/// Filters: `user_id` (who acted), `action`, `target_type`, `since` (at or after) and `until`
/// (before), both RFC 3339 times. `docs/security.md` lists the actions and what each records.
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit",
    params(
        ("user_id" = Option<i64>, Query, description = "only entries of this user", minimum = 1),
        ("action" = Option<String>, Query, description = "login_succeeded, login_failed, refresh_token_reused, user_created, user_updated, sales_target_deleted, inventory_deleted, inventory_adjusted, thresholds_changed, consistency_checked, webhook_created or webhook_deleted"),
        ("target_type" = Option<String>, Query, description = "user, sales_target, inventory, books or webhook"),
        ("since" = Option<String>, Query, description = "entries at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, description = "entries before this time (RFC 3339)"),
        crate::routes::PageParams,
    ),
    responses(
        (status = 200, description = "one page of entries, newest first", body = Envelope<Page<AuditEntry>>),
        crate::routes::AdminOnly,
        crate::routes::ListErrors,
    ))]
pub async fn list_audit_log(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<AuditEntry>>>, ApiError> {
    caller.require_admin()?;
    let filter = AuditFilter {
        user_id: query.filter("user_id", user_id),
        action: query.filter("action", AuditAction::parse),
        target_type: query.filter("target_type", AuditTarget::parse),
        since: query.filter("since", Timestamp::parse_rfc3339),
        until: query.filter("until", Timestamp::parse_rfc3339),
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if until <= since {
            query.fail(FieldError::new("until", "must be after since"));
        }
    }
    let page = query.page();
    query.finish()?;
    let listed = app.store.list_audit(&filter, page).await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}
