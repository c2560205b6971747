//! The event feed: `GET /api/v1/events`, the outbox read in id order, with a long poll
//! (docs/api.md, "Event feed"). Events are written by the changes they record, in the same
//! transaction (`crate::domain::NewEvent`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{Event, EventFilter, EventType, SellerId};
use crate::error::{ApiError, Envelope};
use crate::extract::QueryReader;
use crate::AppState;

/// Longest `wait` a request may ask for, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 30;
/// How long before the request timeout (`crate::REQUEST_TIMEOUT`) a long poll gives up, so that
/// it always answers with its (empty) page rather than a 503.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(2);
/// How often a long poll looks for events written by other instances (this instance's own
/// writes wake it at once).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// A page of the feed as JSON, written into one buffer sized for it. A page of 1,000 events is
/// about 1 MB; `axum::Json` grows its buffer by doubling from 128 bytes, holding the old and the
/// new copy at each step, which showed at the top of the peak memory of a client draining the
/// feed (bench/RESULTS.md, "Peak memory").
pub struct PageBody(Envelope<EventPage>);

impl PageBody {
    /// Room for an event besides its `data`: its other fields and their names.
    const PER_EVENT: usize = 160;
    /// Room for the envelope and `meta`.
    const AROUND: usize = 256;
}

impl IntoResponse for PageBody {
    fn into_response(self) -> Response {
        let items = &self.0.data.items;
        let size = Self::AROUND
            + items
                .iter()
                .map(|event| event.data.get().len() + Self::PER_EVENT)
                .sum::<usize>();
        let mut body = Vec::with_capacity(size);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => ApiError::Internal(e.into()).into_response(),
        }
    }
}

/// One page of the event feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub meta: EventMeta,
}

/// Where a page of the feed ends.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventMeta {
    /// The `limit` the page was read with.
    #[schema(example = 100)]
    pub limit: u32,
    /// The `after` of the next request: the id of the page's last event, or the request's own
    /// `after` when the page is empty.
    #[schema(example = 42)]
    pub next_after: i64,
    /// Whether more events already follow this page (ask again at once); false means the feed
    /// is read to its end for now (ask again with `wait` to long-poll).
    pub has_next: bool,
}

fn after_id(value: &str) -> Result<i64, &'static str> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or("must be an integer of at least 0 (an event id)")
}

fn limit(value: &str) -> Result<u32, &'static str> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=EventFilter::MAX_LIMIT).contains(n))
        .ok_or("must be an integer from 1 to 1000")
}

fn wait_seconds(value: &str) -> Result<u64, &'static str> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_WAIT_SECONDS)
        .ok_or("must be an integer from 0 to 30 (seconds)")
}

/// Events after `after`, in id order (the outbox; docs/api.md, "Event feed").
///
/// Keep `meta.next_after` and pass it as `after` next time. With `wait` (seconds, up to 30),
/// when nothing matches yet the request holds until a matching event is written or `wait`
/// passes (then an empty page); it answers at the latest 2 s before the 30 s request timeout.
/// Sellers see only their sellers' events; `seller_id` of another seller is 403.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        ("after" = Option<i64>, Query, description = "only events with a greater id (default 0)", minimum = 0),
        ("limit" = Option<u32>, Query, description = "most events returned, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("types" = Option<String>, Query, description = "comma-separated event types, e.g. inventory.stock.reserved,inventory.stock.low_warning (default: all)"),
        ("seller_id" = Option<String>, Query, description = "only this seller's events"),
        ("wait" = Option<u64>, Query, description = "seconds to hold the request while nothing matches, 0 to 30 (default 0)", minimum = 0, maximum = 30),
    ),
    responses(
        (status = 200, description = "the events after `after`, in id order", body = Envelope<EventPage>,
            example = json!({"code": 200, "message": "Success", "data": {
                "items": [{"id": 42, "event_type": "inventory.stock.reserved",
                    "occurred_at": "2026-11-30T12:00:00.123456Z", "seller_id": "A1SELLER0001",
                    "data": {
                        "inventory": {"id": 1, "seller_id": "A1SELLER0001",
                            "parent_asin": "B0PARENT0001", "child_asin": "B0CHILD00001",
                            "seller_sku": "SKU0000000001", "market_place_id": "US",
                            "inventory": 120, "reserved": 2, "available": 118,
                            "warning_threshold": null, "critical_threshold": null,
                            "stock_level": "ok", "version": 4,
                            "create_time": "2026-11-29T08:00:00Z",
                            "update_time": "2026-11-30T12:00:00.123456Z"},
                        "reservation": {"id": 7, "seller_id": "A1SELLER0001",
                            "market_place_id": "US", "reservation_type": "cart",
                            "reference_id": "cart-1001", "status": "active",
                            "items": [{"inventory_id": 1, "seller_sku": "SKU0000000001", "quantity": 2}],
                            "expires_at": "2026-11-30T12:15:00.123456Z", "order_id": null,
                            "created_by": 3, "version": 1,
                            "create_time": "2026-11-30T12:00:00.123456Z",
                            "update_time": "2026-11-30T12:00:00.123456Z"}}}],
                "meta": {"limit": 100, "next_after": 42, "has_next": false}}})),
        crate::routes::FilterForbidden,
        crate::routes::ListErrors,
    ))]
pub async fn list_events(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<PageBody, ApiError> {
    let after = query.filter("after", after_id).unwrap_or(0);
    let limit = query
        .filter("limit", limit)
        .unwrap_or(EventFilter::DEFAULT_LIMIT);
    let types = query
        .filter("types", EventType::parse_list)
        .unwrap_or_default();
    let seller_id = query.filter("seller_id", SellerId::parse);
    let wait = query.filter("wait", wait_seconds).unwrap_or(0);
    query.finish()?;
    caller.may_filter(seller_id.as_ref())?;
    let scope = caller.scope();
    // One more than asked: whether another page follows.
    let filter = EventFilter {
        after,
        limit: limit + 1,
        types,
        seller_id,
    };
    let wait = Duration::from_secs(wait).min(crate::REQUEST_TIMEOUT.saturating_sub(TIMEOUT_MARGIN));
    let until = Instant::now() + wait;
    let signal = app.store.event_signal();
    let mut items = loop {
        // Registered before the read, so that a commit between the read and the wait still
        // wakes this poll.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let items = app.store.list_events(&filter, &scope).await?;
        let now = Instant::now();
        if !items.is_empty() || now >= until {
            break items;
        }
        let poll = until.min(now + POLL_INTERVAL);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(poll) => {}
        }
    };
    let has_next = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_after = items.last().map_or(after, |event| event.id);
    Ok(PageBody(Envelope::success(EventPage {
        items,
        meta: EventMeta {
            limit,
            next_after,
            has_next,
        },
    })))
}
