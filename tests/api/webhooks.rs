//! Webhooks (docs/webhooks.md): registration and its rules (RBAC, the secret shown once, the
//! address rule), and delivery to a receiver running in the test: signed, in event order,
//! retried after failures, across a restart, and with two instances on one database.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::backend_tests;
use crate::helpers::{assert_error, invalid_fields, inventory_body, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    event_id: i64,
    signature: String,
    content_type: String,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Requests still to answer 500 before answering 200.
    fail_next: AtomicUsize,
    /// While set, every request is answered 503 (the receiver is "down").
    down: AtomicBool,
    /// Requests being handled now, and the most ever at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1, in the test's runtime.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_in_flight.fetch_max(now, Ordering::SeqCst);
    // Long enough for a second sender to overlap, if one ever sent at the same time.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let status = if state.down.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.received.lock().unwrap().push(Received {
        event_id: header("sellerdesk-event-id").parse().unwrap_or(-1),
        signature: header("sellerdesk-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
        status: status.as_u16(),
    });
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    status
}

impl Receiver {
    /// A receiver that answers 500 to its first `failures` requests, then 200.
    async fn start(failures: usize) -> Self {
        let state = Arc::new(ReceiverState::default());
        state.fail_next.store(failures, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The event ids answered 200, in the order they came.
    fn delivered(&self) -> Vec<i64> {
        self.received()
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.event_id)
            .collect()
    }

    /// Waits until `count` events were answered 200 (at most 20 s).
    async fn wait_for(&self, count: usize) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count || tokio::time::Instant::now() > deadline {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Registers a webhook as the admin for `inventory.updated` and returns the 201's `data`.
async fn register(app: &TestApp, url: &str) -> Value {
    let response = app
        .post(
            "/api/v1/webhooks",
            &json!({"url": url, "event_types": ["inventory.updated"]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    response.json["data"].clone()
}

/// Upserts the one test row `count` times with a new quantity each time.
async fn upsert_times(app: &TestApp, count: i64, start: i64) {
    for n in 0..count {
        app.post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"inventory": start + n})),
        )
        .await;
    }
}

/// The ids of the `inventory.updated` events in the feed, in order.
async fn updated_event_ids(app: &TestApp) -> Vec<i64> {
    let feed = app
        .get("/api/v1/events?types=inventory.updated&limit=1000")
        .await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.text);
    feed.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// Waits until the webhook has released its lease (a saved state after its last attempt).
async fn deliveries(app: &TestApp, id: i64) -> Vec<Value> {
    let response = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries?size=100"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json["data"]["items"].as_array().unwrap().clone()
}

backend_tests!(
    a_failing_receiver_gets_every_event_in_order_after_retries,
    deliveries_are_signed_with_the_secret_of_the_201,
    the_secret_is_shown_only_when_the_webhook_is_created,
    sellers_register_for_their_own_sellers_and_see_only_their_webhooks,
    creating_and_deleting_a_webhook_is_audited,
    delivery_goes_on_after_a_restart,
    two_instances_on_one_database_deliver_each_event_once,
    delivery_attempts_older_than_the_event_retention_are_purged,
    of_instances_claiming_one_webhook_at_once_exactly_one_holds_it,
    a_sellers_webhook_follows_the_sellers_they_have_now,
);

async fn a_failing_receiver_gets_every_event_in_order_after_retries(app: TestApp) {
    let receiver = Receiver::start(2).await;
    let webhook = register(&app, &receiver.url()).await;

    upsert_times(&app, 5, 10).await;

    let expected = updated_event_ids(&app).await;
    assert_eq!(expected.len(), 5);
    assert_eq!(receiver.wait_for(5).await, expected);
    // Every request, failed ones included, in event order: the first event three times (two
    // 500s, then 200), never a later one before it was delivered.
    let requests: Vec<(i64, u16)> = receiver
        .received()
        .iter()
        .map(|r| (r.event_id, r.status))
        .collect();
    let mut wanted = vec![(expected[0], 500), (expected[0], 500)];
    wanted.extend(expected.iter().map(|&id| (id, 200)));
    assert_eq!(requests, wanted);

    // The log has each attempt, newest first, once the last one is saved.
    let id = webhook["id"].as_i64().unwrap();
    let mut log = deliveries(&app, id).await;
    for _ in 0..100 {
        if log.len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = deliveries(&app, id).await;
    }
    assert_eq!(log.len(), 7, "{log:?}");
    let oldest_first: Vec<(i64, i64, Value, &str)> = log
        .iter()
        .rev()
        .map(|d| {
            (
                d["event_id"].as_i64().unwrap(),
                d["attempt"].as_i64().unwrap(),
                d["status_code"].clone(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(oldest_first[0], (expected[0], 1, json!(500), "failed"));
    assert_eq!(oldest_first[1], (expected[0], 2, json!(500), "failed"));
    assert_eq!(oldest_first[2], (expected[0], 3, json!(200), "delivered"));
    for (entry, &event) in oldest_first[3..].iter().zip(&expected[1..]) {
        assert_eq!(*entry, (event, 1, json!(200), "delivered"));
    }
    for d in &log {
        assert!(d["latency_ms"].as_i64().unwrap() >= 0);
        assert!(d["attempted_at"].as_str().unwrap().ends_with('Z'));
    }
}

async fn deliveries_are_signed_with_the_secret_of_the_201(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let webhook = register(&app, &receiver.url()).await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");

    upsert_times(&app, 1, 7).await;
    receiver.wait_for(1).await;

    let got = &receiver.received()[0];
    assert_eq!(got.content_type, "application/json");
    let feed = app.get("/api/v1/events?types=inventory.updated").await;
    let event = &feed.json["data"]["items"][0];
    assert_eq!(got.event_id, event["id"].as_i64().unwrap());
    // The body is the event as the feed shows it.
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(&body, event);

    // t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, t within 5 minutes.
    let (t, v1) = got
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header: {:?}", got.signature));
    let t: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected);
    // Another secret does not verify.
    let mut other = Hmac::<Sha256>::new_from_slice(b"whsec_other").unwrap();
    other.update(format!("{t}.").as_bytes());
    other.update(&got.body);
    assert!(other.verify_slice(&hex_bytes(v1)).is_err());
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

async fn the_secret_is_shown_only_when_the_webhook_is_created(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let webhook = register(&app, &receiver.url()).await;
    let secret = webhook["secret"].as_str().unwrap();
    let id = webhook["id"].as_i64().unwrap();
    upsert_times(&app, 1, 3).await;
    receiver.wait_for(1).await;

    for uri in [
        "/api/v1/webhooks".to_owned(),
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
        "/api/v1/audit-log".to_owned(),
    ] {
        let response = app.get(&uri).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text);
        assert!(!response.text.contains(secret), "{uri} shows the secret");
        assert!(
            !response.text.contains("secret"),
            "{uri}: {}",
            response.text
        );
    }
    let listed = app.get("/api/v1/webhooks").await;
    assert_eq!(listed.json["data"]["items"][0]["id"], id);
    assert_eq!(listed.json["data"]["meta"]["total"], 1);
    assert!(
        !crate::helpers::everything_logged().contains(secret),
        "the secret was logged"
    );
}

async fn sellers_register_for_their_own_sellers_and_see_only_their_webhooks(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let (_, alice) = app.seller("alice", &["A1SELLER0001"]).await;
    let (_, bob) = app.seller("bob", &["B2SELLER0002"]).await;
    let as_user = |token: &str, method: Method, uri: String, body: Option<Value>| {
        let token = token.to_owned();
        let app = &app;
        async move {
            app.request_as(method, &uri, body.as_ref(), Some(&token))
                .await
        }
    };
    let body = |sellers: Option<&[&str]>| {
        let mut body = json!({"url": receiver.url(), "event_types": ["inventory.updated"]});
        if let Some(sellers) = sellers {
            body["seller_ids"] = json!(sellers);
        }
        body
    };

    let foreign = as_user(
        &alice,
        Method::POST,
        "/api/v1/webhooks".into(),
        Some(body(Some(&["A1SELLER0001", "B2SELLER0002"]))),
    )
    .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");

    let own = as_user(
        &alice,
        Method::POST,
        "/api/v1/webhooks".into(),
        Some(body(None)),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text);
    assert_eq!(own.json["data"]["seller_ids"], json!(["A1SELLER0001"]));
    let alices = own.json["data"]["id"].as_i64().unwrap();
    let location = own.headers["location"].to_str().unwrap();
    assert_eq!(location, format!("/api/v1/webhooks/{alices}"));
    assert_eq!(own.json["code"], 201);

    let admins = register(&app, &receiver.url()).await;
    assert_eq!(
        admins["seller_ids"],
        Value::Null,
        "an admin's: every seller"
    );
    let admins = admins["id"].as_i64().unwrap();

    // Alice sees hers only; Bob sees none; the admin sees both.
    let listed = as_user(&alice, Method::GET, "/api/v1/webhooks".into(), None).await;
    let ids: Vec<i64> = listed.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [alices]);
    let listed = as_user(&bob, Method::GET, "/api/v1/webhooks".into(), None).await;
    assert_eq!(listed.json["data"]["meta"]["total"], 0);
    let listed = app.get("/api/v1/webhooks").await;
    assert_eq!(listed.json["data"]["meta"]["total"], 2);

    // Another's webhook, or none, is 404 whatever the route.
    for (token, id) in [(&alice, admins), (&bob, alices), (&alice, 999_999)] {
        for (method, uri) in [
            (Method::GET, format!("/api/v1/webhooks/{id}")),
            (Method::GET, format!("/api/v1/webhooks/{id}/deliveries")),
            (Method::DELETE, format!("/api/v1/webhooks/{id}")),
        ] {
            let response = as_user(token, method.clone(), uri.clone(), None).await;
            assert_error(&response, StatusCode::NOT_FOUND, "NOT_FOUND");
        }
    }
    let bad_id = app.get("/api/v1/webhooks/abc").await;
    assert_error(
        &bad_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );

    // Bob's event is not delivered to Alice's webhook; Alice's is.
    app.post_ok(
        "/api/v1/inventory",
        &inventory_body(json!({"seller_id": "B2SELLER0002"})),
    )
    .await;
    app.post_ok("/api/v1/inventory", &inventory_body(json!({})))
        .await;
    // The admin's webhook gets both; Alice's the second only.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.delivered().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = updated_event_ids(&app).await;
    let mut delivered = receiver.delivered();
    delivered.sort_unstable();
    assert_eq!(delivered, [events[0], events[1], events[1]]);

    // Alice deletes hers; it is gone for her and the admin.
    let deleted = as_user(
        &alice,
        Method::DELETE,
        format!("/api/v1/webhooks/{alices}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.json["data"]["id"], alices);
    let gone = app.get(&format!("/api/v1/webhooks/{alices}")).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn creating_and_deleting_a_webhook_is_audited(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let webhook = register(&app, &receiver.url()).await;
    let id = webhook["id"].as_i64().unwrap();
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let deleted = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);

    for action in ["webhook_created", "webhook_deleted"] {
        let log = app.get(&format!("/api/v1/audit-log?action={action}")).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text);
        let entries = log.json["data"]["items"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{action}: {entries:?}");
        let entry = &entries[0];
        assert_eq!(entry["username"], "admin");
        assert_eq!(entry["target_type"], "webhook");
        assert_eq!(entry["target_id"], id.to_string());
        assert_eq!(entry["detail"]["url"], receiver.url());
        assert_eq!(entry["detail"]["event_types"], json!(["inventory.updated"]));
        assert!(!log.text.contains(&secret), "{action} holds the secret");
    }

    // A token a receiver put in its URL's query stays out of the audit log.
    let with_token = format!("{}?token=receiver-token-123", receiver.url());
    let tokened = register(&app, &with_token).await;
    assert_eq!(tokened["url"], with_token, "the webhook keeps its URL");
    let log = app.get("/api/v1/audit-log?action=webhook_created").await;
    let newest = &log.json["data"]["items"][0];
    assert_eq!(newest["detail"]["url"], format!("{}?***", receiver.url()));
    assert!(!log.text.contains("receiver-token-123"), "{}", log.text);
}

async fn delivery_goes_on_after_a_restart(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let webhook = register(&app, &receiver.url()).await;
    let id = webhook["id"].as_i64().unwrap();
    upsert_times(&app, 1, 1).await;
    assert_eq!(receiver.wait_for(1).await.len(), 1);

    // The receiver goes down; three events are written and their first attempts fail.
    receiver.state.down.store(true, Ordering::SeqCst);
    upsert_times(&app, 3, 100).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !deliveries(&app, id)
        .await
        .iter()
        .any(|d| d["outcome"] == "failed")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app = app.restart().await;
    receiver.state.down.store(false, Ordering::SeqCst);

    let expected = updated_event_ids(&app).await;
    assert_eq!(expected.len(), 4);
    assert_eq!(receiver.wait_for(4).await, expected);
    let failed = receiver
        .received()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(failed >= 1, "the receiver was down for some attempts");
    // Still in order: nothing after the second event reached the receiver before it.
    let first_sent: Vec<i64> =
        receiver
            .received()
            .iter()
            .map(|r| r.event_id)
            .fold(Vec::new(), |mut seen, id| {
                if !seen.contains(&id) {
                    seen.push(id);
                }
                seen
            });
    assert_eq!(first_sent, expected);
}

async fn two_instances_on_one_database_deliver_each_event_once(app: TestApp) {
    let other = app.another_instance().await;
    let receiver = Receiver::start(0).await;
    register(&app, &receiver.url()).await;

    // Events written by each instance, on different rows.
    for n in 0..10 {
        let sku = format!("SKU{n:010}");
        let writer = if n % 2 == 0 { &app } else { &other };
        writer
            .post_ok(
                "/api/v1/inventory",
                &inventory_body(json!({"seller_sku": sku, "inventory": n + 1})),
            )
            .await;
    }
    let expected = updated_event_ids(&app).await;
    assert_eq!(expected.len(), 10);
    assert_eq!(receiver.wait_for(10).await, expected);
    // Both workers keep looking for a while: still nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all: Vec<i64> = receiver.received().iter().map(|r| r.event_id).collect();
    assert_eq!(all, expected, "each event once, in order");
    assert_eq!(
        receiver.state.most_in_flight.load(Ordering::SeqCst),
        1,
        "never two deliveries of one webhook at once"
    );
}

async fn delivery_attempts_older_than_the_event_retention_are_purged(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let webhook = register(&app, &receiver.url()).await;
    let id = webhook["id"].as_i64().unwrap();
    upsert_times(&app, 3, 1).await;
    receiver.wait_for(3).await;
    let mut log = deliveries(&app, id).await;
    for _ in 0..100 {
        if log.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = deliveries(&app, id).await;
    }
    assert_eq!(log.len(), 3);
    // The two oldest attempts (the log is newest first) made long ago.
    for attempt in &log[1..] {
        let moved = app
            .execute_raw(
                "UPDATE webhook_deliveries SET attempted_at = '2026-01-01 00:00:00' WHERE id = ?",
                attempt["id"].as_i64().unwrap(),
            )
            .await;
        assert_eq!(moved, 1);
    }
    let retention = Duration::from_secs(7 * 24 * 3600);
    let store = app.state.store.as_ref();
    let purged = sellerdesk::background::purge_webhook_deliveries(store, retention)
        .await
        .expect("the purge runs");
    assert_eq!(purged, 2);
    let left = deliveries(&app, id).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], log[0]["id"]);
    let purged = sellerdesk::background::purge_webhook_deliveries(store, retention)
        .await
        .expect("the purge runs");
    assert_eq!(purged, 0);
}

async fn of_instances_claiming_one_webhook_at_once_exactly_one_holds_it(app: TestApp) {
    use sellerdesk::domain::{Timestamp, WebhookProgress};
    // No event follows the registration, so neither worker has reason to claim it itself.
    let webhook = register(&app, "http://127.0.0.1:9/hook").await;
    let id = webhook["id"].as_i64().unwrap();
    let other = app.another_instance().await;
    let until = Timestamp::now().plus(Duration::from_secs(30));

    let stores = [app.state.store.clone(), other.state.store.clone()];
    let claims = (0..10).map(|n| {
        let store = stores[n % 2].clone();
        async move {
            let owner = format!("owner-{n}");
            let won = store.claim_webhook(id, &owner, until).await.unwrap();
            won.map(|_| owner)
        }
    });
    let winners: Vec<String> = futures_join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let holder = &winners[0];

    // Held: nobody else claims it, writes progress or releases it.
    let store = &app.state.store;
    assert!(store
        .claim_webhook(id, "late", until)
        .await
        .unwrap()
        .is_none());
    let progress = |owner: &str| WebhookProgress {
        webhook_id: id,
        owner: owner.to_owned(),
        last_event_id: 0,
        attempts: 0,
        failing_since: None,
        next_attempt_at: None,
        lease_until: until,
        delivery: None,
    };
    assert!(!store
        .save_webhook_progress(&progress("late"))
        .await
        .unwrap());
    assert!(store
        .save_webhook_progress(&progress(holder))
        .await
        .unwrap());
    store.release_webhook(id, "late").await.unwrap();
    assert!(store
        .claim_webhook(id, "late", until)
        .await
        .unwrap()
        .is_none());

    // Released by its holder, or run out, it can be claimed again.
    store.release_webhook(id, holder).await.unwrap();
    let past = Timestamp::now().minus(Duration::from_secs(1));
    assert!(store
        .claim_webhook(id, "next", past)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .claim_webhook(id, "after", until)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .claim_webhook(id, "next", until)
        .await
        .unwrap()
        .is_none());
}

async fn a_sellers_webhook_follows_the_sellers_they_have_now(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let (alice_id, alice) = app.seller("alice", &["A1SELLER0001", "C3SELLER0003"]).await;
    let created = app
        .request_as(
            Method::POST,
            "/api/v1/webhooks",
            Some(&json!({"url": receiver.url(), "event_types": ["inventory.updated"]})),
            Some(&alice),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.json["data"]["seller_ids"],
        json!(["A1SELLER0001", "C3SELLER0003"])
    );
    // Alice loses C3: its events no longer reach her webhook.
    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&json!({"seller_ids": ["A1SELLER0001"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    for seller in ["C3SELLER0003", "A1SELLER0001"] {
        app.post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"seller_id": seller})),
        )
        .await;
    }
    let delivered = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            event["seller_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(bodies, ["A1SELLER0001"]);
}

/// Runs every future at once (on the test's runtime) and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// The address rule does not depend on the database: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_allowed() {
    let app = TestApp::with_config(|c| c.webhook_allow_private = false).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.1.2.3/hook",
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:9/hook",
    ] {
        let response = app
            .post(
                "/api/v1/webhooks",
                &json!({"url": url, "event_types": ["inventory.updated"]}),
            )
            .await;
        crate::helpers::assert_error_in(
            url,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "WEBHOOK_TARGET_NOT_ALLOWED",
        );
        assert_eq!(response.json["detail"][0]["field"], "url", "{url}");
    }
    let listed = app.get("/api/v1/webhooks").await;
    assert_eq!(listed.json["data"]["meta"]["total"], 0, "none was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_wants_https_urls() {
    let app = TestApp::with_config(|c| c.app_env = sellerdesk::config::AppEnv::Production).await;
    let response = app
        .post(
            "/api/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "event_types": ["inventory.updated"]}),
        )
        .await;
    assert_eq!(invalid_fields(&response), ["url"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_list_every_problem() {
    let app = TestApp::with_config(|_| {}).await;
    for (label, body, fields) in [
        ("empty", json!({}), vec!["url", "event_types"]),
        (
            "bad values",
            json!({"url": "ftp://example.com", "event_types": ["nope"], "seller_ids": ["x"]}),
            vec!["url", "event_types[0]", "seller_ids[0]"],
        ),
        (
            "no types",
            json!({"url": "http://127.0.0.1:9/", "event_types": []}),
            vec!["event_types"],
        ),
        (
            "repeated type",
            json!({"url": "http://127.0.0.1:9/", "event_types": ["inventory.updated", "inventory.updated"]}),
            vec!["event_types"],
        ),
        (
            "no sellers",
            json!({"url": "http://127.0.0.1:9/", "event_types": ["inventory.updated"], "seller_ids": []}),
            vec!["seller_ids"],
        ),
        (
            "unknown field",
            json!({"url": "http://127.0.0.1:9/", "event_types": ["inventory.updated"], "secret": "mine"}),
            vec!["secret"],
        ),
    ] {
        let response = app.post("/api/v1/webhooks", &body).await;
        assert_eq!(invalid_fields(&response), fields, "{label}");
    }
}
