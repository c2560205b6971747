//! Sales targets, monthly or weekly per parent ASIN and marketplace: upsert (single and batch),
//! get, list and delete, under `/api/v1/sales/target`. Every route needs a token (protected
//! router).
//!
//! Handlers only extract, validate, call the store and wrap; rules live in `crate::domain`.

use axum::extract::{DefaultBodyLimit, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    Asin, Marketplace, Money, Period, SalesTarget, SalesTargetFilter, SalesTargetInput, SellerId,
};
use crate::error::{ApiError, Envelope};
use crate::extract::{
    refuse_precondition, reject_repeated_keys, Batch, FromJsonObject, IdPath, ObjectReader,
    Precondition, QueryReader, ValidJson,
};
use crate::routes::{Page, Tagged, BATCH_BODY_LIMIT};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    let batch = OpenApiRouter::new()
        .routes(routes!(upsert_sales_targets_batch))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT));
    OpenApiRouter::new()
        .merge(batch)
        .routes(routes!(upsert_sales_target, list_sales_targets))
        .routes(routes!(get_sales_target, delete_sales_target))
}

impl FromJsonObject for SalesTargetInput {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_id = o.text("seller_id", SellerId::parse);
        let parent_asin = o.text("parent_asin", Asin::parse);
        let market_place_id = o.text("market_place_id", Marketplace::parse);
        let period = o.text("period", Period::parse);
        let sales_target = o.number("sales_target", Money::parse_json_number);
        Some(Self {
            seller_id: seller_id?,
            parent_asin: parent_asin?,
            market_place_id: market_place_id?,
            period: period?,
            sales_target: sales_target?,
        })
    }
}

/// Create or update the monthly or weekly sales target of one parent ASIN in one marketplace.
///
/// The row is keyed by (`seller_id`, `parent_asin`, `market_place_id`, `period`): the first
/// write creates it, later writes replace `sales_target` and move `update_time` and
/// `version`, keeping `id` and `create_time`.
///
/// Conditional: with `If-Match: "<version>"` the target is written only if it exists at that
/// version; with `If-None-Match: *` only if no target has the key (create only). Otherwise 412
/// `VERSION_MISMATCH` and nothing changes. The answer carries the target's `ETag`.
#[utoipa::path(post, path = "/api/v1/sales/target", tag = "sales targets",
    params(crate::routes::WritePreconditions),
    request_body(content = SalesTargetInput, example = json!({
        "seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001",
        "market_place_id": "US", "period": "2026-11", "sales_target": 15000.5})),
    responses(
        (status = 200, description = "the stored target", body = Envelope<SalesTarget>,
            headers(("ETag" = String, description = "the target's version, quoted: \"2\""))),
        crate::routes::WriteForbidden,
        crate::routes::PreconditionErrors,
        crate::routes::WriteErrors,
    ))]
pub async fn upsert_sales_target(
    State(app): State<AppState>,
    caller: AuthUser,
    precondition: Precondition,
    ValidJson(item): ValidJson<SalesTargetInput>,
) -> Result<Tagged<SalesTarget>, ApiError> {
    caller.may_write(&item.seller_id)?;
    let saved = if precondition.is_none() {
        app.store.upsert_sales_target(&item).await?
    } else {
        app.store
            .upsert_sales_target_if(&item, &precondition)
            .await?
    };
    Ok(Tagged::new(saved))
}

/// One sales target by id.
///
/// With `If-None-Match` naming its current `ETag` (or `*`): 304 without a body.
#[utoipa::path(get, path = "/api/v1/sales/target/{id}", tag = "sales targets",
    params(("id" = i64, Path, description = "the target's id", minimum = 1),
        crate::routes::ReadPreconditions),
    responses(
        (status = 200, description = "the target", body = Envelope<SalesTarget>,
            headers(("ETag" = String, description = "the target's version, quoted: \"2\""))),
        crate::routes::NotModified,
        crate::routes::PreconditionErrors,
        crate::routes::ReadErrors,
    ))]
pub async fn get_sales_target(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<SalesTarget>, ApiError> {
    let found = app.store.get_sales_target(id).await?;
    caller.may_read(&found.seller_id)?;
    Tagged::new(found).unless_current(&precondition)
}

/// Sales targets matching every given filter, ordered by id, one page at a time.
///
/// Incremental sync: with `updated_since` or `cursor`, rows come ordered by (`update_time`,
/// `id`) and `meta.next_cursor` continues after the page; `meta.total` counts the rows from
/// there on. Page to the end, then poll with the last `next_cursor` to get every later change
/// (docs/sync.md).
#[utoipa::path(get, path = "/api/v1/sales/target", tag = "sales targets",
    params(
        ("seller_id" = Option<String>, Query, description = "only this seller's targets"),
        ("parent_asin" = Option<String>, Query, description = "only this parent ASIN"),
        ("market_place_id" = Option<String>, Query, description = "only this marketplace"),
        ("period" = Option<String>, Query, description = "only this month or week"),
        crate::routes::PageParams,
        crate::routes::SyncParams,
    ),
    responses(
        (status = 200, description = "one page of targets", body = Envelope<Page<SalesTarget>>),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_sales_targets(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<SalesTarget>>>, ApiError> {
    let filter = SalesTargetFilter {
        seller_id: query.filter("seller_id", SellerId::parse),
        parent_asin: query.filter("parent_asin", Asin::parse),
        market_place_id: query.filter("market_place_id", Marketplace::parse),
        period: query.filter("period", Period::parse),
    };
    let sync = query.sync();
    let page = query.page();
    query.finish()?;
    caller.may_filter(filter.seller_id.as_ref())?;
    let scope = caller.scope();
    let page = match sync {
        None => Page::new(
            app.store.list_sales_targets(&filter, &scope, page).await?,
            page,
        ),
        Some(after) => {
            let listed = app
                .store
                .sync_sales_targets(&filter, &scope, after, page.size)
                .await?;
            Page::synced(listed, after, page.size, |row| (row.update_time, row.id))
        }
    };
    Ok(Json(Envelope::success(page)))
}

/// Delete one sales target by id, returning the deleted row.
///
/// With `If-Match: "<version>"`, only if the target is at that version (else 412
/// `VERSION_MISMATCH`, nothing deleted).
#[utoipa::path(delete, path = "/api/v1/sales/target/{id}", tag = "sales targets",
    params(("id" = i64, Path, description = "the target's id", minimum = 1),
        crate::routes::WritePreconditions),
    responses(
        (status = 200, description = "the deleted target", body = Envelope<SalesTarget>,
            headers(("ETag" = String, description = "the deleted target's version, quoted"))),
        crate::routes::PreconditionErrors,
        crate::routes::ReadErrors,
    ))]
pub async fn delete_sales_target(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<SalesTarget>, ApiError> {
    let deleted = app
        .store
        .delete_sales_target(id, &caller.scope(), &precondition, &caller.actor())
        .await?;
    Ok(Tagged::new(deleted))
}

/// Create or update up to 1000 rows at once, all or nothing.
///
/// `{"items": [...]}` with 1 to 1000 items of the single-write shape. Every item is checked
/// first (each problem reported with its `index`); the same key twice in one batch is 422; a
/// seller caller with any item of another seller gets 403 naming the item; then all rows are
/// written in one transaction, or none. `data.items` are the stored rows in input order.
#[utoipa::path(post, path = "/api/v1/sales/target/batch", tag = "sales targets",
    request_body(content = Batch<SalesTargetInput>, example = json!({"items": [{"seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001", "market_place_id": "US", "period": "2026-11", "sales_target": 15000.5}]})),
    responses(
        (status = 200, description = "the stored rows, in input order", body = Envelope<Batch<SalesTarget>>),
        crate::routes::BatchErrors,
    ))]
pub async fn upsert_sales_targets_batch(
    State(app): State<AppState>,
    caller: AuthUser,
    precondition: Precondition,
    ValidJson(batch): ValidJson<Batch<SalesTargetInput>>,
) -> Result<Json<Envelope<Batch<SalesTarget>>>, ApiError> {
    refuse_precondition(&precondition)?;
    reject_repeated_keys(
        batch.items.iter().map(SalesTargetInput::key),
        "seller_id, parent_asin, market_place_id, period",
    )?;
    caller.may_write_all(batch.items.iter().map(|item| &item.seller_id))?;
    let saved = app.store.upsert_sales_targets(batch.items).await?;
    Ok(Json(Envelope::success(Batch { items: saved })))
}
