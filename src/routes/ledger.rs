//! The stock ledger, read-only: the history of one row, and a search over every row. Under
//! `/api/v1/inventory`; every route needs a token (protected router). Entries are written by
//! the stock operations themselves and are never changed or removed through the API.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    LedgerEntry, LedgerFilter, LedgerType, Marketplace, Note, SellerId, SellerSku, Timestamp,
};
use crate::error::{ApiError, Envelope, FieldError};
use crate::extract::{IdPath, QueryReader};
use crate::routes::Page;
use crate::store::StoreError;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_row_transactions))
        .routes(routes!(list_transactions))
}

/// A positive user id in a query.
pub(super) fn user_id(text: &str) -> Result<i64, &'static str> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or("must be a positive integer")
}

/// The filters every ledger query takes (`type`, `since`, `until`); `since` must come before
/// `until`.
fn time_and_type(query: &mut QueryReader) -> LedgerFilter {
    let filter = LedgerFilter {
        entry_type: query.filter("type", LedgerType::parse),
        since: query.filter("since", Timestamp::parse_rfc3339),
        until: query.filter("until", Timestamp::parse_rfc3339),
        ..LedgerFilter::default()
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if until <= since {
            query.fail(FieldError::new("until", "must be after since"));
        }
    }
    filter
}

/// The history of one inventory row, newest first.
///
/// Filters: `type`, `since` (at or after), `until` (before), both RFC 3339 times. Sellers see
/// the history of their own rows; the history of a deleted row stays readable to admins.
#[utoipa::path(get, path = "/api/v1/inventory/{id}/transactions", tag = "stock",
    params(
        ("id" = i64, Path, description = "the row's id", minimum = 1),
        ("type" = Option<String>, Query, description = "create, upsert, adjust, reserve, release, expire, commit or delete"),
        ("since" = Option<String>, Query, description = "entries at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, description = "entries before this time (RFC 3339)"),
        crate::routes::PageParams,
    ),
    responses(
        (status = 200, description = "one page of the row's entries, newest first", body = Envelope<Page<LedgerEntry>>),
        crate::routes::ReadErrors,
    ))]
pub async fn list_row_transactions(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<LedgerEntry>>>, ApiError> {
    let filter = LedgerFilter {
        inventory_id: Some(id),
        ..time_and_type(&mut query)
    };
    let page = query.page();
    query.finish()?;
    match app.store.get_inventory(id).await {
        Ok(row) => caller.may_read(&row.seller_id)?,
        // A deleted row's history is kept: admins may still read it.
        Err(StoreError::NotFound) if caller.is_admin() && app.store.has_ledger(id).await? => {}
        Err(e) => return Err(e.into()),
    }
    let listed = app
        .store
        .list_ledger(&filter, &caller.scope(), page)
        .await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}

/// Ledger entries of every row, newest first.
///
/// Filters: `seller_id`, `market_place_id`, `seller_sku`, `type`, `operator_id` (the user who
/// made the change), `reference`, `since`, `until`. Sellers see their own sellers' entries;
/// filtering by another seller is 403.
#[utoipa::path(get, path = "/api/v1/inventory/transactions", tag = "stock",
    params(
        ("seller_id" = Option<String>, Query, description = "only this seller's entries"),
        ("market_place_id" = Option<String>, Query, description = "only this marketplace"),
        ("seller_sku" = Option<String>, Query, description = "only this SKU"),
        ("type" = Option<String>, Query, description = "create, upsert, adjust, reserve, release, expire, commit or delete"),
        ("operator_id" = Option<i64>, Query, description = "only changes made by this user"),
        ("reference" = Option<String>, Query, description = "only adjustments with this reference"),
        ("since" = Option<String>, Query, description = "entries at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, description = "entries before this time (RFC 3339)"),
        crate::routes::PageParams,
    ),
    responses(
        (status = 200, description = "one page of entries, newest first", body = Envelope<Page<LedgerEntry>>),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_transactions(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<LedgerEntry>>>, ApiError> {
    let filter = LedgerFilter {
        seller_id: query.filter("seller_id", SellerId::parse),
        market_place_id: query.filter("market_place_id", Marketplace::parse),
        seller_sku: query.filter("seller_sku", SellerSku::parse),
        operator_id: query.filter("operator_id", user_id),
        reference: query.filter("reference", Note::parse),
        ..time_and_type(&mut query)
    };
    let page = query.page();
    query.finish()?;
    caller.may_filter(filter.seller_id.as_ref())?;
    let listed = app
        .store
        .list_ledger(&filter, &caller.scope(), page)
        .await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}
