//! The HTTP surface: merges every resource's router, and the OpenAPI document built from the
//! same handlers (`utoipa_axum` registers a route and its documentation together, so the two
//! cannot drift). Also `/openapi.json`, `/docs` and the 404 fallback; the document itself is in
//! `openapi`, `/health` in `health`, paging types in `paging`.

pub mod auth;
pub mod health;
pub mod inventory;
pub mod openapi;
pub mod paging;
pub mod sales;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::error::ApiError;
use crate::middleware::rate_limit;
use crate::AppState;

pub use health::health;
pub use openapi::{BatchErrors, ListErrors, ReadErrors, WriteErrors};
pub use paging::{Page, PageMeta, PageParams};

/// Largest body of a single write; bigger ones are refused with 413 before they are parsed.
pub const SINGLE_BODY_LIMIT: usize = 64 * 1024;
/// Largest body of a batch write (1000 items with room to spare).
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The API routes (all but `/health`) and the OpenAPI document of every route.
pub fn api(config: &Config) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::router(config))
        .merge(sales::router())
        .merge(inventory::router())
        .merge(users::router())
        .layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT))
        .split_for_parts();
    // Only now does the document hold every path for the modifier to secure.
    utoipa::Modify::modify(&openapi::BearerAuth, &mut doc);
    (router, doc)
}

/// The whole router. Everything but `/health` is rate-limited per client IP (load balancers
/// probe `/health` often, from few addresses); unknown paths get the envelope 404.
pub fn router(config: &Config) -> Router<AppState> {
    let (health, health_doc) = health::router().split_for_parts();
    let (api, mut doc) = api(config);
    doc.merge(health_doc);
    let limited = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::NotFound("no such route") });
    health.merge(rate_limit::limit(limited, config.rate_limit_per_minute))
}
