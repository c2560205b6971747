//! The HTTP surface: every resource's router merged into one, with the OpenAPI document built
//! from the same handlers (`utoipa_axum` registers a route and its documentation together, so
//! the two cannot drift).
//!
//! Routes are **protected by default**. `router` builds two routers:
//! - the *protected* router holds every resource (`sales`, `inventory`, `users`, `auth::me`);
//!   `crate::auth::layer::require_token` sits on it as a route layer, so each of its routes
//!   checks the bearer token before any extractor runs, and `openapi::require_token` marks
//!   exactly its operations as needing a token in the document. A new resource goes here.
//! - the *public* router holds what must work without a token, each on purpose: `/health`,
//!   the token and revoke endpoints (`auth::public_router`), `/docs` and `/openapi.json`.
//!
//! The 404 fallback sits outside both, so an unknown path is 404 with or without a token.
//! Every route but `/health` is rate-limited per client IP (before authentication, so floods of
//! bad tokens are limited too); the token endpoint has a stricter limit of its own.
//!
//! Also here: `openapi` (the document and its error responses), `paging` (pages, and
//! incremental-sync pages), `tagged` (single-row answers with their `ETag`), `health`.

pub mod audit;
pub mod auth;
pub mod events;
pub mod health;
pub mod inventory;
pub mod ledger;
pub mod openapi;
pub mod paging;
pub mod reservations;
pub mod sales;
pub mod stock;
pub mod tagged;
pub mod users;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::middleware::rate_limit;
use crate::AppState;

pub use health::health;
pub use openapi::{
    AdminOnly, BatchErrors, FilterForbidden, ListErrors, NotModified, PreconditionErrors,
    ReadErrors, ReadPreconditions, WriteErrors, WriteForbidden, WritePreconditions,
};
pub use paging::{Page, PageMeta, PageParams, SyncParams};
pub use tagged::Tagged;

/// Largest body of a single write; bigger ones are refused with 413 before they are parsed.
pub const SINGLE_BODY_LIMIT: usize = 64 * 1024;
/// Largest body of a batch write (1000 items with room to spare).
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Every route that needs an access token, behind the authentication layer, with a document
/// that says so on each of its operations.
fn protected(app: &AppState) -> OpenApiRouter<AppState> {
    let mut protected = OpenApiRouter::new()
        .merge(auth::protected_router())
        .merge(sales::router())
        .merge(inventory::router())
        .merge(stock::router())
        .merge(ledger::router())
        .merge(reservations::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(webhooks::router())
        // Inside the authentication below (a route layer added first is the inner one): keys
        // are per caller. A write without `Idempotency-Key` passes straight through.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::middleware::idempotency,
        ))
        .merge(events::router())
        // `route_layer`: only matched routes authenticate; a path that matches nothing falls
        // through to the 404 fallback, and a wrong method to 405, without a token.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::layer::require_token,
        ));
    openapi::require_token(protected.get_openapi_mut());
    openapi::idempotent_writes(protected.get_openapi_mut());
    protected
}

/// The whole router and its OpenAPI document. Everything but `/health` is rate-limited per
/// client IP (load balancers probe `/health` often, from few addresses); unknown paths get the
/// envelope 404.
pub fn router(app: &AppState) -> Router<AppState> {
    let (health, health_doc) = health::router().split_for_parts();
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::public_router(app))
        .merge(protected(app))
        .layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT))
        .split_for_parts();
    doc.merge(health_doc);
    let limited = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::NotFound("no such route") });
    health
        .merge(rate_limit::limit(
            limited,
            app.limits.clone(),
            rate_limit::Limit::Api,
        ))
        // Every route names its template in the request log and the metrics.
        .layer(axum::middleware::from_fn(crate::monitoring::mark_route))
}
