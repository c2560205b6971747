//! `request_context`, the outermost of our layers: it ties together the request id, the client
//! IP and the error envelope, each of which lives in its own module.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use axum::middleware::Next;

use super::client_ip::{peer_addr, resolve_client_ip, ClientIp};
use super::envelope::wrap_error;
use super::request_id::{self, RequestId, REQUEST_ID_HEADER};
use crate::config::Config;

/// Request id in, request id out; the client's address; error bodies as the envelope.
pub async fn request_context(
    State(config): State<Arc<Config>>,
    mut req: Request,
    next: Next,
) -> Response<Body> {
    let id = request_id::keep_or_make(req.headers().get(REQUEST_ID_HEADER));
    req.extensions_mut().insert(RequestId(id.clone()));
    let client = ClientIp(
        peer_addr(&req).map(|peer| resolve_client_ip(peer, req.headers(), &config.trusted_proxies)),
    );
    req.extensions_mut().insert(client);

    let response = next.run(req).await;

    let mut response = wrap_error(response, id.to_str().unwrap_or_default());
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}
