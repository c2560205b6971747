//! The database going away under a running app: 503 in the envelope, fast, and recovery
//! without a restart. MySQL only: the app reaches it through a TCP proxy that the test cuts.
//! (A SQLite file cannot be made unreachable the same way from inside the process.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{assert_error_envelope, fresh_database, inventory_body, Backend, TestApp};

/// A TCP proxy to the MySQL server that can be stopped (port closed, live connections cut)
/// and started again on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            upstream: upstream.to_owned(),
            tasks: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the port and cuts every connection through it.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restart(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("the proxy's port is free again");
        self.serve(listener);
    }
}

/// `host:port` of a mysql:// URL.
fn host_port(url: &str) -> String {
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    let authority = after_scheme.split('/').next().unwrap();
    let host = authority.rsplit('@').next().unwrap();
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:3306")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
async fn requests_answer_503_while_mysql_is_unreachable_and_recover_after() {
    let (url, database) = fresh_database(Backend::MySql).await;
    let real = host_port(&url);
    let proxy = Proxy::start(&real).await;
    // Each request below waits this long for a connection before its 503.
    let app = TestApp::open_waiting(
        &url.replacen(&real, &proxy.addr.to_string(), 1),
        database,
        Duration::from_secs(3),
    )
    .await;
    let saved = app
        .post_ok("/api/v1/inventory", &inventory_body(json!({})))
        .await;

    proxy.stop();

    for attempt in 0..2 {
        let started = Instant::now();
        let write = app
            .post(
                "/api/v1/inventory",
                &inventory_body(json!({"inventory": 7})),
            )
            .await;
        assert_error_envelope(&write, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(write.json["message"], "database unavailable");
        let read = app.get(&format!("/api/v1/inventory/{}", saved["id"])).await;
        assert_error_envelope(&read, StatusCode::SERVICE_UNAVAILABLE);
        let health = app.get("/health").await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(health.json["database"], "unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "attempt {attempt} answered within seconds: {:?}",
            started.elapsed()
        );
    }

    proxy.restart().await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = app.get("/health").await;
        if health.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovered without a restart: {}",
            health.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = app
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"inventory": 8})),
        )
        .await;
    assert_eq!(after["id"], saved["id"]);
    assert_eq!(after["inventory"], 8);
}
