//! `TestApp`: a fresh, migrated database per test and the real router over it, driven
//! in-process. SQLite always; MySQL when `TEST_MYSQL_URL` is set (each test gets its own
//! database, dropped when the test ends).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rand::Rng;
use sellerdesk::auth::bootstrap_admin;
use sellerdesk::background::Background;
use sellerdesk::config::{Config, Secret};
use sellerdesk::domain::RetryPolicy;
use sellerdesk::store::{self, StoreOptions};
use sellerdesk::{build_app, AppState};
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

/// Runs each listed test once per backend. Each name is an `async fn name(app: TestApp)` in
/// the calling module; the macro adds a module `name` holding `sqlite` and `mysql`, so the
/// tests are reported as `area::name::sqlite` and `area::name::mysql`.
///
/// `mysql` is compiled as ignored ("TEST_MYSQL_URL is not set") unless `TEST_MYSQL_URL` was
/// set when the suite was built (`build.rs` turns it into `cfg(mysql_tests)`); when it was,
/// the test needs a usable server and fails without one. It never passes without running.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
            async fn mysql() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::MySql).await)
                    .await;
            }
        }
    )+};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// A new, empty database on `backend` and its URL. For MySQL, `TEST_MYSQL_URL` must name a
/// server that accepts connections and lets the test user create databases: a MySQL test
/// that cannot use its server fails.
pub async fn fresh_database(backend: Backend) -> (String, Database) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (url, Database::Sqlite(dir))
        }
        Backend::MySql => {
            let server_url = mysql_server_url();
            let name = format!("sellerdesk_test_{:016x}", rand::thread_rng().gen::<u64>());
            let mut conn = sqlx::MySqlConnection::connect(&server_url)
                .await
                .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set, but its server refuses: {e}"));
            sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| {
                    panic!("the TEST_MYSQL_URL user may not create databases: {e}")
                });
            let url = with_database(&server_url, &name);
            (url, Database::MySql { server_url, name })
        }
    }
}

/// What a test database needs to clean up when the test ends.
pub enum Database {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    MySql {
        server_url: String,
        name: String,
    },
    /// Another app's database (`TestApp::another_instance`): that app cleans it up.
    Shared,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Database::MySql { server_url, name } = self {
            let (url, name) = (server_url.clone(), name.clone());
            // Drop runs inside the test's runtime; a fresh one on another thread can block.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::MySqlConnection::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    /// An access token of the bootstrapped `admin`, sent by `get`/`post`/`delete`/`send`.
    pub admin_token: String,
    /// Starts the `X-Request-ID` of every request this app sends (unless the request has its
    /// own): the service keeps a sane incoming id and the log shows it on every line of the
    /// request, so `log_lines` can tell this app's lines from every other test's.
    request_id_prefix: String,
    requests_sent: AtomicU64,
    /// The database's URL, for tests that reach past the service (`move_deadline`).
    database_url: String,
    /// The expiry sweep, as the binary runs it; stopped before the database goes.
    _background: Background,
    _database: Database,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A response, with its body parsed as JSON (`Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

/// The URL of the MySQL server for tests. Only MySQL tests ask, and they are compiled to run
/// only when the variable was set at build time; unset now means the run is broken, not skipped.
pub fn mysql_server_url() -> String {
    std::env::var("TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(
            "TEST_MYSQL_URL is set when the MySQL tests were built, and must be set to run them",
        )
}

/// `url` with its database (the last path segment) replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (rest, query) = url
        .split_once('?')
        .map_or((url, None), |(r, q)| (r, Some(q)));
    let scheme_end = rest.find("://").map_or(0, |i| i + 3);
    let base = match rest[scheme_end..].find('/') {
        Some(slash) => &rest[..scheme_end + slash],
        None => rest,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Everything the service logged in this test process. One subscriber serves the whole
/// process, so this holds every test's lines: a test reads its own with `TestApp::log_lines`.
static CAPTURED_LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Everything logged so far by every test in this process. Only for checking that a secret
/// unique to one test appears *nowhere* (not even outside a request span); anything a test
/// expects to find, it looks for in `TestApp::log_lines`, where no other test can put it.
pub fn everything_logged() -> String {
    String::from_utf8_lossy(&CAPTURED_LOG.lock().unwrap()).into_owned()
}

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED_LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the service's log at `info` (every request line, every login) for inspection.
fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| CaptureWriter)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        .try_init();
}

/// A configuration for tests: the development defaults, so a fresh random signing key for each
/// app (no key written in the repository can sign anything).
pub fn test_config(database_url: &str) -> Config {
    Config {
        database_url: Secret::new(database_url),
        // In-process requests all come from one mock address; the limits have their own
        // tests against the real binary.
        rate_limit_per_minute: 0,
        login_rate_limit_per_minute: 0,
        // Webhook receivers in tests listen on 127.0.0.1; the address rule has its own tests
        // (webhooks::private_targets_are_refused_unless_allowed), which turn this off.
        webhook_allow_private: true,
        // Retries 50 ms, 100 ms, 200 ms apart rather than 1 s, 2 s, 4 s, ... so that tests of
        // failing receivers stay quick.
        webhook_retry: RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        ..Config::default()
    }
}

/// How long a test app's requests wait for a database connection before a 503. Longer than
/// the service's 5 s: the suite runs dozens of apps on one MariaDB and two cores at once, and a
/// contention test's requests once queued for a connection for over 3 s there (a 503 that said
/// nothing about what the test checks).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl TestApp {
    /// The app over a fresh database on `backend` (see `fresh_database`).
    pub async fn spawn(backend: Backend) -> Self {
        let (url, database) = fresh_database(backend).await;
        Self::open(&url, database).await
    }

    /// A fresh SQLite-backed app whose configuration `tweak` adjusts.
    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> Self {
        let (url, database) = fresh_database(Backend::Sqlite).await;
        Self::open_with(&url, database, ACQUIRE_TIMEOUT, tweak).await
    }

    /// The app over the database at `url`; `database` is dropped with it.
    pub async fn open(url: &str, database: Database) -> Self {
        Self::open_with(url, database, ACQUIRE_TIMEOUT, |_| {}).await
    }

    /// `open`, with requests that give up waiting for a database connection after
    /// `acquire_timeout` (a 503): for tests of an unreachable database, which want their 503s
    /// quickly.
    pub async fn open_waiting(url: &str, database: Database, acquire_timeout: Duration) -> Self {
        Self::open_with(url, database, acquire_timeout, |_| {}).await
    }

    async fn open_with(
        url: &str,
        database: Database,
        acquire_timeout: Duration,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        init_test_logging();
        let store = store::connect(&StoreOptions {
            url: url.to_owned(),
            max_connections: Some(10),
            acquire_timeout,
            durability: Default::default(),
        })
        .await
        .expect("a fresh database opens and migrates");
        let mut config = Config {
            admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            ..test_config(url)
        };
        tweak(&mut config);
        let state = AppState::new(store.clone(), config);
        bootstrap_admin(store.as_ref(), &state.config, &state.auth.passwords)
            .await
            .expect("the first admin is created");
        let admin = store
            .find_login("admin")
            .await
            .unwrap()
            .expect("admin exists")
            .0;
        let admin_token = state.auth.keys.issue(admin.id, admin.token_version);
        let router = build_app(state.clone())
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let background = Background::start(store, &state.config);
        Self {
            router,
            state,
            admin_token,
            request_id_prefix: format!("t{:016x}", rand::thread_rng().gen::<u64>()),
            requests_sent: AtomicU64::new(0),
            database_url: url.to_owned(),
            _background: background,
            _database: database,
        }
    }

    /// This app's database opened again by a new app, as after a restart: this app's store is
    /// closed first. The admin is the same user, with a token of the new app's key.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            state,
            database_url,
            _background,
            _database,
            ..
        } = self;
        _background.shutdown().await;
        state.store.close().await;
        TestApp::open(&database_url, _database).await
    }

    /// The database's URL, for tests that hold locks or transactions of their own in it.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// A second instance of the service on this app's database, as a deployment of several
    /// runs them: its own store (pool, write queue) and background work, the same admin. Drop
    /// it before this app, whose database it is.
    pub async fn another_instance(&self) -> TestApp {
        TestApp::open(&self.database_url, Database::Shared).await
    }

    /// Moves the `expires_at` of reservation `id` to `at`, straight in the database: a
    /// reservation holds for at least a minute, too long for a test to wait.
    pub async fn move_deadline(&self, id: i64, at: chrono::DateTime<chrono::Utc>) {
        use sqlx::Connection;
        let sql = "UPDATE reservations SET expires_at = ? WHERE id = ?";
        let at = at.naive_utc();
        let changed = if self.database_url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let done = sqlx::query(sql).bind(at).bind(id).execute(&mut conn).await;
            done.expect("the deadline moves").rows_affected()
        } else {
            let mut conn = sqlx::MySqlConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let done = sqlx::query(sql).bind(at).bind(id).execute(&mut conn).await;
            done.expect("the deadline moves").rows_affected()
        };
        assert_eq!(changed, 1, "reservation {id} exists");
    }

    /// Moves the `expires_at` of every refresh token of user `user_id` to `at`, straight in the
    /// database: a family lives for days, too long for a test to wait.
    pub async fn move_refresh_expiry(&self, user_id: i64, at: chrono::DateTime<chrono::Utc>) {
        use sqlx::Connection;
        let sql = "UPDATE refresh_tokens SET expires_at = ? WHERE user_id = ?";
        let at = at.naive_utc();
        let changed = if self.database_url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let done = sqlx::query(sql).bind(at).bind(user_id).execute(&mut conn);
            done.await.expect("the expiry moves").rows_affected()
        } else {
            let mut conn = sqlx::MySqlConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let done = sqlx::query(sql).bind(at).bind(user_id).execute(&mut conn);
            done.await.expect("the expiry moves").rows_affected()
        };
        assert!(changed > 0, "user {user_id} has refresh tokens");
    }

    /// Runs `sql` with `id` bound to its one `?`, straight in the database, and returns how many
    /// rows it changed: for tests that must break the books behind the service's back (the
    /// consistency check has to find what the API never does).
    pub async fn execute_raw(&self, sql: &str, id: i64) -> u64 {
        self.execute(sql, Some(id)).await
    }

    /// Runs `sql`, which takes no parameters, straight in the database (for tests that break
    /// the schema behind the service's back).
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        self.execute(sql, None).await
    }

    async fn execute(&self, sql: &str, id: Option<i64>) -> u64 {
        use sqlx::Connection;
        if self.database_url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let query = sqlx::query(sql);
            let query = match id {
                Some(id) => query.bind(id),
                None => query,
            };
            let done = query.execute(&mut conn).await;
            done.expect("the statement runs").rows_affected()
        } else {
            let mut conn = sqlx::MySqlConnection::connect(&self.database_url)
                .await
                .expect("the test database opens");
            let query = sqlx::query(sql);
            let query = match id {
                Some(id) => query.bind(id),
                None => query,
            };
            let done = query.execute(&mut conn).await;
            done.expect("the statement runs").rows_affected()
        }
    }

    /// Runs the consistency check (as the admin) and insists that every row is consistent:
    /// nothing oversold, `reserved` what active reservations hold, a ledger that adds up.
    /// Returns how many rows were checked.
    pub async fn assert_books_balance(&self) -> u64 {
        let response = self
            .request(Method::POST, "/api/v1/inventory/consistency-check", None)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        let report = &response.json["data"];
        assert_eq!(report["inconsistent"], 0, "the books balance: {report}");
        assert_eq!(report["details"], serde_json::json!([]), "{report}");
        report["checked"].as_u64().expect("a count of rows checked")
    }

    /// A new request id of this app: `<prefix>-<n>`.
    pub fn next_request_id(&self) -> String {
        let n = self.requests_sent.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.request_id_prefix)
    }

    /// The log lines of this app's requests (those sent with its request ids), and no others.
    pub fn log_lines(&self) -> Vec<String> {
        // The span prints `request_id=<id> `; the prefix and its `-` end every id of this app.
        let marker = format!("request_id={}-", self.request_id_prefix);
        everything_logged()
            .lines()
            .filter(|line| line.contains(&marker))
            .map(str::to_owned)
            .collect()
    }

    /// The log lines of one request of this app, by the id its response carries.
    pub fn log_lines_of(&self, response: &TestResponse) -> Vec<String> {
        let id = response.headers["x-request-id"]
            .to_str()
            .expect("an ASCII request id");
        let marker = format!("request_id={id} ");
        self.log_lines()
            .into_iter()
            .filter(|line| line.contains(&marker))
            .collect()
    }

    /// Sends one request exactly as it is: no token, no request id.
    pub async fn send_exact(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            json,
            text,
        }
    }

    /// Sends one request without a token, under this app's next request id unless it has one.
    pub async fn send_anonymous(&self, mut request: Request<Body>) -> TestResponse {
        if !request.headers().contains_key("x-request-id") {
            let id = self.next_request_id().parse().unwrap();
            request.headers_mut().insert("x-request-id", id);
        }
        self.send_exact(request).await
    }

    /// Sends one request through the whole router, as the admin unless it names a caller.
    pub async fn send(&self, mut request: Request<Body>) -> TestResponse {
        if !request.headers().contains_key("authorization") {
            let bearer = format!("Bearer {}", self.admin_token).parse().unwrap();
            request.headers_mut().insert("authorization", bearer);
        }
        self.send_anonymous(request).await
    }

    /// Sends `method uri` with `body` as JSON and `token` as bearer (none when `None`).
    pub async fn request_as(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send_anonymous(builder.body(body).unwrap()).await
    }

    /// `method uri` as the admin, with `body` as JSON.
    pub async fn request(&self, method: Method, uri: &str, body: Option<&Value>) -> TestResponse {
        self.request_as(method, uri, body, Some(&self.admin_token))
            .await
    }

    /// Posts an OAuth2 form to the token endpoint.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> TestResponse {
        self.token_request_with(form, None).await
    }

    /// Posts an OAuth2 form to the token endpoint as if a proxy forwarded it from `client`
    /// (`X-Forwarded-For`; believed only when the app trusts the mock peer, 127.0.0.1).
    pub async fn token_request_from(&self, client: &str, form: &[(&str, &str)]) -> TestResponse {
        self.token_request_with(form, Some(client)).await
    }

    async fn token_request_with(
        &self,
        form: &[(&str, &str)],
        forwarded_for: Option<&str>,
    ) -> TestResponse {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = Request::post("/api/v1/auth/token")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(client) = forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        self.send_anonymous(request.body(Body::from(body)).unwrap())
            .await
    }

    /// Logs in with the password grant, insisting on success; returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .token_request(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "login of {username}: {}",
            response.text
        );
        response.json
    }

    /// Creates a user through the admin API and returns their id.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: &str,
        sellers: &[&str],
    ) -> i64 {
        let body = serde_json::json!({"username": username, "password": password, "role": role, "seller_ids": sellers});
        let data = self.post_ok("/api/v1/users", &body).await;
        data["id"].as_i64().unwrap()
    }

    /// A seller user of `sellers` and their access token (issued directly, no login).
    pub async fn seller(&self, username: &str, sellers: &[&str]) -> (i64, String) {
        let id = self
            .create_user(username, "seller-password-123", "seller", sellers)
            .await;
        let user = self
            .state
            .store
            .get_user(id)
            .await
            .expect("the new user is stored");
        (id, self.state.auth.keys.issue(id, user.token_version))
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, uri, Some(body)).await
    }

    pub async fn delete(&self, uri: &str) -> TestResponse {
        self.request(Method::DELETE, uri, None).await
    }

    /// Posts `body` and insists on 200, returning `data`.
    pub async fn post_ok(&self, uri: &str, body: &Value) -> Value {
        let response = self.post(uri, body).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "POST {uri} {body}: {}",
            response.text
        );
        response.json["data"].clone()
    }

    /// `method uri` as the admin with `body`, insisting on 200; returns `data`.
    pub async fn ok(&self, method: Method, uri: &str, body: Option<&Value>) -> Value {
        let response = self.request(method.clone(), uri, body).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{method} {uri}: {}",
            response.text
        );
        response.json["data"].clone()
    }

    /// The inventory row with this id, as the admin reads it.
    pub async fn row(&self, id: i64) -> Value {
        self.ok(Method::GET, &format!("/api/v1/inventory/{id}"), None)
            .await
    }

    /// Creates a reservation as the admin, insisting on 201; returns `data`.
    pub async fn reserve_ok(&self, body: &Value) -> Value {
        let response = self.post("/api/v1/reservations", body).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "POST /api/v1/reservations {body}: {}",
            response.text
        );
        response.json["data"].clone()
    }

    /// Every ledger entry of row `id` (deleted or not), oldest first, as the admin reads them.
    pub async fn history(&self, id: i64) -> Vec<Value> {
        let data = self
            .ok(
                Method::GET,
                &format!("/api/v1/inventory/{id}/transactions?size=100"),
                None,
            )
            .await;
        assert_eq!(data["meta"]["pages"].as_u64(), Some(1), "one page: {data}");
        let mut entries = data["items"].as_array().expect("items").clone();
        entries.reverse();
        entries
    }
}

/// Percent-encodes a form value.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A valid sales-target body, with `changes` merged over it.
pub fn sales_body(changes: Value) -> Value {
    merge(
        serde_json::json!({
            "seller_id": "A1SELLER0001",
            "parent_asin": "B0PARENT0001",
            "market_place_id": "US",
            "period": "2026-11",
            "sales_target": 15000.5
        }),
        changes,
    )
}

/// A valid inventory body, with `changes` merged over it.
pub fn inventory_body(changes: Value) -> Value {
    merge(
        serde_json::json!({
            "seller_id": "A1SELLER0001",
            "parent_asin": "B0PARENT0001",
            "child_asin": "B0CHILD00001",
            "seller_sku": "SKU0000000001",
            "market_place_id": "US",
            "inventory": 120
        }),
        changes,
    )
}

/// A valid reservation body (a cart of 2 units of SKU0000000001 of A1SELLER0001 in US), with
/// `changes` merged over it.
pub fn reservation_body(changes: Value) -> Value {
    merge(
        serde_json::json!({
            "seller_id": "A1SELLER0001",
            "market_place_id": "US",
            "reservation_type": "cart",
            "reference_id": "cart:0001",
            "items": [{"seller_sku": "SKU0000000001", "quantity": 2}]
        }),
        changes,
    )
}

/// The id of a record in a response.
pub fn id_of(record: &Value) -> i64 {
    record["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("an id in {record}"))
}

/// The `X-Request-ID` a response carries.
pub fn request_id_of(response: &TestResponse) -> String {
    response.headers["x-request-id"]
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

/// `base` with the fields of `changes` set over it; a `null`-valued key of the form
/// `"-name"` removes `name`.
pub fn merge(mut base: Value, changes: Value) -> Value {
    if let (Some(target), Value::Object(changes)) = (base.as_object_mut(), changes) {
        for (key, value) in changes {
            match key.strip_prefix('-') {
                Some(removed) => {
                    target.remove(removed);
                }
                None => {
                    target.insert(key, value);
                }
            }
        }
    }
    base
}

/// The `detail` entries of a 422 body, as (field, message) pairs.
pub fn field_errors(response: &TestResponse) -> Vec<(String, String)> {
    response.json["detail"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or("").to_owned(),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the error envelope: status, `code`, a message, and the request id of the header.
pub fn assert_error_envelope(response: &TestResponse, status: StatusCode) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.json["code"], status.as_u16(), "{}", response.text);
    assert!(
        response.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        response.text
    );
    let header = response
        .headers
        .get("x-request-id")
        .expect("X-Request-ID on every response");
    assert_eq!(
        response.json["request_id"],
        header.to_str().unwrap(),
        "{}",
        response.text
    );
}

/// Asserts the error envelope of `status` (see `assert_error_envelope`) and its `error_code`.
pub fn assert_error(response: &TestResponse, status: StatusCode, error_code: &str) {
    assert_error_envelope(response, status);
    assert_eq!(response.json["error_code"], error_code, "{}", response.text);
}

/// Asserts a 422 `VALIDATION_FAILED` and returns the fields its `detail` names, in order.
pub fn invalid_fields(response: &TestResponse) -> Vec<String> {
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );
    field_errors(response).into_iter().map(|(f, _)| f).collect()
}

/// The `detail` entries of a 422 body as (index, field) pairs, the index `None` where the
/// entry has none, in the order the body lists them.
pub fn indexed_fields(response: &TestResponse) -> Vec<(Option<u64>, String)> {
    response.json["detail"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["index"].as_u64(),
                        e["field"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `assert_error` for one row of a table of cases: every message starts with `label`.
pub fn assert_error_in(label: &str, response: &TestResponse, status: StatusCode, error_code: &str) {
    assert_eq!(response.status, status, "{label}: {}", response.text);
    assert_eq!(
        response.json["error_code"], error_code,
        "{label}: {}",
        response.text
    );
    assert_error_envelope(response, status);
}
