//! `idempotency`: safe retries of writes with an `Idempotency-Key` (the rules for clients are
//! in `docs/api.md`, "Safe retries").
//!
//! A layer of the protected router, inside `require_token` (keys are per user), so no handler
//! knows about it. A write without the header passes straight through. With it:
//!
//! 1. the body is read (up to the batch limit; the route's own limit still applies after) and
//!    the request's fingerprint computed, once: SHA-256 of method, path with query, and body;
//! 2. one read of the user's key: a live record with another fingerprint is 422
//!    `IDEMPOTENCY_KEY_REUSED`; with a kept response, that response is replayed (status,
//!    kept headers, body, and `Idempotent-Replayed: true`), with no write; without one, its
//!    request is still running: 409 `IDEMPOTENCY_KEY_IN_USE`;
//! 3. otherwise the key is claimed by inserting its row (or taking over a row that expired or
//!    whose request's lease ran out): the database's unique key decides between racing
//!    requests, and a loser reads again;
//! 4. the request runs; a response below 500 is kept for 24 hours (an error's envelope is
//!    rendered here, so the kept body is exactly the one sent). A 5xx, a panic or a timeout
//!    (the request's future dropped) releases the claim, so a retry runs again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::envelope::wrap_error;
use super::RequestId;
use crate::auth::caller::Authenticated;
use crate::domain::{
    Fingerprint, IdempotencyKey, KeptResponse, NewClaim, Timestamp, IDEMPOTENCY_TTL,
};
use crate::error::ApiError;
use crate::routes::BATCH_BODY_LIMIT;
use crate::store::Store;
use crate::AppState;

/// The request header a client names its operation with.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header that marks a replay.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The response headers kept with a response and replayed: those a client acts on.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

// A claim must outlive any request that still runs, or a live request could be taken over.
const _: () =
    assert!(crate::domain::IDEMPOTENCY_LEASE.as_secs() > crate::REQUEST_TIMEOUT.as_secs());

/// How many times a request reads and claims before it gives up with 409: a lost claim is
/// followed by a read that finds the winner, unless the winner released it at once (a 5xx).
const CLAIM_ATTEMPTS: usize = 3;

/// Paths under which the header is ignored: the token endpoints have their own rules.
const EXEMPT_PREFIX: &str = "/api/v1/auth/";

/// The layer (see the module comment).
pub async fn idempotency(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !is_write(req.method()) || req.uri().path().starts_with(EXEMPT_PREFIX) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(req).await;
    };
    let key = match IdempotencyKey::parse(value.as_bytes()) {
        Ok(key) => key,
        Err(rule) => return ApiError::invalid("Idempotency-Key", rule).into_response(),
    };
    // Always there: `require_token` runs first and lets no one through without a caller.
    let Some(Authenticated(caller)) = req.extensions().get::<Authenticated>().cloned() else {
        return next.run(req).await;
    };

    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |target| target.as_str());
    let fingerprint = Fingerprint::of(parts.method.as_str(), target, &body);
    let held = match claim(&app.store, caller.id, key, fingerprint).await {
        Ok(Claimed::Held(held)) => held,
        Ok(Claimed::Replay(kept)) => return replay(kept),
        Err(e) => return e.into_response(),
    };
    let request_id = parts.extensions.get::<RequestId>().cloned();
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    keep(held, response, request_id).await
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The whole body, up to the largest any route accepts; the route's own limit is checked again
/// by its extractor.
async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    match Limited::new(body, BATCH_BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(ApiError::BadRequest("the request body could not be read")),
    }
}

enum Claimed {
    /// This request holds the key: it runs.
    Held(Held),
    /// The key's request finished: its response, again.
    Replay(KeptResponse),
}

/// Reads the key's record and decides; claims the key when nothing live holds it.
async fn claim(
    store: &Arc<dyn Store>,
    user_id: i64,
    key: IdempotencyKey,
    fingerprint: Fingerprint,
) -> Result<Claimed, ApiError> {
    for _ in 0..CLAIM_ATTEMPTS {
        let now = Timestamp::now();
        match store.idempotency_record(user_id, &key).await? {
            Some(record) if record.is_live(now) => {
                if record.fingerprint != fingerprint {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                return match record.response {
                    Some(kept) => Ok(Claimed::Replay(kept)),
                    None => Err(ApiError::IdempotencyKeyInUse),
                };
            }
            stale => {
                let claim = NewClaim {
                    user_id,
                    key: key.clone(),
                    fingerprint,
                    claim: rand::random(),
                    now,
                };
                if store.claim_idempotency_key(&claim, stale.is_some()).await? {
                    return Ok(Claimed::Held(Held {
                        store: store.clone(),
                        claim,
                        settled: false,
                    }));
                }
            }
        }
    }
    Err(ApiError::IdempotencyKeyInUse)
}

/// A claim this request holds. Dropped unsettled (the request panicked, timed out, or its
/// client went away), it is released in the background, so a retry runs again.
struct Held {
    store: Arc<dyn Store>,
    claim: NewClaim,
    settled: bool,
}

impl Held {
    async fn release(mut self) {
        self.settled = true;
        release(self.store.as_ref(), &self.claim).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, claim) = (self.store.clone(), self.claim.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release(store.as_ref(), &claim).await });
        }
    }
}

/// Releases `claim`; a claim that cannot be released blocks its key only until its lease ends.
async fn release(store: &dyn Store, claim: &NewClaim) {
    if let Err(e) = store.release_idempotency_key(claim).await {
        tracing::warn!(error = %e, "an idempotency key could not be released; it frees itself when its lease ends");
    }
}

/// Keeps `response` for replay unless it is a 5xx (then the claim is released), and returns it.
async fn keep(mut held: Held, response: Response, request_id: Option<RequestId>) -> Response {
    if response.status().is_server_error() {
        held.release().await;
        return response;
    }
    // The envelope of an error is written now, with this request's id, so that the body kept
    // is the body sent; the outer layer leaves a finished envelope alone.
    let response = match &request_id {
        Some(id) => wrap_error(response, id.as_str()),
        None => response,
    };
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            held.release().await;
            return ApiError::Internal(anyhow::anyhow!("a response body failed: {e}"))
                .into_response();
        }
    };
    let kept = KeptResponse {
        status: parts.status.as_u16(),
        headers: kept_headers(&parts.headers),
        body: body.to_vec(),
    };
    let expires_at = Timestamp::now().plus(IDEMPOTENCY_TTL);
    match held
        .store
        .complete_idempotency_key(&held.claim, &kept, expires_at)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!("an idempotency key was taken over before its request ended"),
        // The request is done; its key stays claimed until the lease ends (retries get 409
        // until then), and runs again after that.
        Err(e) => {
            tracing::warn!(error = %e, "the response of an idempotent request could not be kept")
        }
    }
    held.settled = true;
    Response::from_parts(parts, Body::from(body))
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

/// A kept response, again, marked as a replay.
fn replay(kept: KeptResponse) -> Response {
    let mut response = Response::new(Body::from(kept.body));
    *response.status_mut() =
        StatusCode::from_u16(kept.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in kept.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}
