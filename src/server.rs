//! Serving the router: plain HTTP or HTTPS (rustls through axum-server), the optional
//! plain-HTTP listener that redirects to HTTPS, certificate reload on SIGHUP, and graceful
//! shutdown on SIGTERM/SIGINT for all listeners at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use crate::config::Config;

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` as `config` says until SIGTERM or SIGINT, then lets in-flight requests finish.
pub async fn serve(app: Router, config: Arc<Config>) -> anyhow::Result<()> {
    let addr = config.listen_addr();
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let handle = Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let service = app.into_make_service_with_connect_info::<SocketAddr>();

    match &config.tls {
        None => {
            tracing::info!(%addr, "listening (HTTP)");
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await?;
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS_CERT_PATH {} / TLS_KEY_PATH {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            tokio::spawn(reload_on_sighup(tls.clone(), cert.clone(), key.clone()));
            if let Some(port) = config.http_redirect_port {
                let redirect_addr = SocketAddr::new(config.host, port);
                let redirect = std::net::TcpListener::bind(redirect_addr).with_context(|| {
                    format!("cannot listen on {redirect_addr} (HTTP_REDIRECT_PORT)")
                })?;
                redirect.set_nonblocking(true)?;
                let app = redirect_router(config.port);
                let handle = handle.clone();
                tracing::info!(addr = %redirect_addr, "redirecting HTTP to HTTPS");
                tokio::spawn(async move {
                    let served = axum_server::from_tcp(redirect)
                        .handle(handle)
                        .serve(app.into_make_service())
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the HTTP redirect listener failed");
                    }
                });
            }
            tracing::info!(%addr, "listening (HTTPS)");
            axum_server::from_tcp_rustls(listener, tls)
                .handle(handle)
                .serve(service)
                .await?;
        }
    }
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM, then stops every listener gracefully.
async fn shutdown_on_signal(handle: Handle) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
}

/// Re-reads the certificate and key on every SIGHUP (renewals), keeping the old pair if the new
/// files do not load. New connections get the new certificate; live ones keep theirs.
async fn reload_on_sighup(tls: RustlsConfig, cert: PathBuf, key: PathBuf) {
    #[cfg(unix)]
    {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangup.recv().await.is_some() {
            match tls.reload_from_pem_file(&cert, &key).await {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; keeping the previous one")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (tls, cert, key);
}

/// Answers every request with 308 to the same path and query on HTTPS at `https_port`.
fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |request: Request| async move { redirect(&request, https_port) })
}

fn redirect(request: &Request, https_port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map(|authority| authority.host().to_owned());
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "a Host header is required").into_response();
    };
    let authority = if https_port == 443 {
        host
    } else {
        format!("{host}:{https_port}")
    };
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match Uri::builder()
        .scheme("https")
        .authority(authority)
        .path_and_query(path)
        .build()
    {
        Ok(location) => match HeaderValue::from_str(&location.to_string()) {
            Ok(value) => {
                (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response()
            }
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
