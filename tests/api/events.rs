//! The event feed over HTTP, on every backend: each change writes its events in its own
//! transaction, `GET /api/v1/events` reads them in id order with filters, paging, seller scope
//! and a long poll, and old events are purged. `docs/api.md` ("Event feed") is the contract.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, id_of, invalid_fields, inventory_body, reservation_body, sales_body, TestApp,
};

const EVENTS: &str = "/api/v1/events";
const INVENTORY: &str = "/api/v1/inventory";
const RESERVATIONS: &str = "/api/v1/reservations";
const SALES: &str = "/api/v1/sales/target";
const SELLER_A: &str = "A1SELLER0001";
const SELLER_B: &str = "B1SELLER0001";

backend_tests!(
    every_change_writes_its_event_with_the_row_after_it_in_id_order,
    refused_operations_and_upserts_that_change_nothing_write_no_event,
    a_batch_or_a_reservation_of_several_rows_writes_one_event_per_changed_row,
    a_low_warning_comes_when_the_stock_level_worsens_and_not_when_it_improves,
    types_and_seller_id_filter_the_feed_and_sellers_see_only_their_own,
    after_and_limit_page_through_the_feed,
    bad_parameters_of_the_feed_are_refused_with_every_problem,
    a_long_poll_returns_as_soon_as_an_event_is_written,
    a_long_poll_with_nothing_to_return_answers_empty_after_its_wait,
    events_older_than_the_retention_are_purged_and_newer_ones_kept,
);

// ---- Helpers --------------------------------------------------------------------------------

/// The events after `after`, as the admin reads them (every type, up to 1000).
async fn events_after(app: &TestApp, after: i64) -> Vec<Value> {
    let data = app
        .ok(
            Method::GET,
            &format!("{EVENTS}?after={after}&limit=1000"),
            None,
        )
        .await;
    data["items"].as_array().expect("items").clone()
}

/// The id of the newest event, or 0.
async fn last_id(app: &TestApp) -> i64 {
    events_after(app, 0).await.last().map_or(0, id_of)
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().expect("an event_type"))
        .collect()
}

fn assert_ids_grow(events: &[Value]) {
    let ids: Vec<i64> = events.iter().map(id_of).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
}

/// Creates (or updates) the row of `sku` of seller A in US with `units` on hand.
async fn stock(app: &TestApp, sku: &str, units: i64) -> Value {
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_sku": sku, "inventory": units})),
    )
    .await
}

async fn hold(app: &TestApp, sku: &str, quantity: i64, reference: &str) -> Value {
    app.reserve_ok(&reservation_body(json!({
        "reference_id": reference,
        "items": [{"seller_sku": sku, "quantity": quantity}]
    })))
    .await
}

async fn set_thresholds(app: &TestApp, id: i64, warning: Value, critical: Value) {
    let body = json!({"warning_threshold": warning, "critical_threshold": critical});
    app.ok(
        Method::PUT,
        &format!("{INVENTORY}/{id}/thresholds"),
        Some(&body),
    )
    .await;
}

async fn adjust(app: &TestApp, id: i64, kind: &str, quantity: i64) -> Value {
    app.post_ok(
        &format!("{INVENTORY}/{id}/adjust"),
        &json!({"adjustment_type": kind, "quantity": quantity, "reason": "cycle count"}),
    )
    .await
}

// ---- Tests ----------------------------------------------------------------------------------

async fn every_change_writes_its_event_with_the_row_after_it_in_id_order(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);

    let first = hold(&app, "SKU0000000001", 2, "cart:1").await;
    app.ok(
        Method::DELETE,
        &format!("{RESERVATIONS}/{}", id_of(&first)),
        None,
    )
    .await;
    let second = hold(&app, "SKU0000000001", 3, "cart:2").await;
    app.post_ok(
        &format!("{RESERVATIONS}/{}/commit", id_of(&second)),
        &json!({"order_id": "order-1"}),
    )
    .await;
    let adjusted = adjust(&app, id, "increase", 5).await;
    set_thresholds(&app, id, json!(20), json!(5)).await;
    let third = hold(&app, "SKU0000000001", 1, "cart:3").await;
    app.move_deadline(
        id_of(&third),
        chrono::Utc::now() - chrono::Duration::seconds(60),
    )
    .await;
    app.ok(Method::POST, &format!("{RESERVATIONS}/cleanup"), None)
        .await;
    let target = app.post_ok(SALES, &sales_body(json!({}))).await;
    app.ok(Method::DELETE, &format!("{SALES}/{}", id_of(&target)), None)
        .await;
    app.ok(Method::DELETE, &format!("{INVENTORY}/{id}"), None)
        .await;

    let events = events_after(&app, 0).await;
    assert_eq!(
        types(&events),
        [
            "inventory.updated",
            "inventory.stock.reserved",
            "inventory.stock.released",
            "inventory.stock.reserved",
            "inventory.stock.deducted",
            "inventory.stock.adjusted",
            "inventory.updated",
            "inventory.stock.low_warning",
            "inventory.stock.reserved",
            "inventory.stock.expired",
            "sales_target.updated",
            "sales_target.deleted",
            "inventory.deleted",
        ],
        "{events:#?}"
    );
    assert_ids_grow(&events);
    for event in &events {
        assert!(event["occurred_at"].is_string(), "{event}");
        let seller = event["seller_id"].as_str();
        assert_eq!(seller, Some(SELLER_A), "{event}");
    }

    // The row as the API returns it, after the change.
    assert_eq!(events[0]["data"]["inventory"], row, "creation");
    let reserved = &events[1]["data"];
    assert_eq!(reserved["inventory"]["reserved"], 2);
    assert_eq!(reserved["inventory"]["available"], 8);
    assert_eq!(reserved["reservation"]["id"], first["id"]);
    assert_eq!(reserved["reservation"]["status"], "active");
    let released = &events[2]["data"];
    assert_eq!(released["inventory"]["reserved"], 0);
    assert_eq!(released["reservation"]["status"], "released");
    let deducted = &events[4]["data"];
    assert_eq!(deducted["inventory"]["inventory"], 7);
    assert_eq!(deducted["reservation"]["status"], "committed");
    assert_eq!(deducted["reservation"]["order_id"], "order-1");
    let adjustment = &events[5]["data"];
    assert_eq!(adjustment["inventory"], adjusted["inventory"]);
    assert_eq!(adjustment["transaction"], adjusted["transaction"]);
    assert_eq!(adjustment["transaction"]["type"], "adjust");
    assert_eq!(events[6]["data"]["inventory"]["warning_threshold"], 20);
    let warning = &events[7]["data"];
    assert_eq!(warning["stock_level_before"], "ok");
    assert_eq!(warning["inventory"]["stock_level"], "warning");
    assert_eq!(events[8]["data"]["reservation"]["id"], third["id"]);
    assert_eq!(events[9]["data"]["reservation"]["status"], "expired");
    assert_eq!(events[9]["data"]["inventory"]["reserved"], 0);
    assert_eq!(events[10]["data"]["sales_target"], target);
    assert_eq!(events[11]["data"]["sales_target"]["id"], target["id"]);
    let deleted = &events[12]["data"]["inventory"];
    assert_eq!(deleted["id"], id);
    assert_eq!(deleted["inventory"], 12);
    // The last event is the row as it was when deleted: as the API showed it last.
    let shown = &events[9]["data"]["inventory"];
    assert_eq!(deleted["version"], shown["version"]);

    // Version of the row in each event: one more with each change.
    let versions: Vec<i64> = events[..10]
        .iter()
        .filter(|e| e["event_type"] != "inventory.stock.low_warning")
        .map(|e| e["data"]["inventory"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, (1..=9).collect::<Vec<i64>>());
}

async fn refused_operations_and_upserts_that_change_nothing_write_no_event(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 5).await;
    let id = id_of(&row);
    let target = app.post_ok(SALES, &sales_body(json!({}))).await;
    let after = last_id(&app).await;
    assert_eq!(events_after(&app, 0).await.len(), 2);

    // The same values again: nothing changes.
    stock(&app, "SKU0000000001", 5).await;
    // 409: more than is available; an adjustment below zero.
    let refused = app
        .post(
            RESERVATIONS,
            &reservation_body(json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 6}]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let refused = app
        .post(
            &format!("{INVENTORY}/{id}/adjust"),
            &json!({"adjustment_type": "decrease", "quantity": 6, "reason": "count"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    // 412: a stale version.
    let stale = app
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri(INVENTORY)
                .header("content-type", "application/json")
                .header("if-match", "\"7\"")
                .body(axum::body::Body::from(
                    inventory_body(json!({"seller_sku": "SKU0000000001", "inventory": 9}))
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.text
    );
    // 422: a bad body.
    let invalid = app
        .post(INVENTORY, &inventory_body(json!({"inventory": -1})))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A thresholds write that sets what the row has.
    set_thresholds(&app, id, Value::Null, Value::Null).await;
    // 404s.
    let missing = app
        .delete(&format!("{SALES}/{}", id_of(&target) + 100))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    assert_eq!(events_after(&app, after).await, Vec::<Value>::new());
}

async fn a_batch_or_a_reservation_of_several_rows_writes_one_event_per_changed_row(app: TestApp) {
    let items: Vec<Value> = (1..=3)
        .map(|i| inventory_body(json!({"seller_sku": format!("SKU000000000{i}"), "inventory": 10})))
        .collect();
    let rows = app
        .post_ok(&format!("{INVENTORY}/batch"), &json!({"items": items}))
        .await;
    let events = events_after(&app, 0).await;
    assert_eq!(types(&events), ["inventory.updated"; 3]);
    let ids: Vec<i64> = events
        .iter()
        .map(|e| id_of(&e["data"]["inventory"]))
        .collect();
    let stored: Vec<i64> = rows["items"]
        .as_array()
        .map(|items| items.iter().map(id_of).collect())
        .unwrap_or_else(|| rows.as_array().unwrap().iter().map(id_of).collect());
    assert_eq!(ids, stored);

    // Again, with one row changed: one event, for that row.
    let after = last_id(&app).await;
    let mut items: Vec<Value> = (1..=3)
        .map(|i| inventory_body(json!({"seller_sku": format!("SKU000000000{i}"), "inventory": 10})))
        .collect();
    items[1]["inventory"] = json!(11);
    app.post_ok(&format!("{INVENTORY}/batch"), &json!({"items": items}))
        .await;
    let events = events_after(&app, after).await;
    assert_eq!(types(&events), ["inventory.updated"]);
    assert_eq!(
        events[0]["data"]["inventory"]["seller_sku"],
        "SKU0000000002"
    );
    assert_eq!(events[0]["data"]["inventory"]["inventory"], 11);

    // Sales targets: every write of a target is a change.
    let after = last_id(&app).await;
    let targets: Vec<Value> = [("2026-10", json!(100)), ("2026-11", json!(0.07))]
        .iter()
        .map(|(period, amount)| sales_body(json!({"period": period, "sales_target": amount})))
        .collect();
    let stored = app
        .post_ok(&format!("{SALES}/batch"), &json!({"items": targets}))
        .await;
    let events = events_after(&app, after).await;
    assert_eq!(types(&events), ["sales_target.updated"; 2]);
    // `data` is the target exactly as the API answered it (whole and fractional amounts).
    let answered = stored["items"].as_array().or(stored.as_array()).unwrap();
    assert_eq!(answered.len(), 2, "{stored}");
    for (event, target) in events.iter().zip(answered) {
        assert_eq!(&event["data"]["sales_target"], target);
    }

    // A reservation of three SKUs: three events, each with its row and the reservation.
    let after = last_id(&app).await;
    let reservation = app
        .reserve_ok(&reservation_body(json!({"items": [
            {"seller_sku": "SKU0000000001", "quantity": 1},
            {"seller_sku": "SKU0000000002", "quantity": 2},
            {"seller_sku": "SKU0000000003", "quantity": 3},
        ]})))
        .await;
    let events = events_after(&app, after).await;
    assert_eq!(types(&events), ["inventory.stock.reserved"; 3]);
    assert_ids_grow(&events);
    for (event, (sku, reserved)) in events.iter().zip([
        ("SKU0000000001", 1),
        ("SKU0000000002", 2),
        ("SKU0000000003", 3),
    ]) {
        assert_eq!(event["data"]["inventory"]["seller_sku"], sku);
        assert_eq!(event["data"]["inventory"]["reserved"], reserved);
        assert_eq!(event["data"]["reservation"], reservation);
    }
}

async fn a_low_warning_comes_when_the_stock_level_worsens_and_not_when_it_improves(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    // ok stays ok: no warning.
    set_thresholds(&app, id, json!(5), json!(2)).await;
    let after = last_id(&app).await;

    stock(&app, "SKU0000000001", 4).await; // ok → warning
    stock(&app, "SKU0000000001", 8).await; // warning → ok
    adjust(&app, id, "set", 2).await; // ok → critical
    let held = hold(&app, "SKU0000000001", 2, "cart:1").await; // critical → out_of_stock
    app.ok(
        Method::DELETE,
        &format!("{RESERVATIONS}/{}", id_of(&held)),
        None,
    )
    .await; // out_of_stock → critical

    let events = events_after(&app, after).await;
    assert_eq!(
        types(&events),
        [
            "inventory.updated",
            "inventory.stock.low_warning",
            "inventory.updated",
            "inventory.stock.adjusted",
            "inventory.stock.low_warning",
            "inventory.stock.reserved",
            "inventory.stock.low_warning",
            "inventory.stock.released",
        ],
        "{events:#?}"
    );
    let levels: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|e| e["event_type"] == "inventory.stock.low_warning")
        .map(|e| {
            (
                &e["data"]["stock_level_before"],
                &e["data"]["inventory"]["stock_level"],
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            (&json!("ok"), &json!("warning")),
            (&json!("ok"), &json!("critical")),
            (&json!("critical"), &json!("out_of_stock")),
        ]
    );
}

async fn types_and_seller_id_filter_the_feed_and_sellers_see_only_their_own(app: TestApp) {
    let row_a = stock(&app, "SKU0000000001", 10).await;
    app.post_ok(
        INVENTORY,
        &inventory_body(
            json!({"seller_id": SELLER_B, "seller_sku": "SKU0000000001", "inventory": 10}),
        ),
    )
    .await;
    hold(&app, "SKU0000000001", 1, "cart:1").await;
    app.post_ok(SALES, &sales_body(json!({"seller_id": SELLER_B})))
        .await;

    let read = |uri: String| {
        let app = &app;
        async move { app.ok(Method::GET, &uri, None).await }
    };
    let of_type = read(format!(
        "{EVENTS}?types=inventory.stock.reserved,sales_target.updated"
    ))
    .await;
    assert_eq!(
        types(of_type["items"].as_array().unwrap()),
        ["inventory.stock.reserved", "sales_target.updated"]
    );
    let of_b = read(format!("{EVENTS}?seller_id={SELLER_B}")).await;
    assert_eq!(
        types(of_b["items"].as_array().unwrap()),
        ["inventory.updated", "sales_target.updated"]
    );
    let both = read(format!(
        "{EVENTS}?seller_id={SELLER_B}&types=sales_target.updated"
    ))
    .await;
    assert_eq!(both["items"].as_array().unwrap().len(), 1);

    // A seller of A sees A's events only, and may not ask for B's.
    let (_, token) = app.seller("seller-a", &[SELLER_A]).await;
    let own = app
        .request_as(Method::GET, EVENTS, None, Some(&token))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let own = own.json["data"]["items"].as_array().unwrap().clone();
    assert_eq!(
        types(&own),
        ["inventory.updated", "inventory.stock.reserved"]
    );
    assert!(own.iter().all(|e| e["seller_id"] == SELLER_A));
    assert_eq!(own[0]["data"]["inventory"], row_a);
    let foreign = app
        .request_as(
            Method::GET,
            &format!("{EVENTS}?seller_id={SELLER_B}"),
            None,
            Some(&token),
        )
        .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");
    // A seller of B only: B's events.
    let (_, token_b) = app.seller("seller-b", &[SELLER_B]).await;
    let theirs = app
        .request_as(Method::GET, EVENTS, None, Some(&token_b))
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    let theirs = theirs.json["data"]["items"].as_array().unwrap().clone();
    assert_eq!(
        types(&theirs),
        ["inventory.updated", "sales_target.updated"]
    );
}

async fn after_and_limit_page_through_the_feed(app: TestApp) {
    for i in 1..=5 {
        stock(&app, &format!("SKU000000000{i}"), 10).await;
    }
    let all = events_after(&app, 0).await;
    assert_eq!(all.len(), 5);
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let data = app
            .ok(
                Method::GET,
                &format!("{EVENTS}?after={after}&limit=2"),
                None,
            )
            .await;
        let items = data["items"].as_array().unwrap().clone();
        assert_eq!(data["meta"]["limit"], 2);
        let next = data["meta"]["next_after"].as_i64().unwrap();
        let has_next = data["meta"]["has_next"].as_bool().unwrap();
        pages.push(items.len());
        if items.is_empty() {
            assert_eq!(next, after, "an empty page keeps after");
            assert!(!has_next);
            break;
        }
        assert_eq!(next, id_of(items.last().unwrap()));
        assert!(items.iter().all(|e| id_of(e) > after));
        after = next;
        if !has_next {
            break;
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(after, id_of(all.last().unwrap()));
    // The default limit and after.
    let data = app.ok(Method::GET, EVENTS, None).await;
    assert_eq!(data["meta"]["limit"], 100);
    assert_eq!(data["items"].as_array().unwrap().len(), 5);
    // A page is written by a serialiser of its own (sized for the page): still the JSON
    // envelope, labelled as such.
    let response = app.get(EVENTS).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.json["code"], 200);
    assert_eq!(response.json["message"], "Success");
    assert_eq!(response.json["data"], data);
}

async fn bad_parameters_of_the_feed_are_refused_with_every_problem(app: TestApp) {
    let response = app
        .get(&format!(
            "{EVENTS}?after=-1&limit=0&types=inventory.updated,inventory.nope&wait=31&seller_id=x&other=1"
        ))
        .await;
    let mut fields = invalid_fields(&response);
    fields.sort();
    assert_eq!(
        fields,
        ["after", "limit", "other", "seller_id", "types", "wait"],
        "{}",
        response.text
    );
    for ok in ["limit=1000", "limit=1", "wait=0", "types=inventory.deleted"] {
        let response = app.get(&format!("{EVENTS}?{ok}")).await;
        assert_eq!(response.status, StatusCode::OK, "{ok}: {}", response.text);
    }
    let response = app.get(&format!("{EVENTS}?limit=1001")).await;
    assert_error(
        &response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );
}

async fn a_long_poll_returns_as_soon_as_an_event_is_written(app: TestApp) {
    stock(&app, "SKU0000000001", 10).await;
    let after = last_id(&app).await;
    let started = Instant::now();
    let uri = format!("{EVENTS}?after={after}&wait=10");
    let (polled, ()) = tokio::join!(app.get(&uri), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stock(&app, "SKU0000000002", 10).await;
    });
    let took = started.elapsed();
    assert_eq!(polled.status, StatusCode::OK, "{}", polled.text);
    let items = polled.json["data"]["items"].as_array().unwrap();
    assert_eq!(types(items), ["inventory.updated"]);
    assert_eq!(items[0]["data"]["inventory"]["seller_sku"], "SKU0000000002");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "woken early: {took:?}");

    // An event it does not match does not end it; a matching one does.
    let after = last_id(&app).await;
    let uri = format!("{EVENTS}?after={after}&wait=10&types=inventory.deleted");
    let (polled, ()) = tokio::join!(app.get(&uri), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stock(&app, "SKU0000000003", 10).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = id_of(&stock(&app, "SKU0000000003", 10).await);
        app.ok(Method::DELETE, &format!("{INVENTORY}/{id}"), None)
            .await;
    });
    let items = polled.json["data"]["items"].as_array().unwrap();
    assert_eq!(types(items), ["inventory.deleted"], "{}", polled.text);
}

async fn a_long_poll_with_nothing_to_return_answers_empty_after_its_wait(app: TestApp) {
    stock(&app, "SKU0000000001", 10).await;
    let after = last_id(&app).await;
    let started = Instant::now();
    let polled = app.get(&format!("{EVENTS}?after={after}&wait=1")).await;
    let took = started.elapsed();
    assert_eq!(polled.status, StatusCode::OK, "{}", polled.text);
    assert_eq!(polled.json["data"]["items"], json!([]));
    assert_eq!(polled.json["data"]["meta"]["next_after"], after);
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Without wait, at once.
    let started = Instant::now();
    let polled = app.get(&format!("{EVENTS}?after={after}")).await;
    assert_eq!(polled.json["data"]["items"], json!([]));
    assert!(started.elapsed() < Duration::from_millis(900));
}

async fn events_older_than_the_retention_are_purged_and_newer_ones_kept(app: TestApp) {
    for i in 1..=3 {
        stock(&app, &format!("SKU000000000{i}"), 10).await;
    }
    let events = events_after(&app, 0).await;
    let old: Vec<i64> = events[..2].iter().map(id_of).collect();
    for id in &old {
        let moved = app
            .execute_raw(
                "UPDATE events SET occurred_at = '2026-01-01 00:00:00' WHERE id = ?",
                *id,
            )
            .await;
        assert_eq!(moved, 1);
    }
    let retention = Duration::from_secs(7 * 24 * 3600);
    let purged = sellerdesk::background::purge_events(app.state.store.as_ref(), retention)
        .await
        .expect("the purge runs");
    assert_eq!(purged, 2);
    let left = events_after(&app, 0).await;
    assert_eq!(left, events[2..].to_vec());
    // Nothing more to purge.
    let purged = sellerdesk::background::purge_events(app.state.store.as_ref(), retention)
        .await
        .expect("the purge runs");
    assert_eq!(purged, 0);
}
