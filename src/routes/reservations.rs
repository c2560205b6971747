//! Reservations, units held for a cart or an order: create, read, list, release (one, or a
//! whole cart), commit for an order, and the admin's cleanup of overdue ones. Under
//! `/api/v1/reservations`; every route needs a token (protected router). `docs/stock.md` draws
//! the life of a reservation.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    parse_quantity, ExternalId, Marketplace, NewReservation, NewReservationItem, Released,
    Reservation, ReservationFilter, ReservationStatus, ReservationType, SellerId, SellerSku,
    StockError, DEFAULT_EXPIRES_MINUTES, MAX_EXPIRES_MINUTES, MAX_RESERVATION_ITEMS,
};
use crate::error::{ApiError, Envelope, ErrorBody};
use crate::extract::{
    read_object, reject_repeated_keys, FromJsonObject, IdPath, ObjectReader, Precondition,
    QueryReader, ValidJson,
};
use crate::routes::{Page, Tagged};
use crate::store::StoreError;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_reservation, list_reservations))
        .routes(routes!(get_reservation, release_reservation))
        .routes(routes!(release_reference))
        .routes(routes!(commit_reservation))
        .routes(routes!(expire_reservations))
}

/// How many overdue reservations one cleanup expires per transaction.
const CLEANUP_CHUNK: i64 = 500;

/// `POST /api/v1/reservations` body.
#[derive(Debug, ToSchema)]
#[schema(as = ReservationRequest, example = json!({"seller_id": "A1SELLER0001",
    "market_place_id": "US", "reservation_type": "cart", "reference_id": "cart:7f3a9c",
    "items": [{"seller_sku": "SKU0000000001", "quantity": 2}], "expires_minutes": 30}))]
#[allow(dead_code)] // documentation only: the body is read into a domain type
pub struct ReservationRequest {
    seller_id: SellerId,
    market_place_id: Marketplace,
    reservation_type: ReservationType,
    /// The cart or order this holds units for: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
    reference_id: ExternalId,
    /// 1 to 100 items, each SKU once.
    items: Vec<ReservationItemRequest>,
    /// How long to hold the units: 1 to 10080 minutes; 30 when left out.
    #[schema(minimum = 1, maximum = 10080, default = 30)]
    expires_minutes: Option<i64>,
}

/// One SKU of a reservation request.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only: the body is read into a domain type
pub struct ReservationItemRequest {
    seller_sku: SellerSku,
    #[schema(minimum = 1, maximum = 2147483647, example = 2)]
    quantity: i64,
}

impl FromJsonObject for NewReservationItem {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_sku = o.text("seller_sku", SellerSku::parse);
        let quantity = o.integer("quantity", parse_quantity);
        Some(Self {
            seller_sku: seller_sku?,
            quantity: quantity?,
        })
    }
}

fn expires_minutes(value: i64) -> Result<i64, &'static str> {
    if (1..=MAX_EXPIRES_MINUTES).contains(&value) {
        Ok(value)
    } else {
        Err("must be an integer from 1 to 10080")
    }
}

impl FromJsonObject for NewReservation {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_id = o.text("seller_id", SellerId::parse);
        let market_place_id = o.text("market_place_id", Marketplace::parse);
        let reservation_type = o.text("reservation_type", ReservationType::parse);
        let reference_id = o.text("reference_id", ExternalId::parse);
        let expires = o.optional_integer("expires_minutes", expires_minutes);
        let items = o.array("items").and_then(|raw| {
            if !(1..=MAX_RESERVATION_ITEMS).contains(&raw.len()) {
                o.fail("items", "must hold 1 to 100 items");
                return None;
            }
            let count = raw.len();
            let items: Vec<NewReservationItem> = raw
                .into_iter()
                .enumerate()
                .filter_map(|(i, raw)| read_object(raw, Some(i), "items", o.errors()))
                .collect();
            (items.len() == count).then_some(items)
        });
        Some(Self {
            seller_id: seller_id?,
            market_place_id: market_place_id?,
            reservation_type: reservation_type?,
            reference_id: reference_id?,
            items: items?,
            expires_minutes: expires?.unwrap_or(DEFAULT_EXPIRES_MINUTES),
        })
    }
}

/// The error responses of creating a reservation.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReserveErrors {
    #[response(status = 403, description = "the reservation is for a seller the caller does not act for",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "you may not write data of this seller_id", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "SKU_NOT_FOUND: some SKUs have no row for this seller and marketplace (`detail` lists them)",
        example = json!({"code": 404, "error_code": "SKU_NOT_FOUND", "message": "no inventory row for some SKUs",
            "detail": [{"index": 1, "seller_sku": "SKU0000000009"}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    SkuNotFound(ErrorBody),
    #[response(status = 409, description = "INSUFFICIENT_INVENTORY: some items have fewer units available than asked (`detail` lists every one); nothing is held",
        example = json!({"code": 409, "error_code": "INSUFFICIENT_INVENTORY", "message": "not enough available inventory",
            "detail": [{"index": 0, "seller_sku": "SKU0000000001", "requested": 5, "available": 3}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Insufficient(ErrorBody),
    #[response(status = 413, description = "body larger than 64 KiB",
        example = json!({"code": 413, "error_code": "PAYLOAD_TOO_LARGE", "message": "request body too large", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json",
        example = json!({"code": 415, "error_code": "UNSUPPORTED_MEDIA_TYPE", "message": "body must be application/json", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotJson(ErrorBody),
    #[response(status = 422, description = "invalid fields, each listed (items with their `index`), or one SKU twice",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed",
            "detail": [{"index": 0, "field": "quantity", "message": "must be an integer from 1 to 2147483647"}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// Hold units of one or more SKUs for a cart or an order, all or nothing.
///
/// Every item's SKU must have a row for the seller and marketplace (else 404 `SKU_NOT_FOUND`)
/// with at least `quantity` units available (else 409 `INSUFFICIENT_INVENTORY`, listing every
/// short item); then all are held at once, each with a `reserve` ledger entry, until the
/// reservation is released, committed, or expires (`expires_minutes` from now). Answers 201
/// with the reservation and its `Location`.
#[utoipa::path(post, path = "/api/v1/reservations", tag = "reservations",
    request_body(content = ReservationRequest),
    responses(
        (status = 201, description = "the units are held", body = Envelope<Reservation>,
            headers(("Location" = String, description = "/api/v1/reservations/{id}"),
                ("ETag" = String, description = "the reservation's version, quoted: \"1\""))),
        ReserveErrors,
    ))]
pub async fn create_reservation(
    State(app): State<AppState>,
    caller: AuthUser,
    ValidJson(new): ValidJson<NewReservation>,
) -> Result<Response, ApiError> {
    reject_repeated_keys(new.items.iter().map(|item| &item.seller_sku), "seller_sku")?;
    caller.may_write(&new.seller_id)?;
    let reservation = app.store.create_reservation(&new, &caller.actor()).await?;
    let location = format!("/api/v1/reservations/{}", reservation.id);
    Ok(Tagged::created(reservation, location).into_response())
}

/// A reservation that the caller may see: unknown and foreign ids look alike.
fn visible(
    found: Result<Reservation, StoreError>,
    caller: &AuthUser,
) -> Result<Reservation, ApiError> {
    match found {
        Ok(reservation) if caller.scope().allows(&reservation.seller_id) => Ok(reservation),
        Ok(_) | Err(StoreError::NotFound) => Err(StockError::ReservationNotFound.into()),
        Err(e) => Err(e.into()),
    }
}

/// The error responses of reading or changing one reservation.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReservationErrors {
    #[response(status = 404, description = "RESERVATION_NOT_FOUND: no reservation with this id (or one of another seller)",
        example = json!({"code": 404, "error_code": "RESERVATION_NOT_FOUND", "message": "no such reservation", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotFound(ErrorBody),
    #[response(status = 409, description = "RESERVATION_EXPIRED when it ran out; RESERVATION_NOT_ACTIVE when it was already released or committed; INSUFFICIENT_INVENTORY when a commit finds fewer units on hand than it holds (an upsert reported less stock since)",
        example = json!({"code": 409, "error_code": "RESERVATION_EXPIRED", "message": "the reservation has expired", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotActive(ErrorBody),
    #[response(status = 422, description = "the id is not a positive integer, or an invalid body",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed",
            "detail": [{"field": "id", "message": "must be a positive integer"}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// One reservation by id.
///
/// Its `ETag` is its `version`: `"1"` while active, `"2"` once it ended. With `If-None-Match`
/// naming the current one (or `*`): 304 without a body.
#[utoipa::path(get, path = "/api/v1/reservations/{id}", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id", minimum = 1),
        crate::routes::ReadPreconditions),
    responses(
        (status = 200, description = "the reservation", body = Envelope<Reservation>,
            headers(("ETag" = String, description = "the reservation's version, quoted: \"1\""))),
        crate::routes::NotModified,
        crate::routes::PreconditionErrors,
        ReservationErrors,
    ))]
pub async fn get_reservation(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<Reservation>, ApiError> {
    let reservation = visible(app.store.get_reservation(id).await, &caller)?;
    Tagged::new(reservation).unless_current(&precondition)
}

/// Reservations matching every given filter, ordered by id, one page at a time.
#[utoipa::path(get, path = "/api/v1/reservations", tag = "reservations",
    params(
        ("seller_id" = Option<String>, Query, description = "only this seller's reservations"),
        ("market_place_id" = Option<String>, Query, description = "only this marketplace"),
        ("status" = Option<String>, Query, description = "active, released, committed or expired"),
        ("reference_id" = Option<String>, Query, description = "only this cart or order reference"),
        crate::routes::PageParams,
    ),
    responses(
        (status = 200, description = "one page of reservations", body = Envelope<Page<Reservation>>),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_reservations(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<Reservation>>>, ApiError> {
    let filter = ReservationFilter {
        seller_id: query.filter("seller_id", SellerId::parse),
        market_place_id: query.filter("market_place_id", Marketplace::parse),
        status: query.filter("status", ReservationStatus::parse),
        reference_id: query.filter("reference_id", ExternalId::parse),
    };
    let page = query.page();
    query.finish()?;
    caller.may_filter(filter.seller_id.as_ref())?;
    let listed = app
        .store
        .list_reservations(&filter, &caller.scope(), page)
        .await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}

/// Release a reservation: its units are available again.
///
/// Each item gets a `release` ledger entry. Only an active reservation can be released: one
/// that ran out is 409 `RESERVATION_EXPIRED`, one already released or committed 409
/// `RESERVATION_NOT_ACTIVE`. With `If-Match: "1"`, only while it is active (its version);
/// otherwise, or when it does not exist, 412 `VERSION_MISMATCH` and nothing changes.
#[utoipa::path(delete, path = "/api/v1/reservations/{id}", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id", minimum = 1),
        crate::routes::WritePreconditions),
    responses(
        (status = 200, description = "the reservation, now released", body = Envelope<Reservation>,
            headers(("ETag" = String, description = "the reservation's version, quoted: \"2\""))),
        crate::routes::PreconditionErrors,
        ReservationErrors,
    ))]
pub async fn release_reservation(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
) -> Result<Tagged<Reservation>, ApiError> {
    let released = app
        .store
        .release_reservation(id, &caller.scope(), &precondition, &caller.actor())
        .await?;
    Ok(Tagged::new(released))
}

/// `POST /api/v1/reservations/release` body.
#[derive(Debug, ToSchema)]
#[schema(as = ReleaseReferenceRequest, example = json!({"seller_id": "A1SELLER0001", "reference_id": "cart:7f3a9c"}))]
pub struct ReleaseReferenceRequest {
    seller_id: SellerId,
    reference_id: ExternalId,
}

impl FromJsonObject for ReleaseReferenceRequest {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let seller_id = o.text("seller_id", SellerId::parse);
        let reference_id = o.text("reference_id", ExternalId::parse);
        Some(Self {
            seller_id: seller_id?,
            reference_id: reference_id?,
        })
    }
}

/// How many reservations a release let go and the units they held.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasedView {
    #[schema(example = 2)]
    released_reservations: u64,
    #[schema(example = 5)]
    released_quantity: i64,
}

impl From<Released> for ReleasedView {
    fn from(r: Released) -> Self {
        Self {
            released_reservations: r.reservations,
            released_quantity: r.quantity,
        }
    }
}

/// Release every active reservation of a cart (or order) reference at once.
///
/// Answers how many were released and the units they held (0 and 0 when none is active).
#[utoipa::path(post, path = "/api/v1/reservations/release", tag = "reservations",
    request_body(content = ReleaseReferenceRequest),
    responses(
        (status = 200, description = "what was released", body = Envelope<ReleasedView>),
        crate::routes::WriteForbidden,
        crate::routes::WriteErrors,
    ))]
pub async fn release_reference(
    State(app): State<AppState>,
    caller: AuthUser,
    ValidJson(request): ValidJson<ReleaseReferenceRequest>,
) -> Result<Json<Envelope<ReleasedView>>, ApiError> {
    caller.may_write(&request.seller_id)?;
    let released = app
        .store
        .release_reference(&request.seller_id, &request.reference_id, &caller.actor())
        .await?;
    Ok(Json(Envelope::success(released.into())))
}

/// `POST /api/v1/reservations/{id}/commit` body.
#[derive(Debug, ToSchema)]
#[schema(as = CommitRequest, example = json!({"order_id": "order:2026-11-0042"}))]
pub struct CommitRequest {
    /// The order the units go to: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
    order_id: ExternalId,
}

impl FromJsonObject for CommitRequest {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        Some(Self {
            order_id: o.text("order_id", ExternalId::parse)?,
        })
    }
}

/// Commit a reservation for an order: its units leave the shelf.
///
/// For each item, `inventory` and `reserved` both drop by its quantity (a `commit` ledger
/// entry); the reservation becomes `committed` with the `order_id`. With `If-Match: "1"`,
/// only while it is active; otherwise 412 `VERSION_MISMATCH` and nothing changes.
#[utoipa::path(post, path = "/api/v1/reservations/{id}/commit", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id", minimum = 1),
        crate::routes::WritePreconditions),
    request_body(content = CommitRequest),
    responses(
        (status = 200, description = "the reservation, now committed", body = Envelope<Reservation>,
            headers(("ETag" = String, description = "the reservation's version, quoted: \"2\""))),
        crate::routes::PreconditionErrors,
        ReservationErrors,
    ))]
pub async fn commit_reservation(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    precondition: Precondition,
    ValidJson(request): ValidJson<CommitRequest>,
) -> Result<Tagged<Reservation>, ApiError> {
    let committed = app
        .store
        .commit_reservation(
            id,
            &caller.scope(),
            &request.order_id,
            &precondition,
            &caller.actor(),
        )
        .await?;
    Ok(Tagged::new(committed))
}

/// How many reservations a cleanup expired and the units they held.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiredView {
    #[schema(example = 3)]
    expired_reservations: u64,
    #[schema(example = 7)]
    released_quantity: i64,
}

/// Expire every overdue reservation now (admin only).
///
/// The background sweep does this within a second of `expires_at` anyway; this is for
/// operators who want it done at once.
#[utoipa::path(post, path = "/api/v1/reservations/cleanup", tag = "reservations",
    responses(
        (status = 200, description = "what was expired", body = Envelope<ExpiredView>),
        crate::routes::AdminOnly,
    ))]
pub async fn expire_reservations(
    State(app): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Envelope<ExpiredView>>, ApiError> {
    caller.require_admin()?;
    let mut total = Released::default();
    loop {
        let expired = app.store.expire_reservations(CLEANUP_CHUNK).await?;
        total.reservations += expired.reservations;
        total.quantity += expired.quantity;
        if expired.reservations < CLEANUP_CHUNK.unsigned_abs() {
            break;
        }
    }
    Ok(Json(Envelope::success(ExpiredView {
        expired_reservations: total.reservations,
        released_quantity: total.quantity,
    })))
}
