//! Conditional requests (docs/api.md, "Conditional requests"): every single-row answer carries
//! `ETag: "<version>"`; a `GET` whose `If-None-Match` names it is 304; `If-Match` and
//! `If-None-Match` on writes are checked against the row in the transaction that writes it,
//! 412 `VERSION_MISMATCH` and no change otherwise, even when two such writes race.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, id_of, invalid_fields, inventory_body, reservation_body, sales_body, TestApp,
    TestResponse,
};

backend_tests!(
    every_single_row_answer_carries_its_version_as_a_strong_etag,
    a_get_naming_the_current_etag_is_304_without_a_body,
    if_match_on_another_version_is_412_and_changes_nothing,
    if_match_on_a_row_that_does_not_exist_is_412_and_creates_nothing,
    if_none_match_star_makes_an_upsert_create_only,
    a_write_whose_if_match_names_the_current_version_goes_ahead,
    a_sales_target_moves_its_version_with_every_write,
    a_header_that_is_not_an_entity_tag_of_this_api_is_422_and_writes_nothing,
    batches_refuse_conditional_headers,
    of_concurrent_writes_with_one_if_match_exactly_one_succeeds,
    of_concurrent_create_only_upserts_of_one_key_exactly_one_succeeds,
    a_reservation_ends_under_if_match_only_while_active,
);

const INVENTORY: &str = "/api/v1/inventory";
const SALES: &str = "/api/v1/sales/target";

/// `method uri` as the admin with `body` (JSON) and extra `headers`.
async fn send(
    app: &TestApp,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    app.send(builder.body(body).unwrap()).await
}

/// The `ETag` of a response, which must have one.
fn etag(response: &TestResponse) -> &str {
    response
        .headers
        .get("etag")
        .unwrap_or_else(|| panic!("an ETag on {}: {}", response.status, response.text))
        .to_str()
        .unwrap()
}

/// Asserts 200 (or `status`) and an `ETag` that is `version`, as `data.version` says too.
fn assert_tagged(label: &str, response: &TestResponse, status: StatusCode, version: i64) {
    assert_eq!(response.status, status, "{label}: {}", response.text);
    assert_eq!(etag(response), format!("\"{version}\""), "{label}");
    let data = &response.json["data"];
    let row = if data.get("inventory").is_some_and(Value::is_object) {
        &data["inventory"]
    } else {
        data
    };
    assert_eq!(row["version"], version, "{label}: {}", response.text);
}

/// Asserts 412 `VERSION_MISMATCH` naming `current` as the row's version.
fn assert_mismatch(label: &str, response: &TestResponse, current: Option<i64>) {
    assert_error(
        response,
        StatusCode::PRECONDITION_FAILED,
        "VERSION_MISMATCH",
    );
    assert_eq!(
        response.json["detail"],
        json!({ "current_version": current }),
        "{label}"
    );
}

fn adjust(quantity: i64) -> Value {
    json!({"adjustment_type": "increase", "quantity": quantity, "reason": "conditional test"})
}

async fn every_single_row_answer_carries_its_version_as_a_strong_etag(app: TestApp) {
    let created = send(
        &app,
        Method::POST,
        INVENTORY,
        Some(&inventory_body(json!({}))),
        &[],
    )
    .await;
    assert_tagged("inventory upsert", &created, StatusCode::OK, 1);
    let id = id_of(&created.json["data"]);
    let row = format!("{INVENTORY}/{id}");
    assert_tagged(
        "inventory get",
        &send(&app, Method::GET, &row, None, &[]).await,
        StatusCode::OK,
        1,
    );
    let thresholds = json!({"warning_threshold": 20, "critical_threshold": 5});
    let set = send(
        &app,
        Method::PUT,
        &format!("{row}/thresholds"),
        Some(&thresholds),
        &[],
    )
    .await;
    assert_tagged("thresholds", &set, StatusCode::OK, 2);
    let adjusted = send(
        &app,
        Method::POST,
        &format!("{row}/adjust"),
        Some(&adjust(3)),
        &[],
    )
    .await;
    assert_tagged("adjust", &adjusted, StatusCode::OK, 3);
    let deleted = send(&app, Method::DELETE, &row, None, &[]).await;
    assert_tagged("inventory delete", &deleted, StatusCode::OK, 3);

    let target = send(&app, Method::POST, SALES, Some(&sales_body(json!({}))), &[]).await;
    assert_tagged("sales upsert", &target, StatusCode::OK, 1);
    let target_url = format!("{SALES}/{}", id_of(&target.json["data"]));
    assert_tagged(
        "sales get",
        &send(&app, Method::GET, &target_url, None, &[]).await,
        StatusCode::OK,
        1,
    );
    assert_tagged(
        "sales delete",
        &send(&app, Method::DELETE, &target_url, None, &[]).await,
        StatusCode::OK,
        1,
    );

    app.post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
        .await;
    let reserved = send(
        &app,
        Method::POST,
        "/api/v1/reservations",
        Some(&reservation_body(json!({}))),
        &[],
    )
    .await;
    assert_tagged("reserve", &reserved, StatusCode::CREATED, 1);
    assert!(
        reserved.headers.contains_key("location"),
        "201 keeps its Location"
    );
    let first = format!("/api/v1/reservations/{}", id_of(&reserved.json["data"]));
    assert_tagged(
        "reservation get",
        &send(&app, Method::GET, &first, None, &[]).await,
        StatusCode::OK,
        1,
    );
    assert_tagged(
        "release",
        &send(&app, Method::DELETE, &first, None, &[]).await,
        StatusCode::OK,
        2,
    );
    assert_tagged(
        "released get",
        &send(&app, Method::GET, &first, None, &[]).await,
        StatusCode::OK,
        2,
    );

    let order = reservation_body(json!({"reservation_type": "order", "reference_id": "order:1"}));
    let second = send(
        &app,
        Method::POST,
        "/api/v1/reservations",
        Some(&order),
        &[],
    )
    .await;
    let commit = format!(
        "/api/v1/reservations/{}/commit",
        id_of(&second.json["data"])
    );
    let committed = send(
        &app,
        Method::POST,
        &commit,
        Some(&json!({"order_id": "order:1"})),
        &[],
    )
    .await;
    assert_tagged("commit", &committed, StatusCode::OK, 2);
}

async fn a_get_naming_the_current_etag_is_304_without_a_body(app: TestApp) {
    // The reservation holds units of another row, so that this one stays at version 1.
    let other_sku = inventory_body(json!({"seller_sku": "SKU0000000002"}));
    let id = id_of(&app.post_ok(INVENTORY, &other_sku).await);
    app.post_ok(INVENTORY, &inventory_body(json!({}))).await;
    let target = id_of(&app.post_ok(SALES, &sales_body(json!({}))).await);
    let reservation = app.reserve_ok(&reservation_body(json!({}))).await;
    let urls = [
        format!("{INVENTORY}/{id}"),
        format!("{SALES}/{target}"),
        format!("/api/v1/reservations/{}", id_of(&reservation)),
    ];
    for url in &urls {
        for header in ["\"1\"", "*", "\"7\", \"1\"", "W/\"1\""] {
            let response = send(&app, Method::GET, url, None, &[("if-none-match", header)]).await;
            assert_eq!(response.status, StatusCode::NOT_MODIFIED, "{url} {header}");
            assert!(
                response.text.is_empty(),
                "{url} {header}: no body, got {}",
                response.text
            );
            assert_eq!(etag(&response), "\"1\"", "{url} {header}: the ETag is kept");
        }
        let stale = send(&app, Method::GET, url, None, &[("if-none-match", "\"2\"")]).await;
        assert_tagged(url, &stale, StatusCode::OK, 1);
        let other = send(&app, Method::GET, url, None, &[("if-match", "\"2\"")]).await;
        assert_mismatch(url, &other, Some(1));
    }

    // A change moves the ETag: the old one no longer answers 304.
    app.ok(
        Method::POST,
        &format!("{INVENTORY}/{id}/adjust"),
        Some(&adjust(1)),
    )
    .await;
    let changed = send(
        &app,
        Method::GET,
        &urls[0],
        None,
        &[("if-none-match", "\"1\"")],
    )
    .await;
    assert_tagged("after a change", &changed, StatusCode::OK, 2);

    // Another seller's row is 404 whatever the headers say: a 304 would reveal it exists.
    let (_, token) = app.seller("stranger", &["B2SELLER0002"]).await;
    let request = Request::builder()
        .uri(&urls[0])
        .header("authorization", format!("Bearer {token}"))
        .header("if-none-match", "*")
        .body(Body::empty())
        .unwrap();
    let foreign = app.send(request).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
}

/// Everything a refused write could have changed about row `id`: the row and its ledger.
async fn inventory_state(app: &TestApp, id: i64) -> (Value, usize) {
    (app.row(id).await, app.history(id).await.len())
}

async fn if_match_on_another_version_is_412_and_changes_nothing(app: TestApp) {
    let id = id_of(&app.post_ok(INVENTORY, &inventory_body(json!({}))).await);
    let row = format!("{INVENTORY}/{id}");
    app.ok(Method::POST, &format!("{row}/adjust"), Some(&adjust(5)))
        .await;
    let before = inventory_state(&app, id).await;
    assert_eq!(before.0["version"], 2);

    let stale = [("if-match", "\"1\"")];
    let attempts = [
        (
            "upsert",
            Method::POST,
            INVENTORY.to_owned(),
            Some(inventory_body(json!({"inventory": 1}))),
        ),
        (
            "adjust",
            Method::POST,
            format!("{row}/adjust"),
            Some(adjust(9)),
        ),
        (
            "thresholds",
            Method::PUT,
            format!("{row}/thresholds"),
            Some(json!({"warning_threshold": 50, "critical_threshold": null})),
        ),
        ("delete", Method::DELETE, row.clone(), None),
    ];
    for (label, method, uri, body) in &attempts {
        let response = send(&app, method.clone(), uri, body.as_ref(), &stale).await;
        assert_mismatch(label, &response, Some(2));
        assert_eq!(
            inventory_state(&app, id).await,
            before,
            "{label} changed nothing"
        );
    }
    // If-None-Match with the current version: the client's copy is current, so a write that
    // assumed otherwise is refused too.
    let response = send(
        &app,
        Method::DELETE,
        &row,
        None,
        &[("if-none-match", "\"2\"")],
    )
    .await;
    assert_mismatch("if-none-match delete", &response, Some(2));
    assert_eq!(inventory_state(&app, id).await, before);

    let target = app.post_ok(SALES, &sales_body(json!({}))).await;
    let target_url = format!("{SALES}/{}", id_of(&target));
    app.post_ok(SALES, &sales_body(json!({"sales_target": 99})))
        .await;
    let before = app.ok(Method::GET, &target_url, None).await;
    assert_eq!(before["version"], 2);
    let upsert = send(
        &app,
        Method::POST,
        SALES,
        Some(&sales_body(json!({"sales_target": 1}))),
        &stale,
    )
    .await;
    assert_mismatch("sales upsert", &upsert, Some(2));
    let delete = send(&app, Method::DELETE, &target_url, None, &stale).await;
    assert_mismatch("sales delete", &delete, Some(2));
    assert_eq!(app.ok(Method::GET, &target_url, None).await, before);
}

async fn if_match_on_a_row_that_does_not_exist_is_412_and_creates_nothing(app: TestApp) {
    for header in ["\"1\"", "*"] {
        let response = send(
            &app,
            Method::POST,
            INVENTORY,
            Some(&inventory_body(json!({}))),
            &[("if-match", header)],
        )
        .await;
        assert_mismatch(header, &response, None);
        let response = send(
            &app,
            Method::POST,
            SALES,
            Some(&sales_body(json!({}))),
            &[("if-match", header)],
        )
        .await;
        assert_mismatch(header, &response, None);
    }
    let inventory = app.ok(Method::GET, INVENTORY, None).await;
    assert_eq!(
        inventory["meta"]["total"], 0,
        "no row was created: {inventory}"
    );
    let targets = app.ok(Method::GET, SALES, None).await;
    assert_eq!(
        targets["meta"]["total"], 0,
        "no target was created: {targets}"
    );
    let ledger = app
        .ok(Method::GET, "/api/v1/inventory/transactions", None)
        .await;
    assert_eq!(ledger["meta"]["total"], 0, "no ledger entry: {ledger}");

    // By id, a row that does not exist is 404, as without the header.
    for (method, uri) in [
        (Method::DELETE, format!("{INVENTORY}/999")),
        (Method::DELETE, format!("{SALES}/999")),
        (Method::GET, format!("{INVENTORY}/999")),
    ] {
        let response = send(&app, method, &uri, None, &[("if-match", "\"1\"")]).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

async fn if_none_match_star_makes_an_upsert_create_only(app: TestApp) {
    let create_only = [("if-none-match", "*")];
    let created = send(
        &app,
        Method::POST,
        INVENTORY,
        Some(&inventory_body(json!({}))),
        &create_only,
    )
    .await;
    assert_tagged("create", &created, StatusCode::OK, 1);
    let id = id_of(&created.json["data"]);
    assert_eq!(app.history(id).await.len(), 1, "its create entry");
    let before = inventory_state(&app, id).await;
    let again = send(
        &app,
        Method::POST,
        INVENTORY,
        Some(&inventory_body(json!({"inventory": 7}))),
        &create_only,
    )
    .await;
    assert_mismatch("second create", &again, Some(1));
    assert_eq!(inventory_state(&app, id).await, before);

    let target = send(
        &app,
        Method::POST,
        SALES,
        Some(&sales_body(json!({}))),
        &create_only,
    )
    .await;
    assert_tagged("create target", &target, StatusCode::OK, 1);
    let target_url = format!("{SALES}/{}", id_of(&target.json["data"]));
    let before = app.ok(Method::GET, &target_url, None).await;
    let again = send(
        &app,
        Method::POST,
        SALES,
        Some(&sales_body(json!({"sales_target": 2}))),
        &create_only,
    )
    .await;
    assert_mismatch("second target", &again, Some(1));
    assert_eq!(app.ok(Method::GET, &target_url, None).await, before);
}

async fn a_write_whose_if_match_names_the_current_version_goes_ahead(app: TestApp) {
    let id = id_of(
        &app.post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
            .await,
    );
    let row = format!("{INVENTORY}/{id}");
    let upsert = send(
        &app,
        Method::POST,
        INVENTORY,
        Some(&inventory_body(json!({"inventory": 12}))),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_tagged("upsert", &upsert, StatusCode::OK, 2);
    assert_eq!(upsert.json["data"]["inventory"], 12);
    let adjusted = send(
        &app,
        Method::POST,
        &format!("{row}/adjust"),
        Some(&adjust(3)),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_tagged("adjust", &adjusted, StatusCode::OK, 3);
    let thresholds = json!({"warning_threshold": 4, "critical_threshold": 1});
    let set = send(
        &app,
        Method::PUT,
        &format!("{row}/thresholds"),
        Some(&thresholds),
        &[("if-match", "\"1\", \"3\"")],
    )
    .await;
    assert_tagged("thresholds", &set, StatusCode::OK, 4);
    let same = send(
        &app,
        Method::POST,
        INVENTORY,
        Some(&inventory_body(json!({"inventory": 15}))),
        &[("if-match", "*")],
    )
    .await;
    assert_tagged("same units, any version", &same, StatusCode::OK, 4);
    assert_eq!(
        app.row(id).await,
        same.json["data"],
        "read back as answered"
    );
    let history = app.history(id).await;
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["create", "upsert", "adjust"],
        "one entry per change of units"
    );
    let deleted = send(&app, Method::DELETE, &row, None, &[("if-match", "\"4\"")]).await;
    assert_tagged("delete", &deleted, StatusCode::OK, 4);
    assert_eq!(
        send(&app, Method::GET, &row, None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    app.assert_books_balance().await;
}

async fn a_sales_target_moves_its_version_with_every_write(app: TestApp) {
    let first = app.post_ok(SALES, &sales_body(json!({}))).await;
    assert_eq!(first["version"], 1);
    let second = app
        .post_ok(SALES, &sales_body(json!({"sales_target": 2.5})))
        .await;
    assert_eq!(
        (second["id"].clone(), second["version"].clone()),
        (first["id"].clone(), json!(2))
    );
    let third = app
        .post_ok(SALES, &sales_body(json!({"sales_target": 2.5})))
        .await;
    assert_eq!(
        third["version"], 3,
        "every write moves update_time, so the version too"
    );
    assert!(third["update_time"].as_str() > second["update_time"].as_str());
    let batch = app
        .post_ok(
            &format!("{SALES}/batch"),
            &json!({"items": [sales_body(json!({"sales_target": 4}))]}),
        )
        .await;
    assert_eq!(batch["items"][0]["version"], 4, "batches too");
    let conditional = send(
        &app,
        Method::POST,
        SALES,
        Some(&sales_body(json!({"sales_target": 5}))),
        &[("if-match", "\"4\"")],
    )
    .await;
    assert_tagged("conditional", &conditional, StatusCode::OK, 5);
    assert_eq!(conditional.json["data"]["sales_target"].as_f64(), Some(5.0));
    assert_eq!(
        conditional.json["data"]["create_time"],
        first["create_time"]
    );
    let read = app
        .ok(Method::GET, &format!("{SALES}/{}", id_of(&first)), None)
        .await;
    assert_eq!(read, conditional.json["data"], "read back as answered");
}

async fn a_header_that_is_not_an_entity_tag_of_this_api_is_422_and_writes_nothing(app: TestApp) {
    let id = id_of(&app.post_ok(INVENTORY, &inventory_body(json!({}))).await);
    let before = inventory_state(&app, id).await;
    for (name, value, field) in [
        ("if-match", "1", "If-Match"),
        ("if-match", "\"abc\"", "If-Match"),
        ("if-match", "\"0\"", "If-Match"),
        ("if-match", "", "If-Match"),
        ("if-none-match", "W/1", "If-None-Match"),
        ("if-none-match", "**", "If-None-Match"),
    ] {
        let response = send(
            &app,
            Method::POST,
            INVENTORY,
            Some(&inventory_body(json!({"inventory": 3}))),
            &[(name, value)],
        )
        .await;
        let fields = invalid_fields(&response);
        assert_eq!(fields, [field], "{name}: {value:?}");
        let read = send(
            &app,
            Method::GET,
            &format!("{INVENTORY}/{id}"),
            None,
            &[(name, value)],
        )
        .await;
        assert_eq!(
            read.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "GET {name}: {value:?}"
        );
    }
    assert_eq!(inventory_state(&app, id).await, before);
}

async fn batches_refuse_conditional_headers(app: TestApp) {
    for (url, item) in [
        (format!("{INVENTORY}/batch"), inventory_body(json!({}))),
        (format!("{SALES}/batch"), sales_body(json!({}))),
    ] {
        for header in ["if-match", "if-none-match"] {
            let response = send(
                &app,
                Method::POST,
                &url,
                Some(&json!({"items": [item]})),
                &[(header, "*")],
            )
            .await;
            assert_error(
                &response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            );
        }
    }
    assert_eq!(
        app.ok(Method::GET, INVENTORY, None).await["meta"]["total"],
        0
    );
    assert_eq!(app.ok(Method::GET, SALES, None).await["meta"]["total"], 0);
}

/// Sends `attempts` copies of one conditional write at once; returns how many got 200 and how
/// many 412 (and, for deletes, 404: the row went), insisting that nothing else happened.
async fn race(
    app: &Arc<TestApp>,
    method: Method,
    uri: String,
    body: Option<Value>,
    header: (&'static str, &'static str),
    attempts: usize,
) -> (usize, usize) {
    let deleting = method == Method::DELETE;
    let tasks: Vec<_> = (0..attempts)
        .map(|_| {
            let (app, method, uri, body) = (app.clone(), method.clone(), uri.clone(), body.clone());
            tokio::spawn(async move { send(&app, method, &uri, body.as_ref(), &[header]).await })
        })
        .collect();
    let (mut won, mut refused) = (0, 0);
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            StatusCode::OK => won += 1,
            StatusCode::PRECONDITION_FAILED => refused += 1,
            StatusCode::NOT_FOUND if deleting => refused += 1,
            other => panic!("{uri}: {other} {}", response.text),
        }
    }
    (won, refused)
}

async fn of_concurrent_writes_with_one_if_match_exactly_one_succeeds(app: TestApp) {
    let app = Arc::new(app);
    let id = id_of(
        &app.post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
            .await,
    );
    let row = format!("{INVENTORY}/{id}");
    let target = id_of(&app.post_ok(SALES, &sales_body(json!({}))).await);

    let cases: [(&str, Method, String, Option<Value>, &'static str); 4] = [
        (
            "adjust",
            Method::POST,
            format!("{row}/adjust"),
            Some(adjust(1)),
            "\"1\"",
        ),
        (
            "upsert",
            Method::POST,
            INVENTORY.to_owned(),
            Some(inventory_body(json!({"inventory": 50}))),
            "\"2\"",
        ),
        (
            "thresholds",
            Method::PUT,
            format!("{row}/thresholds"),
            Some(json!({"warning_threshold": 9, "critical_threshold": 2})),
            "\"3\"",
        ),
        (
            "sales upsert",
            Method::POST,
            SALES.to_owned(),
            Some(sales_body(json!({"sales_target": 7}))),
            "\"1\"",
        ),
    ];
    for (label, method, uri, body, version) in cases {
        let (won, refused) = race(&app, method, uri, body, ("if-match", version), 8).await;
        assert_eq!((won, refused), (1, 7), "{label}: exactly one of eight wins");
    }
    let now = app.row(id).await;
    assert_eq!(
        (now["version"].clone(), now["inventory"].clone()),
        (json!(4), json!(50))
    );
    let types: Vec<String> = app
        .history(id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["create", "adjust", "upsert"],
        "one entry per winning write"
    );
    let sales = app
        .ok(Method::GET, &format!("{SALES}/{target}"), None)
        .await;
    assert_eq!(sales["version"], 2);

    let (won, refused) = race(
        &app,
        Method::DELETE,
        row.clone(),
        None,
        ("if-match", "\"4\""),
        8,
    )
    .await;
    assert_eq!(
        (won, refused),
        (1, 7),
        "the others find no row (404) or another version"
    );
    assert_eq!(app.get(&row).await.status, StatusCode::NOT_FOUND);
    app.assert_books_balance().await;
}

async fn of_concurrent_create_only_upserts_of_one_key_exactly_one_succeeds(app: TestApp) {
    let app = Arc::new(app);
    let body = inventory_body(json!({"inventory": 4}));
    let (won, refused) = race(
        &app,
        Method::POST,
        INVENTORY.to_owned(),
        Some(body),
        ("if-none-match", "*"),
        8,
    )
    .await;
    assert_eq!((won, refused), (1, 7));
    let listed = app.ok(Method::GET, INVENTORY, None).await;
    assert_eq!(listed["meta"]["total"], 1);
    let id = id_of(&listed["items"][0]);
    assert_eq!(app.history(id).await.len(), 1, "one create entry");

    let (won, refused) = race(
        &app,
        Method::POST,
        SALES.to_owned(),
        Some(sales_body(json!({}))),
        ("if-none-match", "*"),
        8,
    )
    .await;
    assert_eq!((won, refused), (1, 7));
    app.assert_books_balance().await;
}

async fn a_reservation_ends_under_if_match_only_while_active(app: TestApp) {
    let app = Arc::new(app);
    let row_id = id_of(
        &app.post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
            .await,
    );
    let reservation = app.reserve_ok(&reservation_body(json!({}))).await;
    let url = format!("/api/v1/reservations/{}", id_of(&reservation));
    let before = (
        app.ok(Method::GET, &url, None).await,
        inventory_state(&app, row_id).await,
    );

    // A version it never had, and the version of an ended reservation: refused, no change.
    for (label, tag) in [("release \"7\"", "\"7\""), ("release \"2\"", "\"2\"")] {
        let response = send(&app, Method::DELETE, &url, None, &[("if-match", tag)]).await;
        assert_mismatch(label, &response, Some(1));
    }
    let commit = json!({"order_id": "order:1"});
    let response = send(
        &app,
        Method::POST,
        &format!("{url}/commit"),
        Some(&commit),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_mismatch("commit \"2\"", &response, Some(1));
    assert_eq!(
        (
            app.ok(Method::GET, &url, None).await,
            inventory_state(&app, row_id).await
        ),
        before,
        "nothing changed"
    );

    // Eight releases naming the active version: one wins, the rest find it ended.
    let (won, refused) = race(
        &app,
        Method::DELETE,
        url.clone(),
        None,
        ("if-match", "\"1\""),
        8,
    )
    .await;
    assert_eq!((won, refused), (1, 7));
    let response = send(
        &app,
        Method::POST,
        &format!("{url}/commit"),
        Some(&commit),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_mismatch("commit after the release", &response, Some(2));
    let missing = send(
        &app,
        Method::DELETE,
        "/api/v1/reservations/999999",
        None,
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "RESERVATION_NOT_FOUND");
    assert_eq!(app.ok(Method::GET, &url, None).await["status"], "released");
    app.assert_books_balance().await;
}
