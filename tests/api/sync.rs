//! Incremental sync (docs/sync.md): with `updated_since` or `cursor`, the inventory and
//! sales-target lists page by (`update_time`, `id`) and hand out `meta.next_cursor`; a client
//! that pages to the end and then polls with the last cursor sees every row's final state,
//! none skipped, even while rows change under it. On MySQL a page holds only rows older than
//! the sync horizon (a few seconds), so these tests poll until what they expect has come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{id_of, invalid_fields, inventory_body, sales_body, urlencode, TestApp};

backend_tests!(
    paging_to_the_end_then_polling_sees_every_row_and_every_later_change,
    a_client_paging_while_rows_change_misses_no_final_state,
    a_row_changed_behind_the_cursor_comes_again_later,
    sales_targets_sync_the_same_way,
    sync_pages_keep_the_filters_and_the_callers_sellers,
    bad_sync_parameters_are_422,
);

const INVENTORY: &str = "/api/v1/inventory";
const SALES: &str = "/api/v1/sales/target";
const EPOCH: &str = "updated_since=1970-01-01T00:00:00Z";
/// How long a test waits for changes to come through (MySQL reads 5 s behind).
const PATIENCE: Duration = Duration::from_secs(30);

/// One sync page of `base` (a list's path, perhaps with filters) from `query`
/// (`updated_since=…` or `cursor=…`).
async fn sync_page(app: &TestApp, base: &str, query: &str, size: u32) -> Value {
    let joint = if base.contains('?') { '&' } else { '?' };
    let data = app
        .ok(
            Method::GET,
            &format!("{base}{joint}{query}&size={size}"),
            None,
        )
        .await;
    let items = data["items"].as_array().expect("items");
    assert!(items.len() <= size as usize);
    let positions: Vec<(String, i64)> = items
        .iter()
        .map(|row| (row["update_time"].as_str().unwrap().to_owned(), id_of(row)))
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(
        positions, sorted,
        "a page is in (update_time, id) order: {data}"
    );
    assert!(
        data["meta"]["next_cursor"].is_string(),
        "a sync page has a next_cursor: {data}"
    );
    let mut fields: Vec<&str> = data["meta"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["has_next", "next_cursor", "size"],
        "a sync page is not counted: {data}"
    );
    if data["meta"]["has_next"] == true {
        assert_eq!(
            items.len(),
            size as usize,
            "only a full page has a next: {data}"
        );
    }
    data
}

/// The `cursor=…` query of a page's `next_cursor`.
fn next_query(page: &Value) -> String {
    format!(
        "cursor={}",
        urlencode(page["meta"]["next_cursor"].as_str().unwrap())
    )
}

/// Pages from `query` to the end, keeping the newest state of each row in `seen` (a row's
/// version never goes back); returns how many rows came and the query of the last cursor.
async fn page_through(
    app: &TestApp,
    base: &str,
    query: &str,
    size: u32,
    seen: &mut HashMap<i64, Value>,
) -> (usize, String) {
    let mut query = query.to_owned();
    let mut came = 0;
    loop {
        let page = sync_page(app, base, &query, size).await;
        for row in page["items"].as_array().unwrap() {
            came += 1;
            let version = row["version"].as_i64().unwrap();
            if let Some(known) = seen.get(&id_of(row)) {
                assert!(
                    known["version"].as_i64().unwrap() <= version,
                    "a row never comes back older: {known} then {row}"
                );
            }
            seen.insert(id_of(row), row.clone());
        }
        query = next_query(&page);
        if page["meta"]["has_next"] == false {
            return (came, query);
        }
    }
}

/// Polls from `query` until `seen` equals `expected` (id → row), or fails after `PATIENCE`;
/// returns the query of the last cursor.
async fn poll_until_equal(
    app: &TestApp,
    base: &str,
    mut query: String,
    seen: &mut HashMap<i64, Value>,
    expected: &HashMap<i64, Value>,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        query = page_through(app, base, &query, 25, seen).await.1;
        if seen == expected {
            return query;
        }
        assert!(
            Instant::now() < deadline,
            "sync never caught up: {} rows differ",
            expected
                .iter()
                .filter(|(id, row)| seen.get(id) != Some(row))
                .count()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every row of `base` as an ordinary list reads it, by id.
async fn everything(app: &TestApp, base: &str) -> HashMap<i64, Value> {
    let mut all = HashMap::new();
    for page in 1.. {
        let data = app
            .ok(Method::GET, &format!("{base}?size=100&page={page}"), None)
            .await;
        for row in data["items"].as_array().unwrap() {
            all.insert(id_of(row), row.clone());
        }
        if data["meta"]["has_next"] == false {
            return all;
        }
    }
    unreachable!()
}

fn inventory_item(n: usize, units: u64) -> Value {
    inventory_body(json!({"seller_sku": format!("SKU{n:010}"), "inventory": units}))
}

async fn create_rows(app: &TestApp, count: usize) {
    let items: Vec<Value> = (0..count).map(|n| inventory_item(n, 10)).collect();
    app.post_ok(&format!("{INVENTORY}/batch"), &json!({"items": items}))
        .await;
}

async fn paging_to_the_end_then_polling_sees_every_row_and_every_later_change(app: TestApp) {
    create_rows(&app, 40).await;
    let all = everything(&app, INVENTORY).await;
    let mut seen = HashMap::new();
    let cursor = poll_until_equal(&app, INVENTORY, EPOCH.to_owned(), &mut seen, &all).await;

    // Nothing changed: a poll is empty and keeps its cursor.
    let quiet = sync_page(&app, INVENTORY, &cursor, 10).await;
    assert_eq!(quiet["items"], json!([]));
    assert_eq!(quiet["meta"]["has_next"], false);
    assert_eq!(
        next_query(&quiet),
        cursor,
        "an empty page stays where it was"
    );

    // Three rows change; polling brings exactly those, in their final state.
    let ids: Vec<i64> = {
        let mut ids: Vec<i64> = all.keys().copied().collect();
        ids.sort_unstable();
        vec![ids[3], ids[17], ids[39]]
    };
    for id in &ids {
        let body = json!({"adjustment_type": "increase", "quantity": 1, "reason": "sync test"});
        app.ok(
            Method::POST,
            &format!("{INVENTORY}/{id}/adjust"),
            Some(&body),
        )
        .await;
    }
    app.ok(
        Method::POST,
        &format!("{INVENTORY}/{}/adjust", ids[0]),
        Some(&json!({"adjustment_type": "set", "quantity": 3, "reason": "recount"})),
    )
    .await;
    let after = everything(&app, INVENTORY).await;
    let mut changes = HashMap::new();
    let expected: HashMap<i64, Value> = ids.iter().map(|id| (*id, after[id].clone())).collect();
    let cursor = poll_until_equal(&app, INVENTORY, cursor, &mut changes, &expected).await;
    assert_eq!(changes[&ids[0]]["inventory"], 3);
    assert_eq!(changes[&ids[0]]["version"], 3);

    // updated_since starts at that time, inclusive: from the first change's time on.
    let since = after[&ids[0]]["update_time"].as_str().unwrap().to_owned();
    let mut from_since = HashMap::new();
    page_through(
        &app,
        INVENTORY,
        &format!("updated_since={}", urlencode(&since)),
        2,
        &mut from_since,
    )
    .await;
    assert!(from_since.contains_key(&ids[0]), "{since}: {from_since:?}");
    assert!(from_since.keys().all(|id| ids.contains(id)));
    let _ = cursor;
}

async fn a_client_paging_while_rows_change_misses_no_final_state(app: TestApp) {
    let app = Arc::new(app);
    create_rows(&app, 120).await;
    let ids: Vec<i64> = {
        let mut ids: Vec<i64> = everything(&app, INVENTORY).await.keys().copied().collect();
        ids.sort_unstable();
        ids
    };

    // Another client changes rows the whole time: adjustments and upserts, spread over every
    // row, several times each.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (app, ids, stop) = (app.clone(), ids.clone(), stop.clone());
        tokio::spawn(async move {
            let mut step = 0usize;
            while !stop.load(Ordering::Relaxed) || step < 240 {
                let n = (step * 37) % ids.len();
                if step.is_multiple_of(2) {
                    let body =
                        json!({"adjustment_type": "increase", "quantity": 1, "reason": "churn"});
                    app.ok(
                        Method::POST,
                        &format!("{INVENTORY}/{}/adjust", ids[n]),
                        Some(&body),
                    )
                    .await;
                } else {
                    app.post_ok(INVENTORY, &inventory_item(n, 100 + step as u64))
                        .await;
                }
                step += 1;
                if step >= 600 {
                    break;
                }
            }
            step
        })
    };

    // The reader pages through with small pages while the writer runs, then polls.
    let mut seen = HashMap::new();
    let (_, mut cursor) = page_through(&app, INVENTORY, EPOCH, 7, &mut seen).await;
    for _ in 0..20 {
        cursor = page_through(&app, INVENTORY, &cursor, 7, &mut seen).await.1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes >= 240, "the writer ran: {writes}");

    let last = everything(&app, INVENTORY).await;
    assert_eq!(last.len(), 120);
    poll_until_equal(&app, INVENTORY, cursor, &mut seen, &last).await;
    assert!(
        last.values()
            .all(|row| row["version"].as_i64().unwrap() > 1),
        "every row changed while the reader paged"
    );
}

async fn a_row_changed_behind_the_cursor_comes_again_later(app: TestApp) {
    create_rows(&app, 6).await;
    let all = everything(&app, INVENTORY).await;
    // Wait until the first page holds two rows (on MySQL, once they are old enough).
    let deadline = Instant::now() + PATIENCE;
    let first = loop {
        let page = sync_page(&app, INVENTORY, EPOCH, 2).await;
        if page["items"].as_array().unwrap().len() == 2 {
            break page;
        }
        assert!(Instant::now() < deadline, "the rows never came");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let passed = id_of(&first["items"][0]);
    let body = json!({"adjustment_type": "set", "quantity": 77, "reason": "behind the cursor"});
    app.ok(
        Method::POST,
        &format!("{INVENTORY}/{passed}/adjust"),
        Some(&body),
    )
    .await;

    let mut seen: HashMap<i64, Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (id_of(row), row.clone()))
        .collect();
    let mut expected = all.clone();
    expected.insert(passed, app.row(passed).await);
    poll_until_equal(&app, INVENTORY, next_query(&first), &mut seen, &expected).await;
    assert_eq!(seen[&passed]["inventory"], 77);
    assert_eq!(seen[&passed]["version"], 2);
}

async fn sales_targets_sync_the_same_way(app: TestApp) {
    let periods: Vec<String> = (1..=12).map(|m| format!("2026-{m:02}")).collect();
    for period in &periods {
        app.post_ok(SALES, &sales_body(json!({"period": period})))
            .await;
    }
    let all = everything(&app, SALES).await;
    let mut seen = HashMap::new();
    let cursor = poll_until_equal(&app, SALES, EPOCH.to_owned(), &mut seen, &all).await;

    let changed = app
        .post_ok(
            SALES,
            &sales_body(json!({"period": "2026-01", "sales_target": 1})),
        )
        .await;
    assert_eq!(changed["version"], 2);
    let mut changes = HashMap::new();
    let expected = HashMap::from([(id_of(&changed), changed.clone())]);
    poll_until_equal(&app, SALES, cursor, &mut changes, &expected).await;
}

async fn sync_pages_keep_the_filters_and_the_callers_sellers(app: TestApp) {
    create_rows(&app, 5).await;
    for n in 0..3 {
        app.post_ok(
            INVENTORY,
            &inventory_body(
                json!({"seller_id": "B2SELLER0002", "seller_sku": format!("SKU{n:010}")}),
            ),
        )
        .await;
    }
    let all = everything(&app, INVENTORY).await;
    let theirs: HashMap<i64, Value> = all
        .iter()
        .filter(|(_, row)| row["seller_id"] == "B2SELLER0002")
        .map(|(id, row)| (*id, row.clone()))
        .collect();
    assert_eq!(theirs.len(), 3);

    let mut filtered = HashMap::new();
    let filtered_list = format!("{INVENTORY}?seller_id=B2SELLER0002");
    poll_until_equal(
        &app,
        &filtered_list,
        EPOCH.to_owned(),
        &mut filtered,
        &theirs,
    )
    .await;

    let (_, token) = app.seller("second", &["B2SELLER0002"]).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = app
            .request_as(
                Method::GET,
                &format!("{INVENTORY}?{EPOCH}&size=100"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        let items = response.json["data"]["items"].as_array().unwrap().clone();
        assert!(
            items.iter().all(|row| row["seller_id"] == "B2SELLER0002"),
            "{items:?}"
        );
        if items.len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the seller's rows never came");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn bad_sync_parameters_are_422(app: TestApp) {
    let valid = {
        let page = sync_page(&app, INVENTORY, EPOCH, 5).await;
        page["meta"]["next_cursor"].as_str().unwrap().to_owned()
    };
    for (label, query, field) in [
        ("not a cursor", "cursor=abc".to_owned(), "cursor"),
        ("empty cursor", "cursor=".to_owned(), "cursor"),
        (
            "tampered",
            format!("cursor={}x", urlencode(&valid)),
            "cursor",
        ),
        (
            "no zone",
            "updated_since=2026-11-21T10:30:00".to_owned(),
            "updated_since",
        ),
        (
            "not a time",
            "updated_since=yesterday".to_owned(),
            "updated_since",
        ),
        (
            "both",
            format!("{EPOCH}&cursor={}", urlencode(&valid)),
            "cursor",
        ),
        ("with a page", format!("{EPOCH}&page=2"), "page"),
    ] {
        for base in [INVENTORY, SALES] {
            let response = app.get(&format!("{base}?{query}")).await;
            let fields = invalid_fields(&response);
            assert_eq!(fields, [field], "{label}: {base}?{query}");
        }
    }
    // Without sync parameters, lists are as they were: no cursor.
    let plain = app.ok(Method::GET, INVENTORY, None).await;
    assert!(plain["meta"].get("next_cursor").is_none(), "{plain}");
}
