//! The request metrics: `mark_route` names the route template a request matched (in its log
//! span, and for `track_request`), `track_request` counts and times every request by method,
//! route template and status. See the folder's `mod.rs` for where each runs.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Route label of a request no route answered: an unknown path, or one refused before routing
/// (HTTPS required, a CORS preflight).
pub const UNMATCHED: &str = "unmatched";

/// Where the route template of a request is left for `track_request` (set by `mark_route`,
/// which runs after routing, deeper in the stack).
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<MatchedPath>>);

/// Inside the router, for every route: names the route template in the request's log span
/// (`route`, see `middleware::request_span`) and, with metrics on, in its `RouteSlot`.
pub async fn mark_route(req: Request, next: Next) -> Response {
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", tracing::field::display(route.as_str()));
        if let Some(slot) = req.extensions().get::<RouteSlot>() {
            let _ = slot.0.set(route.clone());
        }
    }
    next.run(req).await
}

/// Counts every request (`http_requests_total`) and times it (`http_request_duration_seconds`)
/// by method, route template and status. Outside the panic guard and the timeout, so that a
/// 500 or a 503 from them is counted too.
pub async fn track_request(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let route = slot
        .0
        .get()
        .map_or_else(|| UNMATCHED.to_owned(), |r| r.as_str().to_owned());
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: one of the standard methods, or `other` (a client may send any
/// token as a method, and each would be a new series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_get_a_label_of_their_own() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::TRACE), "other");
        let invented = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
