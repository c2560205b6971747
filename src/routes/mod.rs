//! The HTTP surface: merges every resource's router, and the OpenAPI document built from the
//! same handlers (`utoipa_axum` registers a route and its documentation together, so the two
//! cannot drift). Also `/health`, `/openapi.json`, `/docs` and the 404 fallback.

pub mod auth;
pub mod inventory;
pub mod sales;
pub mod users;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::domain::PageRequest;
use crate::error::{ApiError, ErrorBody};
use crate::middleware::rate_limit;
use crate::store::Listed;
use crate::AppState;

/// Largest body of a single write; bigger ones are refused with 413 before they are parsed.
pub const SINGLE_BODY_LIMIT: usize = 64 * 1024;
/// Largest body of a batch write (1000 items with room to spare).
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sellerdesk",
        description = "Sales targets and inventory levels for marketplace sellers.\n\n\
            Every response is JSON. Success: `{\"code\": 200, \"message\": \"Success\", \"data\": ...}`. \
            Failure: `{\"code\": <status>, \"message\": \"...\", \"detail\": [...], \"request_id\": \"...\"}`, \
            where `detail` lists every invalid field at once.",
    ),
    tags(
        (name = "auth", description = "OAuth2 password flow: log in, refresh, revoke"),
        (name = "sales targets", description = "Monthly and weekly sales targets per parent ASIN"),
        (name = "inventory", description = "Stock levels per seller SKU"),
        (name = "users", description = "User management (admin only)"),
        (name = "operations", description = "Health"),
    ),
    paths(health),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The name of the security scheme in the OpenAPI document.
const SECURITY_SCHEME: &str = "oauth2";

/// Declares the OAuth2 password flow and puts it, with its 401 and 403 answers, on every
/// operation that needs a token: everything under `/api/v1` but the token and revoke
/// endpoints. Swagger UI's Authorize button then logs in through `/api/v1/auth/token`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            Flow, OAuth2, Password, Scopes, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{content::ContentBuilder, Ref, ResponseBuilder};

        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new("/api/v1/auth/token", Scopes::new()))],
                "Log in with a sellerdesk username and password; the access token is then sent as `Authorization: Bearer <token>`.",
            )),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = !path.starts_with("/api/v1/")
                || path == "/api/v1/auth/token"
                || path == "/api/v1/auth/revoke";
            if public {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                operation.security = Some(vec![SecurityRequirement::new(
                    SECURITY_SCHEME,
                    Vec::<String>::new(),
                )]);
                operation
                    .responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| {
                        error(
                            "missing, invalid or expired access token (`WWW-Authenticate: Bearer`)",
                        )
                        .into()
                    });
                operation
                    .responses
                    .responses
                    .entry("403".into())
                    .or_insert_with(|| {
                        error("the caller's role or sellers do not allow this").into()
                    });
            }
        }
    }
}

/// The API routes (all but `/health`) and the OpenAPI document of every route.
pub fn api(config: &Config) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router(config))
        .merge(sales::router())
        .merge(inventory::router())
        .merge(users::router())
        .layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT))
        .split_for_parts();
    // Only now does the document hold every path for the modifier to secure.
    utoipa::Modify::modify(&BearerAuth, &mut doc);
    (router, doc)
}

/// The whole router. Everything but `/health` is rate-limited per client IP (load balancers
/// probe `/health` often, from few addresses); unknown paths get the envelope 404.
pub fn router(config: &Config) -> Router<AppState> {
    let (api, doc) = api(config);
    let limited = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::NotFound("no such route") });
    Router::new()
        .route("/health", axum::routing::get(health))
        .merge(rate_limit::limit(limited, config.rate_limit_per_minute))
}

/// One page of a list, with the numbers a client needs to page through it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub meta: PageMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageMeta {
    #[schema(example = 42)]
    pub total: u64,
    #[schema(example = 1)]
    pub page: u32,
    #[schema(example = 20)]
    pub size: u32,
    #[schema(example = 3)]
    pub pages: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

impl<T> Page<T> {
    pub fn new(listed: Listed<T>, request: PageRequest) -> Self {
        let pages = listed.total.div_ceil(u64::from(request.size));
        Self {
            items: listed.items,
            meta: PageMeta {
                total: listed.total,
                page: request.page,
                size: request.size,
                pages,
                has_next: u64::from(request.page) < pages,
                has_prev: request.page > 1,
            },
        }
    }
}

/// The paging parameters every list takes (documentation; `QueryReader::page` reads them).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    pub page: Option<u32>,
    /// Rows per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub size: Option<u32>,
}

/// The error responses of a create-or-update endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WriteErrors {
    #[response(status = 413, description = "body larger than 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json")]
    NotJson(ErrorBody),
    #[response(status = 422, description = "malformed JSON, or invalid, missing or unknown fields (all listed in `detail`)",
        example = json!({"code": 422, "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8",
            "detail": [{"field": "seller_id", "message": "must be 8 to 20 letters or digits"},
                       {"field": "period", "message": "is required"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable")]
    Unavailable(ErrorBody),
}

/// The error responses of a batch endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum BatchErrors {
    #[response(
        status = 403,
        description = "a seller caller sent an item of another seller (the message names the item)"
    )]
    Foreign(ErrorBody),
    #[response(status = 413, description = "body larger than 4 MiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json")]
    NotJson(ErrorBody),
    #[response(status = 422, description = "not 1 to 1000 items, an invalid item (each problem with its `index`), or one key twice",
        example = json!({"code": 422, "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8",
            "detail": [{"index": 3, "field": "seller_sku", "message": "must be 10 to 30 letters or digits"},
                       {"index": 7, "field": "items", "message": "repeats the (seller_id, market_place_id, seller_sku) of item 2"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable")]
    Unavailable(ErrorBody),
}

/// The error responses of an endpoint that reads or deletes one row by id.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReadErrors {
    #[response(status = 404, description = "no row with this id",
        example = json!({"code": 404, "message": "no such resource", "request_id": "4f1c2a9e0b7d43c8"}))]
    NotFound(ErrorBody),
    #[response(status = 422, description = "the id is not a positive integer")]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable")]
    Unavailable(ErrorBody),
}

/// The error responses of a list endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ListErrors {
    #[response(
        status = 422,
        description = "an invalid filter, page or size, or an unknown parameter"
    )]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable")]
    Unavailable(ErrorBody),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub database: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// How long `/health` waits for the database before it says "unavailable".
const HEALTH_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness and database reachability, for load balancers. No authentication, no rate limit.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "serving, database reachable", body = Health),
        (status = 503, description = "database unreachable", body = Health,
            example = json!({"status": "unavailable", "database": "unavailable", "version": "0.1.0"})),
    ))]
pub async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let version = env!("CARGO_PKG_VERSION");
    match tokio::time::timeout(HEALTH_PING_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: "ok",
                version,
            }),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                database: "unavailable",
                version,
            }),
        ),
    }
}
