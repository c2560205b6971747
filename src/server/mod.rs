//! Serving the router: plain HTTP or HTTPS (rustls through axum-server), the optional
//! plain-HTTP listener that redirects to HTTPS (`redirect.rs`), the optional metrics listener
//! (`METRICS_ADDR`, plain HTTP, `crate::monitoring::router`), certificate reload on SIGHUP,
//! and graceful shutdown on SIGTERM/SIGINT for all listeners at once.
//!
//! Every listener's connections pass through `connections::Guard`: at most `MAX_CONNECTIONS`
//! at once, and none idle past `HEADER_READ_TIMEOUT_SECS` (`connections.rs` says how).

mod connections;
mod redirect;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper_util::rt::TokioTimer;
use tokio::sync::Semaphore;

use self::connections::Guard;
use crate::config::Config;

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Most bytes hyper buffers for one connection: a request head larger than this is refused
/// with 431. hyper's default (~400 KiB) would let each slow client hold that much memory.
const MAX_CONNECTION_BUFFER: usize = 64 * 1024;

/// Applies the connection rules of `config` to a listener: a shared slot per connection, a
/// deadline for each request head, a bounded buffer.
fn guarded<A>(
    mut server: axum_server::Server<A>,
    config: &Config,
    slots: &Arc<Semaphore>,
) -> axum_server::Server<Guard<A>> {
    let timeout = config.header_read_timeout;
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    server.map(|inner| Guard::new(inner, slots.clone(), timeout))
}

/// Serves `app` as `config` says until SIGTERM or SIGINT, then lets in-flight requests finish;
/// `metrics` (the metrics router, when `METRICS_ADDR` is set) on its own listener beside it.
pub async fn serve(
    app: Router,
    metrics: Option<Router>,
    config: Arc<Config>,
) -> anyhow::Result<()> {
    let addr = config.listen_addr();
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let handle = Handle::new();
    // One pool of slots for every listener, the redirect and metrics listeners included.
    let slots = Arc::new(Semaphore::new(config.max_connections));
    if let (Some(metrics), Some(metrics_addr)) = (metrics, config.metrics_addr) {
        let bound = std::net::TcpListener::bind(metrics_addr)
            .with_context(|| format!("cannot listen on {metrics_addr} (METRICS_ADDR)"))?;
        bound.set_nonblocking(true)?;
        let server = guarded(axum_server::from_tcp(bound), &config, &slots).handle(handle.clone());
        tracing::info!(addr = %metrics_addr, "serving metrics at /metrics");
        tokio::spawn(async move {
            if let Err(e) = server.serve(metrics.into_make_service()).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let service = app.into_make_service_with_connect_info::<SocketAddr>();

    match &config.tls {
        None => {
            tracing::info!(%addr, "listening (HTTP)");
            guarded(axum_server::from_tcp(listener), &config, &slots)
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
            if let (Some(port), Some(app)) = (config.http_redirect_port, redirect::router(&config))
            {
                let redirect_addr = SocketAddr::new(config.host, port);
                let redirect = std::net::TcpListener::bind(redirect_addr).with_context(|| {
                    format!("cannot listen on {redirect_addr} (HTTP_REDIRECT_PORT)")
                })?;
                redirect.set_nonblocking(true)?;
                let server = guarded(axum_server::from_tcp(redirect), &config, &slots)
                    .handle(handle.clone());
                tracing::info!(addr = %redirect_addr, "redirecting HTTP to HTTPS");
                tokio::spawn(async move {
                    let served = server.serve(app.into_make_service()).await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the HTTP redirect listener failed");
                    }
                });
            }
            tracing::info!(%addr, "listening (HTTPS)");
            // The handshake gets the same time as a request head.
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(config.header_read_timeout);
            let server = axum_server::from_tcp(listener).acceptor(acceptor);
            guarded(server, &config, &slots)
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
