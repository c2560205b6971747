//! Safe retries with `Idempotency-Key` (docs/api.md, "Safe retries"), on every backend: a
//! repeat is answered with the first response and changes nothing, a key names one request
//! only, per user, even when the repeats race; failures are not kept, expired keys are new,
//! and a restart still replays.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, field_errors, id_of, inventory_body, reservation_body, TestApp, TestResponse,
};

const RESERVATIONS: &str = "/api/v1/reservations";
const INVENTORY: &str = "/api/v1/inventory";
const SELLER_A: &str = "A1SELLER0001";
const SKU: &str = "SKU0000000001";

backend_tests!(
    a_replayed_reservation_answers_the_same_and_reserves_once,
    a_replayed_adjustment_adjusts_once,
    a_refusal_is_kept_and_replayed_as_it_was,
    a_key_used_with_another_request_is_refused,
    keys_are_per_user,
    racing_requests_with_one_key_reserve_once,
    a_request_still_running_holds_its_key_until_its_lease_ends,
    a_server_error_is_not_kept_and_a_retry_runs_again,
    a_key_replays_after_a_restart,
    the_auth_endpoints_and_reads_ignore_the_key,
    an_invalid_key_is_refused_and_nothing_runs,
    an_expired_key_counts_as_new_and_is_purged,
);

// ---- Helpers --------------------------------------------------------------------------------

/// `method uri` with `body` as JSON and `Idempotency-Key: key`, as the holder of `token` (the
/// admin when `None`).
async fn keyed(
    app: &TestApp,
    (method, uri): (Method, &str),
    body: Option<&Value>,
    key: &[u8],
    token: Option<&str>,
) -> TestResponse {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("idempotency-key", key);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    app.send(request.body(body).unwrap()).await
}

async fn reserve_with(app: &TestApp, body: &Value, key: &str) -> TestResponse {
    keyed(
        app,
        (Method::POST, RESERVATIONS),
        Some(body),
        key.as_bytes(),
        None,
    )
    .await
}

async fn adjust_with(app: &TestApp, id: i64, quantity: i64, key: &str) -> TestResponse {
    let body = json!({"adjustment_type": "increase", "quantity": quantity, "reason": "delivery"});
    let uri = format!("{INVENTORY}/{id}/adjust");
    keyed(app, (Method::POST, &uri), Some(&body), key.as_bytes(), None).await
}

/// The row of `SKU` of seller A in US with `units` on hand; returns its id.
async fn stock(app: &TestApp, units: i64) -> i64 {
    id_of(
        &app.post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": SKU, "inventory": units})),
        )
        .await,
    )
}

fn replayed(response: &TestResponse) -> bool {
    response
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// Insists that `again` is `first` replayed: same status and body, same kept headers.
fn assert_replay_of(again: &TestResponse, first: &TestResponse) {
    assert!(!replayed(first), "a first response is no replay");
    assert!(replayed(again), "the repeat is marked as a replay");
    assert_eq!(again.status, first.status, "{}", again.text);
    assert_eq!(again.text, first.text, "the same body, byte for byte");
    for header in ["content-type", "location", "etag"] {
        assert_eq!(
            again.headers.get(header),
            first.headers.get(header),
            "{header}"
        );
    }
}

/// `(inventory, reserved)` of row `id` now, and how many ledger entries it has.
async fn books(app: &TestApp, id: i64) -> (i64, i64, usize) {
    let row = app.row(id).await;
    let n = |field: &str| row[field].as_i64().expect("a number");
    (n("inventory"), n("reserved"), app.history(id).await.len())
}

async fn reservation_count(app: &TestApp) -> u64 {
    let data = app.ok(Method::GET, RESERVATIONS, None).await;
    data["meta"]["total"].as_u64().expect("a total")
}

async fn admin_id(app: &TestApp) -> i64 {
    id_of(&app.ok(Method::GET, "/api/v1/auth/me", None).await)
}

// ---- Tests ----------------------------------------------------------------------------------

async fn a_replayed_reservation_answers_the_same_and_reserves_once(app: TestApp) {
    let id = stock(&app, 10).await;
    let body = reservation_body(json!({"items": [{"seller_sku": SKU, "quantity": 3}]}));
    let first = reserve_with(&app, &body, "cart-0001-try").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(first.headers.contains_key("location"));
    let after_first = books(&app, id).await;
    assert_eq!((after_first.0, after_first.1), (10, 3));

    for _ in 0..2 {
        let again = reserve_with(&app, &body, "cart-0001-try").await;
        assert_replay_of(&again, &first);
    }
    assert_eq!(
        books(&app, id).await,
        after_first,
        "nothing more reserved or written"
    );
    assert_eq!(reservation_count(&app).await, 1);
    app.assert_books_balance().await;
}

async fn a_replayed_adjustment_adjusts_once(app: TestApp) {
    let id = stock(&app, 10).await;
    let first = adjust_with(&app, id, 5, "delivery-77").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let after_first = books(&app, id).await;
    assert_eq!(after_first.0, 15);

    let again = adjust_with(&app, id, 5, "delivery-77").await;
    assert_replay_of(&again, &first);
    assert_eq!(books(&app, id).await, after_first, "adjusted once");

    // Another key is another operation.
    let other = adjust_with(&app, id, 5, "delivery-78").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert!(!replayed(&other));
    assert_eq!(books(&app, id).await.0, 20);
}

async fn a_refusal_is_kept_and_replayed_as_it_was(app: TestApp) {
    let id = stock(&app, 1).await;
    let body = reservation_body(json!({"items": [{"seller_sku": SKU, "quantity": 5}]}));
    let first = reserve_with(&app, &body, "short-cart").await;
    assert_error(&first, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");

    // Units arrive; the key still names the request that was refused, and its answer stands
    // (the request id in the body is the first request's).
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_sku": SKU, "inventory": 50})),
    )
    .await;
    let again = reserve_with(&app, &body, "short-cart").await;
    assert_replay_of(&again, &first);
    assert_eq!(again.json["error_code"], "INSUFFICIENT_INVENTORY");
    assert_eq!(books(&app, id).await.1, 0, "nothing reserved");
    assert_eq!(reservation_count(&app).await, 0);
}

async fn a_key_used_with_another_request_is_refused(app: TestApp) {
    let id = stock(&app, 10).await;
    let first = adjust_with(&app, id, 2, "k-1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    // Another body, another path, another method: each is another request.
    let other_body = adjust_with(&app, id, 3, "k-1").await;
    assert_error(
        &other_body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    let reserve = json!({"items": [{"seller_sku": SKU, "quantity": 1}]});
    let other_path = reserve_with(&app, &reservation_body(reserve), "k-1").await;
    assert_error(
        &other_path,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    let uri = format!("{INVENTORY}/{id}/adjust?note=1");
    let body = json!({"adjustment_type": "increase", "quantity": 2, "reason": "delivery"});
    let other_query = keyed(&app, (Method::POST, &uri), Some(&body), b"k-1", None).await;
    assert_error(
        &other_query,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    let row_uri = format!("{INVENTORY}/{id}");
    let delete = keyed(&app, (Method::DELETE, &row_uri), None, b"k-1", None).await;
    assert_error(
        &delete,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );

    assert_eq!(books(&app, id).await.0, 12, "none of them ran");
    assert_eq!(reservation_count(&app).await, 0);
    // The first request still replays.
    assert_replay_of(&adjust_with(&app, id, 2, "k-1").await, &first);
}

async fn keys_are_per_user(app: TestApp) {
    let id = stock(&app, 10).await;
    let (_, seller) = app.seller("seller.one", &[SELLER_A]).await;
    let body = reservation_body(json!({"items": [{"seller_sku": SKU, "quantity": 2}]}));
    let by_admin = reserve_with(&app, &body, "shared-key").await;
    assert_eq!(by_admin.status, StatusCode::CREATED, "{}", by_admin.text);

    let request = (Method::POST, RESERVATIONS);
    let by_seller = keyed(&app, request, Some(&body), b"shared-key", Some(&seller)).await;
    assert_eq!(by_seller.status, StatusCode::CREATED, "{}", by_seller.text);
    assert!(!replayed(&by_seller), "another user's key is another key");
    assert_ne!(
        id_of(&by_seller.json["data"]),
        id_of(&by_admin.json["data"])
    );
    assert_eq!(
        books(&app, id).await.1,
        4,
        "both reservations hold their units"
    );

    // Each user's repeat replays their own response.
    let request = (Method::POST, RESERVATIONS);
    let seller_again = keyed(&app, request, Some(&body), b"shared-key", Some(&seller)).await;
    assert_replay_of(&seller_again, &by_seller);
    assert_replay_of(&reserve_with(&app, &body, "shared-key").await, &by_admin);
    assert_eq!(reservation_count(&app).await, 2);
}

async fn racing_requests_with_one_key_reserve_once(app: TestApp) {
    let id = stock(&app, 100).await;
    let app = Arc::new(app);
    let body = reservation_body(json!({"items": [{"seller_sku": SKU, "quantity": 7}]}));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { reserve_with(&app, &body, "racing-cart").await })
        })
        .collect();
    let mut ran = Vec::new();
    let mut replays = Vec::new();
    for task in tasks {
        let response = task.await.expect("the request task ends");
        match response.status {
            StatusCode::CREATED if replayed(&response) => replays.push(response),
            StatusCode::CREATED => ran.push(response),
            _ => assert_error(&response, StatusCode::CONFLICT, "IDEMPOTENCY_KEY_IN_USE"),
        }
    }
    assert_eq!(ran.len(), 1, "exactly one of the racing requests ran");
    for replay in &replays {
        assert_replay_of(replay, &ran[0]);
    }
    assert_eq!(books(&app, id).await.1, 7, "reserved once");
    assert_eq!(reservation_count(&app).await, 1);
    // Once the first has finished, every repeat is its replay.
    assert_replay_of(&reserve_with(&app, &body, "racing-cart").await, &ran[0]);
    app.assert_books_balance().await;
}

async fn a_request_still_running_holds_its_key_until_its_lease_ends(app: TestApp) {
    let id = stock(&app, 10).await;
    let admin = admin_id(&app).await;
    let first = adjust_with(&app, id, 1, "in-flight").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    // Make the key look as a request that is still running leaves it: claimed, no response.
    let running = "UPDATE idempotency_keys SET status = NULL, headers = NULL, body = NULL, \
         locked_until = '2999-01-01 00:00:00' WHERE user_id = ?";
    assert_eq!(app.execute_raw(running, admin).await, 1);
    let meanwhile = adjust_with(&app, id, 1, "in-flight").await;
    assert_error(&meanwhile, StatusCode::CONFLICT, "IDEMPOTENCY_KEY_IN_USE");
    assert!(meanwhile.headers.contains_key("retry-after"));
    // A different request with the key is still a misuse of it.
    let other = adjust_with(&app, id, 2, "in-flight").await;
    assert_error(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(books(&app, id).await.0, 11);

    // Its process died: once the lease has run out, a retry takes the key over and runs.
    let crashed = "UPDATE idempotency_keys SET locked_until = '2000-01-01 00:00:00' \
         WHERE user_id = ?";
    assert_eq!(app.execute_raw(crashed, admin).await, 1);
    let retry = adjust_with(&app, id, 1, "in-flight").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(!replayed(&retry));
    assert_eq!(books(&app, id).await.0, 12);
    assert_replay_of(&adjust_with(&app, id, 1, "in-flight").await, &retry);
}

async fn a_server_error_is_not_kept_and_a_retry_runs_again(app: TestApp) {
    let id = stock(&app, 10).await;
    let admin = admin_id(&app).await;
    // Take the audit log away behind the service's back: an adjustment then fails with 500.
    app.execute_sql("ALTER TABLE audit_log RENAME TO audit_log_away")
        .await;
    let failed = adjust_with(&app, id, 4, "fails-once").await;
    assert_error(&failed, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
    // The claim was released: no row is left for the key (the delete would find it).
    assert_eq!(
        app.execute_raw("DELETE FROM idempotency_keys WHERE user_id = ?", admin)
            .await,
        0,
        "a 5xx leaves no record"
    );

    app.execute_sql("ALTER TABLE audit_log_away RENAME TO audit_log")
        .await;
    let retry = adjust_with(&app, id, 4, "fails-once").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(!replayed(&retry), "the retry ran");
    assert_eq!(books(&app, id).await.0, 14, "adjusted once, by the retry");
    assert_replay_of(&adjust_with(&app, id, 4, "fails-once").await, &retry);
}

async fn a_key_replays_after_a_restart(app: TestApp) {
    let id = stock(&app, 10).await;
    let body = reservation_body(json!({"items": [{"seller_sku": SKU, "quantity": 2}]}));
    let first = reserve_with(&app, &body, "before-restart").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    let app = app.restart().await;
    let again = reserve_with(&app, &body, "before-restart").await;
    assert_replay_of(&again, &first);
    assert_eq!(books(&app, id).await.1, 2, "reserved once");
    assert_eq!(reservation_count(&app).await, 1);
}

async fn the_auth_endpoints_and_reads_ignore_the_key(app: TestApp) {
    let form = "grant_type=password&username=admin&password=admin-password-for-tests";
    let mut tokens = Vec::new();
    for key in ["login-1", "login-1", ""] {
        let request = Request::post("/api/v1/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", key)
            .body(Body::from(form))
            .unwrap();
        let response = app.send_anonymous(request).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert!(!replayed(&response));
        tokens.push(response.json["refresh_token"].clone());
    }
    assert_ne!(tokens[0], tokens[1], "each login issued its own tokens");

    // A read is never a write to repeat: the key is not even checked.
    let id = stock(&app, 10).await;
    let uri = format!("{INVENTORY}/{id}");
    for key in [&b"read-1"[..], b"read-1", b""] {
        let read = keyed(&app, (Method::GET, &uri), None, key, None).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text);
        assert!(!replayed(&read));
    }
}

async fn an_invalid_key_is_refused_and_nothing_runs(app: TestApp) {
    let id = stock(&app, 10).await;
    let long = vec![b'k'; 256];
    for key in [&b""[..], &long, "clé".as_bytes(), b"tab\tkey"] {
        let label = String::from_utf8_lossy(key).into_owned();
        let response = adjust_with_bytes(&app, id, key).await;
        assert_error(
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        assert_eq!(
            field_errors(&response),
            [(
                "Idempotency-Key".to_owned(),
                "must be 1 to 255 printable ASCII characters".to_owned()
            )],
            "{label}"
        );
    }
    assert_eq!(books(&app, id).await.0, 10, "nothing ran");
    // The longest and the oddest printable keys are fine.
    let longest = "k".repeat(255);
    for key in [longest.as_str(), " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"] {
        let response = adjust_with(&app, id, 1, key).await;
        assert_eq!(response.status, StatusCode::OK, "{key}: {}", response.text);
    }
    assert_eq!(books(&app, id).await.0, 12);
}

async fn adjust_with_bytes(app: &TestApp, id: i64, key: &[u8]) -> TestResponse {
    let body = json!({"adjustment_type": "increase", "quantity": 1, "reason": "delivery"});
    let uri = format!("{INVENTORY}/{id}/adjust");
    keyed(app, (Method::POST, &uri), Some(&body), key, None).await
}

async fn an_expired_key_counts_as_new_and_is_purged(app: TestApp) {
    let id = stock(&app, 10).await;
    let admin = admin_id(&app).await;
    let first = adjust_with(&app, id, 1, "old-key").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    // A day later (moved in the database), the key is free: even another request may use it.
    let a_day_later = "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00' \
         WHERE user_id = ?";
    assert_eq!(app.execute_raw(a_day_later, admin).await, 1);
    let reused = adjust_with(&app, id, 2, "old-key").await;
    assert_eq!(reused.status, StatusCode::OK, "{}", reused.text);
    assert!(!replayed(&reused));
    assert_eq!(books(&app, id).await.0, 13);
    assert_replay_of(&adjust_with(&app, id, 2, "old-key").await, &reused);

    // Expire it again beside a live key: the purge takes the expired one only.
    let live = adjust_with(&app, id, 1, "live-key").await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text);
    let expire_old = "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00' \
         WHERE user_id = ? AND idem_key = 'old-key'";
    assert_eq!(app.execute_raw(expire_old, admin).await, 1);
    let store = app.state.store.as_ref();
    let purged = sellerdesk::background::purge_idempotency_keys(store).await;
    assert_eq!(purged.expect("the purge runs"), 1);
    let purged = sellerdesk::background::purge_idempotency_keys(store).await;
    assert_eq!(purged.expect("the purge runs"), 0, "nothing left to purge");
    assert_replay_of(&adjust_with(&app, id, 1, "live-key").await, &live);
    let gone = "UPDATE idempotency_keys SET claim = 0 WHERE user_id = ? AND idem_key = 'old-key'";
    assert_eq!(
        app.execute_raw(gone, admin).await,
        0,
        "the expired row is gone"
    );
}

/// The document says what the layer does, on exactly the operations it applies to.
#[tokio::test]
async fn every_write_documents_the_key_and_what_it_brings() {
    let app = TestApp::with_config(|_| {}).await;
    let doc = app.get("/openapi.json").await.json;
    let mut writes = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let has_key = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            let keyed_write = ["post", "put", "patch", "delete"].contains(&method.as_str())
                && !path.starts_with("/api/v1/auth/");
            assert_eq!(has_key, keyed_write, "{method} {path}");
            if !keyed_write {
                continue;
            }
            writes += 1;
            let header = &operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "Idempotency-Key")
                .unwrap();
            assert_eq!(header["in"], "header", "{method} {path}");
            assert_eq!(header["required"], false, "{method} {path}");
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let replayable = status.parse::<u16>().is_ok_and(|s| s < 500);
                assert_eq!(
                    response["headers"]["Idempotent-Replayed"].is_object(),
                    replayable,
                    "{method} {path} {status}"
                );
            }
            let text = |status: &str| responses[status].to_string();
            assert!(
                text("409").contains("IDEMPOTENCY_KEY_IN_USE"),
                "{method} {path}"
            );
            assert!(
                text("422").contains("IDEMPOTENCY_KEY_REUSED"),
                "{method} {path}"
            );
        }
    }
    assert!(writes >= 15, "every write of the API: {writes}");
}
