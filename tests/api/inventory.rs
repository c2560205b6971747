//! Inventory over HTTP, on every backend.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error_envelope, field_errors, inventory_body, TestApp};

const URL: &str = "/api/v1/inventory";

backend_tests!(
    the_seed_example_returns_the_seed_response_shape,
    a_second_upsert_of_one_sku_updates_asins_and_stock_and_keeps_the_id,
    the_same_sku_in_another_marketplace_or_of_another_seller_is_another_row,
    every_field_rule_holds_at_its_boundaries,
    an_integer_too_large_for_64_bits_gets_the_range_message,
    get_list_and_delete_work_together,
    two_hundred_simultaneous_upserts_of_one_sku_all_succeed_and_leave_one_row,
    five_hundred_simultaneous_upserts_of_distinct_skus_leave_five_hundred_rows
);

async fn the_seed_example_returns_the_seed_response_shape(app: TestApp) {
    let response = app.post(URL, &inventory_body(json!({}))).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json["code"], 200);
    assert_eq!(response.json["message"], "Success");
    let data = &response.json["data"];
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "available",
            "child_asin",
            "create_time",
            "critical_threshold",
            "id",
            "inventory",
            "market_place_id",
            "parent_asin",
            "reserved",
            "seller_id",
            "seller_sku",
            "stock_level",
            "update_time",
            "version",
            "warning_threshold"
        ]
    );
    assert_eq!(data["seller_sku"], "SKU0000000001");
    assert_eq!(data["child_asin"], "B0CHILD00001");
    assert_eq!(data["inventory"], 120);
    assert!(data["id"].is_i64());
    // A new row: nothing reserved, no thresholds, version 1.
    assert_eq!(data["reserved"], 0);
    assert_eq!(data["available"], 120);
    assert_eq!(data["warning_threshold"], serde_json::Value::Null);
    assert_eq!(data["critical_threshold"], serde_json::Value::Null);
    assert_eq!(data["stock_level"], "ok");
    assert_eq!(data["version"], 1);
}

async fn a_second_upsert_of_one_sku_updates_asins_and_stock_and_keeps_the_id(app: TestApp) {
    let first = app
        .post_ok(URL, &inventory_body(json!({"inventory": 5})))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let second = app
        .post_ok(URL, &inventory_body(json!({"inventory": 9, "parent_asin": "B0PARENT0009", "child_asin": "B0CHILD00009"})))
        .await;

    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["inventory"], 9);
    assert_eq!(second["parent_asin"], "B0PARENT0009");
    assert_eq!(second["child_asin"], "B0CHILD00009");
    assert_eq!(second["create_time"], first["create_time"]);
    assert!(second["update_time"].as_str() > first["update_time"].as_str());
    assert_eq!(
        app.get(&format!("{URL}/{}", first["id"])).await.json["data"],
        second
    );
}

async fn the_same_sku_in_another_marketplace_or_of_another_seller_is_another_row(app: TestApp) {
    let base = app.post_ok(URL, &inventory_body(json!({}))).await;
    let de = app
        .post_ok(URL, &inventory_body(json!({"market_place_id": "DE"})))
        .await;
    let other = app
        .post_ok(URL, &inventory_body(json!({"seller_id": "B1SELLER0001"})))
        .await;
    let lower = app
        .post_ok(URL, &inventory_body(json!({"seller_sku": "sku0000000001"})))
        .await;
    let ids: std::collections::HashSet<_> = [&base, &de, &other, &lower]
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
}

async fn every_field_rule_holds_at_its_boundaries(app: TestApp) {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "seller_id 7",
            json!({"seller_id": "A234567"}),
            Some("seller_id"),
        ),
        ("seller_id 8", json!({"seller_id": "A2345678"}), None),
        ("seller_id 20", json!({"seller_id": "S".repeat(20)}), None),
        (
            "seller_id 21",
            json!({"seller_id": "S".repeat(21)}),
            Some("seller_id"),
        ),
        (
            "child_asin 9",
            json!({"child_asin": "C23456789"}),
            Some("child_asin"),
        ),
        ("child_asin 10", json!({"child_asin": "C234567890"}), None),
        ("child_asin 15", json!({"child_asin": "C".repeat(15)}), None),
        (
            "child_asin 16",
            json!({"child_asin": "C".repeat(16)}),
            Some("child_asin"),
        ),
        (
            "parent_asin 16",
            json!({"parent_asin": "P".repeat(16)}),
            Some("parent_asin"),
        ),
        (
            "seller_sku 9",
            json!({"seller_sku": "K23456789"}),
            Some("seller_sku"),
        ),
        ("seller_sku 10", json!({"seller_sku": "K234567890"}), None),
        ("seller_sku 30", json!({"seller_sku": "K".repeat(30)}), None),
        (
            "seller_sku 31",
            json!({"seller_sku": "K".repeat(31)}),
            Some("seller_sku"),
        ),
        (
            "seller_sku with underscore",
            json!({"seller_sku": "SKU_0000001"}),
            Some("seller_sku"),
        ),
        (
            "market lower case",
            json!({"market_place_id": "de"}),
            Some("market_place_id"),
        ),
        ("inventory -1", json!({"inventory": -1}), Some("inventory")),
        ("inventory 0", json!({"inventory": 0}), None),
        ("inventory max", json!({"inventory": 2147483647}), None),
        (
            "inventory max + 1",
            json!({"inventory": 2147483648_i64}),
            Some("inventory"),
        ),
        (
            "inventory beyond 64 bits",
            json!({"inventory": 1e30}),
            Some("inventory"),
        ),
        (
            "inventory 1.5",
            json!({"inventory": 1.5}),
            Some("inventory"),
        ),
        (
            "inventory 1.0",
            json!({"inventory": 1.0}),
            Some("inventory"),
        ),
        (
            "inventory a string",
            json!({"inventory": "5"}),
            Some("inventory"),
        ),
        (
            "inventory null",
            json!({"inventory": null}),
            Some("inventory"),
        ),
        (
            "inventory an array",
            json!({"inventory": [5]}),
            Some("inventory"),
        ),
        (
            "missing seller_sku",
            json!({"-seller_sku": null}),
            Some("seller_sku"),
        ),
        ("unknown field", json!({"id": 7}), Some("id")),
    ];
    for (label, change, bad_field) in cases {
        let response = app.post(URL, &inventory_body(change)).await;
        match bad_field {
            None => assert_eq!(
                response.status,
                StatusCode::OK,
                "{label}: {}",
                response.text
            ),
            Some(field) => {
                assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
                let fields: Vec<String> = field_errors(&response)
                    .into_iter()
                    .map(|(f, _)| f)
                    .collect();
                assert_eq!(fields, [field], "{label}: {}", response.text);
            }
        }
    }
}

async fn an_integer_too_large_for_64_bits_gets_the_range_message(app: TestApp) {
    let body = r#"{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU0000000001","market_place_id":"US","inventory":99999999999999999999999}"#;
    let request = axum::http::Request::post(URL)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(
        field_errors(&response),
        [(
            "inventory".into(),
            "must be an integer from 0 to 2147483647".into()
        )]
    );
}

async fn get_list_and_delete_work_together(app: TestApp) {
    let a = app
        .post_ok(
            URL,
            &inventory_body(json!({"seller_sku": "SKU000000000A", "child_asin": "B0CHILD0000A"})),
        )
        .await;
    let b = app
        .post_ok(
            URL,
            &inventory_body(json!({"seller_sku": "SKU000000000B", "market_place_id": "JP"})),
        )
        .await;
    let c = app
        .post_ok(
            URL,
            &inventory_body(json!({"seller_sku": "SKU000000000C", "seller_id": "B1SELLER0001"})),
        )
        .await;

    assert_eq!(app.get(&format!("{URL}/{}", b["id"])).await.json["data"], b);
    let all = app.get(URL).await;
    assert_eq!(all.json["data"]["items"], json!([a, b, c]));
    for (query, expected) in [
        ("seller_id=A1SELLER0001", json!([a, b])),
        ("market_place_id=JP", json!([b])),
        ("child_asin=B0CHILD0000A", json!([a])),
        (
            "parent_asin=B0PARENT0001&seller_sku=SKU000000000C",
            json!([c]),
        ),
        ("seller_sku=SKU000000000Z", json!([])),
    ] {
        let listed = app.get(&format!("{URL}?{query}")).await;
        assert_eq!(listed.json["data"]["items"], expected, "{query}");
    }

    let deleted = app.delete(&format!("{URL}/{}", a["id"])).await;
    assert_eq!(deleted.json["data"], a);
    assert_error_envelope(
        &app.get(&format!("{URL}/{}", a["id"])).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 2);
    assert_error_envelope(
        &app.get(&format!("{URL}/abc")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
}

async fn two_hundred_simultaneous_upserts_of_one_sku_all_succeed_and_leave_one_row(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(URL, &inventory_body(json!({"inventory": i})))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 1);
}

async fn five_hundred_simultaneous_upserts_of_distinct_skus_leave_five_hundred_rows(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    URL,
                    &inventory_body(json!({"seller_sku": format!("SKU{i:010}")})),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 500);
}
