//! Several instances on one database, as a deployment behind a load balancer runs them:
//! background work that every instance does is done once (each reservation expired once, each
//! purged row counted once), and an instance killed in the middle of a write load loses no
//! write it acknowledged (docs/deployment.md). The last needs MariaDB and Redis, as the
//! `shared_limits` tests do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{fresh_database, id_of, inventory_body, Backend, TestApp, ADMIN_PASSWORD};
use crate::process::{free_port, login, start};
use crate::raw_http::RawRequest;
use crate::shared_limits::{redis_url, Prefix};

backend_tests!(
    two_instances_expire_each_reservation_once,
    two_instances_purging_at_once_delete_each_row_once,
);

/// How many reservations the expiry test makes (each written in the ledger when made and
/// when expired: the row's history stays one page).
const RESERVATIONS: usize = 40;

async fn two_instances_expire_each_reservation_once(first: TestApp) {
    let second = first.another_instance().await;
    let row = first
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"inventory": 1000})),
        )
        .await;
    let mut made = BTreeSet::new();
    for n in 0..RESERVATIONS {
        let app = if n % 2 == 0 { &first } else { &second };
        let reservation = app
            .reserve_ok(
                &json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
                "reservation_type": "cart", "reference_id": format!("cart:{n}"),
                "items": [{"seller_sku": "SKU0000000001", "quantity": 1}]}),
            )
            .await;
        made.insert(id_of(&reservation));
    }
    let last_event = last_event_id(&first).await;

    // Every deadline passes at once; both instances' sweeps run, and both instances are also
    // asked to expire at the same moment, a few at a time, until nothing is left.
    let overdue = "UPDATE reservations SET expires_at = '2000-01-01 00:00:00' \
         WHERE status = 'active'";
    assert_eq!(first.execute_sql(overdue).await, RESERVATIONS as u64);
    let (a, b) = (first.state.store.clone(), second.state.store.clone());
    loop {
        let (x, y) = tokio::join!(a.expire_reservations(3), b.expire_reservations(2));
        let (x, y) = (x.expect("expires"), y.expect("expires"));
        if x.reservations == 0 && y.reservations == 0 {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.row(id_of(&row)).await["reserved"] != 0 {
        assert!(Instant::now() < deadline, "every reservation expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let after = first.row(id_of(&row)).await;
    assert_eq!(after["reserved"], 0, "{after}");
    assert_eq!(after["available"], 1000, "{after}");
    let expiries: Vec<Value> = first
        .history(id_of(&row))
        .await
        .into_iter()
        .filter(|entry| entry["type"] == "expire")
        .collect();
    assert_eq!(
        expiries.len(),
        RESERVATIONS,
        "one entry per reservation: {expiries:?}"
    );
    let events = events_after(&second, last_event).await;
    let expired: Vec<i64> = events
        .iter()
        .filter(|event| event["event_type"] == "inventory.stock.expired")
        .map(|event| id_of(&event["data"]["reservation"]))
        .collect();
    assert_eq!(
        expired.len(),
        RESERVATIONS,
        "one event per reservation: {events:?}"
    );
    assert_eq!(expired.iter().copied().collect::<BTreeSet<_>>(), made);
    for id in &made {
        let reservation = second
            .ok(Method::GET, &format!("/api/v1/reservations/{id}"), None)
            .await;
        assert_eq!(reservation["status"], "expired", "{reservation}");
    }
    second.assert_books_balance().await;
}

/// On MySQL the sweep claims what it expires with `FOR UPDATE SKIP LOCKED`: a due reservation
/// that something else holds locked (a request releasing it, another instance's sweep) is
/// left for a later round, and the sweep goes on with the rest instead of waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
async fn a_sweep_skips_a_reservation_another_transaction_holds() {
    use sqlx::Connection;
    let app = TestApp::spawn(Backend::MySql).await;
    app.post_ok(
        "/api/v1/inventory",
        &inventory_body(json!({"inventory": 100})),
    )
    .await;
    // Enough rows that InnoDB reaches the due ones by their keys rather than by a scan of
    // the whole (tiny) table, which would lock every row as it passes: as in production.
    for n in 0..60 {
        app.reserve_ok(
            &json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
            "reservation_type": "cart", "reference_id": format!("cart:kept:{n}"),
            "items": [{"seller_sku": "SKU0000000001", "quantity": 1}]}),
        )
        .await;
    }
    let mut ids = Vec::new();
    for n in 0..4 {
        let reservation = app
            .reserve_ok(
                &json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
                "reservation_type": "cart", "reference_id": format!("cart:{n}"),
                "items": [{"seller_sku": "SKU0000000001", "quantity": 1}]}),
            )
            .await;
        ids.push(id_of(&reservation));
    }
    // All due at once, then the first held under a lock by a transaction of the test's own
    // (if a sweep expired it in between, the next one is taken).
    let overdue = format!(
        "UPDATE reservations SET expires_at = '2000-01-01 00:00:00' WHERE id IN ({})",
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(app.execute_sql(&overdue).await, 4);
    let mut holder = sqlx::MySqlConnection::connect(app.database_url())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    let mut held = None;
    for id in &ids {
        let (active,): (bool,) =
            sqlx::query_as("SELECT status = 'active' FROM reservations WHERE id = ? FOR UPDATE")
                .bind(id)
                .fetch_one(&mut holder)
                .await
                .unwrap();
        if active {
            held = Some(*id);
            break;
        }
    }
    let held = held.expect("a reservation still active to hold");

    // The sweep does not wait for the lock (InnoDB would wait 50 s): the others expire now.
    let swept = tokio::time::timeout(
        Duration::from_secs(5),
        app.state.store.expire_reservations(100),
    )
    .await
    .expect("the sweep skips the held reservation rather than wait for it")
    .expect("the sweep runs");
    assert!(swept.reservations <= 3, "{swept:?}");
    for id in ids.iter().filter(|id| **id != held) {
        let reservation = app
            .ok(Method::GET, &format!("/api/v1/reservations/{id}"), None)
            .await;
        assert_eq!(reservation["status"], "expired", "{reservation}");
    }
    let reservation = app
        .ok(Method::GET, &format!("/api/v1/reservations/{held}"), None)
        .await;
    assert_eq!(reservation["status"], "active", "held, so not expired yet");

    // Let go: a later round takes it.
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let reservation = app
            .ok(Method::GET, &format!("/api/v1/reservations/{held}"), None)
            .await;
        if reservation["status"] == "expired" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired once let go: {reservation}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_books_balance().await;
}

/// Events (one per upserted row) made old enough to purge, then purged by both instances at
/// once: every one goes, each counted by exactly one of them, and neither fails (no deadlock
/// or lock timeout leaks out).
async fn two_instances_purging_at_once_delete_each_row_once(first: TestApp) {
    let second = first.another_instance().await;
    const ROWS: usize = 2_500;
    for chunk in 0..ROWS / 500 {
        let items: Vec<Value> = (0..500)
            .map(|n| inventory_body(json!({"seller_sku": format!("SKU{chunk:02}{n:06}")})))
            .collect();
        let done = first
            .post("/api/v1/inventory/batch", &json!({ "items": items }))
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    }
    let events = first
        .execute_sql("UPDATE events SET occurred_at = '2000-01-01 00:00:00'")
        .await;
    assert_eq!(events, ROWS as u64, "one event per row");

    let retention = Duration::from_secs(24 * 3600);
    let (a, b) = (first.state.store.clone(), second.state.store.clone());
    let (x, y) = tokio::join!(
        sellerdesk::background::purge_events(a.as_ref(), retention),
        sellerdesk::background::purge_events(b.as_ref(), retention),
    );
    let (x, y) = (x.expect("the first purges"), y.expect("the second purges"));
    assert_eq!(x + y, ROWS as u64, "each event counted once: {x} + {y}");
    assert_eq!(events_after(&second, 0).await, Vec::<Value>::new());
}

async fn last_event_id(app: &TestApp) -> i64 {
    events_after(app, 0).await.last().map_or(0, id_of)
}

/// Every event after `after` (at most 1000).
async fn events_after(app: &TestApp, after: i64) -> Vec<Value> {
    let data = app
        .ok(
            Method::GET,
            &format!("/api/v1/events?after={after}&limit=1000"),
            None,
        )
        .await;
    data["items"].as_array().expect("items").clone()
}

/// Two instances of the real binary on one MariaDB database, a write load spread over both,
/// and one killed with SIGKILL in the middle of it: every write either instance acknowledged
/// is readable through the other, with the value acknowledged, and the books balance.
#[test]
#[cfg_attr(not(mysql_tests), ignore = "TEST_MYSQL_URL is not set")]
#[cfg_attr(
    all(mysql_tests, not(redis_tests)),
    ignore = "TEST_REDIS_URL is not set"
)]
fn an_instance_killed_mid_load_loses_no_acknowledged_write() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, _database) = runtime.block_on(fresh_database(Backend::MySql));
    let (redis, prefix) = (redis_url(), Prefix::new());
    // One signing key for both, as a deployment shares it: a token works on either. The
    // limits are shared through Redis, as in production, and high enough not to refuse.
    let secret = format!("{:064x}", rand::random::<u128>());
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY", secret.as_str()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.0.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
    ];
    // Both start at once, as a deployment starts them: one migrates and bootstraps, the
    // other finds it done.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [free_port(), free_port()];
    let (mut doomed, doomed_console) = start(dirs[0].path(), ports[0], &vars);
    let (mut survivor, survivor_console) = start(dirs[1].path(), ports[1], &vars);
    for (port, console) in [(ports[0], &doomed_console), (ports[1], &survivor_console)] {
        if !healthy_within(port, Duration::from_secs(20)) {
            let said: Vec<String> = console.try_iter().collect();
            panic!("an instance did not become healthy: {said:#?}");
        }
    }
    for port in ports {
        let health = RawRequest::get("/health").send(port);
        assert_eq!(health.json()["redis"], "ok", "{}", health.raw);
    }
    let token = login(ports[0], "admin", ADMIN_PASSWORD);

    // Writers alternate between the instances, one new row per write, and keep what was
    // acknowledged (sku → quantity) and how many writes to each instance failed.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (stop, acknowledged, token) = (stop.clone(), acknowledged.clone(), token.clone());
            thread::spawn(move || {
                let mut refused = [0_u32; 2];
                let mut n = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let instance = usize::from(n % 2 == 1);
                    let sku = format!("SKU{writer:02}{n:08}");
                    let quantity = n % 1000;
                    let body = inventory_body(json!({"seller_sku": sku, "inventory": quantity}));
                    match RawRequest::post("/api/v1/inventory")
                        .bearer(&token)
                        .json(&body.to_string())
                        .try_send(ports[instance])
                    {
                        Ok(response) if response.status == 200 || response.status == 201 => {
                            acknowledged
                                .lock()
                                .unwrap()
                                .insert(sku, (quantity, instance));
                        }
                        _ => refused[instance] += 1,
                    }
                    n += 1;
                }
                refused
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(1500));
    let acknowledged_before = acknowledged.lock().unwrap().len();
    doomed.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix.
    doomed.wait().unwrap();
    thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let mut refused = [0; 2];
    for writer in writers {
        let [a, b] = writer.join().unwrap();
        refused = [refused[0] + a, refused[1] + b];
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let by = |instance| {
        acknowledged
            .values()
            .filter(|(_, i)| *i == instance)
            .count()
    };
    assert!(
        acknowledged_before > 0 && by(0) > 0,
        "the killed instance acknowledged writes before it died"
    );
    assert!(
        acknowledged.len() > acknowledged_before && by(1) > 0,
        "the load went on through the survivor after the kill"
    );
    assert!(
        refused[0] > 0,
        "writes to the killed instance failed after the kill"
    );
    assert_eq!(refused[1], 0, "the survivor refused no write");

    // Everything acknowledged, read back through the survivor.
    let mut stored = BTreeMap::new();
    let mut page = 1;
    loop {
        let response = RawRequest::get(&format!(
            "/api/v1/inventory?seller_id=A1SELLER0001&size=100&page={page}"
        ))
        .bearer(&token)
        .send(ports[1]);
        assert_eq!(response.status, 200, "{}", response.raw);
        let data = response.json()["data"].clone();
        for row in data["items"].as_array().unwrap() {
            let sku = row["seller_sku"].as_str().unwrap().to_owned();
            stored.insert(sku, row["inventory"].as_u64().unwrap());
        }
        if page >= data["meta"]["pages"].as_u64().unwrap() {
            break;
        }
        page += 1;
    }
    for (sku, (quantity, instance)) in &acknowledged {
        assert_eq!(
            stored.get(sku),
            Some(quantity),
            "{sku}, acknowledged by instance {instance}, is readable with its value"
        );
    }
    let check = RawRequest::post("/api/v1/inventory/consistency-check")
        .bearer(&token)
        .json("{}")
        .send(ports[1]);
    assert_eq!(check.status, 200, "{}", check.raw);
    assert_eq!(check.json()["data"]["inconsistent"], 0, "{}", check.raw);

    survivor.kill().unwrap();
    survivor.wait().unwrap();
}

/// Whether `GET /health` on `port` answers 200 within `limit`.
fn healthy_within(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if RawRequest::get("/health")
            .try_send(port)
            .is_ok_and(|r| r.status == 200)
        {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}
