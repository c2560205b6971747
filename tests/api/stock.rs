//! Stock of inventory rows over HTTP, on every backend: the numbers of a row and its version,
//! adjustments by hand, thresholds and stock levels, the low-stock list, lookups, and the
//! consistency check. `docs/stock.md` is the contract.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, assert_error_in, field_errors, id_of, indexed_fields, inventory_body,
    request_id_of, reservation_body, TestApp, TestResponse,
};

const INVENTORY: &str = "/api/v1/inventory";
const LOW_STOCK: &str = "/api/v1/inventory/low-stock";
const LOOKUP: &str = "/api/v1/inventory/lookup";
const CHECK: &str = "/api/v1/inventory/consistency-check";
const SELLER_A: &str = "A1SELLER0001";
const SELLER_B: &str = "B1SELLER0001";

backend_tests!(
    a_new_row_holds_nothing_reserved_has_no_thresholds_and_starts_at_version_one,
    every_change_to_a_row_moves_its_version_by_one_and_nothing_else_does,
    an_upsert_that_changes_nothing_leaves_version_update_time_and_ledger_untouched,
    the_stock_level_follows_available_at_each_boundary,
    an_adjustment_increases_decreases_or_sets_the_units_and_returns_its_ledger_entry,
    an_adjustment_below_the_reserved_units_is_refused_and_changes_nothing,
    an_increase_past_2147483647_is_invalid_quantity_and_changes_nothing,
    adjustment_fields_are_checked_at_their_boundaries,
    every_problem_of_an_adjustment_is_listed_at_once,
    adjusting_or_setting_thresholds_of_an_unknown_or_foreign_row_is_not_found,
    thresholds_decide_the_stock_level_and_null_clears_them,
    setting_the_thresholds_a_row_already_has_changes_nothing,
    threshold_fields_are_checked_at_their_boundaries,
    low_stock_lists_rows_at_the_level_asked_or_worse_least_available_first,
    low_stock_filters_by_seller_and_marketplace_and_keeps_sellers_to_their_own_rows,
    a_lookup_by_ids_answers_in_input_order_with_null_for_missing_rows,
    a_lookup_by_keys_answers_in_input_order_with_null_for_missing_rows,
    a_seller_looks_up_only_their_own_rows,
    lookup_bodies_are_checked_and_bad_entries_named_by_index,
    a_lookup_with_both_or_neither_of_ids_and_keys_says_so_in_one_problem,
    a_lookup_takes_up_to_a_thousand_ids_or_keys,
    the_consistency_check_is_for_admins_only,
    healthy_books_are_reported_consistent_for_everyone_or_one_seller,
    an_oversold_row_is_reported_with_its_numbers,
    reserved_and_ledger_mismatches_are_reported_with_their_numbers,
);

// ---- Helpers --------------------------------------------------------------------------------

/// Creates (or updates) the row of `sku` of seller A in US with `units` on hand.
async fn stock(app: &TestApp, sku: &str, units: i64) -> Value {
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_sku": sku, "inventory": units})),
    )
    .await
}

/// An adjustment body with a reason.
fn adjustment(kind: &str, quantity: i64) -> Value {
    json!({"adjustment_type": kind, "quantity": quantity, "reason": "cycle count"})
}

async fn adjust(app: &TestApp, id: i64, body: &Value) -> TestResponse {
    app.post(&format!("{INVENTORY}/{id}/adjust"), body).await
}

async fn set_thresholds(app: &TestApp, id: i64, warning: Value, critical: Value) -> TestResponse {
    let body = json!({"warning_threshold": warning, "critical_threshold": critical});
    app.request(
        Method::PUT,
        &format!("{INVENTORY}/{id}/thresholds"),
        Some(&body),
    )
    .await
}

/// Holds `quantity` units of `sku` (seller A, US) in a cart reservation.
async fn hold(app: &TestApp, sku: &str, quantity: i64) -> Value {
    app.reserve_ok(&reservation_body(
        json!({"items": [{"seller_sku": sku, "quantity": quantity}]}),
    ))
    .await
}

/// The ids of a list's items.
fn ids(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {list}"))
        .iter()
        .map(id_of)
        .collect()
}

/// The fields of a 422's detail, sorted.
fn sorted_fields(response: &TestResponse) -> Vec<String> {
    let mut fields: Vec<String> = field_errors(response).into_iter().map(|(f, _)| f).collect();
    fields.sort();
    fields
}

/// A table row of bodies to check: a label, the body, and the problems as `(index, field)`.
type Case = (&'static str, Value, Vec<(Option<u64>, &'static str)>);

/// A request to make: a label, method, URI, body, bearer token and the status expected.
type Attempt<'a> = (
    &'a str,
    Method,
    String,
    &'a Value,
    Option<&'a str>,
    StatusCode,
);

// ---- The numbers of a row -------------------------------------------------------------------

async fn a_new_row_holds_nothing_reserved_has_no_thresholds_and_starts_at_version_one(
    app: TestApp,
) {
    for (units, level) in [(7, "ok"), (0, "out_of_stock")] {
        let row = stock(&app, &format!("SKU{units:010}"), units).await;
        assert_eq!(row["inventory"], units, "{row}");
        assert_eq!(row["reserved"], 0, "{row}");
        assert_eq!(row["available"], units, "{row}");
        assert_eq!(row["warning_threshold"], Value::Null, "{row}");
        assert_eq!(row["critical_threshold"], Value::Null, "{row}");
        assert_eq!(row["stock_level"], level, "{row}");
        assert_eq!(row["version"], 1, "{row}");
        assert_eq!(row["create_time"], row["update_time"], "{row}");
        assert_eq!(app.row(id_of(&row)).await, row);
    }
    app.assert_books_balance().await;
}

/// Checks that the row moved on by exactly one version since `last` (with a later
/// `update_time`), or not at all (same `update_time`), and remembers where it is now.
async fn expect_moved(app: &TestApp, last: &mut Value, moved: bool, label: &str) {
    let now = app.row(id_of(last)).await;
    let expected = last["version"].as_i64().unwrap() + i64::from(moved);
    assert_eq!(now["version"], expected, "{label}: {now}");
    if moved {
        assert!(
            now["update_time"].as_str() > last["update_time"].as_str(),
            "{label}: update_time moves on: {last} then {now}"
        );
    } else {
        assert_eq!(now, *last, "{label}: nothing changes");
    }
    *last = now;
}

async fn every_change_to_a_row_moves_its_version_by_one_and_nothing_else_does(app: TestApp) {
    let mut row = stock(&app, "SKU0000000001", 10).await;
    let mut other = stock(&app, "SKU0000000002", 10).await;
    let id = id_of(&row);

    let adjusted = adjust(&app, id, &adjustment("increase", 5)).await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    expect_moved(&app, &mut row, true, "an adjustment").await;

    let set = set_thresholds(&app, id, json!(5), json!(2)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    expect_moved(&app, &mut row, true, "new thresholds").await;
    set_thresholds(&app, id, json!(5), json!(2)).await;
    expect_moved(&app, &mut row, false, "the same thresholds again").await;

    let both = app
        .reserve_ok(&reservation_body(json!({"items": [
            {"seller_sku": "SKU0000000001", "quantity": 3},
            {"seller_sku": "SKU0000000002", "quantity": 1}]})))
        .await;
    expect_moved(&app, &mut row, true, "a reservation of its units").await;
    expect_moved(
        &app,
        &mut other,
        true,
        "a reservation of its units (2nd item)",
    )
    .await;
    app.ok(
        Method::DELETE,
        &format!("/api/v1/reservations/{}", id_of(&both)),
        None,
    )
    .await;
    expect_moved(&app, &mut row, true, "a release of its units").await;
    expect_moved(&app, &mut other, true, "a release of its units (2nd item)").await;

    let one = hold(&app, "SKU0000000001", 2).await;
    expect_moved(&app, &mut row, true, "a reservation of its units").await;
    expect_moved(&app, &mut other, false, "a reservation of another row").await;
    app.ok(
        Method::POST,
        &format!("/api/v1/reservations/{}/commit", id_of(&one)),
        Some(&json!({"order_id": "order:1"})),
    )
    .await;
    expect_moved(&app, &mut row, true, "a commit of its units").await;
    assert_eq!(row["inventory"], 13, "{row}");

    stock(&app, "SKU0000000001", 13).await;
    expect_moved(
        &app,
        &mut row,
        false,
        "an upsert of the same units and ASINs",
    )
    .await;
    stock(&app, "SKU0000000001", 20).await;
    expect_moved(&app, &mut row, true, "an upsert of other units").await;
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"inventory": 20, "parent_asin": "B0PARENT0009"})),
    )
    .await;
    expect_moved(&app, &mut row, true, "an upsert of another parent ASIN").await;
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"inventory": 20, "parent_asin": "B0PARENT0009",
            "child_asin": "B0CHILD00009"})),
    )
    .await;
    expect_moved(&app, &mut row, true, "an upsert of another child ASIN").await;

    let refused = adjust(&app, id, &adjustment("decrease", 21)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    expect_moved(&app, &mut row, false, "a refused adjustment").await;
    let refused = app
        .post(
            "/api/v1/reservations",
            &reservation_body(json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 21}]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    expect_moved(&app, &mut row, false, "a refused reservation").await;

    set_thresholds(&app, id, Value::Null, Value::Null).await;
    expect_moved(&app, &mut row, true, "thresholds cleared").await;
    app.assert_books_balance().await;
}

async fn an_upsert_that_changes_nothing_leaves_version_update_time_and_ledger_untouched(
    app: TestApp,
) {
    let created = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&created);
    hold(&app, "SKU0000000001", 4).await;
    let before = app.row(id).await;
    let entries = app.history(id).await.len();
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;

    let again = stock(&app, "SKU0000000001", 10).await;
    assert_eq!(again, before, "the answer is the row as it was");
    let batch = app
        .post_ok(
            "/api/v1/inventory/batch",
            &json!({"items": [inventory_body(json!({"inventory": 10}))]}),
        )
        .await;
    assert_eq!(batch["items"], json!([before]), "a batch of it too");
    assert_eq!(app.row(id).await, before);
    assert_eq!(app.history(id).await.len(), entries, "no ledger entry");
    app.assert_books_balance().await;
}

async fn the_stock_level_follows_available_at_each_boundary(app: TestApp) {
    let none = Value::Null;
    // (label, warning, critical, units on hand, reserved, level)
    let cases: Vec<(&str, Value, Value, i64, i64, &str)> = vec![
        ("above warning", json!(10), json!(3), 11, 0, "ok"),
        ("at warning", json!(10), json!(3), 10, 0, "warning"),
        ("just above critical", json!(10), json!(3), 4, 0, "warning"),
        ("at critical", json!(10), json!(3), 3, 0, "critical"),
        ("one left", json!(10), json!(3), 1, 0, "critical"),
        ("none on hand", json!(10), json!(3), 0, 0, "out_of_stock"),
        ("all reserved", json!(10), json!(3), 5, 5, "out_of_stock"),
        (
            "reserved down to critical",
            json!(10),
            json!(3),
            8,
            5,
            "critical",
        ),
        (
            "reserved down to warning",
            json!(10),
            json!(3),
            15,
            5,
            "warning",
        ),
        ("oversold", json!(10), json!(3), 3, 5, "out_of_stock"),
        (
            "only warning, at it",
            json!(10),
            none.clone(),
            10,
            0,
            "warning",
        ),
        ("only warning, above", json!(10), none.clone(), 11, 0, "ok"),
        (
            "only warning, one left",
            json!(10),
            none.clone(),
            1,
            0,
            "warning",
        ),
        (
            "only critical, at it",
            none.clone(),
            json!(3),
            3,
            0,
            "critical",
        ),
        ("only critical, above", none.clone(), json!(3), 4, 0, "ok"),
        (
            "no thresholds, one left",
            none.clone(),
            none.clone(),
            1,
            0,
            "ok",
        ),
        (
            "no thresholds, none",
            none.clone(),
            none.clone(),
            0,
            0,
            "out_of_stock",
        ),
        ("thresholds 0, one left", json!(0), json!(0), 1, 0, "ok"),
        (
            "thresholds 0, none",
            json!(0),
            json!(0),
            0,
            0,
            "out_of_stock",
        ),
        (
            "equal thresholds, at them",
            json!(5),
            json!(5),
            5,
            0,
            "critical",
        ),
        ("equal thresholds, above", json!(5), json!(5), 6, 0, "ok"),
    ];
    for (i, (label, warning, critical, units, reserved, level)) in cases.into_iter().enumerate() {
        let sku = format!("SKU{i:010}");
        let row = stock(&app, &sku, units.max(reserved)).await;
        let id = id_of(&row);
        if reserved > 0 {
            hold(&app, &sku, reserved).await;
        }
        if units < reserved {
            stock(&app, &sku, units).await;
        }
        let set = set_thresholds(&app, id, warning, critical).await;
        assert_eq!(set.status, StatusCode::OK, "{label}: {}", set.text);
        let row = app.row(id).await;
        assert_eq!(row["available"], units - reserved, "{label}: {row}");
        assert_eq!(row["stock_level"], level, "{label}: {row}");
        assert_eq!(set.json["data"], row, "{label}: the answer is the row");
    }
}

// ---- Adjustments ------------------------------------------------------------------------------

async fn an_adjustment_increases_decreases_or_sets_the_units_and_returns_its_ledger_entry(
    app: TestApp,
) {
    let (clerk, token) = app.seller("stock.clerk", &[SELLER_A]).await;
    let row = stock(&app, "SKU0000000001", 100).await;
    let id = id_of(&row);
    hold(&app, "SKU0000000001", 10).await;

    // (kind, quantity, reference, units on hand after, change)
    let cases = [
        ("increase", 5, Some("PO-2026-0042"), 105, 5),
        ("decrease", 20, None, 85, -20),
        (
            "set",
            40,
            Some("https://wms.example.com/counts/7?bin=A7"),
            40,
            -45,
        ),
        ("decrease", 30, Some("damaged"), 10, -30),
        ("increase", 2147483637, None, 2147483647, 2147483637),
        ("set", 10, None, 10, -2147483637),
    ];
    let mut version = app.row(id).await["version"].as_i64().unwrap();
    let mut units = 100;
    for (kind, quantity, reference, after, change) in cases {
        let label = format!("{kind} {quantity}");
        let mut body = json!({"adjustment_type": kind, "quantity": quantity,
            "reason": format!("{label} by hand")});
        if let Some(reference) = reference {
            body["reference"] = json!(reference);
        }
        let response = app
            .request_as(
                Method::POST,
                &format!("{INVENTORY}/{id}/adjust"),
                Some(&body),
                Some(&token),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        assert_eq!(response.json["code"], 200, "{label}");
        let data = &response.json["data"];
        version += 1;
        let row = &data["inventory"];
        assert_eq!(row["inventory"], after, "{label}: {row}");
        assert_eq!(row["reserved"], 10, "{label}: {row}");
        assert_eq!(row["available"], after - 10, "{label}: {row}");
        assert_eq!(row["version"], version, "{label}: {row}");
        assert_eq!(app.row(id).await, *row, "{label}: the answer is the row");

        let entry = &data["transaction"];
        let expected = json!({
            "id": entry["id"],
            "inventory_id": id,
            "seller_id": SELLER_A,
            "market_place_id": "US",
            "seller_sku": "SKU0000000001",
            "type": "adjust",
            "quantity_change": change,
            "reserved_change": 0,
            "inventory_before": units,
            "inventory_after": after,
            "reserved_before": 10,
            "reserved_after": 10,
            "reason": format!("{label} by hand"),
            "reference": reference,
            "reservation_id": null,
            "order_id": null,
            "operator_id": clerk,
            "request_id": request_id_of(&response),
            "create_time": row["update_time"],
        });
        assert_eq!(*entry, expected, "{label}");
        let history = app.history(id).await;
        assert_eq!(history.last(), Some(entry), "{label}: the newest entry");
        units = after;
    }
    app.assert_books_balance().await;
}

async fn an_adjustment_below_the_reserved_units_is_refused_and_changes_nothing(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    hold(&app, "SKU0000000001", 4).await;
    let before = app.row(id).await;
    let entries = app.history(id).await;

    // (label, kind, quantity, detail.available)
    let cases = [
        ("decrease to 3 of 4 reserved", "decrease", 7, 6),
        ("decrease past zero", "decrease", 11, 6),
        ("decrease by everything", "decrease", 10, 6),
        ("set to 3 of 4 reserved", "set", 3, 6),
        ("set to zero", "set", 0, 6),
    ];
    for (label, kind, quantity, available) in cases {
        let response = adjust(&app, id, &adjustment(kind, quantity)).await;
        assert_error_in(
            label,
            &response,
            StatusCode::CONFLICT,
            "INSUFFICIENT_INVENTORY",
        );
        assert_eq!(
            response.json["detail"],
            json!({"requested": quantity, "available": available}),
            "{label}: {}",
            response.text
        );
        assert_eq!(app.row(id).await, before, "{label}: the row is as it was");
        assert_eq!(app.history(id).await, entries, "{label}: no ledger entry");
    }

    // Down to exactly what is reserved is fine.
    let response = adjust(&app, id, &adjustment("decrease", 6)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json["data"]["inventory"]["available"], 0);
    assert_eq!(
        response.json["data"]["inventory"]["stock_level"],
        "out_of_stock"
    );
    let response = adjust(&app, id, &adjustment("decrease", 1)).await;
    assert_error(&response, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");
    assert_eq!(
        response.json["detail"],
        json!({"requested": 1, "available": 0})
    );
    app.assert_books_balance().await;
}

async fn an_increase_past_2147483647_is_invalid_quantity_and_changes_nothing(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 2147483640).await;
    let id = id_of(&row);
    for quantity in [8, 2147483647] {
        let response = adjust(&app, id, &adjustment("increase", quantity)).await;
        assert_error_in(
            &format!("increase {quantity}"),
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_QUANTITY",
        );
        let fields: Vec<String> = field_errors(&response)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            ["quantity"],
            "increase {quantity}: {}",
            response.text
        );
        assert_eq!(
            app.row(id).await,
            row,
            "increase {quantity}: nothing changed"
        );
    }
    assert_eq!(app.history(id).await.len(), 1, "only the create entry");

    let to_max = adjust(&app, id, &adjustment("increase", 7)).await;
    assert_eq!(to_max.status, StatusCode::OK, "{}", to_max.text);
    assert_eq!(to_max.json["data"]["inventory"]["inventory"], 2147483647);
    let past = adjust(&app, id, &adjustment("increase", 1)).await;
    assert_error(&past, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_QUANTITY");
    let set = adjust(&app, id, &adjustment("set", 2147483647)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let all = adjust(&app, id, &adjustment("decrease", 2147483647)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.json["data"]["inventory"]["inventory"], 0);
    app.assert_books_balance().await;
}

async fn adjustment_fields_are_checked_at_their_boundaries(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 1000).await;
    let id = id_of(&row);
    let body = |changes: Value| crate::helpers::merge(adjustment("increase", 1), changes);
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("increase by 1", json!({}), None),
        ("increase by 0", json!({"quantity": 0}), Some("quantity")),
        (
            "decrease by 0",
            json!({"adjustment_type": "decrease", "quantity": 0}),
            Some("quantity"),
        ),
        ("increase by -1", json!({"quantity": -1}), Some("quantity")),
        (
            "set to -1",
            json!({"adjustment_type": "set", "quantity": -1}),
            Some("quantity"),
        ),
        (
            "decrease by 2147483648",
            json!({"adjustment_type": "decrease", "quantity": 2147483648_i64}),
            Some("quantity"),
        ),
        (
            "set to 2147483648",
            json!({"adjustment_type": "set", "quantity": 2147483648_i64}),
            Some("quantity"),
        ),
        ("quantity 1.5", json!({"quantity": 1.5}), Some("quantity")),
        ("quantity 1.0", json!({"quantity": 1.0}), Some("quantity")),
        (
            "quantity a string",
            json!({"quantity": "1"}),
            Some("quantity"),
        ),
        ("quantity null", json!({"quantity": null}), Some("quantity")),
        (
            "quantity missing",
            json!({"-quantity": null}),
            Some("quantity"),
        ),
        (
            "adjustment_type add",
            json!({"adjustment_type": "add"}),
            Some("adjustment_type"),
        ),
        (
            "adjustment_type in capitals",
            json!({"adjustment_type": "INCREASE"}),
            Some("adjustment_type"),
        ),
        (
            "adjustment_type missing",
            json!({"-adjustment_type": null}),
            Some("adjustment_type"),
        ),
        ("reason missing", json!({"-reason": null}), Some("reason")),
        ("reason empty", json!({"reason": ""}), Some("reason")),
        ("reason null", json!({"reason": null}), Some("reason")),
        ("reason a number", json!({"reason": 7}), Some("reason")),
        (
            "reason 200 characters",
            json!({"reason": "r".repeat(200)}),
            None,
        ),
        (
            "reason 200 two-byte characters",
            json!({"reason": "é".repeat(200)}),
            None,
        ),
        (
            "reason 201 characters",
            json!({"reason": "r".repeat(201)}),
            Some("reason"),
        ),
        (
            "reason with a line break",
            json!({"reason": "two\nlines"}),
            Some("reason"),
        ),
        (
            "reason with a tab",
            json!({"reason": "a\tb"}),
            Some("reason"),
        ),
        (
            "reason with DEL",
            json!({"reason": "a\u{7f}b"}),
            Some("reason"),
        ),
        (
            "reference 200 characters",
            json!({"reference": "f".repeat(200)}),
            None,
        ),
        (
            "reference 201 characters",
            json!({"reference": "f".repeat(201)}),
            Some("reference"),
        ),
        (
            "reference with a line break",
            json!({"reference": "PO\n1"}),
            Some("reference"),
        ),
        (
            "reference a URI",
            json!({"reference": "https://wms.example.com/counts/7?bin=A7&n=1"}),
            None,
        ),
        ("an unknown field", json!({"note": "x"}), Some("note")),
        (
            "set to 0",
            json!({"adjustment_type": "set", "quantity": 0}),
            None,
        ),
    ];
    let mut accepted = 0;
    for (label, changes, bad_field) in cases {
        let response = adjust(&app, id, &body(changes)).await;
        match bad_field {
            None => {
                assert_eq!(
                    response.status,
                    StatusCode::OK,
                    "{label}: {}",
                    response.text
                );
                accepted += 1;
            }
            Some(field) => {
                assert_error_in(
                    label,
                    &response,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "VALIDATION_FAILED",
                );
                assert_eq!(
                    sorted_fields(&response),
                    [field],
                    "{label}: {}",
                    response.text
                );
            }
        }
    }
    let row = app.row(id).await;
    assert_eq!(
        row["version"],
        1 + accepted,
        "only accepted ones changed it"
    );
    assert_eq!(row["inventory"], 0, "the set to 0 came last");
    app.assert_books_balance().await;
}

async fn every_problem_of_an_adjustment_is_listed_at_once(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "every field wrong",
            json!({"adjustment_type": "grow", "quantity": -5, "reason": "",
                "reference": "f".repeat(201), "extra": true}),
            &[
                "adjustment_type",
                "extra",
                "quantity",
                "reason",
                "reference",
            ],
        ),
        (
            "a decrease by 0 without a reason",
            json!({"adjustment_type": "decrease", "quantity": 0, "reference": "a\nb"}),
            &["quantity", "reason", "reference"],
        ),
        (
            "an empty object",
            json!({}),
            &["adjustment_type", "quantity", "reason"],
        ),
    ];
    for (label, body, fields) in cases {
        let response = adjust(&app, id, &body).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        assert_eq!(
            sorted_fields(&response),
            fields,
            "{label}: {}",
            response.text
        );
    }
    assert_eq!(app.row(id).await, row);
}

async fn adjusting_or_setting_thresholds_of_an_unknown_or_foreign_row_is_not_found(app: TestApp) {
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;
    let foreign = app
        .post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_id": SELLER_B, "inventory": 10})),
        )
        .await;
    let thresholds = json!({"warning_threshold": 5, "critical_threshold": 1});
    let adjust_body = adjustment("decrease", 1);
    let cases: Vec<Attempt> = vec![
        (
            "a seller adjusts another seller's row",
            Method::POST,
            format!("{INVENTORY}/{}/adjust", id_of(&foreign)),
            &adjust_body,
            Some(token.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "a seller sets thresholds of another seller's row",
            Method::PUT,
            format!("{INVENTORY}/{}/thresholds", id_of(&foreign)),
            &thresholds,
            Some(token.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "an admin adjusts an unknown row",
            Method::POST,
            format!("{INVENTORY}/999999/adjust"),
            &adjust_body,
            Some(app.admin_token.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "an admin sets thresholds of an unknown row",
            Method::PUT,
            format!("{INVENTORY}/999999/thresholds"),
            &thresholds,
            Some(app.admin_token.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "an id that is not a number",
            Method::POST,
            format!("{INVENTORY}/abc/adjust"),
            &adjust_body,
            Some(app.admin_token.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "id 0",
            Method::PUT,
            format!("{INVENTORY}/0/thresholds"),
            &thresholds,
            Some(app.admin_token.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (label, method, uri, body, token, status) in cases {
        let response = app.request_as(method, &uri, Some(body), token).await;
        let code = if status == StatusCode::NOT_FOUND {
            "NOT_FOUND"
        } else {
            "VALIDATION_FAILED"
        };
        assert_eq!(response.status, status, "{label}: {}", response.text);
        assert_error_in(label, &response, status, code);
    }
    assert_eq!(app.row(id_of(&foreign)).await, foreign, "untouched");
    assert_eq!(app.history(id_of(&foreign)).await.len(), 1);
}

// ---- Thresholds ---------------------------------------------------------------------------------

async fn thresholds_decide_the_stock_level_and_null_clears_them(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    // (warning, critical, level with 10 available)
    let cases = [
        (json!(20), json!(5), "warning"),
        (json!(20), json!(10), "critical"),
        (json!(9), json!(5), "ok"),
        (Value::Null, json!(10), "critical"),
        (json!(10), Value::Null, "warning"),
        (Value::Null, Value::Null, "ok"),
        (json!(2147483647), json!(0), "warning"),
    ];
    let mut version = 1;
    for (warning, critical, level) in cases {
        let label = format!("warning {warning}, critical {critical}");
        let response = set_thresholds(&app, id, warning.clone(), critical.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        version += 1;
        let data = &response.json["data"];
        assert_eq!(data["warning_threshold"], warning, "{label}");
        assert_eq!(data["critical_threshold"], critical, "{label}");
        assert_eq!(data["stock_level"], level, "{label}");
        assert_eq!(data["version"], version, "{label}");
        assert_eq!(data["inventory"], 10, "{label}");
        assert_eq!(app.row(id).await, *data, "{label}");
    }
    assert_eq!(app.history(id).await.len(), 1, "thresholds move no units");
    app.assert_books_balance().await;
}

async fn setting_the_thresholds_a_row_already_has_changes_nothing(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    let cleared = set_thresholds(&app, id, Value::Null, Value::Null).await;
    assert_eq!(
        cleared.json["data"], row,
        "no thresholds on a new row already"
    );
    assert_eq!(app.row(id).await, row);

    let set = set_thresholds(&app, id, json!(8), json!(2)).await;
    let set = set.json["data"].clone();
    assert_eq!(set["version"], 2, "{set}");
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let again = set_thresholds(&app, id, json!(8), json!(2)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["data"], set, "same version and update_time");
    assert_eq!(app.row(id).await, set);
}

async fn threshold_fields_are_checked_at_their_boundaries(app: TestApp) {
    let row = stock(&app, "SKU0000000001", 10).await;
    let id = id_of(&row);
    let uri = format!("{INVENTORY}/{id}/thresholds");
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "both set",
            json!({"warning_threshold": 10, "critical_threshold": 3}),
            &[],
        ),
        (
            "critical equal to warning",
            json!({"warning_threshold": 3, "critical_threshold": 3}),
            &[],
        ),
        (
            "both 0",
            json!({"warning_threshold": 0, "critical_threshold": 0}),
            &[],
        ),
        (
            "both at the maximum",
            json!({"warning_threshold": 2147483647, "critical_threshold": 2147483647}),
            &[],
        ),
        (
            "critical above warning",
            json!({"warning_threshold": 3, "critical_threshold": 4}),
            &["critical_threshold"],
        ),
        (
            "warning missing",
            json!({"critical_threshold": 3}),
            &["warning_threshold"],
        ),
        (
            "critical missing",
            json!({"warning_threshold": 3}),
            &["critical_threshold"],
        ),
        (
            "both missing",
            json!({}),
            &["critical_threshold", "warning_threshold"],
        ),
        (
            "warning -1",
            json!({"warning_threshold": -1, "critical_threshold": null}),
            &["warning_threshold"],
        ),
        (
            "critical -1",
            json!({"warning_threshold": null, "critical_threshold": -1}),
            &["critical_threshold"],
        ),
        (
            "warning 2147483648",
            json!({"warning_threshold": 2147483648_i64, "critical_threshold": 1}),
            &["warning_threshold"],
        ),
        (
            "warning a string",
            json!({"warning_threshold": "10", "critical_threshold": 1}),
            &["warning_threshold"],
        ),
        (
            "critical 1.5",
            json!({"warning_threshold": 10, "critical_threshold": 1.5}),
            &["critical_threshold"],
        ),
        (
            "an unknown field",
            json!({"warning_threshold": 10, "critical_threshold": 1, "low": 2}),
            &["low"],
        ),
    ];
    for (label, body, fields) in cases {
        let response = app.request(Method::PUT, &uri, Some(&body)).await;
        if fields.is_empty() {
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{label}: {}",
                response.text
            );
        } else {
            assert_error_in(
                label,
                &response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            );
            assert_eq!(
                sorted_fields(&response),
                fields,
                "{label}: {}",
                response.text
            );
        }
    }
    let row = app.row(id).await;
    assert_eq!(row["version"], 5, "four accepted changes: {row}");
    assert_eq!(row["warning_threshold"], 2147483647, "{row}");
}

// ---- Low stock ------------------------------------------------------------------------------------

/// A row of seller `seller` in `market` with thresholds, `available` units available (taking
/// `reserved` of `units` into account, oversold when `units < reserved`).
async fn low_row(
    app: &TestApp,
    (seller, market, sku): (&str, &str, &str),
    units: i64,
    reserved: i64,
    (warning, critical): (Value, Value),
) -> i64 {
    let key = json!({"seller_id": seller, "market_place_id": market, "seller_sku": sku});
    let body = |n: i64| crate::helpers::merge(inventory_body(json!({"inventory": n})), key.clone());
    let row = app.post_ok(INVENTORY, &body(units.max(reserved))).await;
    if reserved > 0 {
        app.reserve_ok(&reservation_body(json!({"seller_id": seller,
            "market_place_id": market, "items": [{"seller_sku": sku, "quantity": reserved}]})))
            .await;
    }
    if units < reserved {
        app.post_ok(INVENTORY, &body(units)).await;
    }
    let id = id_of(&row);
    let set = set_thresholds(app, id, warning, critical).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    id
}

async fn low_stock_lists_rows_at_the_level_asked_or_worse_least_available_first(app: TestApp) {
    let t = || (json!(10), json!(3));
    let a = |sku| (SELLER_A, "US", sku);
    let ok = low_row(&app, a("SKU000000000A"), 50, 0, t()).await;
    let warning = low_row(&app, a("SKU000000000B"), 10, 0, t()).await;
    let critical = low_row(&app, a("SKU000000000C"), 4, 2, t()).await;
    let out = low_row(&app, a("SKU000000000D"), 0, 0, t()).await;
    let critical_at = low_row(&app, a("SKU000000000E"), 3, 0, t()).await;
    let warning_tie = low_row(&app, a("SKU000000000F"), 12, 2, t()).await;
    let no_thresholds = low_row(&app, a("SKU000000000G"), 1, 0, (Value::Null, Value::Null)).await;
    let oversold = low_row(&app, a("SKU000000000H"), 3, 5, t()).await;
    let _ = (ok, no_thresholds);

    let warning_list = vec![oversold, out, critical, critical_at, warning, warning_tie];
    for (query, expected) in [
        ("", warning_list.clone()),
        ("?level=warning", warning_list.clone()),
        (
            "?level=critical",
            vec![oversold, out, critical, critical_at],
        ),
        ("?level=out_of_stock", vec![oversold, out]),
    ] {
        let listed = app
            .ok(Method::GET, &format!("{LOW_STOCK}{query}"), None)
            .await;
        assert_eq!(ids(&listed), expected, "{query}: {listed}");
        assert_eq!(listed["meta"]["total"], expected.len(), "{query}");
        for item in listed["items"].as_array().unwrap() {
            assert_eq!(app.row(id_of(item)).await, *item, "{query}: rows as stored");
        }
    }
    let listed = app.ok(Method::GET, LOW_STOCK, None).await;
    let levels: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["stock_level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        [
            "out_of_stock",
            "out_of_stock",
            "critical",
            "critical",
            "warning",
            "warning"
        ]
    );
    let available: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["available"].as_i64().unwrap())
        .collect();
    assert_eq!(available, [-2, 0, 2, 3, 10, 10]);

    let page = app
        .ok(Method::GET, &format!("{LOW_STOCK}?size=4&page=2"), None)
        .await;
    assert_eq!(ids(&page), [warning, warning_tie]);
    assert_eq!(
        page["meta"],
        json!({"total": 6, "page": 2, "size": 4, "pages": 2, "has_next": false, "has_prev": true})
    );
    let past = app
        .ok(Method::GET, &format!("{LOW_STOCK}?size=4&page=3"), None)
        .await;
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["meta"]["total"], 6);
}

async fn low_stock_filters_by_seller_and_marketplace_and_keeps_sellers_to_their_own_rows(
    app: TestApp,
) {
    let none = || (Value::Null, Value::Null);
    let a_us = low_row(&app, (SELLER_A, "US", "SKU0000000001"), 0, 0, none()).await;
    let a_de = low_row(&app, (SELLER_A, "DE", "SKU0000000001"), 0, 0, none()).await;
    let b_us = low_row(&app, (SELLER_B, "US", "SKU0000000001"), 0, 0, none()).await;
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;

    let cases: Vec<(&str, &str, Option<&str>, Vec<i64>)> = vec![
        ("everything, as admin", "", None, vec![a_us, a_de, b_us]),
        (
            "seller A",
            "?seller_id=A1SELLER0001",
            None,
            vec![a_us, a_de],
        ),
        (
            "marketplace US",
            "?market_place_id=US",
            None,
            vec![a_us, b_us],
        ),
        (
            "seller A in DE",
            "?seller_id=A1SELLER0001&market_place_id=DE",
            None,
            vec![a_de],
        ),
        ("marketplace JP", "?market_place_id=JP", None, vec![]),
        (
            "everything, as seller A",
            "",
            Some(token.as_str()),
            vec![a_us, a_de],
        ),
        (
            "seller A's own, as seller A",
            "?seller_id=A1SELLER0001&level=out_of_stock",
            Some(token.as_str()),
            vec![a_us, a_de],
        ),
        (
            "US, as seller A",
            "?market_place_id=US",
            Some(token.as_str()),
            vec![a_us],
        ),
    ];
    for (label, query, seller, expected) in cases {
        let token = seller.unwrap_or(&app.admin_token);
        let response = app
            .request_as(
                Method::GET,
                &format!("{LOW_STOCK}{query}"),
                None,
                Some(token),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        assert_eq!(ids(&response.json["data"]), expected, "{label}");
    }

    let foreign = app
        .request_as(
            Method::GET,
            &format!("{LOW_STOCK}?seller_id={SELLER_B}"),
            None,
            Some(&token),
        )
        .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");

    let bad: Vec<(&str, &str, &[&str])> = vec![
        ("level ok", "?level=ok", &["level"]),
        ("level low", "?level=low", &["level"]),
        ("level empty", "?level=", &["level"]),
        ("level in capitals", "?level=WARNING", &["level"]),
        ("seller_id too short", "?seller_id=A1", &["seller_id"]),
        (
            "marketplace lower case",
            "?market_place_id=us",
            &["market_place_id"],
        ),
        ("size 0", "?size=0", &["size"]),
        ("size 101", "?size=101", &["size"]),
        ("an unknown parameter", "?threshold=3", &["threshold"]),
        ("level twice", "?level=warning&level=critical", &["level"]),
        ("two problems", "?level=ok&page=0", &["level", "page"]),
    ];
    for (label, query, fields) in bad {
        let response = app.get(&format!("{LOW_STOCK}{query}")).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        assert_eq!(
            sorted_fields(&response),
            fields,
            "{label}: {}",
            response.text
        );
    }
}

// ---- Lookups ---------------------------------------------------------------------------------

async fn a_lookup_by_ids_answers_in_input_order_with_null_for_missing_rows(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 1).await;
    let b = stock(&app, "SKU000000000B", 2).await;
    let deleted = stock(&app, "SKU000000000D", 3).await;
    app.delete(&format!("{INVENTORY}/{}", id_of(&deleted)))
        .await;
    let a = app.row(id_of(&a)).await;

    let cases: Vec<(&str, Value, Value)> = vec![
        ("one", json!([id_of(&a)]), json!([a])),
        (
            "reordered, with a missing id",
            json!([id_of(&b), 999999, id_of(&a)]),
            json!([b, null, a]),
        ),
        (
            "a deleted row",
            json!([id_of(&deleted), id_of(&b)]),
            json!([null, b]),
        ),
        (
            "the same id twice",
            json!([id_of(&b), id_of(&b)]),
            json!([b, b]),
        ),
        ("only missing", json!([999998, 999999]), json!([null, null])),
    ];
    for (label, ids, expected) in cases {
        let data = app.post_ok(LOOKUP, &json!({"ids": ids})).await;
        assert_eq!(data["items"], expected, "{label}");
    }
}

async fn a_lookup_by_keys_answers_in_input_order_with_null_for_missing_rows(app: TestApp) {
    let a = stock(&app, "SKU000000000A", 1).await;
    let de = app
        .post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": "SKU000000000A", "market_place_id": "DE"})),
        )
        .await;
    let b = app
        .post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": "SKU000000000A", "seller_id": SELLER_B})),
        )
        .await;
    let key = |seller: &str, market: &str, sku: &str| json!({"seller_id": seller, "market_place_id": market, "seller_sku": sku});
    let keys = json!([
        key(SELLER_B, "US", "SKU000000000A"),
        key(SELLER_A, "US", "SKU000000000Z"),
        key(SELLER_A, "US", "SKU000000000A"),
        key(SELLER_A, "DE", "SKU000000000A"),
        key(SELLER_A, "US", "sku000000000a"),
        key(SELLER_A, "JP", "SKU000000000A"),
        key(SELLER_A, "US", "SKU000000000A"),
    ]);
    let data = app.post_ok(LOOKUP, &json!({"keys": keys})).await;
    assert_eq!(data["items"], json!([b, null, a, de, null, null, a]));
}

async fn a_seller_looks_up_only_their_own_rows(app: TestApp) {
    let own = stock(&app, "SKU000000000A", 1).await;
    let foreign = app
        .post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": "SKU000000000A", "seller_id": SELLER_B})),
        )
        .await;
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;
    let by_ids = json!({"ids": [id_of(&foreign), id_of(&own)]});
    let by_keys = json!({"keys": [
        {"seller_id": SELLER_A, "market_place_id": "US", "seller_sku": "SKU000000000A"},
        {"seller_id": SELLER_B, "market_place_id": "US", "seller_sku": "SKU000000000A"}]});
    for (label, body, expected) in [
        ("ids", by_ids, json!([null, own])),
        ("keys", by_keys, json!([own, null])),
    ] {
        let response = app
            .request_as(Method::POST, LOOKUP, Some(&body), Some(&token))
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        assert_eq!(response.json["data"]["items"], expected, "{label}");
    }
}

async fn lookup_bodies_are_checked_and_bad_entries_named_by_index(app: TestApp) {
    let good_key = json!({"seller_id": SELLER_A, "market_place_id": "US",
        "seller_sku": "SKU0000000001"});
    let many: Vec<i64> = (1..=1001).collect();
    // (label, body, [(index, field)] expected among the problems)
    let cases: Vec<Case> = vec![
        ("neither ids nor keys", json!({}), vec![]),
        (
            "both ids and keys",
            json!({"ids": [1], "keys": [good_key.clone()]}),
            vec![],
        ),
        ("no ids", json!({"ids": []}), vec![(None, "ids")]),
        ("1001 ids", json!({"ids": many}), vec![(None, "ids")]),
        ("no keys", json!({"keys": []}), vec![(None, "keys")]),
        ("ids not an array", json!({"ids": 1}), vec![(None, "ids")]),
        (
            "keys not an array",
            json!({"keys": good_key.clone()}),
            vec![(None, "keys")],
        ),
        (
            "bad ids",
            json!({"ids": [1, 0, -3, "4", 1.5, null, 7]}),
            vec![
                (None, "ids[1]"),
                (None, "ids[2]"),
                (None, "ids[3]"),
                (None, "ids[4]"),
                (None, "ids[5]"),
            ],
        ),
        (
            "bad keys",
            json!({"keys": [good_key.clone(),
                {"seller_id": SELLER_A, "market_place_id": "us", "seller_sku": "SKU0000000001"},
                "SKU0000000001",
                {"seller_id": SELLER_A, "market_place_id": "US"},
                {"seller_id": SELLER_A, "market_place_id": "US", "seller_sku": "SKU0000000001",
                    "asin": "B0CHILD00001"}]}),
            vec![
                (Some(1), "market_place_id"),
                (Some(2), "keys"),
                (Some(3), "seller_sku"),
                (Some(4), "asin"),
            ],
        ),
    ];
    for (label, body, expected) in cases {
        let response = app.post(LOOKUP, &body).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let found = indexed_fields(&response);
        assert!(!found.is_empty(), "{label}: {}", response.text);
        if !expected.is_empty() {
            let expected: Vec<(Option<u64>, String)> = expected
                .into_iter()
                .map(|(i, f)| (i, f.to_owned()))
                .collect();
            assert_eq!(found, expected, "{label}: {}", response.text);
        }
    }
}

async fn a_lookup_with_both_or_neither_of_ids_and_keys_says_so_in_one_problem(app: TestApp) {
    let key = json!({"seller_id": SELLER_A, "market_place_id": "US",
        "seller_sku": "SKU0000000001"});
    for (label, body) in [
        ("both", json!({"ids": [1], "keys": [key]})),
        ("neither", json!({})),
    ] {
        let response = app.post(LOOKUP, &body).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        // `ids` and `keys` are the endpoint's own fields: the one problem is the choice.
        let problems = field_errors(&response);
        assert!(
            !problems
                .iter()
                .any(|(field, message)| ["ids", "keys"].contains(&field.as_str())
                    && message == "is not a known field"),
            "{label}: ids and keys are known fields: {}",
            response.text
        );
        assert_eq!(problems.len(), 1, "{label}: {}", response.text);
    }
}

async fn a_lookup_takes_up_to_a_thousand_ids_or_keys(app: TestApp) {
    let first = stock(&app, "SKU0000000000", 1).await;
    let last = stock(&app, "SKU0000000999", 2).await;

    let mut ids: Vec<i64> = (1_000_001..1_001_001).collect();
    ids[0] = id_of(&first);
    ids[999] = id_of(&last);
    let data = app.post_ok(LOOKUP, &json!({"ids": ids})).await;
    let items = data["items"].as_array().unwrap();
    assert_eq!(items.len(), 1000);
    assert_eq!((&items[0], &items[999]), (&first, &last));
    assert!(items[1..999].iter().all(Value::is_null));

    // A thousand keys of SKUs of the most ordinary length (13 characters).
    let keys: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"seller_id": SELLER_A, "market_place_id": "US",
            "seller_sku": format!("SKU{i:010}")})
        })
        .collect();
    let response = app.post(LOOKUP, &json!({"keys": keys})).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "1000 keys ({} bytes of JSON): {}",
        json!({"keys": keys}).to_string().len(),
        response.text
    );
    let items = response.json["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1000);
    assert_eq!((&items[0], &items[999]), (&first, &last));
}

// ---- The consistency check ------------------------------------------------------------------

async fn the_consistency_check_is_for_admins_only(app: TestApp) {
    stock(&app, "SKU0000000001", 1).await;
    let (_, token) = app.seller("seller.a", &[SELLER_A]).await;
    for body in [None, Some(json!({"seller_id": SELLER_A}))] {
        let response = app
            .request_as(Method::POST, CHECK, body.as_ref(), Some(&token))
            .await;
        assert_error_in(
            &format!("body {body:?}"),
            &response,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        );
    }
    let anonymous = app.request_as(Method::POST, CHECK, None, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn healthy_books_are_reported_consistent_for_everyone_or_one_seller(app: TestApp) {
    let empty = app.request(Method::POST, CHECK, None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(
        empty.json["data"],
        json!({"checked": 0, "inconsistent": 0, "details": []})
    );

    // Rows with some history each.
    let a = stock(&app, "SKU0000000001", 10).await;
    stock(&app, "SKU0000000002", 5).await;
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_id": SELLER_B, "inventory": 3})),
    )
    .await;
    adjust(&app, id_of(&a), &adjustment("increase", 2)).await;
    let held = hold(&app, "SKU0000000001", 4).await;
    hold(&app, "SKU0000000002", 5).await;
    app.ok(
        Method::POST,
        &format!("/api/v1/reservations/{}/commit", id_of(&held)),
        Some(&json!({"order_id": "order:7"})),
    )
    .await;
    stock(&app, "SKU0000000003", 0).await;
    let gone = stock(&app, "SKU0000000004", 9).await;
    app.delete(&format!("{INVENTORY}/{}", id_of(&gone))).await;

    let cases: Vec<(&str, Option<Value>, u64)> = vec![
        ("no body", None, 4),
        ("an empty object", Some(json!({})), 4),
        ("seller A", Some(json!({"seller_id": SELLER_A})), 3),
        ("seller B", Some(json!({"seller_id": SELLER_B})), 1),
        (
            "a seller without rows",
            Some(json!({"seller_id": "C1SELLER0001"})),
            0,
        ),
    ];
    for (label, body, checked) in cases {
        let response = app.request(Method::POST, CHECK, body.as_ref()).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        assert_eq!(
            response.json["data"],
            json!({"checked": checked, "inconsistent": 0, "details": []}),
            "{label}"
        );
    }
    assert_eq!(app.assert_books_balance().await, 4);

    for (label, body, field) in [
        ("a bad seller_id", json!({"seller_id": "A1"}), "seller_id"),
        ("an unknown field", json!({"seller": SELLER_A}), "seller"),
    ] {
        let response = app.post(CHECK, &body).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        assert_eq!(
            sorted_fields(&response),
            [field],
            "{label}: {}",
            response.text
        );
    }
}

async fn an_oversold_row_is_reported_with_its_numbers(app: TestApp) {
    let fine = stock(&app, "SKU0000000001", 10).await;
    hold(&app, "SKU0000000001", 3).await;
    let row = stock(&app, "SKU0000000002", 10).await;
    hold(&app, "SKU0000000002", 6).await;
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_id": SELLER_B, "inventory": 3})),
    )
    .await;
    let oversold = stock(&app, "SKU0000000002", 4).await;
    assert_eq!(oversold["available"], -2, "{oversold}");
    assert_eq!(oversold["stock_level"], "out_of_stock", "{oversold}");
    let _ = fine;

    let problem = json!({
        "inventory_id": id_of(&row),
        "seller_id": SELLER_A,
        "seller_sku": "SKU0000000002",
        "issue": "oversold",
        "field": "available",
        "expected": 0,
        "actual": -2,
    });
    for (label, body, expected) in [
        (
            "everyone",
            None,
            json!({"checked": 3, "inconsistent": 1, "details": [problem.clone()]}),
        ),
        (
            "seller A",
            Some(json!({"seller_id": SELLER_A})),
            json!({"checked": 2, "inconsistent": 1, "details": [problem.clone()]}),
        ),
        (
            "seller B",
            Some(json!({"seller_id": SELLER_B})),
            json!({"checked": 1, "inconsistent": 0, "details": []}),
        ),
    ] {
        let response = app.request(Method::POST, CHECK, body.as_ref()).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
        assert_eq!(response.json["data"], expected, "{label}");
    }

    // Stock back above what is reserved: the books balance again.
    stock(&app, "SKU0000000002", 6).await;
    app.assert_books_balance().await;
}

async fn reserved_and_ledger_mismatches_are_reported_with_their_numbers(app: TestApp) {
    let healthy = stock(&app, "SKU0000000001", 10).await;
    let held = stock(&app, "SKU0000000002", 10).await;
    hold(&app, "SKU0000000002", 3).await;
    let counted = stock(&app, "SKU0000000003", 10).await;
    let chained = stock(&app, "SKU0000000004", 10).await;
    for quantity in [5, 1] {
        let response = adjust(&app, id_of(&chained), &adjustment("increase", quantity)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let entries = app.history(id_of(&chained)).await;
    let _ = healthy;

    // Behind the service's back: two units reserved that no reservation holds, four units on
    // hand that no entry explains, and an entry that claims one unit more than it moved.
    let changed = app
        .execute_raw(
            "UPDATE inventory SET reserved = reserved + 2 WHERE id = ?",
            id_of(&held),
        )
        .await;
    assert_eq!(changed, 1);
    app.execute_raw(
        "UPDATE inventory SET inventory = inventory + 4 WHERE id = ?",
        id_of(&counted),
    )
    .await;
    app.execute_raw(
        "UPDATE inventory_ledger SET quantity_change = quantity_change + 1, \
         inventory_after = inventory_after + 1 WHERE id = ?",
        id_of(&entries[1]),
    )
    .await;

    let problem = |row: &Value, issue: &str, field: &str, expected: i64, actual: i64| {
        json!({"inventory_id": id_of(row), "seller_id": SELLER_A,
            "seller_sku": row["seller_sku"], "issue": issue, "field": field,
            "expected": expected, "actual": actual})
    };
    let mut broken_entry = problem(&chained, "ledger_mismatch", "ledger_entry", 16, 15);
    broken_entry["entry_id"] = json!(id_of(&entries[2]));
    let mut expected = vec![
        problem(&held, "reserved_mismatch", "reserved", 3, 5),
        problem(&held, "ledger_mismatch", "reserved", 3, 5),
        problem(&counted, "ledger_mismatch", "inventory", 10, 14),
        problem(&chained, "ledger_mismatch", "inventory", 17, 16),
        broken_entry,
    ];
    let response = app.request(Method::POST, CHECK, None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let report = &response.json["data"];
    assert_eq!(report["checked"], 4, "{report}");
    assert_eq!(report["inconsistent"], 3, "rows with a problem: {report}");
    let mut details = report["details"].as_array().unwrap().clone();
    let key = |v: &Value| v.to_string();
    details.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(details, expected, "{report}");
}
