//! Stock management of inventory rows: adjust by hand, warning thresholds, the low-stock list,
//! lookups by id or key, and the consistency check. Under `/api/v1/inventory`; every route
//! needs a token (protected router). `docs/stock.md` explains the model.
//!
//! Handlers only extract, validate, authorise, call the store and wrap; the rules of stock live
//! in `crate::domain::stock`.

use axum::extract::{DefaultBodyLimit, State};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    Adjustment, AdjustmentType, ConsistencyReport, Inventory, InventoryLookup, LedgerEntry,
    LowStockFilter, Marketplace, NewAudit, Note, SellerId, SellerSku, StockLevel, Thresholds,
    Units, MAX_LOOKUP,
};
use crate::error::{ApiError, Envelope, ErrorBody};
use crate::extract::{
    read_object, FromJsonObject, IdPath, ObjectReader, OptionalJson, Precondition, QueryReader,
    ValidJson,
};
use crate::routes::{Page, Tagged, BATCH_BODY_LIMIT};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    // Up to 1000 keys do not fit the 64 KiB of a single write: a lookup gets a batch's limit.
    let lookup = OpenApiRouter::new()
        .routes(routes!(lookup_inventory))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT));
    OpenApiRouter::new()
        .merge(lookup)
        .routes(routes!(adjust_inventory))
        .routes(routes!(set_thresholds))
        .routes(routes!(list_low_stock))
        .routes(routes!(check_consistency))
}

/// `POST /api/v1/inventory/{id}/adjust` body.
#[derive(Debug, ToSchema)]
#[schema(as = AdjustRequest, example = json!({"adjustment_type": "decrease", "quantity": 5,
    "reason": "damaged in the warehouse", "reference": "cycle-count-2026-11"}))]
#[allow(dead_code)] // documentation only: the body is read into a domain type
pub struct AdjustRequest {
    adjustment_type: AdjustmentType,
    /// 1 to 2147483647; 0 only with `set`.
    #[schema(example = 5)]
    quantity: i64,
    /// Why, in 1 to 200 characters.
    reason: Note,
    /// A purchase order, a cycle count, a URI: up to 200 characters.
    reference: Option<Note>,
}

impl FromJsonObject for Adjustment {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let adjustment_type = o.text("adjustment_type", AdjustmentType::parse);
        // The range every type accepts; whether 0 is allowed depends on the type (below).
        let quantity = o.integer("quantity", |q| {
            Adjustment::check_quantity(AdjustmentType::Set, q)
        });
        let reason = o.text("reason", Note::parse);
        let reference = o.optional_text("reference", Note::parse);
        let (adjustment_type, quantity) = (adjustment_type?, quantity?);
        let quantity = match Adjustment::check_quantity(adjustment_type, quantity) {
            Ok(quantity) => quantity,
            Err(why) => {
                o.fail("quantity", why);
                return None;
            }
        };
        Some(Self {
            adjustment_type,
            quantity,
            reason: reason?,
            reference: reference?,
        })
    }
}

/// A row and the ledger entry of its adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Adjusted {
    inventory: Inventory,
    transaction: LedgerEntry,
}

/// The error responses of a stock change to one row.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum AdjustErrors {
    #[response(status = 404, description = "no row with this id (or it belongs to another seller)",
        example = json!({"code": 404, "error_code": "NOT_FOUND", "message": "no such resource", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotFound(ErrorBody),
    #[response(status = 409, description = "INSUFFICIENT_INVENTORY: a decrease or set would leave fewer units than are reserved",
        example = json!({"code": 409, "error_code": "INSUFFICIENT_INVENTORY", "message": "not enough available inventory",
            "detail": {"requested": 7, "available": 5}, "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Insufficient(ErrorBody),
    #[response(status = 413, description = "body larger than the limit",
        example = json!({"code": 413, "error_code": "PAYLOAD_TOO_LARGE", "message": "request body too large", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json",
        example = json!({"code": 415, "error_code": "UNSUPPORTED_MEDIA_TYPE", "message": "body must be application/json", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotJson(ErrorBody),
    #[response(status = 422, description = "VALIDATION_FAILED: invalid fields (all listed); INVALID_QUANTITY: an increase would take the units on hand past 2147483647",
        example = json!({"code": 422, "error_code": "INVALID_QUANTITY", "message": "the quantity would take the inventory past 2147483647",
            "detail": [{"field": "quantity", "message": "would take the inventory past 2147483647"}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// Adjust the units on hand of one row by hand: increase, decrease, or set a counted number.
///
/// Every adjustment needs a reason and writes a ledger entry of type `adjust`, in the same
/// transaction. A decrease or set that would leave fewer units than reservations hold is
/// refused (409 `INSUFFICIENT_INVENTORY`, `detail` `{requested, available}`); an increase past
/// 2147483647 is 422 `INVALID_QUANTITY`. With `If-Match: "<version>"`, only if the row is at
/// that version (else 412 `VERSION_MISMATCH`). A refused adjustment changes nothing. The
/// answer's `ETag` is the row's new version.
#[utoipa::path(post, path = "/api/v1/inventory/{id}/adjust", tag = "stock",
    params(("id" = i64, Path, description = "the row's id", minimum = 1),
        crate::routes::WritePreconditions),
    request_body(content = AdjustRequest),
    responses(
        (status = 200, description = "the row after the adjustment and its ledger entry", body = Envelope<Adjusted>,
            headers(("ETag" = String, description = "the row's new version, quoted: \"4\""))),
        crate::routes::PreconditionErrors,
        AdjustErrors,
    ))]
pub async fn adjust_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
    ValidJson(adjustment): ValidJson<Adjustment>,
) -> Result<Tagged<Adjusted>, ApiError> {
    let (inventory, transaction) = app
        .store
        .adjust_inventory(
            id,
            &caller.scope(),
            &adjustment,
            &precondition,
            &caller.actor(),
        )
        .await?;
    Ok(Tagged::with_version(
        inventory.version,
        Adjusted {
            inventory,
            transaction,
        },
    ))
}

/// `PUT /api/v1/inventory/{id}/thresholds` body: both fields, each a number or `null`.
#[derive(Debug, ToSchema)]
#[schema(as = ThresholdsRequest, example = json!({"warning_threshold": 20, "critical_threshold": 5}))]
#[allow(dead_code)] // documentation only: the body is read into a domain type
pub struct ThresholdsRequest {
    /// At or below this many available units the row is at `warning`; `null` for none.
    #[schema(minimum = 0, maximum = 2147483647)]
    warning_threshold: Option<i32>,
    /// At or below this many it is `critical`; `null` for none. Not above `warning_threshold`.
    #[schema(minimum = 0, maximum = 2147483647)]
    critical_threshold: Option<i32>,
}

impl FromJsonObject for Thresholds {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let warning = o.nullable_integer("warning_threshold", Units::parse);
        let critical = o.nullable_integer("critical_threshold", Units::parse);
        let (warning, critical) = (warning?.map(Units::get), critical?.map(Units::get));
        Thresholds::new(warning, critical)
            .map_err(|why| o.fail("critical_threshold", why))
            .ok()
    }
}

/// Set the warning thresholds of one row, which decide its `stock_level`.
///
/// Both fields are required; `null` clears one. With both set, `critical_threshold` may not be
/// above `warning_threshold`. Setting the thresholds a row already has changes nothing. With
/// `If-Match: "<version>"`, only if the row is at that version (else 412 `VERSION_MISMATCH`).
#[utoipa::path(put, path = "/api/v1/inventory/{id}/thresholds", tag = "stock",
    params(("id" = i64, Path, description = "the row's id", minimum = 1),
        crate::routes::WritePreconditions),
    request_body(content = ThresholdsRequest),
    responses(
        (status = 200, description = "the row with its new thresholds and level", body = Envelope<Inventory>,
            headers(("ETag" = String, description = "the row's version, quoted: \"4\""))),
        crate::routes::PreconditionErrors,
        crate::routes::ReadErrors,
        crate::routes::WriteErrors,
    ))]
pub async fn set_thresholds(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
    ValidJson(thresholds): ValidJson<Thresholds>,
) -> Result<Tagged<Inventory>, ApiError> {
    let row = app
        .store
        .set_thresholds(
            id,
            &caller.scope(),
            thresholds,
            &precondition,
            &caller.actor(),
        )
        .await?;
    Ok(Tagged::new(row))
}

/// Rows whose stock is low: at `level` or worse, least available first.
///
/// `warning` (the default) lists `warning`, `critical` and `out_of_stock` rows; `critical` lists
/// `critical` and `out_of_stock`; `out_of_stock` only those with nothing available.
#[utoipa::path(get, path = "/api/v1/inventory/low-stock", tag = "stock",
    params(
        ("level" = Option<String>, Query, description = "warning (default), critical or out_of_stock"),
        ("seller_id" = Option<String>, Query, description = "only this seller's rows"),
        ("market_place_id" = Option<String>, Query, description = "only this marketplace"),
        crate::routes::PageParams,
    ),
    responses(
        (status = 200, description = "one page of rows, least available first", body = Envelope<Page<Inventory>>),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_low_stock(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<Inventory>>>, ApiError> {
    let filter = LowStockFilter {
        level: query
            .filter("level", StockLevel::parse_low)
            .unwrap_or(StockLevel::Warning),
        seller_id: query.filter("seller_id", SellerId::parse),
        market_place_id: query.filter("market_place_id", Marketplace::parse),
    };
    let page = query.page();
    query.finish()?;
    caller.may_filter(filter.seller_id.as_ref())?;
    let listed = app
        .store
        .list_low_stock(&filter, &caller.scope(), page)
        .await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}

/// `POST /api/v1/inventory/lookup` body: `ids` or `keys`, one of them.
#[derive(Debug, ToSchema)]
#[schema(as = LookupRequest, example = json!({"keys": [{"seller_id": "A1SELLER0001",
    "market_place_id": "US", "seller_sku": "SKU0000000001"}]}))]
#[allow(dead_code)] // documentation only: the body is read into a domain type
pub struct LookupRequest {
    /// 1 to 1000 row ids.
    ids: Option<Vec<i64>>,
    /// 1 to 1000 keys.
    keys: Option<Vec<LookupKey>>,
}

/// A row's key in a lookup.
#[derive(Debug, ToSchema)]
pub struct LookupKey {
    seller_id: SellerId,
    market_place_id: Marketplace,
    seller_sku: SellerSku,
}

impl FromJsonObject for LookupKey {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_id = o.text("seller_id", SellerId::parse);
        let market_place_id = o.text("market_place_id", Marketplace::parse);
        let seller_sku = o.text("seller_sku", SellerSku::parse);
        Some(Self {
            seller_id: seller_id?,
            market_place_id: market_place_id?,
            seller_sku: seller_sku?,
        })
    }
}

const LOOKUP_SIZE: &str = "must hold 1 to 1000 entries";

impl FromJsonObject for InventoryLookup {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        match (o.has("ids"), o.has("keys")) {
            (true, false) => {
                let ids = o.array("ids")?;
                if !(1..=MAX_LOOKUP).contains(&ids.len()) {
                    o.fail("ids", LOOKUP_SIZE);
                    return None;
                }
                let count = ids.len();
                let mut valid = Vec::with_capacity(count);
                for (i, raw) in ids.into_iter().enumerate() {
                    match raw.get().trim().parse::<i64>() {
                        Ok(id) if id > 0 => valid.push(id),
                        _ => o.fail_element("ids", i, "must be a positive integer"),
                    }
                }
                (valid.len() == count).then_some(Self::Ids(valid))
            }
            (false, true) => {
                let keys = o.array("keys")?;
                if !(1..=MAX_LOOKUP).contains(&keys.len()) {
                    o.fail("keys", LOOKUP_SIZE);
                    return None;
                }
                let count = keys.len();
                let read: Vec<LookupKey> = keys
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, raw)| read_object(raw, Some(i), "keys", o.errors()))
                    .collect();
                (read.len() == count).then(|| {
                    Self::Keys(
                        read.into_iter()
                            .map(|k| (k.seller_id, k.market_place_id, k.seller_sku))
                            .collect(),
                    )
                })
            }
            (both, _) => {
                // Read whatever was sent, so that only this one problem is reported.
                if both {
                    let _ = (o.array("ids"), o.array("keys"));
                }
                o.fail("body", "must have exactly one of ids and keys");
                None
            }
        }
    }
}

/// The rows of a lookup, in the order asked, `null` where there is none.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookedUp {
    items: Vec<Option<Inventory>>,
}

/// Many rows at once, by id or by key, in the order asked.
///
/// `{"ids": [..]}` or `{"keys": [{seller_id, market_place_id, seller_sku}, ..]}`, 1 to 1000.
/// `data.items` follows the input; an entry is `null` where no row exists, or where it belongs
/// to a seller the caller may not see.
#[utoipa::path(post, path = "/api/v1/inventory/lookup", tag = "stock",
    request_body(content = LookupRequest),
    responses(
        (status = 200, description = "the rows, in input order", body = Envelope<LookedUp>),
        crate::routes::WriteErrors,
    ))]
pub async fn lookup_inventory(
    State(app): State<AppState>,
    caller: AuthUser,
    ValidJson(lookup): ValidJson<InventoryLookup>,
) -> Result<Json<Envelope<LookedUp>>, ApiError> {
    let items = app.store.lookup_inventory(&lookup, &caller.scope()).await?;
    Ok(Json(Envelope::success(LookedUp { items })))
}

/// `POST /api/v1/inventory/consistency-check` body (optional).
#[derive(Debug, Default, ToSchema)]
#[schema(as = ConsistencyRequest, example = json!({"seller_id": "A1SELLER0001"}))]
pub struct ConsistencyRequest {
    /// Check only this seller's rows.
    seller_id: Option<SellerId>,
}

impl FromJsonObject for ConsistencyRequest {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        Some(Self {
            seller_id: o.optional_text("seller_id", SellerId::parse)?,
        })
    }
}

/// Check that the books add up (admin only; reads only).
///
/// For every row (of one seller, with `{"seller_id"}`): nothing `oversold` (`available < 0`),
/// `reserved` equal to what its active reservations hold (else `reserved_mismatch`), and a
/// ledger whose changes add up to `inventory` and `reserved` and whose entries follow one from
/// another (else `ledger_mismatch`). Each problem is one entry of `details`.
#[utoipa::path(post, path = "/api/v1/inventory/consistency-check", tag = "stock",
    request_body(content = Option<ConsistencyRequest>, description = "optional"),
    responses(
        (status = 200, description = "what the check found", body = Envelope<ConsistencyReport>),
        crate::routes::AdminOnly,
        crate::routes::WriteErrors,
    ))]
pub async fn check_consistency(
    State(app): State<AppState>,
    caller: AuthUser,
    OptionalJson(request): OptionalJson<ConsistencyRequest>,
) -> Result<Json<Envelope<ConsistencyReport>>, ApiError> {
    caller.require_admin()?;
    let request = request.unwrap_or_default();
    let report = app
        .store
        .check_consistency(request.seller_id.as_ref())
        .await?;
    let audit = NewAudit::consistency_checked(request.seller_id.as_ref(), &report);
    app.store.record_audit(&audit, &caller.actor()).await?;
    Ok(Json(Envelope::success(report)))
}
