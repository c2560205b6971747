//! Inventory, the stock level of each seller SKU per marketplace: upsert (single and batch), get,
//! list and delete, under `/api/v1/inventory`. Every route needs a token (protected router).
//!
//! Handlers only extract, validate, call the store and wrap; rules live in `crate::domain`.

use axum::extract::{DefaultBodyLimit, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    Asin, Inventory, InventoryFilter, InventoryInput, Marketplace, SellerId, SellerSku, Units,
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
        .routes(routes!(upsert_inventory_batch))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT));
    OpenApiRouter::new()
        .merge(batch)
        .routes(routes!(upsert_inventory, list_inventory))
        .routes(routes!(get_inventory, delete_inventory))
}

impl FromJsonObject for InventoryInput {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_id = o.text("seller_id", SellerId::parse);
        let parent_asin = o.text("parent_asin", Asin::parse);
        let child_asin = o.text("child_asin", Asin::parse);
        let seller_sku = o.text("seller_sku", SellerSku::parse);
        let market_place_id = o.text("market_place_id", Marketplace::parse);
        let inventory = o.integer("inventory", Units::parse);
        Some(Self {
            seller_id: seller_id?,
            parent_asin: parent_asin?,
            child_asin: child_asin?,
            seller_sku: seller_sku?,
            market_place_id: market_place_id?,
            inventory: inventory?,
        })
    }
}

/// Create or update the stock level of one seller SKU in one marketplace.
///
/// The row is keyed by (`seller_id`, `market_place_id`, `seller_sku`): the first write creates
/// it, later writes replace `parent_asin`, `child_asin` and `inventory` and move `update_time`,
/// keeping `id` and `create_time`.
///
/// Conditional: with `If-Match: "<version>"` the row is written only if it exists at that
/// version; with `If-None-Match: *` only if no row has the key (create only). Otherwise 412
/// `VERSION_MISMATCH` and nothing changes. The answer carries the row's `ETag`.
#[utoipa::path(post, path = "/api/v1/inventory", tag = "inventory",
    params(crate::routes::WritePreconditions),
    request_body(content = InventoryInput, example = json!({
        "seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001", "child_asin": "B0CHILD00001",
        "seller_sku": "SKU0000000001", "market_place_id": "US", "inventory": 120})),
    responses(
        (status = 200, description = "the stored row", body = Envelope<Inventory>,
            headers(("ETag" = String, description = "the row's version, quoted: \"3\""))),
        crate::routes::WriteForbidden,
        crate::routes::PreconditionErrors,
        crate::routes::WriteErrors,
    ))]
pub async fn upsert_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    precondition: Precondition,
    ValidJson(item): ValidJson<InventoryInput>,
) -> Result<Tagged<Inventory>, ApiError> {
    caller.may_write(&item.seller_id)?;
    let saved = if precondition.is_none() {
        app.store.upsert_inventory(&item, &caller.actor()).await?
    } else {
        app.store
            .upsert_inventory_if(&item, &precondition, &caller.actor())
            .await?
    };
    Ok(Tagged::new(saved))
}

/// One inventory row by id.
///
/// With `If-None-Match` naming its current `ETag` (or `*`): 304 without a body.
#[utoipa::path(get, path = "/api/v1/inventory/{id}", tag = "inventory",
    params(("id" = i64, Path, description = "the row's id", minimum = 1),
        crate::routes::ReadPreconditions),
    responses(
        (status = 200, description = "the row", body = Envelope<Inventory>,
            headers(("ETag" = String, description = "the row's version, quoted: \"3\""))),
        crate::routes::NotModified,
        crate::routes::PreconditionErrors,
        crate::routes::ReadErrors,
    ))]
pub async fn get_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<Inventory>, ApiError> {
    let found = app.store.get_inventory(id).await?;
    caller.may_read(&found.seller_id)?;
    Tagged::new(found).unless_current(&precondition)
}

/// Inventory rows matching every given filter, ordered by id, one page at a time.
///
/// Incremental sync: with `updated_since` or `cursor`, rows come ordered by (`update_time`,
/// `id`) and `meta.next_cursor` continues after the page; `meta.total` counts the rows from
/// there on. Page to the end, then poll with the last `next_cursor` to get every later change
/// (docs/sync.md).
#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory",
    params(
        ("seller_id" = Option<String>, Query, description = "only this seller's rows"),
        ("market_place_id" = Option<String>, Query, description = "only this marketplace"),
        ("parent_asin" = Option<String>, Query, description = "only this parent ASIN"),
        ("child_asin" = Option<String>, Query, description = "only this child ASIN"),
        ("seller_sku" = Option<String>, Query, description = "only this SKU"),
        crate::routes::PageParams,
        crate::routes::SyncParams,
    ),
    responses(
        (status = 200, description = "one page of rows", body = Envelope<Page<Inventory>>),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<Inventory>>>, ApiError> {
    let filter = InventoryFilter {
        seller_id: query.filter("seller_id", SellerId::parse),
        market_place_id: query.filter("market_place_id", Marketplace::parse),
        parent_asin: query.filter("parent_asin", Asin::parse),
        child_asin: query.filter("child_asin", Asin::parse),
        seller_sku: query.filter("seller_sku", SellerSku::parse),
    };
    let sync = query.sync();
    let page = query.page();
    query.finish()?;
    caller.may_filter(filter.seller_id.as_ref())?;
    let scope = caller.scope();
    let page = match sync {
        None => Page::new(app.store.list_inventory(&filter, &scope, page).await?, page),
        Some(after) => {
            let listed = app
                .store
                .sync_inventory(&filter, &scope, after, page.size)
                .await?;
            Page::synced(listed, after, page.size, |row| (row.update_time, row.id))
        }
    };
    Ok(Json(Envelope::success(page)))
}

/// Delete one inventory row by id, returning the deleted row.
///
/// With `If-Match: "<version>"`, only if the row is at that version (else 412
/// `VERSION_MISMATCH`, nothing deleted).
#[utoipa::path(delete, path = "/api/v1/inventory/{id}", tag = "inventory",
    params(("id" = i64, Path, description = "the row's id", minimum = 1),
        crate::routes::WritePreconditions),
    responses(
        (status = 200, description = "the deleted row", body = Envelope<Inventory>,
            headers(("ETag" = String, description = "the deleted row's version, quoted"))),
        crate::routes::PreconditionErrors,
        crate::routes::ReadErrors,
    ))]
pub async fn delete_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<Inventory>, ApiError> {
    let deleted = app
        .store
        .delete_inventory(id, &caller.scope(), &precondition, &caller.actor())
        .await?;
    Ok(Tagged::new(deleted))
}

/// Create or update up to 1000 rows at once, all or nothing.
///
/// `{"items": [...]}` with 1 to 1000 items of the single-write shape. Every item is checked
/// first (each problem reported with its `index`); the same key twice in one batch is 422; a
/// seller caller with any item of another seller gets 403 naming the item; then all rows are
/// written in one transaction, or none. `data.items` are the stored rows in input order.
#[utoipa::path(post, path = "/api/v1/inventory/batch", tag = "inventory",
    request_body(content = Batch<InventoryInput>, example = json!({"items": [{"seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001", "child_asin": "B0CHILD00001", "seller_sku": "SKU0000000001", "market_place_id": "US", "inventory": 120}]})),
    responses(
        (status = 200, description = "the stored rows, in input order", body = Envelope<Batch<Inventory>>),
        crate::routes::BatchErrors,
    ))]
pub async fn upsert_inventory_batch(
    State(app): State<AppState>,
    caller: AuthUser,
    precondition: Precondition,
    ValidJson(batch): ValidJson<Batch<InventoryInput>>,
) -> Result<Json<Envelope<Batch<Inventory>>>, ApiError> {
    refuse_precondition(&precondition)?;
    reject_repeated_keys(
        batch.items.iter().map(InventoryInput::key),
        "seller_id, market_place_id, seller_sku",
    )?;
    caller.may_write_all(batch.items.iter().map(|item| &item.seller_id))?;
    let saved = app
        .store
        .upsert_inventories(batch.items, &caller.actor())
        .await?;
    Ok(Json(Envelope::success(Batch { items: saved })))
}
