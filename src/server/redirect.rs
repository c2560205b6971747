//! The plain-HTTP listener of `HTTP_REDIRECT_PORT`: every request gets 308 to the same path
//! and query on `https://PUBLIC_HOST`. The request's own `Host` is never used: reflecting it
//! would let anyone who can put a link in front of a user send them, through our name, to a
//! host of their choosing.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::Config;
use crate::error::ApiError;
use crate::middleware::request_context;

/// The redirecting service, or `None` without a `PUBLIC_HOST` (configuration refuses
/// `HTTP_REDIRECT_PORT` without one). Errors leave in the envelope, with a request id.
pub(super) fn router(config: &Arc<Config>) -> Option<Router> {
    let base: Arc<str> = https_base(config.public_host.as_deref()?, config.port).into();
    let router = Router::new()
        .fallback(move |request: Request| async move { redirect(&base, &request) })
        .layer(axum::middleware::from_fn_with_state(
            config.clone(),
            request_context,
        ));
    Some(router)
}

/// `https://host[:port]`: `PUBLIC_HOST` as given when it names a port, else with the HTTPS
/// `port` unless that is 443.
fn https_base(public_host: &str, port: u16) -> String {
    let has_port = public_host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !public_host.ends_with(']');
    if has_port || port == 443 {
        format!("https://{public_host}")
    } else {
        format!("https://{public_host}:{port}")
    }
}

fn redirect(base: &str, request: &Request) -> Response {
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match HeaderValue::from_str(&format!("{base}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => ApiError::BadRequest("the request path cannot be redirected").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_keeps_a_port_the_public_host_names_and_adds_the_https_port_otherwise() {
        for (host, port, base) in [
            ("api.example.com", 443, "https://api.example.com"),
            ("api.example.com", 8443, "https://api.example.com:8443"),
            ("api.example.com:9443", 8443, "https://api.example.com:9443"),
            ("[::1]", 8443, "https://[::1]:8443"),
            ("[::1]:9443", 8443, "https://[::1]:9443"),
        ] {
            assert_eq!(https_base(host, port), base, "{host} {port}");
        }
    }
}
