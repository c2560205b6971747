//! Batch upserts, on every backend.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error_envelope, inventory_body, sales_body, TestApp};

const INVENTORY_BATCH: &str = "/api/v1/inventory/batch";
const SALES_BATCH: &str = "/api/v1/sales/target/batch";

fn skus(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| inventory_body(json!({"seller_sku": format!("SKU{i:010}"), "inventory": i})))
        .collect()
}

fn detail(response: &crate::helpers::TestResponse) -> Vec<(Option<u64>, String)> {
    response.json["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64(), e["field"].as_str().unwrap().to_owned()))
        .collect()
}

backend_tests!(
    a_batch_creates_and_updates_and_answers_in_input_order,
    sales_target_batches_store_exact_amounts,
    every_invalid_item_is_reported_with_its_index_and_nothing_is_written,
    the_same_key_twice_in_one_batch_is_422,
    a_batch_holds_1_to_1000_items,
    a_batch_body_over_4_mib_is_413,
    a_seller_batch_with_a_foreign_seller_is_403_naming_the_item_and_writes_nothing,
    simultaneous_batches_with_shared_keys_each_get_their_own_rows
);

async fn a_batch_creates_and_updates_and_answers_in_input_order(app: TestApp) {
    let existing = app
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"seller_sku": "SKU0000000002", "inventory": 1})),
        )
        .await;
    let items = vec![
        inventory_body(json!({"seller_sku": "SKU0000000005", "inventory": 50})),
        inventory_body(json!({"seller_sku": "SKU0000000002", "inventory": 20})),
        inventory_body(
            json!({"seller_sku": "SKU0000000009", "inventory": 90, "market_place_id": "DE"}),
        ),
    ];

    let response = app.post(INVENTORY_BATCH, &json!({"items": items})).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let saved = response.json["data"]["items"].as_array().unwrap();
    let stock: Vec<i64> = saved
        .iter()
        .map(|r| r["inventory"].as_i64().unwrap())
        .collect();
    assert_eq!(stock, [50, 20, 90], "input order");
    assert_eq!(
        saved[1]["id"], existing["id"],
        "the existing row was updated in place"
    );
    assert_eq!(saved[1]["create_time"], existing["create_time"]);
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        3
    );
    for row in saved {
        assert_eq!(
            &app.get(&format!("/api/v1/inventory/{}", row["id"]))
                .await
                .json["data"],
            row
        );
    }
}

async fn sales_target_batches_store_exact_amounts(app: TestApp) {
    let items: Vec<Value> = (1..=12)
        .map(|m| sales_body(json!({"period": format!("2026-{m:02}"), "sales_target": 1000.0 + f64::from(m) / 100.0})))
        .collect();
    let response = app.post(SALES_BATCH, &json!({"items": items})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let saved = response.json["data"]["items"].as_array().unwrap();
    assert_eq!(saved.len(), 12);
    assert_eq!(saved[11]["period"], "2026-12");
    assert!(
        response.text.contains("\"sales_target\":1000.12"),
        "{}",
        response.text
    );
}

async fn every_invalid_item_is_reported_with_its_index_and_nothing_is_written(app: TestApp) {
    let mut items = skus(5);
    items[1] = inventory_body(json!({"seller_sku": "short", "seller_sku_extra": 1}));
    items[3] = json!("not an object");
    items[4] = inventory_body(json!({"inventory": -1}));

    let response = app.post(INVENTORY_BATCH, &json!({"items": items})).await;

    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        detail(&response),
        [
            (Some(1), "seller_sku".to_owned()),
            (Some(1), "seller_sku_extra".to_owned()),
            (Some(3), "items".to_owned()),
            (Some(4), "inventory".to_owned()),
        ]
    );
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        0
    );
}

async fn the_same_key_twice_in_one_batch_is_422(app: TestApp) {
    let mut items = skus(4);
    items[3] = inventory_body(json!({"seller_sku": "SKU0000000001", "inventory": 7}));
    let response = app.post(INVENTORY_BATCH, &json!({"items": items})).await;
    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail(&response), [(Some(3), "items".to_owned())]);
    assert!(response.text.contains("item 1"), "{}", response.text);

    let twice = vec![
        sales_body(json!({})),
        sales_body(json!({"sales_target": 5})),
    ];
    let response = app.post(SALES_BATCH, &json!({"items": twice})).await;
    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        0
    );
    assert_eq!(
        app.get("/api/v1/sales/target").await.json["data"]["meta"]["total"],
        0
    );
}

async fn a_batch_holds_1_to_1000_items(app: TestApp) {
    for body in [
        json!({"items": []}),
        json!({"items": skus(1001)}),
        json!({"items": "x"}),
        json!({}),
        json!({"items": skus(1), "extra": 1}),
    ] {
        let response = app.post(INVENTORY_BATCH, &body).await;
        assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let full = app
        .post(INVENTORY_BATCH, &json!({"items": skus(1000)}))
        .await;
    assert_eq!(
        full.status,
        StatusCode::OK,
        "1000 items (well over 64 KiB) are accepted: {}",
        &full.text[..200.min(full.text.len())]
    );
    assert_eq!(full.json["data"]["items"].as_array().unwrap().len(), 1000);
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        1000
    );
}

async fn a_batch_body_over_4_mib_is_413(app: TestApp) {
    let padding = "x".repeat(4 * 1024 * 1024 + 1);
    let response = app
        .post(
            INVENTORY_BATCH,
            &json!({"items": skus(1), "padding": padding}),
        )
        .await;
    assert_error_envelope(&response, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn a_seller_batch_with_a_foreign_seller_is_403_naming_the_item_and_writes_nothing(
    app: TestApp,
) {
    let (_, alice) = app.seller("alice", &["A1SELLER0001"]).await;
    let mut items = skus(3);
    items[2] = inventory_body(json!({"seller_id": "B1SELLER0001", "seller_sku": "SKU0000000999"}));

    let response = app
        .request_as(
            Method::POST,
            INVENTORY_BATCH,
            Some(&json!({"items": items})),
            Some(&alice),
        )
        .await;

    assert_error_envelope(&response, StatusCode::FORBIDDEN);
    assert!(
        response.json["message"]
            .as_str()
            .unwrap()
            .contains("item 2"),
        "{}",
        response.text
    );
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        0
    );
    let own = app
        .request_as(
            Method::POST,
            INVENTORY_BATCH,
            Some(&json!({"items": skus(3)})),
            Some(&alice),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

async fn simultaneous_batches_with_shared_keys_each_get_their_own_rows(app: TestApp) {
    // 24 batches of 50 in flight at once; batch b writes SKUs b*25 .. b*25+49, so each
    // shares half its keys with the next, and stock = b*1000 + sku tells who wrote a row.
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..24)
        .map(|b| {
            let app = app.clone();
            let items: Vec<Value> = (b * 25..b * 25 + 50)
                .map(|sku| {
                    inventory_body(
                        json!({"seller_sku": format!("SKU{sku:010}"), "inventory": b * 1000 + sku}),
                    )
                })
                .collect();
            tokio::spawn(
                async move { (b, app.post(INVENTORY_BATCH, &json!({"items": items})).await) },
            )
        })
        .collect();
    let mut ids = std::collections::HashMap::new();
    for task in tasks {
        let (b, response) = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        let saved = response.json["data"]["items"].as_array().unwrap();
        assert_eq!(saved.len(), 50);
        for (i, row) in saved.iter().enumerate() {
            let sku = b * 25 + i as i64;
            assert_eq!(
                row["seller_sku"],
                format!("SKU{sku:010}"),
                "batch {b}: input order"
            );
            assert_eq!(row["inventory"], b * 1000 + sku, "batch {b}: its own value");
            let id = ids.entry(sku).or_insert_with(|| row["id"].clone());
            assert_eq!(*id, row["id"], "one row per SKU, whoever wrote it");
        }
    }
    let listed = app.get("/api/v1/inventory?size=100&page=1").await;
    assert_eq!(listed.json["data"]["meta"]["total"], 24 * 25 + 25);
    for row in listed.json["data"]["items"].as_array().unwrap() {
        let sku: i64 = row["seller_sku"].as_str().unwrap()[3..].parse().unwrap();
        let writer = row["inventory"].as_i64().unwrap() / 1000;
        assert!(
            writer * 25 <= sku && sku < writer * 25 + 50,
            "SKU {sku} holds a value its writer {writer} sent"
        );
    }
}
