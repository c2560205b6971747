//! Sales targets over HTTP, on every backend.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error_envelope, field_errors, sales_body, TestApp};

const URL: &str = "/api/v1/sales/target";

backend_tests!(
    a_target_with_a_huge_exponent_is_refused_not_rounded,
    the_seed_example_returns_the_seed_response_shape,
    a_second_upsert_of_one_key_updates_the_row_and_keeps_id_and_create_time,
    each_part_of_the_key_makes_a_separate_row,
    amounts_are_stored_and_returned_exactly,
    every_field_rule_holds_at_its_boundaries,
    every_problem_of_a_body_is_reported_at_once,
    get_and_delete_answer_404_for_a_missing_id_and_422_for_a_bad_one,
    delete_returns_the_deleted_row_and_it_is_gone,
    the_list_filters_pages_and_orders_by_id,
    an_empty_list_has_total_0_and_pages_0,
    bad_list_parameters_are_all_reported,
    two_hundred_simultaneous_upserts_of_one_key_all_succeed_and_leave_one_row,
    five_hundred_simultaneous_upserts_of_distinct_keys_leave_five_hundred_rows
);

async fn the_seed_example_returns_the_seed_response_shape(app: TestApp) {
    let response = app.post(URL, &sales_body(json!({}))).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json["code"], 200);
    assert_eq!(response.json["message"], "Success");
    let data = response.json["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "create_time",
            "id",
            "market_place_id",
            "parent_asin",
            "period",
            "sales_target",
            "seller_id",
            "update_time",
            "version"
        ]
    );
    assert!(data["id"].is_i64());
    assert_eq!(data["version"], 1, "a new target is at version 1");
    assert_eq!(data["seller_id"], "A1SELLER0001");
    assert_eq!(data["parent_asin"], "B0PARENT0001");
    assert_eq!(data["market_place_id"], "US");
    assert_eq!(data["period"], "2026-11");
    assert_eq!(data["sales_target"], 15000.5);
    for time in ["create_time", "update_time"] {
        let text = data[time].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.ends_with('Z'),
            "{time}: {text}"
        );
    }
}

async fn a_second_upsert_of_one_key_updates_the_row_and_keeps_id_and_create_time(app: TestApp) {
    let first = app
        .post_ok(URL, &sales_body(json!({"sales_target": 100})))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let second = app
        .post_ok(URL, &sales_body(json!({"sales_target": 250.75})))
        .await;

    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["create_time"], first["create_time"]);
    assert!(
        second["update_time"].as_str() > first["update_time"].as_str(),
        "{first} then {second}"
    );
    assert_eq!(second["sales_target"], 250.75);
    let stored = app.get(&format!("{URL}/{}", first["id"])).await;
    assert_eq!(stored.json["data"], second);
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 1);
}

async fn each_part_of_the_key_makes_a_separate_row(app: TestApp) {
    let base = app.post_ok(URL, &sales_body(json!({}))).await;
    for change in [
        json!({"seller_id": "A1SELLER0002"}),
        json!({"parent_asin": "B0PARENT0002"}),
        json!({"market_place_id": "DE"}),
        json!({"period": "2026-W47"}),
        json!({"seller_id": "a1seller0001"}),
    ] {
        let other = app.post_ok(URL, &sales_body(change.clone())).await;
        assert_ne!(other["id"], base["id"], "{change}");
    }
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 6);
}

async fn amounts_are_stored_and_returned_exactly(app: TestApp) {
    let cases = [
        ("19.99", "19.99"),
        ("0.01", "0.01"),
        ("0.1", "0.1"),
        ("1234567.89", "1234567.89"),
        ("999999999999.99", "999999999999.99"),
        ("1e2", "100.0"),
        ("19.990", "19.99"),
    ];
    for (i, (sent, returned)) in cases.into_iter().enumerate() {
        let body = format!(
            r#"{{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT{i:04}","market_place_id":"US","period":"2026-11","sales_target":{sent}}}"#
        );
        let request = axum::http::Request::post(URL)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let written = app.send(request).await;
        assert_eq!(written.status, StatusCode::OK, "{sent}: {}", written.text);
        let read = app
            .get(&format!("{URL}/{}", written.json["data"]["id"]))
            .await;
        // The literal text, not merely a close float: 19.99 comes back as 19.99.
        assert!(
            read.text.contains(&format!("\"sales_target\":{returned},")),
            "{sent}: {}",
            read.text
        );
    }
}

async fn every_field_rule_holds_at_its_boundaries(app: TestApp) {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "seller_id 7 chars",
            json!({"seller_id": "A234567"}),
            Some("seller_id"),
        ),
        ("seller_id 8 chars", json!({"seller_id": "A2345678"}), None),
        (
            "seller_id 20 chars",
            json!({"seller_id": "A".repeat(20)}),
            None,
        ),
        (
            "seller_id 21 chars",
            json!({"seller_id": "A".repeat(21)}),
            Some("seller_id"),
        ),
        (
            "seller_id with dash",
            json!({"seller_id": "A1SELLER-01"}),
            Some("seller_id"),
        ),
        (
            "seller_id non-ASCII",
            json!({"seller_id": "A1SELLER00é"}),
            Some("seller_id"),
        ),
        (
            "parent_asin 9 chars",
            json!({"parent_asin": "B23456789"}),
            Some("parent_asin"),
        ),
        (
            "parent_asin 10 chars",
            json!({"parent_asin": "B234567890"}),
            None,
        ),
        (
            "parent_asin 15 chars",
            json!({"parent_asin": "B".repeat(15)}),
            None,
        ),
        (
            "parent_asin 16 chars",
            json!({"parent_asin": "B".repeat(16)}),
            Some("parent_asin"),
        ),
        ("market US", json!({"market_place_id": "JP"}), None),
        (
            "market lower case",
            json!({"market_place_id": "us"}),
            Some("market_place_id"),
        ),
        (
            "market 3 letters",
            json!({"market_place_id": "USA"}),
            Some("market_place_id"),
        ),
        (
            "market leading space",
            json!({"market_place_id": " US"}),
            Some("market_place_id"),
        ),
        ("period 2024-12", json!({"period": "2024-12"}), None),
        (
            "period 2024-13",
            json!({"period": "2024-13"}),
            Some("period"),
        ),
        (
            "period 2024-00",
            json!({"period": "2024-00"}),
            Some("period"),
        ),
        (
            "period 2024-W00",
            json!({"period": "2024-W00"}),
            Some("period"),
        ),
        ("period 2024-W01", json!({"period": "2024-W01"}), None),
        ("period 2020-W53", json!({"period": "2020-W53"}), None),
        (
            "period 2021-W53",
            json!({"period": "2021-W53"}),
            Some("period"),
        ),
        (
            "period 2024-W54",
            json!({"period": "2024-W54"}),
            Some("period"),
        ),
        (
            "period seed's YYYY-WW",
            json!({"period": "2024-47"}),
            Some("period"),
        ),
        (
            "sales_target 0",
            json!({"sales_target": 0}),
            Some("sales_target"),
        ),
        ("sales_target 0.01", json!({"sales_target": 0.01}), None),
        (
            "sales_target negative",
            json!({"sales_target": -5}),
            Some("sales_target"),
        ),
        (
            "sales_target 1.234",
            json!({"sales_target": 1.234}),
            Some("sales_target"),
        ),
        (
            "sales_target max",
            json!({"sales_target": 999999999999.99_f64}),
            None,
        ),
        (
            "sales_target over max",
            json!({"sales_target": 1000000000000_i64}),
            Some("sales_target"),
        ),
        (
            "sales_target a string",
            json!({"sales_target": "19.99"}),
            Some("sales_target"),
        ),
        (
            "sales_target null",
            json!({"sales_target": null}),
            Some("sales_target"),
        ),
        (
            "sales_target boolean",
            json!({"sales_target": true}),
            Some("sales_target"),
        ),
        (
            "seller_id a number",
            json!({"seller_id": 12345678}),
            Some("seller_id"),
        ),
        (
            "seller_id null",
            json!({"seller_id": null}),
            Some("seller_id"),
        ),
        ("missing period", json!({"-period": null}), Some("period")),
        ("unknown field", json!({"note": "x"}), Some("note")),
    ];
    for (label, change, bad_field) in cases {
        let response = app.post(URL, &sales_body(change)).await;
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

async fn every_problem_of_a_body_is_reported_at_once(app: TestApp) {
    let body = json!({
        "seller_id": "short", "parent_asin": 5, "market_place_id": null,
        "sales_target": 1.234, "colour": "red"
    });

    let response = app.post(URL, &body).await;

    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json["message"], "validation failed");
    assert_eq!(
        field_errors(&response),
        [
            (
                "seller_id".into(),
                "must be 8 to 20 letters or digits".into()
            ),
            ("parent_asin".into(), "must be a string".into()),
            (
                "market_place_id".into(),
                "must be a string, not null".into()
            ),
            ("period".into(), "is required".into()),
            (
                "sales_target".into(),
                "must have at most 2 decimal places".into()
            ),
            ("colour".into(), "is not a known field".into()),
        ]
    );
    assert_eq!(
        app.get(URL).await.json["data"]["meta"]["total"],
        0,
        "nothing was written"
    );
}

async fn get_and_delete_answer_404_for_a_missing_id_and_422_for_a_bad_one(app: TestApp) {
    for uri in [format!("{URL}/999999"), format!("{URL}/1")] {
        assert_error_envelope(&app.get(&uri).await, StatusCode::NOT_FOUND);
        assert_error_envelope(&app.delete(&uri).await, StatusCode::NOT_FOUND);
    }
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999", "+1"] {
        let response = app.get(&format!("{URL}/{bad}")).await;
        assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field_errors(&response)[0].0, "id", "{bad}");
    }
}

async fn delete_returns_the_deleted_row_and_it_is_gone(app: TestApp) {
    let saved = app.post_ok(URL, &sales_body(json!({}))).await;
    let uri = format!("{URL}/{}", saved["id"]);

    let deleted = app.delete(&uri).await;

    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json["data"], saved);
    assert_error_envelope(&app.get(&uri).await, StatusCode::NOT_FOUND);
    assert_error_envelope(&app.delete(&uri).await, StatusCode::NOT_FOUND);
    // A new row for the same key gets a new id: ids are never reused.
    let again = app.post_ok(URL, &sales_body(json!({}))).await;
    assert_ne!(again["id"], saved["id"]);
}

async fn the_list_filters_pages_and_orders_by_id(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let seller = if i % 2 == 0 {
            "A1SELLER0001"
        } else {
            "A1SELLER0002"
        };
        let saved = app
            .post_ok(
                URL,
                &sales_body(json!({"seller_id": seller, "period": format!("2026-0{}", i + 1)})),
            )
            .await;
        ids.push(saved["id"].as_i64().unwrap());
    }

    let page = app.get(&format!("{URL}?size=2&page=2")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let listed: Vec<i64> = page.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, ids[2..4]);
    assert_eq!(
        page.json["data"]["meta"],
        json!({"total": 5, "page": 2, "size": 2, "pages": 3, "has_next": true, "has_prev": true})
    );

    let filtered = app
        .get(&format!("{URL}?seller_id=A1SELLER0002&market_place_id=US"))
        .await;
    let sellers: Vec<&str> = filtered.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seller_id"].as_str().unwrap())
        .collect();
    assert_eq!(sellers, ["A1SELLER0002", "A1SELLER0002"]);
    assert_eq!(filtered.json["data"]["meta"]["total"], 2);

    let by_period = app
        .get(&format!("{URL}?period=2026-03&parent_asin=B0PARENT0001"))
        .await;
    assert_eq!(by_period.json["data"]["meta"]["total"], 1);

    let last = app.get(&format!("{URL}?size=2&page=3")).await;
    assert_eq!(last.json["data"]["meta"]["has_next"], false);
    let past_end = app.get(&format!("{URL}?size=2&page=9")).await;
    assert_eq!(past_end.json["data"]["items"], json!([]));
    assert_eq!(past_end.json["data"]["meta"]["total"], 5);

    let defaults = app.get(URL).await;
    assert_eq!(defaults.json["data"]["meta"]["page"], 1);
    assert_eq!(defaults.json["data"]["meta"]["size"], 20);
}

async fn an_empty_list_has_total_0_and_pages_0(app: TestApp) {
    let response = app.get(&format!("{URL}?seller_id=NOBODY000001")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json["data"],
        json!({"items": [], "meta": {"total": 0, "page": 1, "size": 20, "pages": 0, "has_next": false, "has_prev": false}})
    );
}

async fn bad_list_parameters_are_all_reported(app: TestApp) {
    let response = app
        .get(&format!(
            "{URL}?page=0&size=101&seller_id=x&period=2024-13&colour=red"
        ))
        .await;
    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<String> = field_errors(&response)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    fields.sort();
    assert_eq!(fields, ["colour", "page", "period", "seller_id", "size"]);
    for bad in ["page=abc", "size=0", "page=-1", "size=1.5", "page=1&page=2"] {
        assert_error_envelope(
            &app.get(&format!("{URL}?{bad}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
}

async fn two_hundred_simultaneous_upserts_of_one_key_all_succeed_and_leave_one_row(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(URL, &sales_body(json!({"sales_target": 100 + i})))
                    .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        ids.insert(response.json["data"]["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1, "every answer names the one row");
    assert_eq!(app.get(URL).await.json["data"]["meta"]["total"], 1);
}

async fn five_hundred_simultaneous_upserts_of_distinct_keys_leave_five_hundred_rows(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    URL,
                    &sales_body(json!({"parent_asin": format!("B0PARENT{i:04}")})),
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

async fn a_target_with_a_huge_exponent_is_refused_not_rounded(app: TestApp) {
    for (label, amount) in [
        ("1e-400", "1e-400".to_owned()),
        ("0.5e-30", "0.5e-30".to_owned()),
        (
            "1e-300 with trailing zeros",
            format!("1{}e-400", "0".repeat(100)),
        ),
        (
            "1e+300 with leading zeros",
            format!("0.{}1e+400", "0".repeat(99)),
        ),
    ] {
        let body = format!(
            r#"{{"seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001", "market_place_id": "US", "period": "2026-11", "sales_target": {amount}}}"#
        );
        let request = axum::http::Request::post("/api/v1/sales/target")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            response.text
        );
        assert_eq!(
            response.json["detail"][0]["field"], "sales_target",
            "{label}"
        );
    }
    let stored = app.get("/api/v1/sales/target").await;
    assert_eq!(stored.json["data"]["meta"]["total"], 0, "{}", stored.text);
}
