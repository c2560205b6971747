//! The stock ledger over HTTP, on every backend: one entry per change with exact numbers, per
//! row a chain from zero to the row's numbers, the history of one row (kept after a delete)
//! and the search over every row, and no way to write it. `docs/stock.md` is the contract.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, assert_error_in, field_errors, id_of, inventory_body, request_id_of,
    reservation_body, TestApp, TestResponse,
};

const INVENTORY: &str = "/api/v1/inventory";
const LEDGER: &str = "/api/v1/inventory/transactions";
const SELLER_A: &str = "A1SELLER0001";
const SELLER_B: &str = "B1SELLER0001";

backend_tests!(
    every_kind_of_change_writes_one_entry_with_exact_numbers,
    each_rows_entries_chain_from_zero_to_its_current_numbers,
    a_rows_history_is_newest_first_and_filters_by_type_and_time,
    a_deleted_rows_history_stays_readable_to_admins_only,
    the_ledger_search_filters_by_every_field_within_the_callers_sellers,
    a_batch_upsert_writes_one_entry_per_changed_row,
    the_ledger_has_no_write_endpoints,
    simultaneous_changes_of_one_row_leave_a_ledger_that_adds_up,
    simultaneous_writes_are_each_recorded_under_their_own_request_and_operator,
    an_entry_names_the_request_id_the_server_made_when_the_client_sent_none,
);

// ---- Helpers --------------------------------------------------------------------------------

/// A short pause, so that consecutive entries get distinct times on every database.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// Sends `method uri body` as the admin, insisting on `status`; returns the response.
async fn expect(
    app: &TestApp,
    method: Method,
    uri: &str,
    body: Option<Value>,
    status: StatusCode,
) -> TestResponse {
    let response = app.request(method.clone(), uri, body.as_ref()).await;
    assert_eq!(response.status, status, "{method} {uri}: {}", response.text);
    response
}

async fn admin_id(app: &TestApp) -> i64 {
    id_of(&app.ok(Method::GET, "/api/v1/auth/me", None).await)
}

/// The ids of a page of entries.
fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(id_of)
        .collect()
}

/// Every entry the admin sees in the search, oldest first.
async fn everything(app: &TestApp) -> Vec<Value> {
    let page = app
        .ok(Method::GET, &format!("{LEDGER}?size=100"), None)
        .await;
    assert_eq!(page["meta"]["pages"], 1, "{page}");
    let mut entries = page["items"].as_array().unwrap().clone();
    entries.reverse();
    entries
}

/// Checks the rules of `docs/stock.md` on the entries of row `id`: each entry's numbers
/// follow from its change, each starts where the one before ended (at zero for the first),
/// and the changes add up to `(inventory, reserved)`.
fn assert_chain(entries: &[Value], (inventory, reserved): (i64, i64)) {
    let n = |e: &Value, f: &str| {
        e[f].as_i64()
            .unwrap_or_else(|| panic!("{f} is a number in {e}"))
    };
    let (mut on_hand, mut held) = (0, 0);
    let mut last_id = 0;
    for e in entries {
        assert!(id_of(e) > last_id, "in id order: {e}");
        last_id = id_of(e);
        assert_eq!(
            n(e, "inventory_before"),
            on_hand,
            "starts where the last ended: {e}"
        );
        assert_eq!(
            n(e, "reserved_before"),
            held,
            "starts where the last ended: {e}"
        );
        assert_eq!(
            n(e, "inventory_after"),
            n(e, "inventory_before") + n(e, "quantity_change"),
            "{e}"
        );
        assert_eq!(
            n(e, "reserved_after"),
            n(e, "reserved_before") + n(e, "reserved_change"),
            "{e}"
        );
        on_hand = n(e, "inventory_after");
        held = n(e, "reserved_after");
    }
    let sum = |f: &str| entries.iter().map(|e| n(e, f)).sum::<i64>();
    assert_eq!(
        (sum("quantity_change"), sum("reserved_change")),
        (inventory, reserved),
        "the changes add up to the row"
    );
}

// ---- Entries --------------------------------------------------------------------------------

async fn every_kind_of_change_writes_one_entry_with_exact_numbers(app: TestApp) {
    let operator = admin_id(&app).await;
    let ok = StatusCode::OK;
    let body = |units: i64| inventory_body(json!({"inventory": units}));
    let mut requests = Vec::new();

    let created = expect(&app, Method::POST, INVENTORY, Some(body(10)), ok).await;
    let id = id_of(&created.json["data"]);
    requests.push(request_id_of(&created));
    tick().await;
    let upserted = expect(&app, Method::POST, INVENTORY, Some(body(15)), ok).await;
    requests.push(request_id_of(&upserted));
    tick().await;
    // Only the ASINs change: no units move, no entry.
    let asins = inventory_body(json!({"inventory": 15, "child_asin": "B0CHILD00009"}));
    expect(&app, Method::POST, INVENTORY, Some(asins), ok).await;
    tick().await;
    let adjusted = expect(
        &app,
        Method::POST,
        &format!("{INVENTORY}/{id}/adjust"),
        Some(
            json!({"adjustment_type": "decrease", "quantity": 3, "reason": "damaged",
            "reference": "RMA-7"}),
        ),
        ok,
    )
    .await;
    requests.push(request_id_of(&adjusted));
    tick().await;
    let first = expect(
        &app,
        Method::POST,
        "/api/v1/reservations",
        Some(reservation_body(
            json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 4}]}),
        )),
        StatusCode::CREATED,
    )
    .await;
    let first_id = id_of(&first.json["data"]);
    requests.push(request_id_of(&first));
    tick().await;
    let released = expect(
        &app,
        Method::DELETE,
        &format!("/api/v1/reservations/{first_id}"),
        None,
        ok,
    )
    .await;
    requests.push(request_id_of(&released));
    tick().await;
    let second = expect(
        &app,
        Method::POST,
        "/api/v1/reservations",
        Some(reservation_body(
            json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 5}]}),
        )),
        StatusCode::CREATED,
    )
    .await;
    let second_id = id_of(&second.json["data"]);
    requests.push(request_id_of(&second));
    tick().await;
    let committed = expect(
        &app,
        Method::POST,
        &format!("/api/v1/reservations/{second_id}/commit"),
        Some(json!({"order_id": "order:9"})),
        ok,
    )
    .await;
    requests.push(request_id_of(&committed));
    tick().await;
    let row_before_delete = app.row(id).await;
    let deleted = expect(&app, Method::DELETE, &format!("{INVENTORY}/{id}"), None, ok).await;
    requests.push(request_id_of(&deleted));

    // (type, quantity_change, reserved_change, inventory before/after, reserved before/after,
    //  reason, reference, reservation_id, order_id)
    type Expected = (
        &'static str,
        i64,
        i64,
        (i64, i64),
        (i64, i64),
        Option<&'static str>,
        Option<&'static str>,
        Option<i64>,
        Option<&'static str>,
    );
    let expected: Vec<Expected> = vec![
        ("create", 10, 0, (0, 10), (0, 0), None, None, None, None),
        ("upsert", 5, 0, (10, 15), (0, 0), None, None, None, None),
        (
            "adjust",
            -3,
            0,
            (15, 12),
            (0, 0),
            Some("damaged"),
            Some("RMA-7"),
            None,
            None,
        ),
        (
            "reserve",
            0,
            4,
            (12, 12),
            (0, 4),
            None,
            None,
            Some(first_id),
            None,
        ),
        (
            "release",
            0,
            -4,
            (12, 12),
            (4, 0),
            None,
            None,
            Some(first_id),
            None,
        ),
        (
            "reserve",
            0,
            5,
            (12, 12),
            (0, 5),
            None,
            None,
            Some(second_id),
            None,
        ),
        (
            "commit",
            -5,
            -5,
            (12, 7),
            (5, 0),
            None,
            None,
            Some(second_id),
            Some("order:9"),
        ),
        ("delete", -7, 0, (7, 0), (0, 0), None, None, None, None),
    ];
    let history = app.history(id).await;
    assert_eq!(history.len(), expected.len(), "{history:#?}");
    let mut last_time = String::new();
    for ((entry, expected), request) in history.iter().zip(expected).zip(&requests) {
        let (kind, quantity, reserved, (inv_before, inv_after), (res_before, res_after)) =
            (expected.0, expected.1, expected.2, expected.3, expected.4);
        let want = json!({
            "id": entry["id"],
            "inventory_id": id,
            "seller_id": SELLER_A,
            "market_place_id": "US",
            "seller_sku": "SKU0000000001",
            "type": kind,
            "quantity_change": quantity,
            "reserved_change": reserved,
            "inventory_before": inv_before,
            "inventory_after": inv_after,
            "reserved_before": res_before,
            "reserved_after": res_after,
            "reason": expected.5,
            "reference": expected.6,
            "reservation_id": expected.7,
            "order_id": expected.8,
            "operator_id": operator,
            "request_id": request,
            "create_time": entry["create_time"],
        });
        assert_eq!(*entry, want, "the {kind} entry");
        let time = entry["create_time"].as_str().unwrap().to_owned();
        assert!(time > last_time, "{kind}: later than the entry before");
        last_time = time;
    }
    assert_eq!(
        history[0]["create_time"],
        created.json["data"]["create_time"]
    );
    assert_eq!(
        history[7]["inventory_before"],
        row_before_delete["inventory"]
    );
    app.assert_books_balance().await;
}

async fn each_rows_entries_chain_from_zero_to_its_current_numbers(app: TestApp) {
    let a = app
        .post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
        .await;
    let b = app
        .post_ok(
            INVENTORY,
            &inventory_body(json!({"seller_sku": "SKU0000000002", "inventory": 4})),
        )
        .await;
    let both = |qa: i64, qb: i64| {
        reservation_body(json!({"items": [
            {"seller_sku": "SKU0000000001", "quantity": qa},
            {"seller_sku": "SKU0000000002", "quantity": qb}]}))
    };
    let r1 = app.reserve_ok(&both(3, 2)).await;
    let r2 = app.reserve_ok(&both(1, 1)).await;
    let r3 = app.reserve_ok(&both(2, 1)).await;
    app.post_ok(
        &format!("{INVENTORY}/{}/adjust", id_of(&a)),
        &json!({"adjustment_type": "increase", "quantity": 7, "reason": "delivery"}),
    )
    .await;
    app.ok(
        Method::POST,
        &format!("/api/v1/reservations/{}/commit", id_of(&r1)),
        Some(&json!({"order_id": "order:1"})),
    )
    .await;
    app.ok(
        Method::DELETE,
        &format!("/api/v1/reservations/{}", id_of(&r2)),
        None,
    )
    .await;
    // Row B oversold by an upsert, then an expiry of what held it.
    app.post_ok(
        INVENTORY,
        &inventory_body(json!({"seller_sku": "SKU0000000002", "inventory": 0})),
    )
    .await;
    app.move_deadline(
        id_of(&r3),
        chrono::Utc::now() - chrono::Duration::seconds(5),
    )
    .await;
    app.ok(Method::POST, "/api/v1/reservations/cleanup", None)
        .await;
    app.reserve_ok(&reservation_body(
        json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 1}]}),
    ))
    .await;

    for row in [&a, &b] {
        let id = id_of(row);
        let now = app.row(id).await;
        let history = app.history(id).await;
        let n = |f: &str| now[f].as_i64().unwrap();
        assert_chain(&history, (n("inventory"), n("reserved")));
    }
    let kinds: Vec<Value> = app
        .history(id_of(&b))
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        json!(["create", "reserve", "reserve", "reserve", "commit", "release", "upsert", "expire"])
            .as_array()
            .unwrap()
            .clone()
    );
    app.assert_books_balance().await;
}

// ---- Reading one row's history ------------------------------------------------------------------

async fn a_rows_history_is_newest_first_and_filters_by_type_and_time(app: TestApp) {
    let row = app
        .post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
        .await;
    let id = id_of(&row);
    for quantity in 1..=3 {
        tick().await;
        app.post_ok(
            &format!("{INVENTORY}/{id}/adjust"),
            &json!({"adjustment_type": "increase", "quantity": quantity, "reason": "delivery"}),
        )
        .await;
    }
    tick().await;
    app.reserve_ok(&reservation_body(json!({}))).await;
    let e = app.history(id).await;
    assert_eq!(e.len(), 5);
    let at = |i: usize| e[i]["create_time"].as_str().unwrap().to_owned();
    let id_at = |i: usize| id_of(&e[i]);
    // The time of entry 2 in another zone: 2 hours ahead, `+` escaped in the query.
    let shifted = chrono::DateTime::parse_from_rfc3339(&at(2))
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
        .replace('+', "%2B");

    let uri = format!("{INVENTORY}/{id}/transactions");
    let cases: Vec<(&str, String, Vec<usize>)> = vec![
        ("everything", String::new(), vec![4, 3, 2, 1, 0]),
        ("adjustments", "?type=adjust".into(), vec![3, 2, 1]),
        ("the create", "?type=create".into(), vec![0]),
        ("no commits", "?type=commit".into(), vec![]),
        ("since entry 2", format!("?since={}", at(2)), vec![4, 3, 2]),
        ("until entry 2", format!("?until={}", at(2)), vec![1, 0]),
        (
            "from entry 1 until entry 3",
            format!("?since={}&until={}", at(1), at(3)),
            vec![2, 1],
        ),
        (
            "since entry 2, in +02:00",
            format!("?since={shifted}"),
            vec![4, 3, 2],
        ),
        (
            "adjustments since entry 2",
            format!("?type=adjust&since={}", at(2)),
            vec![3, 2],
        ),
    ];
    for (label, query, expected) in cases {
        let page = app.ok(Method::GET, &format!("{uri}{query}"), None).await;
        let expected: Vec<i64> = expected.into_iter().map(id_at).collect();
        assert_eq!(ids(&page), expected, "{label}");
        assert_eq!(page["meta"]["total"], expected.len(), "{label}");
    }
    let page = app
        .ok(Method::GET, &format!("{uri}?size=2&page=2"), None)
        .await;
    assert_eq!(ids(&page), [id_at(2), id_at(1)]);
    assert_eq!(
        page["meta"],
        json!({"total": 5, "page": 2, "size": 2, "pages": 3, "has_next": true, "has_prev": true})
    );

    let bad: Vec<(&str, String, &str)> = vec![
        ("an unknown type", "?type=sale".into(), "type"),
        ("since not a time", "?since=yesterday".into(), "since"),
        (
            "since without a zone",
            "?since=2026-01-01T00:00:00".into(),
            "since",
        ),
        (
            "until not a date",
            "?until=2026-13-01T00:00:00Z".into(),
            "until",
        ),
        (
            "until equal to since",
            format!("?since={}&until={}", at(2), at(2)),
            "until",
        ),
        (
            "until before since",
            format!("?since={}&until={}", at(3), at(1)),
            "until",
        ),
        (
            "an unknown parameter",
            "?seller_sku=SKU0000000001".into(),
            "seller_sku",
        ),
        ("size 101", "?size=101".into(), "size"),
    ];
    for (label, query, field) in bad {
        let response = app.get(&format!("{uri}{query}")).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let fields: Vec<String> = field_errors(&response)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, [field], "{label}: {}", response.text);
    }

    // Its seller reads it; another seller, or anyone asking for an unknown row, finds nothing.
    let (_, own) = app.seller("seller.a", &[SELLER_A]).await;
    let (_, other) = app.seller("seller.b", &[SELLER_B]).await;
    let mine = app.request_as(Method::GET, &uri, None, Some(&own)).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(ids(&mine.json["data"]).len(), 5);
    let foreign = app.request_as(Method::GET, &uri, None, Some(&other)).await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "NOT_FOUND");
    let unknown = app.get(&format!("{INVENTORY}/999999/transactions")).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn a_deleted_rows_history_stays_readable_to_admins_only(app: TestApp) {
    let (clerk, token) = app.seller("seller.a", &[SELLER_A]).await;
    let as_seller = |method: Method, uri: String, body: Option<Value>| {
        let token = token.clone();
        let app = &app;
        async move {
            app.request_as(method, &uri, body.as_ref(), Some(&token))
                .await
        }
    };
    let created = as_seller(
        Method::POST,
        INVENTORY.into(),
        Some(inventory_body(json!({"inventory": 6}))),
    )
    .await;
    let id = id_of(&created.json["data"]);
    as_seller(
        Method::POST,
        format!("{INVENTORY}/{id}/adjust"),
        Some(json!({"adjustment_type": "set", "quantity": 4, "reason": "count"})),
    )
    .await;
    let deleted = as_seller(Method::DELETE, format!("{INVENTORY}/{id}"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);

    let history = app.history(id).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["create", "adjust", "delete"]);
    assert!(
        history.iter().all(|e| e["operator_id"] == clerk),
        "{history:?}"
    );
    assert_eq!(history[2]["quantity_change"], -4);
    assert_eq!(history[2]["inventory_after"], 0);
    assert_chain(&history, (0, 0));
    let typed = app
        .ok(
            Method::GET,
            &format!("{INVENTORY}/{id}/transactions?type=delete"),
            None,
        )
        .await;
    assert_eq!(ids(&typed), [id_of(&history[2])]);

    let seller_view = as_seller(Method::GET, format!("{INVENTORY}/{id}/transactions"), None).await;
    assert_error(&seller_view, StatusCode::NOT_FOUND, "NOT_FOUND");
    let row = app.get(&format!("{INVENTORY}/{id}")).await;
    assert_error(&row, StatusCode::NOT_FOUND, "NOT_FOUND");
    let never = app
        .get(&format!("{INVENTORY}/{}/transactions", id + 1000))
        .await;
    assert_error(&never, StatusCode::NOT_FOUND, "NOT_FOUND");
    // The search over every row still finds its entries.
    let found = app
        .ok(
            Method::GET,
            &format!("{LEDGER}?seller_sku=SKU0000000001"),
            None,
        )
        .await;
    assert_eq!(found["meta"]["total"], 3);

    // The key again is a new row with a history of its own; the old one stays.
    let again = app
        .post_ok(INVENTORY, &inventory_body(json!({"inventory": 2})))
        .await;
    assert_ne!(id_of(&again), id, "ids are never reused");
    assert_eq!(again["version"], 1);
    let fresh = app.history(id_of(&again)).await;
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert_eq!(fresh[0]["type"], "create");
    assert_eq!(fresh[0]["inventory_before"], 0);
    assert_eq!(app.history(id).await, history);
    app.assert_books_balance().await;
}

// ---- The search over every row --------------------------------------------------------------------

async fn the_ledger_search_filters_by_every_field_within_the_callers_sellers(app: TestApp) {
    let admin = admin_id(&app).await;
    let (clerk, token) = app.seller("seller.a", &[SELLER_A]).await;
    let row = |seller: &str, market: &str, sku: &str, units: i64| {
        inventory_body(json!({"seller_id": seller, "market_place_id": market,
            "seller_sku": sku, "inventory": units}))
    };
    let a_us = app
        .post_ok(INVENTORY, &row(SELLER_A, "US", "SKU0000000001", 10))
        .await;
    tick().await;
    let a_de = app
        .post_ok(INVENTORY, &row(SELLER_A, "DE", "SKU0000000001", 5))
        .await;
    tick().await;
    let by_clerk = app
        .request_as(
            Method::POST,
            INVENTORY,
            Some(&row(SELLER_A, "US", "SKU0000000002", 7)),
            Some(&token),
        )
        .await;
    assert_eq!(by_clerk.status, StatusCode::OK, "{}", by_clerk.text);
    tick().await;
    let b_us = app
        .post_ok(INVENTORY, &row(SELLER_B, "US", "SKU0000000001", 3))
        .await;
    tick().await;
    let adjust = |reference: &str, kind: &str| {
        json!({"adjustment_type": kind, "quantity": 1, "reason": "count",
            "reference": reference})
    };
    let clerk_adjusts = app
        .request_as(
            Method::POST,
            &format!("{INVENTORY}/{}/adjust", id_of(&a_us)),
            Some(&adjust("PO-1", "increase")),
            Some(&token),
        )
        .await;
    assert_eq!(
        clerk_adjusts.status,
        StatusCode::OK,
        "{}",
        clerk_adjusts.text
    );
    tick().await;
    app.post_ok(
        &format!("{INVENTORY}/{}/adjust", id_of(&b_us)),
        &adjust("PO-1", "increase"),
    )
    .await;
    tick().await;
    app.post_ok(
        &format!("{INVENTORY}/{}/adjust", id_of(&a_de)),
        &adjust("PO-2", "decrease"),
    )
    .await;
    tick().await;
    app.reserve_ok(&reservation_body(json!({}))).await;

    let e = everything(&app).await;
    assert_eq!(e.len(), 8, "{e:#?}");
    let kinds: Vec<&str> = e.iter().map(|x| x["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["create", "create", "create", "create", "adjust", "adjust", "adjust", "reserve"]
    );
    let operators: Vec<i64> = e
        .iter()
        .map(|x| x["operator_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        operators,
        [admin, admin, clerk, admin, clerk, admin, admin, admin]
    );
    let at = |i: usize| e[i]["create_time"].as_str().unwrap().to_owned();

    let cases: Vec<(&str, String, bool, Vec<usize>)> = vec![
        (
            "everything",
            String::new(),
            false,
            vec![7, 6, 5, 4, 3, 2, 1, 0],
        ),
        (
            "seller A",
            "?seller_id=A1SELLER0001".into(),
            false,
            vec![7, 6, 4, 2, 1, 0],
        ),
        (
            "marketplace DE",
            "?market_place_id=DE".into(),
            false,
            vec![6, 1],
        ),
        (
            "one SKU",
            "?seller_sku=SKU0000000001".into(),
            false,
            vec![7, 6, 5, 4, 3, 1, 0],
        ),
        ("adjustments", "?type=adjust".into(), false, vec![6, 5, 4]),
        (
            "by the clerk",
            format!("?operator_id={clerk}"),
            false,
            vec![4, 2],
        ),
        (
            "reference PO-1",
            "?reference=PO-1".into(),
            false,
            vec![5, 4],
        ),
        (
            "an unused reference",
            "?reference=PO-9".into(),
            false,
            vec![],
        ),
        (
            "since entry 4",
            format!("?since={}", at(4)),
            false,
            vec![7, 6, 5, 4],
        ),
        (
            "until entry 4",
            format!("?until={}", at(4)),
            false,
            vec![3, 2, 1, 0],
        ),
        (
            "from entry 2 until entry 5",
            format!("?since={}&until={}", at(2), at(5)),
            false,
            vec![4, 3, 2],
        ),
        (
            "seller A's PO-1",
            "?seller_id=A1SELLER0001&reference=PO-1".into(),
            false,
            vec![4],
        ),
        (
            "seller A's creates in US",
            "?seller_id=A1SELLER0001&market_place_id=US&type=create".into(),
            false,
            vec![2, 0],
        ),
        (
            "everything, as seller A",
            String::new(),
            true,
            vec![7, 6, 4, 2, 1, 0],
        ),
        ("PO-1, as seller A", "?reference=PO-1".into(), true, vec![4]),
        (
            "seller A's own, as seller A",
            "?seller_id=A1SELLER0001&type=create".into(),
            true,
            vec![2, 1, 0],
        ),
    ];
    for (label, query, as_seller, expected) in cases {
        let caller = if as_seller { &token } else { &app.admin_token };
        let response = app
            .request_as(
                Method::GET,
                &format!("{LEDGER}{query}"),
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
        let expected: Vec<i64> = expected.into_iter().map(|i| id_of(&e[i])).collect();
        assert_eq!(ids(&response.json["data"]), expected, "{label}");
        assert_eq!(
            response.json["data"]["meta"]["total"],
            expected.len(),
            "{label}"
        );
    }
    let page = app
        .ok(Method::GET, &format!("{LEDGER}?size=3&page=3"), None)
        .await;
    assert_eq!(ids(&page), [id_of(&e[1]), id_of(&e[0])]);
    assert_eq!(
        page["meta"],
        json!({"total": 8, "page": 3, "size": 3, "pages": 3, "has_next": false, "has_prev": true})
    );

    let foreign = app
        .request_as(
            Method::GET,
            &format!("{LEDGER}?seller_id={SELLER_B}"),
            None,
            Some(&token),
        )
        .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");

    let bad: Vec<(&str, &str, &[&str])> = vec![
        ("since not a time", "?since=yesterday", &["since"]),
        (
            "until without a zone",
            "?until=2026-11-21T10:30:00",
            &["until"],
        ),
        ("operator_id 0", "?operator_id=0", &["operator_id"]),
        ("operator_id a name", "?operator_id=admin", &["operator_id"]),
        ("an unknown type", "?type=sale", &["type"]),
        ("a bad seller", "?seller_id=A1", &["seller_id"]),
        ("a bad SKU", "?seller_sku=SKU_1", &["seller_sku"]),
        (
            "a bad marketplace",
            "?market_place_id=usa",
            &["market_place_id"],
        ),
        ("an unknown parameter", "?order_id=order:1", &["order_id"]),
        (
            "until before since",
            "?since=2026-11-21T10:30:00Z&until=2026-11-20T10:30:00Z",
            &["until"],
        ),
        (
            "three problems",
            "?since=soon&type=sale&operator_id=-1",
            &["operator_id", "since", "type"],
        ),
    ];
    for (label, query, fields) in bad {
        let response = app.get(&format!("{LEDGER}{query}")).await;
        assert_error_in(
            label,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        );
        let mut found: Vec<String> = field_errors(&response)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        found.sort();
        assert_eq!(found, fields, "{label}: {}", response.text);
    }
    let _ = by_clerk;
}

async fn a_batch_upsert_writes_one_entry_per_changed_row(app: TestApp) {
    let item = |sku: &str, units: i64, parent: &str| {
        inventory_body(json!({"seller_sku": sku, "inventory": units, "parent_asin": parent}))
    };
    let first = expect(
        &app,
        Method::POST,
        "/api/v1/inventory/batch",
        Some(json!({"items": [
            item("SKU0000000001", 1, "B0PARENT0001"),
            item("SKU0000000002", 2, "B0PARENT0001"),
            item("SKU0000000003", 3, "B0PARENT0001")]})),
        StatusCode::OK,
    )
    .await;
    let rows = first.json["data"]["items"].as_array().unwrap().clone();
    let entries = everything(&app).await;
    assert_eq!(entries.len(), 3, "{entries:#?}");
    for (entry, row) in entries.iter().zip(&rows) {
        assert_eq!(entry["type"], "create");
        assert_eq!(entry["inventory_id"], row["id"]);
        assert_eq!(entry["quantity_change"], row["inventory"]);
        assert_eq!(entry["request_id"], request_id_of(&first).as_str());
    }

    let second = expect(
        &app,
        Method::POST,
        "/api/v1/inventory/batch",
        Some(json!({"items": [
            item("SKU0000000003", 3, "B0PARENT0001"),
            item("SKU0000000002", 2, "B0PARENT0009"),
            item("SKU0000000001", 9, "B0PARENT0001"),
            item("SKU0000000004", 0, "B0PARENT0001")]})),
        StatusCode::OK,
    )
    .await;
    let after = everything(&app).await;
    let new: Vec<&Value> = after[3..].iter().collect();
    let summary: Vec<(Value, Value, Value)> = new
        .iter()
        .map(|e| {
            (
                e["type"].clone(),
                e["seller_sku"].clone(),
                e["quantity_change"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!("upsert"), json!("SKU0000000001"), json!(8)),
            (json!("create"), json!("SKU0000000004"), json!(0)),
        ],
        "only rows whose units moved or that are new: {new:#?}"
    );
    assert!(new
        .iter()
        .all(|e| e["request_id"] == request_id_of(&second).as_str()));
    let versions: Vec<Value> = second.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].clone())
        .collect();
    assert_eq!(versions, [json!(1), json!(2), json!(2), json!(1)]);
    app.assert_books_balance().await;
}

async fn the_ledger_has_no_write_endpoints(app: TestApp) {
    let row = app
        .post_ok(INVENTORY, &inventory_body(json!({"inventory": 10})))
        .await;
    let id = id_of(&row);
    let entry = id_of(&app.history(id).await[0]);
    let before = everything(&app).await;
    let forged = json!({"inventory_id": id, "type": "adjust", "quantity_change": 5});
    let attempts = [
        (Method::DELETE, LEDGER.to_owned()),
        (Method::POST, LEDGER.to_owned()),
        (Method::PUT, LEDGER.to_owned()),
        (Method::PATCH, LEDGER.to_owned()),
        (Method::DELETE, format!("{INVENTORY}/{id}/transactions")),
        (Method::POST, format!("{INVENTORY}/{id}/transactions")),
        (Method::PUT, format!("{INVENTORY}/{id}/transactions")),
        (Method::DELETE, format!("{LEDGER}/{entry}")),
        (Method::PUT, format!("{LEDGER}/{entry}")),
        (Method::PATCH, format!("{LEDGER}/{entry}")),
        (Method::GET, format!("{LEDGER}/{entry}")),
    ];
    for (method, uri) in attempts {
        let response = app.request(method.clone(), &uri, Some(&forged)).await;
        assert!(
            matches!(
                response.status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
            ),
            "{method} {uri}: {}",
            response.text
        );
        assert_error_in(
            &format!("{method} {uri}"),
            &response,
            response.status,
            if response.status == StatusCode::NOT_FOUND {
                "NOT_FOUND"
            } else {
                "METHOD_NOT_ALLOWED"
            },
        );
    }
    assert_eq!(everything(&app).await, before, "the ledger is as it was");
    assert_eq!(app.row(id).await, row, "and so is the row");
}

// ---- Under contention -------------------------------------------------------------------------

async fn simultaneous_changes_of_one_row_leave_a_ledger_that_adds_up(app: TestApp) {
    let row = app
        .post_ok(INVENTORY, &inventory_body(json!({"inventory": 100})))
        .await;
    let id = id_of(&row);
    let one =
        || reservation_body(json!({"items": [{"seller_sku": "SKU0000000001", "quantity": 1}]}));
    let mut earlier = Vec::new();
    for _ in 0..10 {
        earlier.push(id_of(&app.reserve_ok(&one()).await));
    }
    let app = Arc::new(app);
    // Everything at once: releases of those, new reservations, upserts of the units on hand
    // (always above what can be reserved), increases and decreases by hand.
    let mut requests: Vec<(Method, String, Option<Value>)> = Vec::new();
    for reservation in &earlier {
        requests.push((
            Method::DELETE,
            format!("/api/v1/reservations/{reservation}"),
            None,
        ));
    }
    for i in 0..20 {
        requests.push((Method::POST, "/api/v1/reservations".into(), Some(one())));
        if i < 10 {
            requests.push((
                Method::POST,
                INVENTORY.into(),
                Some(inventory_body(json!({"inventory": 100 + i}))),
            ));
            let kind = if i % 2 == 0 { "increase" } else { "decrease" };
            requests.push((
                Method::POST,
                format!("{INVENTORY}/{id}/adjust"),
                Some(json!({"adjustment_type": kind, "quantity": 1, "reason": "count"})),
            ));
        }
    }
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(method, uri, body)| {
            let app = app.clone();
            tokio::spawn(async move {
                let response = app.request(method.clone(), &uri, body.as_ref()).await;
                (format!("{method} {uri}"), response)
            })
        })
        .collect();
    for task in tasks {
        let (request, response) = task.await.unwrap();
        assert!(
            matches!(response.status, StatusCode::OK | StatusCode::CREATED),
            "{request}: {}",
            response.text
        );
    }
    let now = app.row(id).await;
    assert_eq!(
        now["reserved"], 20,
        "the new reservations hold, the old ones not: {now}"
    );
    let history = app.history(id).await;
    // The create, 10 reservations, 10 releases, 20 reservations, 10 adjustments, and one per
    // upsert that found other units on hand than it reported.
    let upserts = history.iter().filter(|e| e["type"] == "upsert").count();
    assert!(upserts <= 10, "{history:#?}");
    assert_eq!(history.len(), 1 + 10 + 10 + 20 + 10 + upserts);
    assert_chain(
        &history,
        (
            now["inventory"].as_i64().unwrap(),
            now["reserved"].as_i64().unwrap(),
        ),
    );
    assert_eq!(
        now["version"],
        history.len(),
        "one version per entry: {now}"
    );
    app.assert_books_balance().await;
}

async fn simultaneous_writes_are_each_recorded_under_their_own_request_and_operator(app: TestApp) {
    let admin = admin_id(&app).await;
    let (alice, alice_token) = app.seller("seller.a", &[SELLER_A]).await;
    let (bob, bob_token) = app.seller("seller.b", &[SELLER_B]).await;
    let app = Arc::new(app);
    let callers = [
        (admin, SELLER_A, app.admin_token.clone()),
        (alice, SELLER_A, alice_token),
        (bob, SELLER_B, bob_token),
    ];
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let app = app.clone();
            let (user, seller, token) = callers[i % 3].clone();
            tokio::spawn(async move {
                let sku = format!("SKU{i:010}");
                let body = inventory_body(json!({"seller_id": seller, "seller_sku": sku,
                    "inventory": i}));
                let response = app
                    .request_as(Method::POST, INVENTORY, Some(&body), Some(&token))
                    .await;
                (user, response)
            })
        })
        .collect();
    let mut expected = std::collections::HashMap::new();
    for task in tasks {
        let (user, response) = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        expected.insert(
            id_of(&response.json["data"]),
            (user, request_id_of(&response)),
        );
    }
    let entries = everything(&app).await;
    assert_eq!(entries.len(), 60);
    for entry in &entries {
        let (user, request) = &expected[&entry["inventory_id"].as_i64().unwrap()];
        assert_eq!(entry["operator_id"], *user, "{entry}");
        assert_eq!(entry["request_id"], request.as_str(), "{entry}");
        assert_eq!(entry["type"], "create", "{entry}");
    }
}

async fn an_entry_names_the_request_id_the_server_made_when_the_client_sent_none(app: TestApp) {
    let body = inventory_body(json!({"inventory": 4})).to_string();
    let request = axum::http::Request::post(INVENTORY)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", app.admin_token))
        .body(body.into())
        .unwrap();
    let response = app.send_exact(request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let made = request_id_of(&response);
    assert!(!made.is_empty());
    let history = app.history(id_of(&response.json["data"])).await;
    assert_eq!(history[0]["request_id"], made.as_str());
}
