//! Stock under contention (`docs/stock.md`, "Safe under contention"): many simultaneous
//! reservations, releases, commits, adjustments and upserts of the same rows never hold more
//! than was available, never lose an update, keep the ledger whole, and never reach the client
//! as a 500 or a 503 (a deadlock, "database is locked", a lock wait). Requests run at once as
//! `tokio::spawn`ed tasks over one `Arc<TestApp>`; every test ends by reading the ledger back
//! and running the consistency check.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{inventory_body, TestApp, TestResponse};

backend_tests!(
    simultaneous_reservations_of_one_row_never_oversell,
    multi_item_reservations_in_opposite_orders_hold_all_or_nothing,
    a_storm_of_mixed_operations_on_one_row_keeps_the_books,
    simultaneous_increases_lose_no_update,
    simultaneous_releases_of_distinct_reservations_lose_no_update,
    racing_commits_and_releases_of_one_reservation_end_it_once,
    upserts_racing_reservations_of_the_same_keys_keep_the_books,
    upserts_racing_deletes_of_their_row_keep_the_books,
);

const SELLER: &str = "A1SELLER0001";
const RESERVATIONS: &str = "/api/v1/reservations";

fn sku(n: u32) -> String {
    format!("SKU{n:010}")
}

/// Upserts `units` of `sku` and returns the row's id.
async fn stock_row(app: &TestApp, sku: &str, units: i64) -> i64 {
    let row = app
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"seller_sku": sku, "inventory": units})),
        )
        .await;
    row["id"].as_i64().expect("a row id")
}

/// A cart reservation body of `(sku, quantity)` items under `reference`.
fn reservation(reference: &str, items: &[(&str, i64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, quantity)| json!({"seller_sku": sku, "quantity": quantity}))
        .collect();
    json!({"seller_id": SELLER, "market_place_id": "US", "reservation_type": "cart",
        "reference_id": reference, "items": items})
}

fn adjustment(kind: &str, quantity: i64) -> Value {
    json!({"adjustment_type": kind, "quantity": quantity, "reason": "contention test"})
}

/// The id of the row of `sku` now, if there is one.
async fn id_of(app: &TestApp, sku: &str) -> Option<i64> {
    let found = app
        .post_ok(
            "/api/v1/inventory/lookup",
            &json!({"keys": [{"seller_id": SELLER, "market_place_id": "US", "seller_sku": sku}]}),
        )
        .await["items"][0]
        .clone();
    found["id"].as_i64()
}

async fn row_of(app: &TestApp, id: i64) -> Value {
    let response = app.get(&format!("/api/v1/inventory/{id}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json["data"].clone()
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("an integer: {value}"))
}

fn error_code(response: &TestResponse) -> &str {
    response.json["error_code"].as_str().unwrap_or("")
}

/// Whether `response` is `status` with `code` (any code when `None`).
fn is(response: &TestResponse, status: StatusCode, code: Option<&str>) -> bool {
    response.status == status && code.is_none_or(|code| error_code(response) == code)
}

/// One line about an answer nobody should get, for the failure message.
fn unexpected(what: &str, response: &TestResponse) -> String {
    let id = response
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    format!(
        "{what}: {} (request {id}) {}",
        response.status, response.text
    )
}

/// Insists that nothing unexpected was answered; otherwise fails with every such answer and
/// the errors and warnings this app logged (a 500 is logged with its cause).
fn assert_all_expected(app: &TestApp, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let logged: Vec<String> = app
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("ERROR") || line.contains("WARN"))
        .take(40)
        .collect();
    panic!(
        "{} unexpected answers:\n{}\nerrors and warnings logged:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        logged.join("\n")
    );
}

/// Every item of every page of the list at `uri` (which may carry filters), in list order.
async fn all_pages(app: &TestApp, uri: &str) -> Vec<Value> {
    let separator = if uri.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    for page in 1.. {
        let response = app
            .get(&format!("{uri}{separator}size=100&page={page}"))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text);
        let data = &response.json["data"];
        items.extend(data["items"].as_array().expect("items").iter().cloned());
        if data["meta"]["has_next"] != true {
            break;
        }
    }
    items
}

/// The active reservations, every page.
async fn active_reservations(app: &TestApp) -> Vec<Value> {
    all_pages(app, &format!("{RESERVATIONS}?status=active")).await
}

/// Units the active reservations hold of row `id`.
fn held_of(active: &[Value], id: i64) -> i64 {
    active
        .iter()
        .flat_map(|r| r["items"].as_array().expect("items").iter())
        .filter(|item| item["inventory_id"] == id)
        .map(|item| int(&item["quantity"]))
        .sum()
}

/// Reads the whole ledger of row `id` (oldest first) and checks it as `docs/stock.md` states
/// it: each entry's `after = before + change`, each entry starts where the previous one ended
/// (at 0 for the first), the changes add up to the row's `inventory` and `reserved`, and
/// `reserved` is what the active reservations hold of the row. Returns the entries.
async fn assert_ledger_explains_row(app: &TestApp, id: i64) -> Vec<Value> {
    let mut entries = all_pages(app, &format!("/api/v1/inventory/{id}/transactions")).await;
    entries.reverse();
    let (mut inventory, mut reserved) = (0, 0);
    let mut last_id = 0;
    for entry in &entries {
        assert_eq!(entry["inventory_id"], id, "{entry}");
        let entry_id = int(&entry["id"]);
        assert!(entry_id > last_id, "entries in id order: {entry}");
        last_id = entry_id;
        assert_eq!(
            (
                int(&entry["inventory_before"]),
                int(&entry["reserved_before"])
            ),
            (inventory, reserved),
            "row {id}: entry {entry_id} starts where the previous one ended: {entry}"
        );
        inventory += int(&entry["quantity_change"]);
        reserved += int(&entry["reserved_change"]);
        assert_eq!(
            (
                int(&entry["inventory_after"]),
                int(&entry["reserved_after"])
            ),
            (inventory, reserved),
            "row {id}: entry {entry_id} ends at before + change: {entry}"
        );
    }
    let row = row_of(app, id).await;
    assert_eq!(
        (int(&row["inventory"]), int(&row["reserved"])),
        (inventory, reserved),
        "row {id}: the ledger adds up to the row: {row}"
    );
    assert_eq!(int(&row["available"]), inventory - reserved, "{row}");
    assert!(inventory >= reserved, "row {id} is not oversold: {row}");
    let active = active_reservations(app).await;
    assert_eq!(
        held_of(&active, id),
        reserved,
        "row {id}: reserved is what the active reservations hold"
    );
    entries
}

/// The entries of `entries` of one type.
fn of_type<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["type"] == kind).collect()
}

/// The `reservation_id`s of `entries`, each once, and how many entries each has.
fn by_reservation(entries: &[&Value]) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for entry in entries {
        *counts.entry(int(&entry["reservation_id"])).or_insert(0) += 1;
    }
    counts
}

// ---- 1. many reservations of one row ----------------------------------------------------

async fn simultaneous_reservations_of_one_row_never_oversell(app: TestApp) {
    const STOCK: i64 = 50;
    let sku = sku(1);
    let id = stock_row(&app, &sku, STOCK).await;
    let app = Arc::new(app);

    let tasks: Vec<_> = (0..240)
        .map(|i| {
            let (app, sku) = (app.clone(), sku.clone());
            let quantity = i % 3 + 1;
            tokio::spawn(async move {
                let body = reservation(&format!("cart:one-{i}"), &[(&sku, quantity)]);
                (quantity, app.post(RESERVATIONS, &body).await)
            })
        })
        .collect();

    let mut failures = Vec::new();
    let mut held = 0;
    let mut reserved_ids = BTreeSet::new();
    let mut smallest_refused = i64::MAX;
    for task in tasks {
        let (quantity, response) = task.await.expect("the task runs");
        if response.status == StatusCode::CREATED {
            let data = &response.json["data"];
            assert_eq!(data["status"], "active", "{}", response.text);
            assert_eq!(data["items"][0]["quantity"], quantity, "{}", response.text);
            held += quantity;
            reserved_ids.insert(int(&data["id"]));
        } else if is(
            &response,
            StatusCode::CONFLICT,
            Some("INSUFFICIENT_INVENTORY"),
        ) {
            let short = &response.json["detail"][0];
            assert_eq!(short["requested"], quantity, "{}", response.text);
            assert!(int(&short["available"]) < quantity, "{}", response.text);
            smallest_refused = smallest_refused.min(quantity);
        } else {
            failures.push(unexpected(&format!("reserve {quantity}"), &response));
        }
    }
    assert_all_expected(&app, &failures);

    assert!(held <= STOCK, "{held} units held of {STOCK}");
    let row = row_of(&app, id).await;
    assert_eq!(row["inventory"], STOCK, "{row}");
    assert_eq!(row["reserved"], held, "{row}");
    assert_eq!(row["available"], STOCK - held, "{row}");
    // Available only fell, so every refusal saw at most what is left now: nobody was refused
    // while the units they asked for were there.
    assert!(
        STOCK - held < smallest_refused,
        "{} units left, yet a reservation of {smallest_refused} was refused",
        STOCK - held
    );

    let entries = assert_ledger_explains_row(&app, id).await;
    let reserves = of_type(&entries, "reserve");
    assert_eq!(reserves.len(), reserved_ids.len(), "one entry per success");
    let ledger_ids: BTreeSet<i64> = by_reservation(&reserves).into_keys().collect();
    assert_eq!(ledger_ids, reserved_ids);
    assert_eq!(
        entries.len(),
        1 + reserved_ids.len(),
        "a create, then reserves"
    );
    app.assert_books_balance().await;
}

// ---- 2. multi-item reservations over overlapping rows -----------------------------------

/// Rounds of simultaneous multi-item reservations, and reservations per round: a deadlock
/// that the server does not absorb shows within a few rounds.
const MULTI_ROUNDS: i64 = 3;
const MULTI_RESERVATIONS: i64 = 300;

/// What one multi-item reservation task got: the items it asked for, the reservation's
/// answer, and the answer of the release or commit that followed a success, if any.
type MultiOutcome = (
    Vec<(String, i64)>,
    TestResponse,
    Option<(&'static str, TestResponse)>,
);

/// Reserves `items` (as cart `reference`), then releases (`end` 0) or commits (`end` 1) it at
/// once when it succeeded, or keeps it.
async fn reserve_and_end(
    app: Arc<TestApp>,
    reference: String,
    items: Vec<(String, i64)>,
    end: i64,
) -> MultiOutcome {
    let pairs: Vec<(&str, i64)> = items.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    let reserved = app
        .post(RESERVATIONS, &reservation(&reference, &pairs))
        .await;
    if reserved.status != StatusCode::CREATED {
        return (items, reserved, None);
    }
    let rid = int(&reserved.json["data"]["id"]);
    let ended = match end {
        0 | 1 => Some(end_reservation(&app, rid, end == 1).await),
        _ => None,
    };
    (items, reserved, ended)
}

/// Commits reservation `rid` (for order `order:<rid>`) or releases it.
async fn end_reservation(app: &TestApp, rid: i64, commit: bool) -> (&'static str, TestResponse) {
    if commit {
        let order = json!({"order_id": format!("order:{rid}")});
        let uri = format!("{RESERVATIONS}/{rid}/commit");
        ("commit", app.post(&uri, &order).await)
    } else {
        let uri = format!("{RESERVATIONS}/{rid}");
        ("release", app.request(Method::DELETE, &uri, None).await)
    }
}

async fn multi_item_reservations_in_opposite_orders_hold_all_or_nothing(app: TestApp) {
    const STOCK: i64 = 400;
    // Created in reverse, so that id order is the opposite of SKU order: a lock taken by SKU
    // (a reservation) and one taken by id (a release, a commit) meet rows in opposite orders.
    let (a, b, c) = (sku(1), sku(2), sku(3));
    let mut ids = HashMap::new();
    for s in [&c, &b, &a] {
        ids.insert(s.clone(), stock_row(&app, s, STOCK).await);
    }
    let app = Arc::new(app);

    let shapes: [Vec<&String>; 5] = [
        vec![&a, &b, &c],
        vec![&c, &b, &a],
        vec![&b, &a],
        vec![&b, &c, &a],
        vec![&a, &c],
    ];
    let mut failures = Vec::new();
    let mut successes: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    let mut committed: HashMap<String, i64> = HashMap::new();
    let mut still_active: BTreeSet<i64> = BTreeSet::new();
    for round in 0..MULTI_ROUNDS {
        // Of the new reservations a third are released at once, a third committed, a third
        // kept until the next round, which ends them while it reserves: locks taken by id
        // (releases, commits) all the time while others lock by SKU (reservations).
        let carried: Vec<i64> = std::mem::take(&mut still_active).into_iter().collect();
        let mut endings = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..MULTI_RESERVATIONS {
            if let Some(rid) = carried.get(i as usize).copied() {
                let app = app.clone();
                endings.push(tokio::spawn(async move {
                    (rid, end_reservation(&app, rid, i % 2 == 1).await)
                }));
            }
            let quantity = 1 + (i / 5) % 2;
            let items: Vec<(String, i64)> = shapes[(i % 5) as usize]
                .iter()
                .map(|s| ((*s).clone(), quantity))
                .collect();
            let reference = format!("cart:multi-{round}-{i}");
            tasks.push(tokio::spawn(reserve_and_end(
                app.clone(),
                reference,
                items,
                i % 3,
            )));
        }
        for task in endings {
            let (rid, (what, response)) = task.await.expect("the task runs");
            if response.status != StatusCode::OK {
                failures.push(unexpected(&format!("{what} of {rid}"), &response));
                // A failed request changed nothing: the reservation still holds.
                still_active.insert(rid);
            } else if what == "commit" {
                for (s, q) in &successes[&rid] {
                    *committed.entry(s.clone()).or_insert(0) += q;
                }
            }
        }
        for task in tasks {
            let (items, reserved, ended) = task.await.expect("the task runs");
            if reserved.status == StatusCode::CREATED {
                let data = &reserved.json["data"];
                let got: Vec<(String, i64)> = data["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        (
                            item["seller_sku"].as_str().unwrap().to_owned(),
                            int(&item["quantity"]),
                        )
                    })
                    .collect();
                assert_eq!(got, items, "every item held, in request order");
                let rid = int(&data["id"]);
                match ended {
                    Some((what, response)) if response.status == StatusCode::OK => {
                        if what == "commit" {
                            for (s, q) in &items {
                                *committed.entry(s.clone()).or_insert(0) += q;
                            }
                        }
                    }
                    Some((what, response)) => {
                        failures.push(unexpected(&format!("{what} of {rid}"), &response));
                        still_active.insert(rid);
                    }
                    None => {
                        still_active.insert(rid);
                    }
                }
                successes.insert(rid, items);
            } else if is(
                &reserved,
                StatusCode::CONFLICT,
                Some("INSUFFICIENT_INVENTORY"),
            ) {
                let detail = reserved.json["detail"].as_array().unwrap();
                assert!(!detail.is_empty(), "{}", reserved.text);
            } else {
                failures.push(unexpected(&format!("reserve {items:?}"), &reserved));
            }
        }
        if !failures.is_empty() {
            break;
        }
    }
    assert!(!successes.is_empty(), "some reservations succeed");

    // All or nothing: every success has a reserve entry on each of its rows, of its quantity,
    // and no refused (or failed) reservation has any.
    let reserves = all_pages(&app, "/api/v1/inventory/transactions?type=reserve").await;
    let mut held: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for entry in &reserves {
        let by_row = held.entry(int(&entry["reservation_id"])).or_default();
        let previous = by_row.insert(int(&entry["inventory_id"]), int(&entry["reserved_change"]));
        assert!(
            previous.is_none(),
            "one entry per row and reservation: {entry}"
        );
    }
    let expected: BTreeMap<i64, BTreeMap<i64, i64>> = successes
        .iter()
        .map(|(rid, items)| (*rid, items.iter().map(|(s, q)| (ids[s], *q)).collect()))
        .collect();
    assert_eq!(held, expected, "reservation → row → units reserved");

    let active: BTreeSet<i64> = active_reservations(&app)
        .await
        .iter()
        .map(|r| int(&r["id"]))
        .collect();
    assert_eq!(active, still_active);
    for (s, id) in &ids {
        assert_ledger_explains_row(&app, *id).await;
        let row = row_of(&app, *id).await;
        assert_eq!(
            int(&row["inventory"]),
            STOCK - committed.get(s).copied().unwrap_or(0),
            "{s}: only commits took units off the shelf: {row}"
        );
    }
    app.assert_books_balance().await;
    // Last, so that the books are checked even when some requests failed (a failed request
    // must have changed nothing): every answer was a documented one.
    assert_all_expected(&app, &failures);
}

// ---- 3. a storm of everything on one row ------------------------------------------------

/// What one storm task did, for the checks afterwards.
#[derive(Default)]
struct Storm {
    failures: Vec<String>,
    created: BTreeMap<i64, i64>,
    released: BTreeSet<i64>,
    committed: BTreeMap<i64, String>,
    adjust_entries: BTreeSet<i64>,
    upserts: usize,
    operations: usize,
}

/// Upserts (single, or a batch with another row) never report fewer units than can be
/// reserved in the whole storm, so the row is never oversold.
const STORM_TASKS: u64 = 16;
const STORM_STEPS: usize = 40;
const STORM_MAX_RESERVE: i64 = 3;
const STORM_FLOOR: i64 = STORM_TASKS as i64 * STORM_STEPS as i64 * STORM_MAX_RESERVE + 20;

async fn storm_task(app: Arc<TestApp>, task: u64, id: i64, sku: String, other: String) -> Storm {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + task);
    let mut seen = Storm::default();
    // This task's reservations that it believes active: (id, quantity, cart).
    let mut mine: Vec<(i64, i64, String)> = Vec::new();
    let mut carts = 0;
    for step in 0..STORM_STEPS {
        seen.operations += 1;
        let choice = rng.gen_range(0..100);
        match choice {
            0..=29 => {
                if step % 3 == 0 {
                    carts += 1;
                }
                let cart = format!("cart:storm-{task}-{carts}");
                let quantity = rng.gen_range(1..=STORM_MAX_RESERVE);
                let response = app
                    .post(RESERVATIONS, &reservation(&cart, &[(&sku, quantity)]))
                    .await;
                if response.status == StatusCode::CREATED {
                    let rid = int(&response.json["data"]["id"]);
                    seen.created.insert(rid, quantity);
                    mine.push((rid, quantity, cart));
                } else if !is(
                    &response,
                    StatusCode::CONFLICT,
                    Some("INSUFFICIENT_INVENTORY"),
                ) {
                    seen.failures.push(unexpected("reserve", &response));
                }
            }
            30..=41 if !mine.is_empty() => {
                let (rid, _, _) = mine.swap_remove(rng.gen_range(0..mine.len()));
                let response = app
                    .request(Method::DELETE, &format!("{RESERVATIONS}/{rid}"), None)
                    .await;
                if response.status == StatusCode::OK {
                    seen.released.insert(rid);
                } else {
                    seen.failures
                        .push(unexpected(&format!("release {rid}"), &response));
                }
            }
            42..=53 if !mine.is_empty() => {
                let (rid, _, _) = mine.swap_remove(rng.gen_range(0..mine.len()));
                let order = format!("order:storm-{rid}");
                let response = app
                    .post(
                        &format!("{RESERVATIONS}/{rid}/commit"),
                        &json!({"order_id": order}),
                    )
                    .await;
                if response.status == StatusCode::OK {
                    seen.committed.insert(rid, order);
                } else {
                    seen.failures
                        .push(unexpected(&format!("commit {rid}"), &response));
                }
            }
            54..=59 if !mine.is_empty() => {
                let cart = mine[rng.gen_range(0..mine.len())].2.clone();
                let (of_cart, rest): (Vec<_>, Vec<_>) =
                    mine.drain(..).partition(|(_, _, c)| *c == cart);
                mine = rest;
                let response = app
                    .post(
                        &format!("{RESERVATIONS}/release"),
                        &json!({"seller_id": SELLER, "reference_id": cart}),
                    )
                    .await;
                let data = &response.json["data"];
                let quantity: i64 = of_cart.iter().map(|(_, q, _)| q).sum();
                if response.status == StatusCode::OK
                    && data["released_reservations"] == of_cart.len()
                    && data["released_quantity"] == quantity
                {
                    seen.released.extend(of_cart.iter().map(|(rid, _, _)| *rid));
                } else {
                    seen.failures.push(unexpected(
                        &format!(
                            "release cart {cart} ({} reservations, {quantity} units)",
                            of_cart.len()
                        ),
                        &response,
                    ));
                }
            }
            60..=81 => {
                let (kind, quantity) = match choice % 3 {
                    0 => ("increase", rng.gen_range(1..=40)),
                    1 => ("decrease", rng.gen_range(1..=300)),
                    // Often below what is held: those are refused.
                    _ if rng.gen_bool(0.5) => ("set", rng.gen_range(0..=60)),
                    _ => ("set", rng.gen_range(0..=2500)),
                };
                let response = app
                    .post(
                        &format!("/api/v1/inventory/{id}/adjust"),
                        &adjustment(kind, quantity),
                    )
                    .await;
                if response.status == StatusCode::OK {
                    let entry = &response.json["data"]["transaction"];
                    seen.adjust_entries.insert(int(&entry["id"]));
                    assert_eq!(
                        response.json["data"]["inventory"]["inventory"], entry["inventory_after"],
                        "{}",
                        response.text
                    );
                } else if kind == "increase"
                    || !is(
                        &response,
                        StatusCode::CONFLICT,
                        Some("INSUFFICIENT_INVENTORY"),
                    )
                {
                    seen.failures
                        .push(unexpected(&format!("adjust {kind} {quantity}"), &response));
                }
            }
            _ => {
                let units = rng.gen_range(STORM_FLOOR..=STORM_FLOOR + 300);
                let response = if rng.gen_bool(0.5) {
                    app.post(
                        "/api/v1/inventory",
                        &inventory_body(json!({"seller_sku": sku, "inventory": units})),
                    )
                    .await
                } else {
                    let items = [
                        inventory_body(json!({"seller_sku": other, "inventory": units + 1})),
                        inventory_body(json!({"seller_sku": sku, "inventory": units})),
                    ];
                    app.post("/api/v1/inventory/batch", &json!({"items": items}))
                        .await
                };
                if response.status == StatusCode::OK {
                    seen.upserts += 1;
                } else {
                    seen.failures
                        .push(unexpected(&format!("upsert {units}"), &response));
                }
            }
        }
    }
    seen
}

async fn a_storm_of_mixed_operations_on_one_row_keeps_the_books(app: TestApp) {
    let (sku, other) = (sku(1), sku(2));
    let id = stock_row(&app, &sku, STORM_FLOOR).await;
    let other_id = stock_row(&app, &other, 10).await;
    let app = Arc::new(app);

    let tasks: Vec<_> = (0..STORM_TASKS)
        .map(|task| {
            tokio::spawn(storm_task(
                app.clone(),
                task,
                id,
                sku.clone(),
                other.clone(),
            ))
        })
        .collect();
    let mut all = Storm::default();
    for task in tasks {
        let seen = task.await.expect("the task runs");
        all.failures.extend(seen.failures);
        all.created.extend(seen.created);
        all.released.extend(seen.released);
        all.committed.extend(seen.committed);
        all.adjust_entries.extend(seen.adjust_entries);
        all.upserts += seen.upserts;
        all.operations += seen.operations;
    }
    assert_all_expected(&app, &all.failures);
    assert_eq!(all.operations, STORM_TASKS as usize * STORM_STEPS);

    let entries = assert_ledger_explains_row(&app, id).await;
    let ids_of = |kind: &str| -> BTreeSet<i64> {
        let counts = by_reservation(&of_type(&entries, kind));
        assert!(counts.values().all(|n| *n == 1), "{kind}: one entry each");
        counts.into_keys().collect()
    };
    assert_eq!(ids_of("reserve"), all.created.keys().copied().collect());
    assert_eq!(ids_of("release"), all.released);
    assert_eq!(ids_of("commit"), all.committed.keys().copied().collect());
    assert!(of_type(&entries, "expire").is_empty());
    for entry in of_type(&entries, "commit") {
        let rid = int(&entry["reservation_id"]);
        assert_eq!(entry["order_id"], all.committed[&rid].as_str(), "{entry}");
        assert_eq!(int(&entry["quantity_change"]), -all.created[&rid]);
    }
    let adjusts: BTreeSet<i64> = of_type(&entries, "adjust")
        .iter()
        .map(|e| int(&e["id"]))
        .collect();
    assert_eq!(adjusts, all.adjust_entries, "one entry per 200 adjustment");
    assert!(of_type(&entries, "upsert").len() <= all.upserts);

    let active: BTreeSet<i64> = active_reservations(&app)
        .await
        .iter()
        .map(|r| int(&r["id"]))
        .collect();
    let ended: BTreeSet<i64> = all
        .released
        .iter()
        .chain(all.committed.keys())
        .copied()
        .collect();
    let expected: BTreeSet<i64> = all
        .created
        .keys()
        .filter(|rid| !ended.contains(rid))
        .copied()
        .collect();
    assert_eq!(active, expected, "exactly the reservations never ended");
    assert_ledger_explains_row(&app, other_id).await;
    app.assert_books_balance().await;
}

// ---- 4. no lost update ------------------------------------------------------------------

async fn simultaneous_increases_lose_no_update(app: TestApp) {
    const START: i64 = 100;
    let id = stock_row(&app, &sku(1), START).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    &format!("/api/v1/inventory/{id}/adjust"),
                    &adjustment("increase", 1),
                )
                .await
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut afters = BTreeSet::new();
    for task in tasks {
        let response = task.await.expect("the task runs");
        if response.status == StatusCode::OK {
            let entry = &response.json["data"]["transaction"];
            assert_eq!(
                int(&entry["inventory_after"]),
                int(&entry["inventory_before"]) + 1
            );
            afters.insert(int(&entry["inventory_after"]));
        } else {
            failures.push(unexpected("increase 1", &response));
        }
    }
    assert_all_expected(&app, &failures);
    let row = row_of(&app, id).await;
    assert_eq!(int(&row["inventory"]), START + 200, "{row}");
    // Each increase saw the one before it: their results are every number once.
    assert_eq!(afters, (START + 1..=START + 200).collect());
    let entries = assert_ledger_explains_row(&app, id).await;
    assert_eq!(of_type(&entries, "adjust").len(), 200);
    app.assert_books_balance().await;
}

async fn simultaneous_releases_of_distinct_reservations_lose_no_update(app: TestApp) {
    const START: i64 = 400;
    let sku = sku(1);
    let id = stock_row(&app, &sku, START).await;
    let app = Arc::new(app);
    let reserve: Vec<_> = (0..150i64)
        .map(|i| {
            let (app, sku) = (app.clone(), sku.clone());
            tokio::spawn(async move {
                let body = reservation(&format!("cart:rel-{i}"), &[(&sku, 1 + i % 2)]);
                app.post(RESERVATIONS, &body).await
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut reservations = Vec::new();
    for task in reserve {
        let response = task.await.expect("the task runs");
        if response.status == StatusCode::CREATED {
            reservations.push(int(&response.json["data"]["id"]));
        } else {
            failures.push(unexpected("reserve", &response));
        }
    }
    assert_all_expected(&app, &failures);
    assert_eq!(int(&row_of(&app, id).await["reserved"]), 75 * 3);

    let release: Vec<_> = reservations
        .iter()
        .map(|rid| {
            let (app, rid) = (app.clone(), *rid);
            tokio::spawn(async move {
                let uri = format!("{RESERVATIONS}/{rid}");
                (rid, app.request(Method::DELETE, &uri, None).await)
            })
        })
        .collect();
    for task in release {
        let (rid, response) = task.await.expect("the task runs");
        if response.status != StatusCode::OK || response.json["data"]["status"] != "released" {
            failures.push(unexpected(&format!("release {rid}"), &response));
        }
    }
    assert_all_expected(&app, &failures);
    let row = row_of(&app, id).await;
    assert_eq!(
        (int(&row["reserved"]), int(&row["available"])),
        (0, START),
        "{row}"
    );
    let entries = assert_ledger_explains_row(&app, id).await;
    assert_eq!(of_type(&entries, "release").len(), 150);
    app.assert_books_balance().await;
}

// ---- 5. commits and releases of one reservation -----------------------------------------

/// One racer to end a reservation: a commit for its own order, a release, or a release of
/// the whole cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Racer {
    Commit(usize),
    Release,
    ReleaseCart,
}

async fn racing_commits_and_releases_of_one_reservation_end_it_once(app: TestApp) {
    const START: i64 = 300;
    const CARTS: i64 = 12;
    let sku = sku(1);
    let id = stock_row(&app, &sku, START).await;
    // Two reservations per cart.
    let mut reservations: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for i in 0..CARTS * 2 {
        let cart = format!("cart:race-{}", i / 2);
        let quantity = 1 + i % 4;
        let response = app
            .post(RESERVATIONS, &reservation(&cart, &[(&sku, quantity)]))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        reservations.insert(int(&response.json["data"]["id"]), (quantity, cart));
    }
    let app = Arc::new(app);

    // Every racer at once, interleaved: per reservation three commits (each for an order of
    // its own) and three releases, per cart two releases of the whole cart.
    let mut racers: Vec<(i64, Racer)> = Vec::new();
    for rid in reservations.keys() {
        for n in 0..3 {
            racers.push((*rid, Racer::Commit(n)));
            racers.push((*rid, Racer::Release));
        }
        // Once per reservation: twice per cart.
        racers.push((*rid, Racer::ReleaseCart));
    }
    let tasks: Vec<_> = racers
        .iter()
        .map(|(rid, racer)| {
            let (app, rid, racer) = (app.clone(), *rid, *racer);
            let cart = reservations[&rid].1.clone();
            tokio::spawn(async move {
                let response = match racer {
                    Racer::Commit(n) => {
                        let order = json!({"order_id": format!("order:race-{rid}-{n}")});
                        app.post(&format!("{RESERVATIONS}/{rid}/commit"), &order)
                            .await
                    }
                    Racer::Release => {
                        let uri = format!("{RESERVATIONS}/{rid}");
                        app.request(Method::DELETE, &uri, None).await
                    }
                    Racer::ReleaseCart => {
                        let body = json!({"seller_id": SELLER, "reference_id": cart});
                        app.post(&format!("{RESERVATIONS}/release"), &body).await
                    }
                };
                (rid, racer, cart, response)
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut winners: BTreeMap<i64, Vec<Racer>> = BTreeMap::new();
    // Per cart: reservations and units its cart releases ended.
    let mut by_cart: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for task in tasks {
        let (rid, racer, cart, response) = task.await.expect("the task runs");
        match racer {
            Racer::ReleaseCart if response.status == StatusCode::OK => {
                let data = &response.json["data"];
                let counts = by_cart.entry(cart).or_default();
                counts.0 += data["released_reservations"].as_u64().unwrap();
                counts.1 += int(&data["released_quantity"]);
            }
            _ if racer != Racer::ReleaseCart && response.status == StatusCode::OK => {
                winners.entry(rid).or_default().push(racer);
            }
            _ if racer != Racer::ReleaseCart
                && is(
                    &response,
                    StatusCode::CONFLICT,
                    Some("RESERVATION_NOT_ACTIVE"),
                ) => {}
            _ => failures.push(unexpected(&format!("{racer:?} of {rid}"), &response)),
        }
    }
    assert_all_expected(&app, &failures);

    let entries = assert_ledger_explains_row(&app, id).await;
    let mut committed_units = 0;
    let mut left_to_carts: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for (rid, (quantity, cart)) in &reservations {
        let won = winners.get(rid).cloned().unwrap_or_default();
        assert!(
            won.len() <= 1,
            "reservation {rid}: one winner at most, got {won:?}"
        );
        let stored = app.get(&format!("{RESERVATIONS}/{rid}")).await.json["data"].clone();
        let endings: Vec<&Value> = entries
            .iter()
            .filter(|e| e["reservation_id"] == *rid && e["type"] != "reserve")
            .collect();
        assert_eq!(endings.len(), 1, "reservation {rid}: its units moved once");
        assert_eq!(int(&endings[0]["reserved_change"]), -quantity);
        match won.first() {
            Some(Racer::Commit(n)) => {
                let order = format!("order:race-{rid}-{n}");
                assert_eq!(stored["status"], "committed", "{stored}");
                assert_eq!(stored["order_id"], order.as_str(), "{stored}");
                assert_eq!(endings[0]["type"], "commit");
                assert_eq!(endings[0]["order_id"], order.as_str());
                committed_units += quantity;
            }
            Some(_) => {
                assert_eq!(stored["status"], "released", "{stored}");
                assert_eq!(endings[0]["type"], "release");
            }
            None => {
                // Neither a commit nor a release won: a release of its cart did.
                assert_eq!(stored["status"], "released", "{stored}");
                assert_eq!(endings[0]["type"], "release");
                let counts = left_to_carts.entry(cart.clone()).or_default();
                counts.0 += 1;
                counts.1 += quantity;
            }
        }
    }
    by_cart.retain(|_, counts| counts.0 > 0);
    assert_eq!(
        by_cart, left_to_carts,
        "cart releases ended exactly what nobody else did"
    );
    let row = row_of(&app, id).await;
    assert_eq!(
        (int(&row["inventory"]), int(&row["reserved"])),
        (START - committed_units, 0),
        "{row}"
    );
    app.assert_books_balance().await;
}

// ---- 6. upserts racing reservations -----------------------------------------------------

async fn upserts_racing_reservations_of_the_same_keys_keep_the_books(app: TestApp) {
    // Upserts report at least FLOOR units, more than the reservations of a row can ever hold
    // (40 carried over, 40 new of at most 2), so a reservation of A or B never lacks stock. C
    // is created by the racing batches themselves: reservations of it find no row until one
    // has. A and B are created in reverse, so that upserts (which lock rows by key) and
    // releases and commits (which lock them by id) meet them in opposite orders.
    const FLOOR: i64 = 400;
    const RACERS: i64 = 240;
    let (a, b, c) = (sku(1), sku(2), sku(3));
    let id_b = stock_row(&app, &b, FLOOR).await;
    let id_a = stock_row(&app, &a, FLOOR).await;
    let app = Arc::new(app);

    // Reservations of both rows, to be released and committed while upserts run.
    let carried: Vec<_> = (0..RACERS / 6)
        .map(|i| {
            let (app, a, b) = (app.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                let body = reservation(&format!("cart:carried-{i}"), &[(&a, 1), (&b, 1)]);
                app.post(RESERVATIONS, &body).await
            })
        })
        .collect();
    let mut carried_ids = Vec::new();
    for task in carried {
        let response = task.await.expect("the task runs");
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        carried_ids.push(int(&response.json["data"]["id"]));
    }

    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let app = app.clone();
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        let carried = carried_ids[(i / 6) as usize];
        tasks.push(tokio::spawn(async move {
            let units = FLOOR + (i * 37) % 100;
            let target = if i % 12 < 6 { &a } else { &b };
            match i % 6 {
                0 => {
                    let (what, response) = end_reservation(&app, carried, i % 12 == 0).await;
                    (what, i, response)
                }
                // New reservations of A or B, and of C (which may not exist yet).
                1 | 2 => {
                    let items = [(target.as_str(), 1 + (i / 6) % 2)];
                    let body = reservation(&format!("cart:race-{i}"), &items);
                    ("reserve", i, app.post(RESERVATIONS, &body).await)
                }
                3 => {
                    let body = reservation(&format!("cart:race-{i}"), &[(c.as_str(), 1)]);
                    ("reserve new", i, app.post(RESERVATIONS, &body).await)
                }
                // A single upsert of A or B, and batches of all three, in changing orders.
                4 => {
                    let body = inventory_body(json!({"seller_sku": target, "inventory": units}));
                    ("upsert", i, app.post("/api/v1/inventory", &body).await)
                }
                _ => {
                    let mut items = vec![
                        inventory_body(json!({"seller_sku": a, "inventory": units})),
                        inventory_body(json!({"seller_sku": b, "inventory": units + 1})),
                        inventory_body(json!({"seller_sku": c, "inventory": units + 2})),
                    ];
                    items.rotate_left((i as usize / 6) % 3);
                    let body = json!({"items": items});
                    ("batch", i, app.post("/api/v1/inventory/batch", &body).await)
                }
            }
        }));
    }
    let mut failures = Vec::new();
    let mut reserved: HashMap<i64, i64> = HashMap::new();
    let mut commits = 0;
    for task in tasks {
        let (what, i, response) = task.await.expect("the task runs");
        let fine = match what {
            "release" => response.status == StatusCode::OK,
            "commit" => {
                commits += 1;
                response.status == StatusCode::OK
            }
            "reserve" | "reserve new" if response.status == StatusCode::CREATED => {
                for item in response.json["data"]["items"].as_array().unwrap() {
                    *reserved.entry(int(&item["inventory_id"])).or_insert(0) +=
                        int(&item["quantity"]);
                }
                true
            }
            "reserve new" => is(&response, StatusCode::NOT_FOUND, Some("SKU_NOT_FOUND")),
            "upsert" => {
                response.status == StatusCode::OK
                    && response.json["data"]["available"]
                        .as_i64()
                        .is_some_and(|n| n >= 0)
            }
            "batch" => {
                response.status == StatusCode::OK
                    && response.json["data"]["items"]
                        .as_array()
                        .is_some_and(|rows| {
                            rows.len() == 3
                                && rows.iter().all(|row| row["available"].as_i64() >= Some(0))
                        })
            }
            _ => false,
        };
        if !fine {
            failures.push(unexpected(&format!("{what} #{i}"), &response));
        }
    }
    assert_all_expected(&app, &failures);

    let id_c = id_of(&app, &c).await.expect("the batches created C");
    for id in [id_a, id_b, id_c] {
        let entries = assert_ledger_explains_row(&app, id).await;
        let row = row_of(&app, id).await;
        let held = reserved.get(&id).copied().unwrap_or(0);
        assert_eq!(int(&row["reserved"]), held, "row {id}: {row}");
        assert_eq!(
            !of_type(&entries, "reserve").is_empty(),
            held > 0 || id != id_c
        );
        // Whoever upserted last, the row holds a number some upsert reported, less what
        // commits took after it.
        let units = int(&row["inventory"]);
        assert!(
            (FLOOR - commits..FLOOR + 102).contains(&units),
            "row {id}: {row}"
        );
    }
    app.assert_books_balance().await;
}

// ---- upserts against deletes of their row -----------------------------------------------

async fn upserts_racing_deletes_of_their_row_keep_the_books(app: TestApp) {
    // An upsert finds its row, then locks it: a delete can take the row between the two, and
    // the upsert must then create it anew rather than write to a row that is gone. Every
    // upsert answers 200 with its units; every delete the row it deleted, or 404 when another
    // delete got there first.
    const RACERS: i64 = 300;
    let key = sku(7);
    stock_row(&app, &key, 10).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (app, key) = (app.clone(), key.clone());
            tokio::spawn(async move {
                if i % 3 == 0 {
                    let response = match id_of(&app, &key).await {
                        Some(id) => {
                            let uri = format!("/api/v1/inventory/{id}");
                            Some(app.request(Method::DELETE, &uri, None).await)
                        }
                        None => None,
                    };
                    ("delete", i, response)
                } else {
                    let body = inventory_body(json!({"seller_sku": key, "inventory": 100 + i}));
                    (
                        "upsert",
                        i,
                        Some(app.post("/api/v1/inventory", &body).await),
                    )
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut ids = BTreeSet::new();
    let mut deleted = 0;
    for task in tasks {
        let (what, i, response) = task.await.expect("the task runs");
        let Some(response) = response else { continue };
        let fine = match what {
            "upsert" if response.status == StatusCode::OK => {
                ids.insert(int(&response.json["data"]["id"]));
                int(&response.json["data"]["inventory"]) == 100 + i
            }
            "delete" if response.status == StatusCode::OK => {
                deleted += 1;
                true
            }
            "delete" => is(&response, StatusCode::NOT_FOUND, None),
            _ => false,
        };
        if !fine {
            failures.push(unexpected(&format!("{what} #{i}"), &response));
        }
    }
    assert_all_expected(&app, &failures);
    assert!(!ids.is_empty(), "upserts answered with their rows");
    // The first delete to look finds the row: only a delete removes it.
    assert!(deleted >= 1, "a delete took the row");
    // An upsert may come last and leave a row; its ledger starts from nothing at its creation.
    if let Some(id) = id_of(&app, &key).await {
        let entries = assert_ledger_explains_row(&app, id).await;
        assert_eq!(
            entries.first().map(|e| e["type"].clone()),
            Some(json!("create"))
        );
    }
    app.assert_books_balance().await;
}
