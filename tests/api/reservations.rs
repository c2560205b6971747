//! Reservations over HTTP, on every backend: units held all or nothing, read and listed within
//! the caller's sellers, released (one, or a whole cart) or committed for an order, and what
//! they mean for deleting and overselling a row. Expiry has its own file (`expiry.rs`).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, assert_error_in, id_of, indexed_fields, inventory_body, reservation_body,
    TestApp, TestResponse,
};

const RESERVATIONS: &str = "/api/v1/reservations";
const INVENTORY: &str = "/api/v1/inventory";
const SELLER_A: &str = "A1SELLER0001";
const SELLER_B: &str = "B1SELLER0001";

backend_tests!(
    a_reservation_holds_its_units_and_answers_201_with_its_location,
    a_reservation_without_expires_minutes_holds_for_thirty_minutes,
    a_missing_sku_fails_the_whole_reservation_with_sku_not_found,
    a_short_item_fails_the_whole_reservation_listing_every_short_item,
    reservation_fields_are_checked_at_their_boundaries,
    every_problem_of_a_reservation_is_listed_at_once,
    a_seller_reserves_only_for_their_own_sellers,
    reservations_are_read_and_listed_by_filters_within_the_callers_sellers,
    a_release_frees_the_units_once_and_only_an_active_reservation_is_released,
    a_commit_takes_the_units_off_the_shelf_and_records_the_order,
    releasing_a_cart_releases_every_active_reservation_of_it,
    a_row_with_active_reservations_cannot_be_deleted_until_they_end,
    an_upsert_below_the_reserved_units_oversells_the_row_and_further_reservations_fail,
    a_commit_on_an_oversold_row_that_lacks_units_is_refused_and_changes_nothing,
    simultaneous_reservations_never_hold_more_than_is_available,
    reservations_and_new_rows_at_once_never_fail_with_a_server_error,
);

// ---- Helpers --------------------------------------------------------------------------------

/// Creates (or updates) the row of `sku` of `seller` in `market` with `units` on hand.
async fn stock_of(app: &TestApp, (seller, market, sku): (&str, &str, &str), units: i64) -> Value {
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_id": seller, "market_place_id": market,
            "seller_sku": sku, "inventory": units})),
    )
    .await
}

/// Creates (or updates) the row of `sku` of seller A in US.
async fn stock(app: &TestApp, sku: &str, units: i64) -> Value {
    stock_of(app, (SELLER_A, "US", sku), units).await
}

/// Items `[{seller_sku, quantity}]` of seller A.
fn items(list: &[(&str, i64)]) -> Value {
    list.iter()
        .map(|(sku, quantity)| json!({"seller_sku": sku, "quantity": quantity}))
        .collect()
}

async fn reserve(app: &TestApp, body: &Value) -> TestResponse {
    app.post(RESERVATIONS, body).await
}

async fn commit(app: &TestApp, id: i64, order: &str) -> TestResponse {
    app.post(
        &format!("{RESERVATIONS}/{id}/commit"),
        &json!({"order_id": order}),
    )
    .await
}

async fn release(app: &TestApp, id: i64) -> TestResponse {
    app.delete(&format!("{RESERVATIONS}/{id}")).await
}

/// `(inventory, reserved, available)` of a row now.
async fn numbers(app: &TestApp, id: i64) -> (i64, i64, i64) {
    let row = app.row(id).await;
    let n = |f: &str| row[f].as_i64().unwrap();
    (n("inventory"), n("reserved"), n("available"))
}

/// A reservation as the admin reads it now.
async fn reservation(app: &TestApp, id: i64) -> Value {
    app.ok(Method::GET, &format!("{RESERVATIONS}/{id}"), None)
        .await
}

/// How many reservations exist, in every state.
async fn reservation_count(app: &TestApp) -> u64 {
    app.ok(Method::GET, RESERVATIONS, None).await["meta"]["total"]
        .as_u64()
        .unwrap()
}

fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("an RFC 3339 time: {value}"))
        .into()
}

/// Asserts that `expires_at` is `minutes` after `create_time`, and `create_time` about now.
fn assert_holds_for(reservation: &Value, minutes: i64) {
    let created = time_of(&reservation["create_time"]);
    let expires = time_of(&reservation["expires_at"]);
    assert_eq!(
        expires - created,
        chrono::Duration::minutes(minutes),
        "{reservation}"
    );
    let age = chrono::Utc::now() - created;
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::seconds(30),
        "created just now: {reservation}"
    );
}

/// A table row of bodies to check: a label, changes to a valid body, and the problems as
/// `(index, field)` (none: accepted).
type Case = (&'static str, Value, Vec<(Option<u64>, &'static str)>);

// ---- Creating ---------------------------------------------------------------------------------

async fn a_reservation_holds_its_units_and_answers_201_with_its_location(app: TestApp) {
    let (clerk, token) = app.seller("cart.service", &[SELLER_A]).await;
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 5).await;
    let body = json!({"seller_id": SELLER_A, "market_place_id": "US",
        "reservation_type": "cart", "reference_id": "cart:7f3a9c-01_x.y",
        "items": items(&[("SKU000000000B", 5), ("SKU000000000A", 3)]),
        "expires_minutes": 60});
    let response = app
        .request_as(Method::POST, RESERVATIONS, Some(&body), Some(&token))
        .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.json["code"], 201);
    assert_eq!(response.json["message"], "Success");
    let data = &response.json["data"];
    let id = id_of(data);
    assert_eq!(
        response.headers["location"],
        format!("/api/v1/reservations/{id}")
    );
    let expected = json!({
        "id": id,
        "seller_id": SELLER_A,
        "market_place_id": "US",
        "reservation_type": "cart",
        "reference_id": "cart:7f3a9c-01_x.y",
        "status": "active",
        "items": [
            {"inventory_id": id_of(&b), "seller_sku": "SKU000000000B", "quantity": 5},
            {"inventory_id": id_of(&a), "seller_sku": "SKU000000000A", "quantity": 3}],
        "expires_at": data["expires_at"],
        "order_id": null,
        "created_by": clerk,
        "version": 1,
        "create_time": data["create_time"],
        "update_time": data["create_time"],
    });
    assert_eq!(*data, expected);
    assert_holds_for(data, 60);
    assert_eq!(reservation(&app, id).await, *data, "read back as answered");

    assert_eq!(numbers(&app, id_of(&a)).await, (10, 3, 7));
    assert_eq!(numbers(&app, id_of(&b)).await, (5, 5, 0));
    assert_eq!(app.row(id_of(&b)).await["stock_level"], "out_of_stock");

    // An order reservation of what is left, and the SKU in another marketplace is another row.
    stock_of(&app, (SELLER_A, "DE", "SKU000000000A"), 1).await;
    let order = app
        .reserve_ok(&reservation_body(json!({"reservation_type": "order",
            "reference_id": "order:1", "items": items(&[("SKU000000000A", 7)])})))
        .await;
    assert_eq!(order["reservation_type"], "order");
    assert_eq!(numbers(&app, id_of(&a)).await, (10, 10, 0));
    app.assert_books_balance().await;
}

async fn a_reservation_without_expires_minutes_holds_for_thirty_minutes(app: TestApp) {
    stock(&app, "SKU0000000001", 10).await;
    let default = app.reserve_ok(&reservation_body(json!({}))).await;
    assert_holds_for(&default, 30);
    for minutes in [1, 10080] {
        let held = app
            .reserve_ok(&reservation_body(json!({"expires_minutes": minutes})))
            .await;
        assert_holds_for(&held, minutes);
    }
}

async fn a_missing_sku_fails_the_whole_reservation_with_sku_not_found(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 10).await;
    stock_of(&app, (SELLER_A, "DE", "SKU000000000C"), 10).await;
    stock_of(&app, (SELLER_B, "US", "SKU000000000D"), 10).await;
    let before = (app.row(id_of(&a)).await, app.row(id_of(&b)).await);

    let body = reservation_body(json!({"items": items(&[
        ("SKU000000000A", 1),
        ("SKU000000000Z", 1),
        ("SKU000000000B", 20),
        ("SKU000000000C", 1),
        ("SKU000000000D", 1),
        ("sku000000000a", 1)])}));
    let response = reserve(&app, &body).await;
    assert_error(&response, StatusCode::NOT_FOUND, "SKU_NOT_FOUND");
    assert_eq!(
        response.json["detail"],
        json!([
            {"index": 1, "seller_sku": "SKU000000000Z"},
            {"index": 3, "seller_sku": "SKU000000000C"},
            {"index": 4, "seller_sku": "SKU000000000D"},
            {"index": 5, "seller_sku": "sku000000000a"}]),
        "missing here: another SKU, marketplace, seller, or case"
    );
    assert_eq!(
        (app.row(id_of(&a)).await, app.row(id_of(&b)).await),
        before,
        "nothing held"
    );
    assert_eq!(reservation_count(&app).await, 0);
    app.assert_books_balance().await;
}

async fn a_short_item_fails_the_whole_reservation_listing_every_short_item(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 5).await;
    let c = stock(&app, "SKU000000000C", 0).await;
    app.reserve_ok(&reservation_body(
        json!({"items": items(&[("SKU000000000B", 3)])}),
    ))
    .await;
    let rows = [id_of(&a), id_of(&b), id_of(&c)];
    let mut before = Vec::new();
    for id in rows {
        before.push((app.row(id).await, app.history(id).await));
    }
    let count = reservation_count(&app).await;

    let body = reservation_body(json!({"items": items(&[
        ("SKU000000000A", 10),
        ("SKU000000000B", 3),
        ("SKU000000000C", 1)])}));
    let response = reserve(&app, &body).await;
    assert_error(&response, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");
    assert_eq!(
        response.json["detail"],
        json!([
            {"index": 1, "seller_sku": "SKU000000000B", "requested": 3, "available": 2},
            {"index": 2, "seller_sku": "SKU000000000C", "requested": 1, "available": 0}])
    );
    for (id, (row, history)) in rows.into_iter().zip(&before) {
        assert_eq!(app.row(id).await, *row, "nothing held of row {id}");
        assert_eq!(
            app.history(id).await,
            *history,
            "no ledger entry of row {id}"
        );
    }
    assert_eq!(reservation_count(&app).await, count, "no reservation");

    // Exactly what is available is fine.
    let all = reserve(
        &app,
        &reservation_body(json!({"items": items(&[("SKU000000000A", 10), ("SKU000000000B", 2)])})),
    )
    .await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.text);
    assert_eq!(numbers(&app, id_of(&a)).await, (10, 10, 0));
    assert_eq!(numbers(&app, id_of(&b)).await, (5, 5, 0));
    app.assert_books_balance().await;
}

async fn reservation_fields_are_checked_at_their_boundaries(app: TestApp) {
    // A hundred rows with plenty of stock, for the hundred-item reservation.
    let rows: Vec<Value> = (0..100)
        .map(|i| inventory_body(json!({"seller_sku": format!("SKU{i:010}"), "inventory": 1000})))
        .collect();
    app.post_ok("/api/v1/inventory/batch", &json!({"items": rows}))
        .await;
    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"seller_sku": format!("SKU{i:010}"), "quantity": 1}))
        .collect();
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"seller_sku": format!("SKU{i:010}"), "quantity": 1}))
        .collect();
    let one = |quantity: Value| json!([{"seller_sku": "SKU0000000001", "quantity": quantity}]);

    // (label, changes to a valid body, problems as (index, field); none: 201)
    let cases: Vec<Case> = vec![
        ("the example", json!({}), vec![]),
        ("100 items", json!({"items": hundred}), vec![]),
        (
            "101 items",
            json!({"items": too_many}),
            vec![(None, "items")],
        ),
        ("no items", json!({"items": []}), vec![(None, "items")]),
        (
            "items missing",
            json!({"-items": null}),
            vec![(None, "items")],
        ),
        (
            "items an object",
            json!({"items": {"seller_sku": "SKU0000000001"}}),
            vec![(None, "items")],
        ),
        (
            "an item not an object",
            json!({"items": ["SKU0000000001"]}),
            vec![(Some(0), "items")],
        ),
        (
            "one SKU twice",
            json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 1},
                {"seller_sku": "SKU0000000002", "quantity": 1},
                {"seller_sku": "SKU0000000001", "quantity": 2}]}),
            vec![(Some(2), "items")],
        ),
        ("quantity 1", json!({"items": one(json!(1))}), vec![]),
        (
            "quantity 0",
            json!({"items": one(json!(0))}),
            vec![(Some(0), "quantity")],
        ),
        (
            "quantity -1",
            json!({"items": one(json!(-1))}),
            vec![(Some(0), "quantity")],
        ),
        (
            "quantity 2147483648",
            json!({"items": one(json!(2147483648_i64))}),
            vec![(Some(0), "quantity")],
        ),
        (
            "quantity 1.5",
            json!({"items": one(json!(1.5))}),
            vec![(Some(0), "quantity")],
        ),
        (
            "quantity a string",
            json!({"items": one(json!("1"))}),
            vec![(Some(0), "quantity")],
        ),
        (
            "quantity missing",
            json!({"items": [{"seller_sku": "SKU0000000001"}]}),
            vec![(Some(0), "quantity")],
        ),
        (
            "seller_sku too short",
            json!({"items": [{"seller_sku": "SKU1", "quantity": 1}]}),
            vec![(Some(0), "seller_sku")],
        ),
        (
            "an unknown item field",
            json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 1, "price": 3}]}),
            vec![(Some(0), "price")],
        ),
        (
            "reference_id of 64",
            json!({"reference_id": "r".repeat(64)}),
            vec![],
        ),
        (
            "reference_id of every allowed sign",
            json!({"reference_id": "Az09._:-"}),
            vec![],
        ),
        (
            "reference_id empty",
            json!({"reference_id": ""}),
            vec![(None, "reference_id")],
        ),
        (
            "reference_id of 65",
            json!({"reference_id": "r".repeat(65)}),
            vec![(None, "reference_id")],
        ),
        (
            "reference_id with a space",
            json!({"reference_id": "cart 1"}),
            vec![(None, "reference_id")],
        ),
        (
            "reference_id with a slash",
            json!({"reference_id": "cart/1"}),
            vec![(None, "reference_id")],
        ),
        (
            "reference_id not ASCII",
            json!({"reference_id": "cärt"}),
            vec![(None, "reference_id")],
        ),
        (
            "reference_id missing",
            json!({"-reference_id": null}),
            vec![(None, "reference_id")],
        ),
        ("expires in 1 minute", json!({"expires_minutes": 1}), vec![]),
        (
            "expires in 10080 minutes",
            json!({"expires_minutes": 10080}),
            vec![],
        ),
        (
            "expires in 0 minutes",
            json!({"expires_minutes": 0}),
            vec![(None, "expires_minutes")],
        ),
        (
            "expires in 10081 minutes",
            json!({"expires_minutes": 10081}),
            vec![(None, "expires_minutes")],
        ),
        (
            "expires in -1 minutes",
            json!({"expires_minutes": -1}),
            vec![(None, "expires_minutes")],
        ),
        (
            "expires in 1.5 minutes",
            json!({"expires_minutes": 1.5}),
            vec![(None, "expires_minutes")],
        ),
        ("type order", json!({"reservation_type": "order"}), vec![]),
        (
            "type wishlist",
            json!({"reservation_type": "wishlist"}),
            vec![(None, "reservation_type")],
        ),
        (
            "type in capitals",
            json!({"reservation_type": "CART"}),
            vec![(None, "reservation_type")],
        ),
        (
            "type missing",
            json!({"-reservation_type": null}),
            vec![(None, "reservation_type")],
        ),
        (
            "seller_id bad",
            json!({"seller_id": "A1"}),
            vec![(None, "seller_id")],
        ),
        (
            "marketplace lower case",
            json!({"market_place_id": "us"}),
            vec![(None, "market_place_id")],
        ),
        (
            "an unknown field",
            json!({"status": "active"}),
            vec![(None, "status")],
        ),
    ];
    for (label, changes, problems) in cases {
        let response = reserve(&app, &reservation_body(changes)).await;
        if problems.is_empty() {
            assert_eq!(
                response.status,
                StatusCode::CREATED,
                "{label}: {}",
                response.text
            );
            // Give the units back for the next case.
            let released = release(&app, id_of(&response.json["data"])).await;
            assert_eq!(
                released.status,
                StatusCode::OK,
                "{label}: {}",
                released.text
            );
            continue;
        }
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let expected: Vec<(Option<u64>, String)> = problems
            .into_iter()
            .map(|(i, f)| (i, f.to_owned()))
            .collect();
        assert_eq!(
            indexed_fields(&response),
            expected,
            "{label}: {}",
            response.text
        );
    }
    assert_eq!(
        app.ok(Method::GET, &format!("{RESERVATIONS}?status=active"), None)
            .await["meta"]["total"],
        0,
        "nothing held"
    );
    app.assert_books_balance().await;
}

async fn every_problem_of_a_reservation_is_listed_at_once(app: TestApp) {
    stock(&app, "SKU0000000001", 10).await;
    let body = json!({"seller_id": "A1", "market_place_id": "usa",
        "reservation_type": "basket", "reference_id": "",
        "items": [{"seller_sku": "SKU0000000001", "quantity": 1},
            {"seller_sku": "bad sku", "quantity": 0},
            {"quantity": 1, "colour": "red"}],
        "expires_minutes": 0, "note": "x"});
    let response = reserve(&app, &body).await;
    assert_error(
        &response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );
    let mut found = indexed_fields(&response);
    found.sort();
    let mut expected: Vec<(Option<u64>, String)> = [
        (None, "seller_id"),
        (None, "market_place_id"),
        (None, "reservation_type"),
        (None, "reference_id"),
        (None, "expires_minutes"),
        (None, "note"),
        (Some(1), "seller_sku"),
        (Some(1), "quantity"),
        (Some(2), "seller_sku"),
        (Some(2), "colour"),
    ]
    .into_iter()
    .map(|(i, f)| (i, f.to_owned()))
    .collect();
    expected.sort();
    assert_eq!(found, expected, "{}", response.text);
    assert_eq!(reservation_count(&app).await, 0);
}

async fn a_seller_reserves_only_for_their_own_sellers(app: TestApp) {
    let own = stock(&app, "SKU0000000001", 10).await;
    let foreign = stock_of(&app, (SELLER_B, "US", "SKU0000000001"), 10).await;
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;

    let refused = app
        .request_as(
            Method::POST,
            RESERVATIONS,
            Some(&reservation_body(json!({"seller_id": SELLER_B}))),
            Some(&token),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.row(id_of(&foreign)).await, foreign, "nothing held");
    assert_eq!(reservation_count(&app).await, 0);

    let allowed = app
        .request_as(
            Method::POST,
            RESERVATIONS,
            Some(&reservation_body(json!({}))),
            Some(&token),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.text);
    assert_eq!(numbers(&app, id_of(&own)).await, (10, 2, 8));
    app.assert_books_balance().await;
}

// ---- Reading ----------------------------------------------------------------------------------

async fn reservations_are_read_and_listed_by_filters_within_the_callers_sellers(app: TestApp) {
    stock(&app, "SKU0000000001", 100).await;
    stock_of(&app, (SELLER_A, "DE", "SKU0000000001"), 100).await;
    stock_of(&app, (SELLER_B, "US", "SKU0000000001"), 100).await;
    let make = reservation_body;
    let a_cart = app
        .reserve_ok(&make(json!({"reference_id": "cart:1"})))
        .await;
    let a_de = app
        .reserve_ok(&make(
            json!({"market_place_id": "DE", "reservation_type": "order",
            "reference_id": "order:2"}),
        ))
        .await;
    let a_released = app
        .reserve_ok(&make(json!({"reference_id": "cart:1"})))
        .await;
    release(&app, id_of(&a_released)).await;
    let a_committed = app
        .reserve_ok(&make(json!({"reference_id": "cart:3"})))
        .await;
    commit(&app, id_of(&a_committed), "order:3").await;
    let b_cart = app
        .reserve_ok(&make(
            json!({"seller_id": SELLER_B, "reference_id": "cart:1"}),
        ))
        .await;
    let [a_cart, a_de, a_released, a_committed, b_cart] =
        [a_cart, a_de, a_released, a_committed, b_cart].map(|r| id_of(&r));
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;

    let cases: Vec<(&str, &str, bool, Vec<i64>)> = vec![
        (
            "everything",
            "",
            false,
            vec![a_cart, a_de, a_released, a_committed, b_cart],
        ),
        (
            "seller A",
            "?seller_id=A1SELLER0001",
            false,
            vec![a_cart, a_de, a_released, a_committed],
        ),
        ("DE", "?market_place_id=DE", false, vec![a_de]),
        (
            "active",
            "?status=active",
            false,
            vec![a_cart, a_de, b_cart],
        ),
        ("released", "?status=released", false, vec![a_released]),
        ("committed", "?status=committed", false, vec![a_committed]),
        ("expired", "?status=expired", false, vec![]),
        (
            "cart:1",
            "?reference_id=cart:1",
            false,
            vec![a_cart, a_released, b_cart],
        ),
        (
            "seller A's active cart:1",
            "?seller_id=A1SELLER0001&reference_id=cart:1&status=active",
            false,
            vec![a_cart],
        ),
        (
            "everything, as seller A",
            "",
            true,
            vec![a_cart, a_de, a_released, a_committed],
        ),
        (
            "cart:1, as seller A",
            "?reference_id=cart:1",
            true,
            vec![a_cart, a_released],
        ),
    ];
    for (label, query, as_seller, expected) in cases {
        let caller = if as_seller { &token } else { &app.admin_token };
        let response = app
            .request_as(
                Method::GET,
                &format!("{RESERVATIONS}{query}"),
                None,
                Some(caller.as_str()),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        let ids: Vec<i64> = response.json["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect();
        assert_eq!(ids, expected, "{label}");
        assert_eq!(
            response.json["data"]["meta"]["total"],
            expected.len(),
            "{label}"
        );
    }

    // Each listed reservation is the one read by id.
    let listed = app.ok(Method::GET, RESERVATIONS, None).await;
    for item in listed["items"].as_array().unwrap() {
        assert_eq!(reservation(&app, id_of(item)).await, *item);
    }
    assert_eq!(reservation(&app, a_committed).await["order_id"], "order:3");
    let page = app
        .ok(Method::GET, &format!("{RESERVATIONS}?size=2&page=3"), None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["meta"],
        json!({"total": 5, "page": 3, "size": 2, "pages": 3, "has_next": false, "has_prev": true})
    );

    // A seller: their own by id; another seller's looks like no reservation at all.
    let own = app
        .request_as(
            Method::GET,
            &format!("{RESERVATIONS}/{a_cart}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    for (label, id, caller) in [
        ("another seller's", b_cart, &token),
        ("an unknown id, as seller", 999999, &token),
        ("an unknown id, as admin", 999999, &app.admin_token),
    ] {
        let response = app
            .request_as(
                Method::GET,
                &format!("{RESERVATIONS}/{id}"),
                None,
                Some(caller.as_str()),
            )
            .await;
        assert_error_in(
            label,
            &response,
            StatusCode::NOT_FOUND,
            "RESERVATION_NOT_FOUND",
        );
        assert!(
            !response.text.contains(SELLER_B),
            "{label}: {}",
            response.text
        );
    }
    let filter = app
        .request_as(
            Method::GET,
            &format!("{RESERVATIONS}?seller_id={SELLER_B}"),
            None,
            Some(&token),
        )
        .await;
    assert_error(&filter, StatusCode::FORBIDDEN, "FORBIDDEN");

    for (label, query, field) in [
        ("a bad status", "?status=open", "status"),
        ("a bad reference", "?reference_id=cart%201", "reference_id"),
        ("a bad seller", "?seller_id=A1", "seller_id"),
        ("an unknown parameter", "?order_id=order:3", "order_id"),
        ("page 0", "?page=0", "page"),
    ] {
        let response = app.get(&format!("{RESERVATIONS}{query}")).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let fields: Vec<String> = indexed_fields(&response)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(fields, [field], "{label}: {}", response.text);
    }
    let bad_id = app.get(&format!("{RESERVATIONS}/abc")).await;
    assert_error(
        &bad_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );
}

// ---- Ending -------------------------------------------------------------------------------------

async fn a_release_frees_the_units_once_and_only_an_active_reservation_is_released(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 10).await;
    let held = app
        .reserve_ok(&reservation_body(
            json!({"items": items(&[("SKU000000000A", 4), ("SKU000000000B", 10)])}),
        ))
        .await;
    let id = id_of(&held);
    let (_, other) = app.seller("seller.b", &[SELLER_B]).await;

    // Another seller cannot release it: to them it does not exist.
    let foreign = app
        .request_as(
            Method::DELETE,
            &format!("{RESERVATIONS}/{id}"),
            None,
            Some(&other),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "RESERVATION_NOT_FOUND");
    assert_eq!(reservation(&app, id).await, held);
    assert_eq!(numbers(&app, id_of(&a)).await, (10, 4, 6));

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let released = release(&app, id).await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    let data = &released.json["data"];
    assert_eq!(data["status"], "released");
    assert_eq!(data["order_id"], Value::Null);
    assert_eq!(data["items"], held["items"]);
    assert_eq!(data["create_time"], held["create_time"]);
    assert!(
        data["update_time"].as_str() > held["update_time"].as_str(),
        "{data}"
    );
    assert_eq!(reservation(&app, id).await, *data);
    assert_eq!(numbers(&app, id_of(&a)).await, (10, 0, 10));
    assert_eq!(numbers(&app, id_of(&b)).await, (10, 0, 10));

    for (label, response) in [
        ("release again", release(&app, id).await),
        ("commit after release", commit(&app, id, "order:1").await),
    ] {
        assert_error_in(
            label,
            &response,
            StatusCode::CONFLICT,
            "RESERVATION_NOT_ACTIVE",
        );
        assert_eq!(reservation(&app, id).await, *data, "{label}: unchanged");
    }
    assert_eq!(numbers(&app, id_of(&a)).await, (10, 0, 10));
    for (label, response) in [
        ("release an unknown id", release(&app, 999999).await),
        (
            "commit an unknown id",
            commit(&app, 999999, "order:1").await,
        ),
    ] {
        assert_error_in(
            label,
            &response,
            StatusCode::NOT_FOUND,
            "RESERVATION_NOT_FOUND",
        );
    }
    app.assert_books_balance().await;
}

async fn a_commit_takes_the_units_off_the_shelf_and_records_the_order(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 5).await;
    let held = app
        .reserve_ok(&reservation_body(json!({"reservation_type": "order",
            "reference_id": "checkout:42",
            "items": items(&[("SKU000000000A", 3), ("SKU000000000B", 5)])})))
        .await;
    let id = id_of(&held);
    let (_, other) = app.seller("seller.b", &[SELLER_B]).await;

    let foreign = app
        .request_as(
            Method::POST,
            &format!("{RESERVATIONS}/{id}/commit"),
            Some(&json!({"order_id": "order:42"})),
            Some(&other),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "RESERVATION_NOT_FOUND");
    for (label, body, field) in [
        ("no order_id", json!({}), "order_id"),
        ("an empty order_id", json!({"order_id": ""}), "order_id"),
        (
            "an order_id with a space",
            json!({"order_id": "order 42"}),
            "order_id",
        ),
        (
            "an order_id of 65",
            json!({"order_id": "o".repeat(65)}),
            "order_id",
        ),
        (
            "an unknown field",
            json!({"order_id": "order:42", "paid": true}),
            "paid",
        ),
    ] {
        let response = app
            .post(&format!("{RESERVATIONS}/{id}/commit"), &body)
            .await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let fields: Vec<String> = indexed_fields(&response)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(fields, [field], "{label}: {}", response.text);
    }
    assert_eq!(reservation(&app, id).await, held, "still active");

    let committed = commit(&app, id, "order:2026-11-0042").await;
    assert_eq!(committed.status, StatusCode::OK, "{}", committed.text);
    let data = &committed.json["data"];
    assert_eq!(data["status"], "committed");
    assert_eq!(data["order_id"], "order:2026-11-0042");
    assert_eq!(data["items"], held["items"]);
    assert_eq!(reservation(&app, id).await, *data);
    assert_eq!(numbers(&app, id_of(&a)).await, (7, 0, 7));
    assert_eq!(numbers(&app, id_of(&b)).await, (0, 0, 0));
    assert_eq!(app.row(id_of(&b)).await["stock_level"], "out_of_stock");

    for (label, response) in [
        ("commit again", commit(&app, id, "order:2026-11-0042").await),
        ("release after commit", release(&app, id).await),
    ] {
        assert_error_in(
            label,
            &response,
            StatusCode::CONFLICT,
            "RESERVATION_NOT_ACTIVE",
        );
        assert_eq!(reservation(&app, id).await, *data, "{label}: unchanged");
    }
    assert_eq!(numbers(&app, id_of(&a)).await, (7, 0, 7));
    app.assert_books_balance().await;
}

async fn releasing_a_cart_releases_every_active_reservation_of_it(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 20).await;
    let b = stock(&app, "SKU000000000B", 20).await;
    stock_of(&app, (SELLER_B, "US", "SKU000000000A"), 20).await;
    let cart = |changes: Value| {
        crate::helpers::merge(reservation_body(json!({"reference_id": "cart:7"})), changes)
    };
    app.reserve_ok(&cart(json!({"items": items(&[("SKU000000000A", 3)])})))
        .await;
    app.reserve_ok(&cart(
        json!({"items": items(&[("SKU000000000A", 1), ("SKU000000000B", 1)])}),
    ))
    .await;
    let released = app
        .reserve_ok(&cart(json!({"items": items(&[("SKU000000000B", 4)])})))
        .await;
    release(&app, id_of(&released)).await;
    let other_cart = app
        .reserve_ok(&reservation_body(
            json!({"reference_id": "cart:8", "items": items(&[("SKU000000000A", 2)])}),
        ))
        .await;
    let other_seller = app
        .reserve_ok(&cart(
            json!({"seller_id": SELLER_B, "items": items(&[("SKU000000000A", 1)])}),
        ))
        .await;
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;

    let whole = json!({"seller_id": SELLER_A, "reference_id": "cart:7"});
    let response = app
        .request_as(
            Method::POST,
            &format!("{RESERVATIONS}/release"),
            Some(&whole),
            Some(&token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json["data"],
        json!({"released_reservations": 2, "released_quantity": 5})
    );
    assert_eq!(
        numbers(&app, id_of(&a)).await,
        (20, 2, 18),
        "cart:8 still holds 2"
    );
    assert_eq!(numbers(&app, id_of(&b)).await, (20, 0, 20));
    let released_now = app
        .ok(
            Method::GET,
            &format!("{RESERVATIONS}?seller_id={SELLER_A}&reference_id=cart:7&status=released"),
            None,
        )
        .await;
    assert_eq!(released_now["meta"]["total"], 3);
    assert_eq!(
        reservation(&app, id_of(&other_cart)).await["status"],
        "active"
    );
    assert_eq!(
        reservation(&app, id_of(&other_seller)).await["status"],
        "active"
    );

    for (label, body) in [
        ("the same cart again", whole.clone()),
        (
            "an unknown cart",
            json!({"seller_id": SELLER_A, "reference_id": "cart:404"}),
        ),
    ] {
        let data = app.post_ok(&format!("{RESERVATIONS}/release"), &body).await;
        assert_eq!(
            data,
            json!({"released_reservations": 0, "released_quantity": 0}),
            "{label}"
        );
    }

    let foreign = app
        .request_as(
            Method::POST,
            &format!("{RESERVATIONS}/release"),
            Some(&json!({"seller_id": SELLER_B, "reference_id": "cart:7"})),
            Some(&token),
        )
        .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(
        reservation(&app, id_of(&other_seller)).await["status"],
        "active"
    );
    for (label, body, fields) in [
        (
            "no reference_id",
            json!({"seller_id": SELLER_A}),
            vec!["reference_id"],
        ),
        (
            "no body fields",
            json!({}),
            vec!["seller_id", "reference_id"],
        ),
        (
            "a bad reference_id",
            json!({"seller_id": SELLER_A, "reference_id": "cart 7"}),
            vec!["reference_id"],
        ),
        (
            "an unknown field",
            json!({"seller_id": SELLER_A, "reference_id": "cart:7", "status": "active"}),
            vec!["status"],
        ),
    ] {
        let response = app.post(&format!("{RESERVATIONS}/release"), &body).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let found: Vec<String> = indexed_fields(&response)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(found, fields, "{label}: {}", response.text);
    }
    app.assert_books_balance().await;
}

// ---- Reservations and the rows they hold --------------------------------------------------------

async fn a_row_with_active_reservations_cannot_be_deleted_until_they_end(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    let held = app.reserve_ok(&reservation_body(json!({}))).await;
    let second = app.reserve_ok(&reservation_body(json!({}))).await;
    let before = app.row(id).await;

    let refused = app.delete(&format!("{INVENTORY}/{id}")).await;
    assert_error(&refused, StatusCode::CONFLICT, "ACTIVE_RESERVATIONS");
    assert_eq!(app.row(id).await, before, "the row stays as it was");

    release(&app, id_of(&held)).await;
    let refused = app.delete(&format!("{INVENTORY}/{id}")).await;
    assert_error(&refused, StatusCode::CONFLICT, "ACTIVE_RESERVATIONS");
    commit(&app, id_of(&second), "order:1").await;
    let last = app.row(id).await;
    assert_eq!(
        (last["inventory"].clone(), last["reserved"].clone()),
        (json!(8), json!(0))
    );

    let deleted = app.delete(&format!("{INVENTORY}/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.json["data"], last, "the row as it was");
    let gone = app.get(&format!("{INVENTORY}/{id}")).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "NOT_FOUND");
    // Finished reservations of a deleted row stay readable.
    assert_eq!(
        reservation(&app, id_of(&second)).await["status"],
        "committed"
    );
    app.assert_books_balance().await;
}

async fn an_upsert_below_the_reserved_units_oversells_the_row_and_further_reservations_fail(
    app: TestApp,
) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    app.reserve_ok(&reservation_body(
        json!({"items": items(&[("SKU0000000001", 6)])}),
    ))
    .await;

    let oversold = stock(&app, "SKU0000000001", 4).await;
    assert_eq!(
        (
            oversold["inventory"].clone(),
            oversold["reserved"].clone(),
            oversold["available"].clone()
        ),
        (json!(4), json!(6), json!(-2)),
        "the marketplace's count wins: {oversold}"
    );
    assert_eq!(oversold["stock_level"], "out_of_stock");

    let refused = reserve(
        &app,
        &reservation_body(json!({"items": items(&[("SKU0000000001", 1)])})),
    )
    .await;
    assert_error(&refused, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");
    assert_eq!(
        refused.json["detail"],
        json!([{"index": 0, "seller_sku": "SKU0000000001", "requested": 1, "available": -2}])
    );
    let adjusted = app
        .post(
            &format!("{INVENTORY}/{id}/adjust"),
            &json!({"adjustment_type": "decrease", "quantity": 1, "reason": "damaged"}),
        )
        .await;
    assert_error(&adjusted, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");
    assert_eq!(
        adjusted.json["detail"],
        json!({"requested": 1, "available": -2})
    );
    assert_eq!(app.row(id).await, oversold, "nothing changed");

    // Stock comes back: reservations work again.
    let adjusted = app
        .post(
            &format!("{INVENTORY}/{id}/adjust"),
            &json!({"adjustment_type": "increase", "quantity": 5, "reason": "delivery"}),
        )
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    assert_eq!(adjusted.json["data"]["inventory"]["available"], 3);
    let again = reserve(
        &app,
        &reservation_body(json!({"items": items(&[("SKU0000000001", 3)])})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(numbers(&app, id).await, (9, 9, 0));
    app.assert_books_balance().await;
}

async fn a_commit_on_an_oversold_row_that_lacks_units_is_refused_and_changes_nothing(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 10).await;
    let b = stock(&app, "SKU000000000B", 10).await;
    let held = app
        .reserve_ok(&reservation_body(
            json!({"items": items(&[("SKU000000000A", 2), ("SKU000000000B", 6)])}),
        ))
        .await;
    let id = id_of(&held);
    stock(&app, "SKU000000000B", 4).await;
    let before = (app.row(id_of(&a)).await, app.row(id_of(&b)).await);
    let entries = (app.history(id_of(&a)).await, app.history(id_of(&b)).await);

    let refused = commit(&app, id, "order:1").await;
    assert_error(&refused, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");
    assert_eq!(
        refused.json["detail"],
        json!([{"index": 1, "seller_sku": "SKU000000000B", "requested": 6, "available": 4}]),
        "for a commit, available is the units on hand"
    );
    assert_eq!(reservation(&app, id).await, held, "still active, no order");
    assert_eq!(
        (app.row(id_of(&a)).await, app.row(id_of(&b)).await),
        before,
        "neither row changed, not even the one that had the units"
    );
    assert_eq!(
        (app.history(id_of(&a)).await, app.history(id_of(&b)).await),
        entries,
        "no ledger entry"
    );

    // With the units back on hand the commit goes through.
    stock(&app, "SKU000000000B", 6).await;
    let committed = commit(&app, id, "order:1").await;
    assert_eq!(committed.status, StatusCode::OK, "{}", committed.text);
    assert_eq!(numbers(&app, id_of(&a)).await, (8, 0, 8));
    assert_eq!(numbers(&app, id_of(&b)).await, (0, 0, 0));
    app.assert_books_balance().await;
}

async fn simultaneous_reservations_never_hold_more_than_is_available(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 25).await;
    let b = stock(&app, "SKU000000000B", 25).await;
    let app = Arc::new(app);
    // 40 carts each want one unit of both rows (half of them name the rows the other way
    // round), while 10 deliveries add a unit each to row A: B, with 25, decides.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        let order = if i % 2 == 0 {
            [("SKU000000000A", 1), ("SKU000000000B", 1)]
        } else {
            [("SKU000000000B", 1), ("SKU000000000A", 1)]
        };
        let body = reservation_body(json!({"reference_id": format!("cart:{i}"),
            "items": items(&order)}));
        tasks.push(tokio::spawn(
            async move { app.post(RESERVATIONS, &body).await },
        ));
    }
    for _ in 0..10 {
        let app = app.clone();
        let uri = format!("{INVENTORY}/{}/adjust", id_of(&a));
        let body = json!({"adjustment_type": "increase", "quantity": 1, "reason": "delivery"});
        tasks.push(tokio::spawn(async move { app.post(&uri, &body).await }));
    }
    let mut held = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            StatusCode::CREATED => held.push(id_of(&response.json["data"])),
            StatusCode::OK => {}
            StatusCode::CONFLICT => {
                assert_eq!(response.json["error_code"], "INSUFFICIENT_INVENTORY");
            }
            other => panic!("{other}: {}", response.text),
        }
    }
    assert_eq!(held.len(), 25, "exactly what row B had");
    assert_eq!(numbers(&app, id_of(&a)).await, (35, 25, 10));
    assert_eq!(numbers(&app, id_of(&b)).await, (25, 25, 0));

    // Then commit half and release the rest, all at once.
    let tasks: Vec<_> = held
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let app = app.clone();
            let id = *id;
            tokio::spawn(async move {
                if i % 2 == 0 {
                    commit(&app, id, &format!("order:{id}")).await
                } else {
                    release(&app, id).await
                }
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    // 13 committed, 12 released.
    assert_eq!(numbers(&app, id_of(&a)).await, (22, 0, 22));
    assert_eq!(numbers(&app, id_of(&b)).await, (12, 0, 12));
    app.assert_books_balance().await;
}

async fn reservations_and_new_rows_at_once_never_fail_with_a_server_error(app: TestApp) {
    // Even SKUs exist; odd ones are created while reservations ask for them (and for their
    // neighbours), so reads that lock keys and inserts of new keys meet in one index range.
    let existing: Vec<Value> = (0..20)
        .map(|i| {
            inventory_body(json!({"seller_sku": format!("SKU{:010}", 2 * i), "inventory": 100}))
        })
        .collect();
    app.post_ok("/api/v1/inventory/batch", &json!({"items": existing}))
        .await;
    let app = Arc::new(app);
    let post = |uri: &'static str, body: Value| {
        let app = app.clone();
        tokio::spawn(async move { app.post(uri, &body).await })
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sku = |n: usize| format!("SKU{n:010}");
        let wanted = [
            (sku(2 * i), 1),
            (sku(2 * i + 1), 1),
            (sku((2 * i + 2) % 40), 1),
        ];
        let wanted: Vec<(&str, i64)> = wanted.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        let cart =
            reservation_body(json!({"reference_id": format!("cart:{i}"), "items": items(&wanted)}));
        tasks.push(post(RESERVATIONS, cart));
        let new_row = json!({"seller_sku": sku(2 * i + 1), "inventory": 100});
        tasks.push(post(INVENTORY, inventory_body(new_row)));
        let recount = json!({"seller_sku": sku(2 * i), "inventory": 90});
        tasks.push(post(INVENTORY, inventory_body(recount)));
    }
    let mut created = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            StatusCode::OK => {}
            StatusCode::CREATED => created += 1,
            StatusCode::NOT_FOUND => {
                assert_eq!(
                    response.json["error_code"], "SKU_NOT_FOUND",
                    "{}",
                    response.text
                );
            }
            other => panic!("{other}: {}", response.text),
        }
    }
    let active = app
        .ok(Method::GET, &format!("{RESERVATIONS}?status=active"), None)
        .await;
    assert_eq!(active["meta"]["total"], created);
    app.assert_books_balance().await;
}
