//! The audit log over HTTP, on every backend: each sensitive action leaves one entry naming
//! who, from where and in which request; an action that fails or changes nothing leaves none;
//! an entry commits with its action or not at all; no password or token is ever in one; only
//! admins read the log, newest first, with filters. `docs/security.md` is the contract.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    assert_error, field_errors, id_of, inventory_body, request_id_of, reservation_body, sales_body,
    TestApp, ADMIN_PASSWORD,
};

const AUDIT: &str = "/api/v1/audit-log";
const INVENTORY: &str = "/api/v1/inventory";

backend_tests!(
    logins_are_audited_with_username_and_client_ip,
    a_reused_refresh_token_is_audited,
    user_changes_are_audited_without_the_password,
    deletes_adjustments_and_threshold_changes_are_audited,
    refused_and_unchanged_actions_leave_no_entry,
    an_entry_commits_with_its_action_or_not_at_all,
    a_consistency_check_is_audited_with_what_it_found,
    the_audit_log_is_for_admins_only_and_read_only,
    the_audit_log_filters_and_pages_newest_first,
);

// ---- Helpers --------------------------------------------------------------------------------

/// Every entry of the log (as the admin), newest first.
async fn entries(app: &TestApp) -> Vec<Value> {
    entries_of(app, "").await
}

/// The entries a query (`action=...&...`) selects, newest first (one page of 100).
async fn entries_of(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .ok(Method::GET, &format!("{AUDIT}?size=100&{query}"), None)
        .await;
    page["items"].as_array().expect("a page of entries").clone()
}

/// The newest entries with this action.
async fn with_action(app: &TestApp, action: &str) -> Vec<Value> {
    entries_of(app, &format!("action={action}")).await
}

async fn admin_id(app: &TestApp) -> i64 {
    id_of(&app.ok(Method::GET, "/api/v1/auth/me", None).await)
}

/// Insists that `entry` was made by the admin in the request of `response`.
fn assert_by_admin(entry: &Value, admin: i64, request_id: &str) {
    assert_eq!(entry["user_id"], admin, "{entry}");
    assert_eq!(entry["username"], "admin", "{entry}");
    assert_eq!(entry["client_ip"], "127.0.0.1", "{entry}");
    assert_eq!(entry["request_id"], request_id, "{entry}");
}

/// Creates an inventory row of `units` units and returns its id.
async fn row_of(app: &TestApp, units: i64) -> i64 {
    id_of(
        &app.post_ok(INVENTORY, &inventory_body(json!({"inventory": units})))
            .await,
    )
}

// ---- Tests ----------------------------------------------------------------------------------

async fn logins_are_audited_with_username_and_client_ip(app: TestApp) {
    let admin = admin_id(&app).await;
    let wrong = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "not-the-password-at-all"),
        ])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    // Not a valid username: the attempt is recorded without it.
    let odd = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "not a username!"),
            ("password", "whatever-it-is"),
        ])
        .await;
    assert_eq!(odd.status, StatusCode::UNAUTHORIZED, "{}", odd.text);
    let good = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text);

    let failed = with_action(&app, "login_failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    let (odd_entry, wrong_entry) = (&failed[0], &failed[1]);
    assert_eq!(wrong_entry["username"], "admin", "{wrong_entry}");
    assert_eq!(wrong_entry["user_id"], Value::Null, "{wrong_entry}");
    assert_eq!(wrong_entry["client_ip"], "127.0.0.1", "{wrong_entry}");
    assert_eq!(wrong_entry["request_id"], request_id_of(&wrong));
    assert_eq!(
        wrong_entry["detail"],
        json!({"reason": "invalid_credentials"})
    );
    assert_eq!(odd_entry["username"], Value::Null, "{odd_entry}");
    assert_eq!(odd_entry["request_id"], request_id_of(&odd));

    let succeeded = with_action(&app, "login_succeeded").await;
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert_by_admin(&succeeded[0], admin, &request_id_of(&good));
    assert_eq!(succeeded[0]["target_type"], "user");
    assert_eq!(succeeded[0]["target_id"], admin.to_string());

    let log = serde_json::to_string(&entries(&app).await).unwrap();
    for secret in [
        "not-the-password-at-all",
        "whatever-it-is",
        ADMIN_PASSWORD,
        good.json["access_token"].as_str().unwrap(),
        good.json["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!log.contains(secret), "the audit log shows a secret: {log}");
    }
}

async fn a_reused_refresh_token_is_audited(app: TestApp) {
    let tokens = app.login("admin", ADMIN_PASSWORD).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &first)])
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert!(with_action(&app, "refresh_token_reused").await.is_empty());

    let reused = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &first)])
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.text);
    let entries = with_action(&app, "refresh_token_reused").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["client_ip"], "127.0.0.1");
    assert_eq!(entries[0]["request_id"], request_id_of(&reused));
    let log = serde_json::to_string(&entries).unwrap();
    assert!(!log.contains(&first), "the audit log shows a token: {log}");
    let next = rotated.json["refresh_token"].as_str().unwrap();
    assert!(!log.contains(next), "the audit log shows a token: {log}");
}

async fn user_changes_are_audited_without_the_password(app: TestApp) {
    let admin = admin_id(&app).await;
    let body = json!({"username": "alice", "password": "first-password-123",
        "role": "seller", "seller_ids": ["A1SELLER0001"]});
    let created = app.post("/api/v1/users", &body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let alice = id_of(&created.json["data"]);
    let patch =
        json!({"password": "second-password-456", "seller_ids": ["A1SELLER0001", "B1SELLER0001"]});
    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{alice}"),
            Some(&patch),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);

    let created_entries = with_action(&app, "user_created").await;
    // The first admin was created at start-up, by the service itself.
    assert_eq!(created_entries.len(), 2, "{created_entries:?}");
    let entry = &created_entries[0];
    assert_by_admin(entry, admin, &request_id_of(&created));
    assert_eq!(
        (&entry["target_type"], &entry["target_id"]),
        (&json!("user"), &json!(alice.to_string()))
    );
    assert_eq!(
        entry["detail"],
        json!({"username": "alice", "role": "seller", "seller_ids": ["A1SELLER0001"], "is_active": true})
    );
    let bootstrap = &created_entries[1];
    assert_eq!(bootstrap["user_id"], Value::Null, "{bootstrap}");
    assert_eq!(bootstrap["detail"]["username"], "admin", "{bootstrap}");

    let updated = with_action(&app, "user_updated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_by_admin(&updated[0], admin, &request_id_of(&patched));
    assert_eq!(
        updated[0]["detail"],
        json!({"changed": {"password": "changed", "seller_ids": ["A1SELLER0001", "B1SELLER0001"]}})
    );
    let log = serde_json::to_string(&entries(&app).await).unwrap();
    assert!(!log.contains("first-password-123"), "{log}");
    assert!(!log.contains("second-password-456"), "{log}");
    assert!(
        !log.contains("$argon2"),
        "a password hash in the audit log: {log}"
    );
}

async fn deletes_adjustments_and_threshold_changes_are_audited(app: TestApp) {
    let admin = admin_id(&app).await;
    let id = row_of(&app, 120).await;

    let body = json!({"adjustment_type": "decrease", "quantity": 5, "reason": "damaged in transit", "reference": "PO-7"});
    let adjusted = app.post(&format!("{INVENTORY}/{id}/adjust"), &body).await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    let ledger_entry = adjusted.json["data"]["transaction"]["id"].clone();
    let entries = with_action(&app, "inventory_adjusted").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_by_admin(&entries[0], admin, &request_id_of(&adjusted));
    assert_eq!(entries[0]["target_type"], "inventory");
    assert_eq!(entries[0]["target_id"], id.to_string());
    assert_eq!(
        entries[0]["detail"],
        json!({"adjustment_type": "decrease", "quantity": 5, "reason": "damaged in transit",
            "reference": "PO-7", "inventory_before": 120, "inventory_after": 115,
            "ledger_entry_id": ledger_entry})
    );

    let thresholds = json!({"warning_threshold": 20, "critical_threshold": 5});
    let set = app
        .request(
            Method::PUT,
            &format!("{INVENTORY}/{id}/thresholds"),
            Some(&thresholds),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let entries = with_action(&app, "thresholds_changed").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_by_admin(&entries[0], admin, &request_id_of(&set));
    assert_eq!(
        entries[0]["detail"],
        json!({"before": {"warning_threshold": null, "critical_threshold": null},
            "after": {"warning_threshold": 20, "critical_threshold": 5}})
    );

    let deleted = app.delete(&format!("{INVENTORY}/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let entries = with_action(&app, "inventory_deleted").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_by_admin(&entries[0], admin, &request_id_of(&deleted));
    assert_eq!(
        entries[0]["detail"],
        json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
            "seller_sku": "SKU0000000001", "inventory": 115})
    );

    let target = id_of(
        &app.post_ok("/api/v1/sales/target", &sales_body(json!({})))
            .await,
    );
    let deleted = app.delete(&format!("/api/v1/sales/target/{target}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let entries = with_action(&app, "sales_target_deleted").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_by_admin(&entries[0], admin, &request_id_of(&deleted));
    assert_eq!(entries[0]["target_type"], "sales_target");
    assert_eq!(entries[0]["target_id"], target.to_string());
    assert_eq!(entries[0]["detail"]["period"], "2026-11");
    assert_eq!(entries[0]["detail"]["sales_target"], 15000.5);
}

async fn refused_and_unchanged_actions_leave_no_entry(app: TestApp) {
    let id = row_of(&app, 10).await;
    let too_much = json!({"adjustment_type": "decrease", "quantity": 11, "reason": "count"});
    let refused = app
        .post(&format!("{INVENTORY}/{id}/adjust"), &too_much)
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "INSUFFICIENT_INVENTORY");

    let thresholds = json!({"warning_threshold": 3, "critical_threshold": 1});
    let uri = format!("{INVENTORY}/{id}/thresholds");
    for _ in 0..2 {
        let set = app.request(Method::PUT, &uri, Some(&thresholds)).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    }

    app.reserve_ok(&reservation_body(json!({}))).await;
    let held = app.delete(&format!("{INVENTORY}/{id}")).await;
    assert_error(&held, StatusCode::CONFLICT, "ACTIVE_RESERVATIONS");
    let missing = app.delete(&format!("{INVENTORY}/{}", id + 1000)).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (_, seller) = app.seller("bob", &["B1SELLER0001"]).await;
    let foreign = app
        .request_as(
            Method::DELETE,
            &format!("{INVENTORY}/{id}"),
            None,
            Some(&seller),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);

    assert!(with_action(&app, "inventory_adjusted").await.is_empty());
    assert!(with_action(&app, "inventory_deleted").await.is_empty());
    let changed = with_action(&app, "thresholds_changed").await;
    assert_eq!(
        changed.len(),
        1,
        "setting the same thresholds again is no change: {changed:?}"
    );
}

async fn an_entry_commits_with_its_action_or_not_at_all(app: TestApp) {
    let id = row_of(&app, 50).await;
    let history_before = app.history(id).await;
    // Take the audit log away behind the service's back: the adjustment cannot write its
    // entry, so it must not happen either.
    app.execute_sql("DROP TABLE audit_log").await;
    let body = json!({"adjustment_type": "increase", "quantity": 7, "reason": "found"});
    let failed = app.post(&format!("{INVENTORY}/{id}/adjust"), &body).await;
    assert_eq!(
        failed.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        failed.text
    );
    assert_eq!(
        app.row(id).await["inventory"],
        50,
        "the adjustment was rolled back"
    );
    assert_eq!(
        app.history(id).await,
        history_before,
        "no ledger entry without its audit entry"
    );
}

async fn a_consistency_check_is_audited_with_what_it_found(app: TestApp) {
    let admin = admin_id(&app).await;
    row_of(&app, 10).await;
    let checked = app
        .post(
            "/api/v1/inventory/consistency-check",
            &json!({"seller_id": "A1SELLER0001"}),
        )
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    let entries = with_action(&app, "consistency_checked").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_by_admin(&entries[0], admin, &request_id_of(&checked));
    assert_eq!(
        entries[0]["detail"],
        json!({"seller_id": "A1SELLER0001", "checked": 1, "inconsistent": 0})
    );
}

async fn the_audit_log_is_for_admins_only_and_read_only(app: TestApp) {
    let (_, seller) = app.seller("carol", &["A1SELLER0001"]).await;
    let refused = app
        .request_as(Method::GET, AUDIT, None, Some(&seller))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "FORBIDDEN");
    let anonymous = app.request_as(Method::GET, AUDIT, None, None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let response = app.request(method.clone(), AUDIT, Some(&json!({}))).await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}: {}",
            response.text
        );
        let one = app
            .request(method.clone(), &format!("{AUDIT}/1"), None)
            .await;
        assert_eq!(
            one.status,
            StatusCode::NOT_FOUND,
            "{method} one entry: {}",
            one.text
        );
    }
}

async fn the_audit_log_filters_and_pages_newest_first(app: TestApp) {
    let admin = admin_id(&app).await;
    let (bob, _) = app.seller("bob", &["A1SELLER0001"]).await;
    let start = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let id = row_of(&app, 100).await;
    for quantity in 1..=3 {
        let body = json!({"adjustment_type": "decrease", "quantity": quantity, "reason": "count"});
        app.post_ok(&format!("{INVENTORY}/{id}/adjust"), &body)
            .await;
    }
    app.token_request(&[
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "wrong-password-1"),
    ])
    .await;

    let all = entries(&app).await;
    let ids: Vec<i64> = all.iter().map(id_of).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first, "newest first");
    // admin bootstrap, bob created, three adjustments, one failed login
    assert_eq!(all.len(), 6, "{all:?}");

    let adjusted = entries_of(&app, "action=inventory_adjusted").await;
    let quantities: Vec<&Value> = adjusted.iter().map(|e| &e["detail"]["quantity"]).collect();
    assert_eq!(quantities, [&json!(3), &json!(2), &json!(1)]);
    let by_admin = entries_of(&app, &format!("user_id={admin}")).await;
    assert_eq!(
        by_admin.len(),
        4,
        "bob's creation and three adjustments: {by_admin:?}"
    );
    let about_users = entries_of(&app, "target_type=user").await;
    assert_eq!(about_users.len(), 2, "{about_users:?}");
    assert_eq!(about_users[0]["target_id"], bob.to_string());
    let since = urlencoded(start);
    let recent = entries_of(&app, &format!("since={since}")).await;
    assert_eq!(recent.len(), 4, "{recent:?}");
    let before = entries_of(&app, &format!("until={since}")).await;
    assert_eq!(before.len(), 2, "{before:?}");

    let page = app
        .ok(Method::GET, &format!("{AUDIT}?size=2&page=2"), None)
        .await;
    let page_ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(page_ids, ids[2..4]);
    assert_eq!(page["meta"]["total"], 6, "{page}");

    let bad = app
        .get(&format!(
            "{AUDIT}?action=drop_tables&target_type=planet&user_id=0&since=yesterday"
        ))
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let mut fields: Vec<String> = field_errors(&bad).into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(fields, ["action", "since", "target_type", "user_id"]);
}

fn urlencoded(at: chrono::DateTime<chrono::Utc>) -> String {
    crate::helpers::urlencode(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
