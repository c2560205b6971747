//! `GET /health`: liveness and database reachability, for load balancers. Public (no token)
//! and not rate-limited: load balancers probe it often, from few addresses.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// How long `/health` waits for the database before it says "unavailable".
const HEALTH_PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
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
