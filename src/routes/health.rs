//! `GET /health`: liveness and database reachability, for load balancers. Public (no token)
//! and not rate-limited: load balancers probe it often, from few addresses. With `REDIS_URL`
//! it also says whether Redis answers, without failing when it does not: the limits then fall
//! back to each instance's own (see `crate::limits`), and the instance keeps serving.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::limits::RedisStatus;
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
    /// Only with `REDIS_URL`: `ok`, or `unavailable` while each instance enforces its own
    /// limits. Either way the status stays 200 when the database answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ok", nullable = false)]
    pub redis: Option<&'static str>,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Liveness and database reachability, for load balancers. No authentication, no rate limit.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "serving, database reachable; with `REDIS_URL`, `redis` says whether the shared limits are in use (`unavailable`: each instance enforces its own)", body = Health,
            example = json!({"status": "ok", "database": "ok", "redis": "ok", "version": "0.1.0"})),
        (status = 503, description = "database unreachable", body = Health,
            example = json!({"status": "unavailable", "database": "unavailable", "version": "0.1.0"})),
    ))]
pub async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let version = env!("CARGO_PKG_VERSION");
    let (database, redis) = tokio::join!(
        tokio::time::timeout(HEALTH_PING_TIMEOUT, app.store.ping()),
        app.limits.redis_status()
    );
    let redis = redis.map(RedisStatus::as_str);
    match database {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: "ok",
                redis,
                version,
            }),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                database: "unavailable",
                redis,
                version,
            }),
        ),
    }
}
