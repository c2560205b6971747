//! Upserts that arrive together are written as a group, in one transaction (SQLite's write
//! queue, and MySQL's: `store/mysql/writer.rs`). Whatever shares a group, each request keeps
//! its own answer: every upsert of one key is a version of its own with its ledger entry and
//! its event, an upsert that changes nothing writes neither, and a request refused (412)
//! fails alone. Requests run at once as `tokio::spawn`ed tasks over one `Arc<TestApp>`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{id_of, inventory_body, sales_body, TestApp, TestResponse};

backend_tests!(
    simultaneous_upserts_of_one_row_are_each_a_version_with_its_entry_and_event,
    simultaneous_upserts_of_many_rows_and_batches_keep_the_books,
    simultaneous_upserts_of_one_sales_target_are_each_a_version,
    a_refused_conditional_upsert_does_not_fail_the_upserts_beside_it,
);

const INVENTORY: &str = "/api/v1/inventory";
const SALES: &str = "/api/v1/sales/target";

fn sku(n: usize) -> String {
    format!("SKU{n:010}")
}

/// Sends every body to `uri` at once; the responses in the order of `bodies`.
async fn post_all(app: &Arc<TestApp>, uri: &'static str, bodies: Vec<Value>) -> Vec<TestResponse> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let app = app.clone();
            tokio::spawn(async move { app.post(uri, &body).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("the task runs"));
    }
    responses
}

/// Every event of the feed (at most 1000), oldest first.
async fn events(app: &TestApp) -> Vec<Value> {
    let data = app
        .ok(Method::GET, "/api/v1/events?after=0&limit=1000", None)
        .await;
    data["items"].as_array().expect("items").clone()
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("an integer: {value}"))
}

/// The events of `event_type` about inventory row `id`.
fn events_of(events: &[Value], event_type: &str, id: i64) -> usize {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type && e["data"]["inventory"]["id"] == id)
        .count()
}

async fn simultaneous_upserts_of_one_row_are_each_a_version_with_its_entry_and_event(app: TestApp) {
    const RACERS: usize = 64;
    let id = id_of(
        &app.post_ok(INVENTORY, &inventory_body(json!({"inventory": 0})))
            .await,
    );
    let app = Arc::new(app);
    // Each racer sets a number of units of its own: every one of them is a change.
    let bodies = (1..=RACERS)
        .map(|n| inventory_body(json!({"inventory": n})))
        .collect();
    let responses = post_all(&app, INVENTORY, bodies).await;
    let mut versions = BTreeSet::new();
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(int(&response.json["data"]["id"]), id);
        versions.insert(int(&response.json["data"]["version"]));
    }
    // One version each, none shared, none skipped.
    let expected: BTreeSet<i64> = (2..=1 + RACERS as i64).collect();
    assert_eq!(versions, expected);

    // The row holds the units of the racer that wrote last, which answered the last version.
    let last = responses
        .iter()
        .find(|r| int(&r.json["data"]["version"]) == 1 + RACERS as i64)
        .expect("the last version");
    let row = app.row(id).await;
    assert_eq!(row["inventory"], last.json["data"]["inventory"]);
    assert_eq!(int(&row["version"]), 1 + RACERS as i64);

    // A ledger entry per change (the create and each racer's), each starting where the one
    // before it ended.
    let history = app.history(id).await;
    assert_eq!(history.len(), 1 + RACERS, "{history:?}");
    for pair in history.windows(2) {
        assert_eq!(pair[1]["inventory_before"], pair[0]["inventory_after"]);
    }
    // An event per change.
    let feed = events(&app).await;
    assert_eq!(events_of(&feed, "inventory.updated", id), 1 + RACERS);
    app.assert_books_balance().await;

    // The same units again change nothing: no version, no entry, no event.
    let units = int(&row["inventory"]);
    let same = (0..8)
        .map(|_| inventory_body(json!({"inventory": units})))
        .collect();
    for response in post_all(&app, INVENTORY, same).await {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(int(&response.json["data"]["version"]), 1 + RACERS as i64);
    }
    assert_eq!(app.history(id).await.len(), 1 + RACERS);
    let feed = events(&app).await;
    assert_eq!(events_of(&feed, "inventory.updated", id), 1 + RACERS);
}

async fn simultaneous_upserts_of_many_rows_and_batches_keep_the_books(app: TestApp) {
    const ROWS: usize = 120;
    let app = Arc::new(app);
    // Single upserts of rows 0..ROWS and batches of ten of the same rows, all at once: every
    // row is created once and changed by the others.
    let mut singles: Vec<Value> = (0..ROWS)
        .map(|n| inventory_body(json!({"seller_sku": sku(n), "inventory": n + 1})))
        .collect();
    let batches: Vec<Value> = (0..ROWS / 10)
        .map(|b| {
            let items: Vec<Value> = (b * 10..b * 10 + 10)
                .rev()
                .map(|n| inventory_body(json!({"seller_sku": sku(n), "inventory": n + 1000})))
                .collect();
            json!({ "items": items })
        })
        .collect();
    singles.rotate_left(ROWS / 3);
    let (singles, batches) = tokio::join!(
        post_all(&app, INVENTORY, singles),
        post_all(&app, "/api/v1/inventory/batch", batches),
    );
    for response in singles.iter().chain(&batches) {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    for batch in &batches {
        let items = batch.json["data"]["items"].as_array().expect("items");
        assert_eq!(items.len(), 10, "{}", batch.text);
    }

    // Each row: created by one, changed by the other (their units differ): version 2, two
    // entries, two events; ids distinct.
    let feed = events(&app).await;
    let mut ids = BTreeSet::new();
    for n in 0..ROWS {
        let single = singles
            .iter()
            .find(|r| r.json["data"]["seller_sku"] == sku(n).as_str())
            .expect("the single upsert of the row");
        let id = int(&single.json["data"]["id"]);
        ids.insert(id);
        let row = app.row(id).await;
        assert_eq!(int(&row["version"]), 2, "{row}");
        assert_eq!(app.history(id).await.len(), 2, "row {id}");
        assert_eq!(events_of(&feed, "inventory.updated", id), 2, "row {id}");
    }
    assert_eq!(ids.len(), ROWS);
    // Event ids grow in the order of the feed.
    let event_ids: Vec<i64> = feed.iter().map(|e| int(&e["id"])).collect();
    assert!(event_ids.windows(2).all(|w| w[0] < w[1]), "{event_ids:?}");
    assert_eq!(app.assert_books_balance().await, ROWS as u64);
}

async fn simultaneous_upserts_of_one_sales_target_are_each_a_version(app: TestApp) {
    const RACERS: usize = 48;
    let app = Arc::new(app);
    // Racers on one key, and as many on keys of their own, all at once.
    let mut bodies: Vec<Value> = (0..RACERS)
        .map(|n| sales_body(json!({"sales_target": 100 + n})))
        .collect();
    bodies
        .extend((0..RACERS).map(|n| sales_body(json!({"parent_asin": format!("B0OTHER{n:05}")}))));
    let responses = post_all(&app, SALES, bodies).await;
    let mut versions = BTreeSet::new();
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    for response in &responses[..RACERS] {
        versions.insert(int(&response.json["data"]["version"]));
    }
    let expected: BTreeSet<i64> = (1..=RACERS as i64).collect();
    assert_eq!(versions, expected);
    for response in &responses[RACERS..] {
        assert_eq!(
            int(&response.json["data"]["version"]),
            1,
            "{}",
            response.text
        );
    }
    let feed = events(&app).await;
    let updated = feed
        .iter()
        .filter(|e| e["event_type"] == "sales_target.updated")
        .count();
    assert_eq!(updated, 2 * RACERS);
}

async fn a_refused_conditional_upsert_does_not_fail_the_upserts_beside_it(app: TestApp) {
    const ROWS: usize = 40;
    for n in 0..ROWS {
        app.post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": sku(n), "inventory": 1})),
        )
        .await;
    }
    let app = Arc::new(app);
    // For each row at once: an upsert naming a version it does not have (412), one that
    // names the version it has (`If-Match: "1"`), and a plain one of another row.
    let tasks: Vec<_> = (0..ROWS)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let (refused, other) = (sku(n), sku(n + ROWS));
                let plain_body = inventory_body(json!({"seller_sku": other, "inventory": 3}));
                tokio::join!(
                    conditional(&app, &refused, 5, "\"7\""),
                    app.post(INVENTORY, &plain_body),
                )
            })
        })
        .collect();
    for task in tasks {
        let (stale, plain) = task.await.expect("the task runs");
        assert_eq!(
            stale.status,
            StatusCode::PRECONDITION_FAILED,
            "{}",
            stale.text
        );
        assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
        assert_eq!(int(&plain.json["data"]["version"]), 1);
    }
    for n in 0..ROWS {
        let response = conditional(&app, &sku(n), 9, "\"1\"").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(int(&response.json["data"]["version"]), 2);
        assert_eq!(int(&response.json["data"]["inventory"]), 9);
    }
    assert_eq!(app.assert_books_balance().await, 2 * ROWS as u64);
}

/// An upsert of `units` of `sku` with `If-Match: <etag>`.
async fn conditional(app: &TestApp, sku: &str, units: i64, etag: &str) -> TestResponse {
    let body = inventory_body(json!({"seller_sku": sku, "inventory": units}));
    let request = Request::builder()
        .method(Method::POST)
        .uri(INVENTORY)
        .header("content-type", "application/json")
        .header("if-match", etag)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}
