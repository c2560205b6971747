//! Webhooks: register, list, read and delete them, and read their delivery log. Under
//! `/api/v1/webhooks`; every route needs a token (protected router). Delivery itself is the
//! background worker's (`crate::webhooks`); docs/webhooks.md is the whole story.
//!
//! Who sees what: admins every webhook; sellers the webhooks they registered (another's id is
//! 404). A seller's webhook gets events of their sellers only, as they are at each delivery
//! (`Shared::next_webhook_event`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::config::AppEnv;
use crate::domain::{
    parse_event_types, Delivery, EventType, NewWebhook, SellerId, Webhook, WebhookSecret,
    WebhookUrl, MAX_WEBHOOK_SELLERS,
};
use crate::error::{ApiError, Envelope, ErrorBody};
use crate::extract::{FromJsonObject, IdPath, ObjectReader, QueryReader, ValidJson};
use crate::routes::Page;
use crate::store::StoreError;
use crate::webhooks::check_target;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
}

/// `POST /api/v1/webhooks` body.
#[derive(Debug, ToSchema)]
#[schema(as = WebhookRequest, example = json!({"url": "https://hooks.example.com/sellerdesk",
    "event_types": ["inventory.stock.low_warning", "inventory.updated"],
    "seller_ids": ["A1SELLER0001"]}))]
#[allow(dead_code)] // documentation only: the body is read into `WebhookInput`
pub struct WebhookRequest {
    /// Where events are POSTed: an absolute `https` URL (`http` too outside production),
    /// whose host is a public address unless `WEBHOOK_ALLOW_PRIVATE=true`.
    url: String,
    /// The event types to deliver: at least one, each once.
    event_types: Vec<String>,
    /// Only these sellers' events (1 to 100, each once). Left out: every seller an admin may
    /// see, or the calling seller's own sellers.
    seller_ids: Option<Vec<String>>,
}

/// The body of `POST /api/v1/webhooks`, checked.
#[derive(Debug)]
pub struct WebhookInput {
    url: WebhookUrl,
    event_types: Vec<EventType>,
    seller_ids: Option<Vec<SellerId>>,
}

fn webhook_sellers(sellers: Vec<SellerId>) -> Result<Vec<SellerId>, &'static str> {
    if sellers.is_empty() || sellers.len() > MAX_WEBHOOK_SELLERS {
        return Err("must hold 1 to 100 seller ids (leave it out for all you may see)");
    }
    for (i, seller) in sellers.iter().enumerate() {
        if sellers[..i].contains(seller) {
            return Err("must name each seller once");
        }
    }
    Ok(sellers)
}

impl FromJsonObject for WebhookInput {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let url = o.text("url", WebhookUrl::parse);
        let event_types = o
            .text_list("event_types", EventType::parse)
            .and_then(|types| {
                parse_event_types(types)
                    .map_err(|why| o.fail("event_types", why))
                    .ok()
            });
        let seller_ids = if o.has("seller_ids") {
            o.text_list("seller_ids", SellerId::parse)
                .and_then(|sellers| {
                    webhook_sellers(sellers)
                        .map_err(|why| o.fail("seller_ids", why))
                        .ok()
                })
                .map(Some)
        } else {
            Some(None)
        };
        Some(Self {
            url: url?,
            event_types: event_types?,
            seller_ids: seller_ids?,
        })
    }
}

/// A webhook just created: the webhook and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Signs every delivery (`Sellerdesk-Signature`). Shown only in this response: keep it.
    #[schema(example = "whsec_4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e64f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6")]
    pub secret: String,
}

/// The error responses of registering a webhook.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum CreateErrors {
    #[response(status = 403, description = "a seller caller named a seller that is not theirs",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "you may not register webhooks for this seller_id", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Forbidden(ErrorBody),
    #[response(status = 413, description = "body larger than 64 KiB",
        example = json!({"code": 413, "error_code": "PAYLOAD_TOO_LARGE", "message": "request body too large", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json",
        example = json!({"code": 415, "error_code": "UNSUPPORTED_MEDIA_TYPE", "message": "body must be application/json", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotJson(ErrorBody),
    #[response(status = 422, description = "VALIDATION_FAILED: invalid fields, each listed (an `http` URL in production too); \
        WEBHOOK_TARGET_NOT_ALLOWED: the URL's host is or resolves to a loopback, private, link-local or other non-public address; \
        WEBHOOK_TARGET_UNRESOLVABLE: the host name does not resolve",
        example = json!({"code": 422, "error_code": "WEBHOOK_TARGET_NOT_ALLOWED",
            "message": "the URL's host is or resolves to a loopback, private, link-local or other non-public address",
            "detail": [{"field": "url", "message": "the URL's host is or resolves to a loopback, private, link-local or other non-public address"}],
            "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// Register a webhook: matching events are POSTed to `url`, signed, in order.
///
/// Deliveries start with the events written after this request. The answer holds the
/// webhook's `secret`, which signs every delivery: it is shown only here. Admins may name any
/// sellers or none (every seller); a seller names only their own sellers (another seller's is
/// 403), and without `seller_ids` gets their own sellers' events. The URL's host must be a
/// public address unless the server runs with `WEBHOOK_ALLOW_PRIVATE=true` (checked now, after
/// resolving the name, and again at each delivery). docs/webhooks.md says how to verify the
/// signature.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body(content = WebhookRequest),
    responses(
        (status = 201, description = "the webhook, with its secret (shown only now)", body = Envelope<CreatedWebhook>,
            headers(("Location" = String, description = "/api/v1/webhooks/{id}")),
            example = json!({"code": 201, "message": "Success", "data": {"id": 3,
                "url": "https://hooks.example.com/sellerdesk",
                "event_types": ["inventory.stock.low_warning", "inventory.updated"],
                "seller_ids": ["A1SELLER0001"], "created_by": 1,
                "create_time": "2026-11-30T12:00:00.123456Z", "last_event_id": 42,
                "failing_since": null, "next_attempt_at": null,
                "secret": "whsec_4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e64f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}})),
        CreateErrors,
    ))]
pub async fn create_webhook(
    State(app): State<AppState>,
    caller: AuthUser,
    ValidJson(input): ValidJson<WebhookInput>,
) -> Result<Response, ApiError> {
    if app.config.app_env == AppEnv::Production && !input.url.is_https() {
        return Err(ApiError::invalid(
            "url",
            "must be an https URL in production",
        ));
    }
    let seller_ids = match input.seller_ids {
        Some(sellers) => {
            if let Some(foreign) = sellers.iter().find(|s| !caller.scope().allows(s)) {
                tracing::debug!(seller_id = foreign.as_str(), "foreign seller in a webhook");
                return Err(ApiError::Forbidden(
                    "you may not register webhooks for this seller_id".into(),
                ));
            }
            Some(sellers)
        }
        None if caller.is_admin() => None,
        None => Some(caller.seller_ids.clone()),
    };
    check_target(&input.url, app.config.webhook_allow_private).await?;
    let secret = WebhookSecret::generate();
    let new = NewWebhook {
        url: input.url,
        event_types: input.event_types,
        seller_ids,
        secret: secret.clone(),
    };
    let webhook = app.store.create_webhook(&new, &caller.actor()).await?;
    let location = format!("/api/v1/webhooks/{}", webhook.id);
    let body = Envelope::created(CreatedWebhook {
        webhook,
        secret: secret.expose().to_owned(),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// The creator whose webhooks `caller` may see: `None` (all) for admins.
fn owner_scope(caller: &AuthUser) -> Option<i64> {
    (!caller.is_admin()).then_some(caller.id)
}

/// A webhook `caller` may see: unknown and foreign ids look alike (404).
async fn visible_webhook(app: &AppState, caller: &AuthUser, id: i64) -> Result<Webhook, ApiError> {
    match app.store.get_webhook(id).await {
        Ok(webhook) if owner_scope(caller).is_none_or(|owner| owner == webhook.created_by) => {
            Ok(webhook)
        }
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("no such webhook")),
        Err(e) => Err(e.into()),
    }
}

/// The error responses of reading or deleting one webhook.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WebhookErrors {
    #[response(status = 404, description = "no webhook with this id (or one another seller registered)",
        example = json!({"code": 404, "error_code": "NOT_FOUND", "message": "no such webhook", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotFound(ErrorBody),
    #[response(status = 422, description = "the id is not a positive integer (or an invalid page or size)",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed",
            "detail": [{"field": "id", "message": "must be a positive integer"}], "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// Webhooks, ordered by id, one page at a time: an admin's list has every webhook, a
/// seller's the ones they registered. Secrets are never shown.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    params(crate::routes::PageParams),
    responses(
        (status = 200, description = "one page of webhooks", body = Envelope<Page<Webhook>>),
        crate::routes::ListErrors,
    ))]
pub async fn list_webhooks(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<Webhook>>>, ApiError> {
    let page = query.page();
    query.finish()?;
    let listed = app.store.list_webhooks(owner_scope(&caller), page).await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}

/// One webhook by id, with where its delivery stands (never its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "the webhook's id", minimum = 1)),
    responses(
        (status = 200, description = "the webhook", body = Envelope<Webhook>,
            example = json!({"code": 200, "message": "Success", "data": {"id": 3,
                "url": "https://hooks.example.com/sellerdesk",
                "event_types": ["inventory.stock.low_warning", "inventory.updated"],
                "seller_ids": ["A1SELLER0001"], "created_by": 1,
                "create_time": "2026-11-30T12:00:00.123456Z", "last_event_id": 57,
                "failing_since": null, "next_attempt_at": null}})),
        WebhookErrors,
    ))]
pub async fn get_webhook(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<Envelope<Webhook>>, ApiError> {
    let webhook = visible_webhook(&app, &caller, id).await?;
    Ok(Json(Envelope::success(webhook)))
}

/// Delete a webhook: nothing more is delivered to it, and its delivery log goes with it.
/// Returns the webhook as it was. An attempt already in flight may still arrive.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "the webhook's id", minimum = 1)),
    responses(
        (status = 200, description = "the deleted webhook", body = Envelope<Webhook>,
            example = json!({"code": 200, "message": "Success", "data": {"id": 3,
                "url": "https://hooks.example.com/sellerdesk",
                "event_types": ["inventory.stock.low_warning", "inventory.updated"],
                "seller_ids": ["A1SELLER0001"], "created_by": 1,
                "create_time": "2026-11-30T12:00:00.123456Z", "last_event_id": 57,
                "failing_since": null, "next_attempt_at": null}})),
        WebhookErrors,
    ))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<Envelope<Webhook>>, ApiError> {
    let deleted = app
        .store
        .delete_webhook(id, owner_scope(&caller), &caller.actor())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("no such webhook"),
            e => e.into(),
        })?;
    Ok(Json(Envelope::success(deleted)))
}

/// The delivery attempts of a webhook, newest first, one page at a time: when, of which
/// event, the receiver's status or the error that kept one from coming, how long it took,
/// and whether it was `delivered`, `failed` (to be retried) or `given_up`.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "the webhook's id", minimum = 1),
        crate::routes::PageParams),
    responses(
        (status = 200, description = "one page of attempts, newest first", body = Envelope<Page<Delivery>>,
            example = json!({"code": 200, "message": "Success", "data": {"items": [
                {"id": 18, "webhook_id": 3, "event_id": 43, "attempt": 2,
                 "attempted_at": "2026-11-30T12:00:03.5Z", "status_code": 200, "error": null,
                 "latency_ms": 35, "outcome": "delivered"},
                {"id": 17, "webhook_id": 3, "event_id": 43, "attempt": 1,
                 "attempted_at": "2026-11-30T12:00:02.4Z", "status_code": null,
                 "error": "could not connect: Connection refused (os error 111)",
                 "latency_ms": 2, "outcome": "failed"}],
                "meta": {"total": 2, "page": 1, "size": 20, "pages": 1, "has_next": false, "has_prev": false}}})),
        WebhookErrors,
    ))]
pub async fn list_deliveries(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<Delivery>>>, ApiError> {
    let page = query.page();
    query.finish()?;
    visible_webhook(&app, &caller, id).await?;
    let listed = app.store.list_deliveries(id, page).await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}
