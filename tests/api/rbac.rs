//! Roles and seller scoping, and user management by admins, on every backend.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error_envelope, field_errors, inventory_body, sales_body, TestApp};

const SELLER_A: &str = "A1SELLER0001";
const SELLER_B: &str = "B1SELLER0001";

/// Polls `uri` as `token` until it answers `status`, for at most `limit`.
async fn eventually(
    app: &TestApp,
    uri: &str,
    token: &str,
    status: StatusCode,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let response = app.request_as(Method::GET, uri, None, Some(token)).await;
        if response.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{uri} still answers {} after {limit:?}",
            response.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_tests!(
    a_seller_works_on_their_own_sellers_rows_only,
    a_seller_may_not_manage_users,
    admins_create_list_get_and_change_users_without_ever_showing_a_hash,
    user_requests_are_validated_with_every_problem_listed,
    deactivation_stops_refresh_tokens_at_once_and_access_tokens_within_seconds,
    a_change_of_sellers_applies_to_tokens_already_issued,
    a_seller_id_listed_twice_is_422_on_create_and_on_patch,
    a_seller_cannot_be_left_without_sellers
);

async fn a_seller_works_on_their_own_sellers_rows_only(app: TestApp) {
    let (_, alice) = app.seller("alice", &[SELLER_A]).await;
    let b_target = app
        .post_ok(
            "/api/v1/sales/target",
            &sales_body(json!({"seller_id": SELLER_B})),
        )
        .await;
    let b_stock = app
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"seller_id": SELLER_B})),
        )
        .await;

    // Own rows: write, read, list, delete.
    let own = app
        .request_as(
            Method::POST,
            "/api/v1/sales/target",
            Some(&sales_body(json!({"seller_id": SELLER_A}))),
            Some(&alice),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let own_id = own.json["data"]["id"].as_i64().unwrap();
    let read = app
        .request_as(
            Method::GET,
            &format!("/api/v1/sales/target/{own_id}"),
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let own_stock = app
        .request_as(
            Method::POST,
            "/api/v1/inventory",
            Some(&inventory_body(json!({"seller_id": SELLER_A}))),
            Some(&alice),
        )
        .await;
    assert_eq!(own_stock.status, StatusCode::OK);

    // Another seller's rows: 403 to write, 404 to read or delete by id.
    let write_b = app
        .request_as(
            Method::POST,
            "/api/v1/sales/target",
            Some(&sales_body(json!({"seller_id": SELLER_B}))),
            Some(&alice),
        )
        .await;
    assert_error_envelope(&write_b, StatusCode::FORBIDDEN);
    let write_b_stock = app
        .request_as(
            Method::POST,
            "/api/v1/inventory",
            Some(&inventory_body(json!({"seller_id": SELLER_B}))),
            Some(&alice),
        )
        .await;
    assert_error_envelope(&write_b_stock, StatusCode::FORBIDDEN);
    for uri in [
        format!("/api/v1/sales/target/{}", b_target["id"]),
        format!("/api/v1/inventory/{}", b_stock["id"]),
    ] {
        let read_b = app.request_as(Method::GET, &uri, None, Some(&alice)).await;
        assert_error_envelope(&read_b, StatusCode::NOT_FOUND);
        let missing = app
            .request_as(Method::GET, &format!("{}0000", uri), None, Some(&alice))
            .await;
        assert_eq!(
            read_b.json["message"], missing.json["message"],
            "a foreign row looks like a missing one"
        );
        let delete_b = app
            .request_as(Method::DELETE, &uri, None, Some(&alice))
            .await;
        assert_error_envelope(&delete_b, StatusCode::NOT_FOUND);
        assert_eq!(
            app.get(&uri).await.status,
            StatusCode::OK,
            "the foreign row is still there"
        );
    }

    // Lists: only A's rows; filtering by B is forbidden.
    for base in ["/api/v1/sales/target", "/api/v1/inventory"] {
        let listed = app.request_as(Method::GET, base, None, Some(&alice)).await;
        assert_eq!(listed.status, StatusCode::OK);
        let sellers: Vec<&str> = listed.json["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seller_id"].as_str().unwrap())
            .collect();
        assert_eq!(sellers, [SELLER_A], "{base}");
        assert_eq!(listed.json["data"]["meta"]["total"], 1);
        let filtered = app
            .request_as(
                Method::GET,
                &format!("{base}?seller_id={SELLER_B}"),
                None,
                Some(&alice),
            )
            .await;
        assert_error_envelope(&filtered, StatusCode::FORBIDDEN);
        let own_filter = app
            .request_as(
                Method::GET,
                &format!("{base}?seller_id={SELLER_A}"),
                None,
                Some(&alice),
            )
            .await;
        assert_eq!(own_filter.status, StatusCode::OK);
    }

    // The admin sees everything.
    assert_eq!(
        app.get("/api/v1/sales/target").await.json["data"]["meta"]["total"],
        2
    );
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        2
    );

    let delete_own = app
        .request_as(
            Method::DELETE,
            &format!("/api/v1/sales/target/{own_id}"),
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(delete_own.status, StatusCode::OK);
}

async fn a_seller_may_not_manage_users(app: TestApp) {
    let (alice_id, alice) = app.seller("alice", &[SELLER_A]).await;
    for (method, uri) in [
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::GET, format!("/api/v1/users/{alice_id}")),
    ] {
        assert_error_envelope(
            &app.request_as(method, &uri, None, Some(&alice)).await,
            StatusCode::FORBIDDEN,
        );
    }
    let create = app
        .request_as(Method::POST, "/api/v1/users", Some(&json!({"username": "mallory", "password": "long-enough-password", "role": "admin"})), Some(&alice))
        .await;
    assert_error_envelope(&create, StatusCode::FORBIDDEN);
    let promote = app
        .request_as(
            Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&json!({"role": "admin"})),
            Some(&alice),
        )
        .await;
    assert_error_envelope(&promote, StatusCode::FORBIDDEN);
}

async fn admins_create_list_get_and_change_users_without_ever_showing_a_hash(app: TestApp) {
    let created = app
        .post_ok("/api/v1/users", &json!({"username": "bob.seller", "password": "correct horse battery", "role": "seller", "seller_ids": [SELLER_A, SELLER_B]}))
        .await;
    assert_eq!(created["username"], "bob.seller");
    assert_eq!(created["role"], "seller");
    assert_eq!(created["seller_ids"], json!([SELLER_A, SELLER_B]));
    assert_eq!(created["is_active"], true);
    let id = created["id"].as_i64().unwrap();

    let listed = app.get("/api/v1/users").await;
    assert_eq!(listed.json["data"]["meta"]["total"], 2);
    let got = app.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(got.json["data"], created);
    for text in [&listed.text, &got.text] {
        assert!(
            !text.contains("argon2") && !text.contains("password"),
            "{text}"
        );
    }

    let taken = app
        .post(
            "/api/v1/users",
            &json!({"username": "bob.seller", "password": "another long one", "role": "admin"}),
        )
        .await;
    assert_error_envelope(&taken, StatusCode::CONFLICT);

    let changed = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&json!({"seller_ids": [SELLER_B], "password": "a brand new password"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.json["data"]["seller_ids"], json!([SELLER_B]));
    app.login("bob.seller", "a brand new password").await;
    assert_error_envelope(
        &app.get("/api/v1/users/999999").await,
        StatusCode::NOT_FOUND,
    );
}

async fn user_requests_are_validated_with_every_problem_listed(app: TestApp) {
    let bad = app.post("/api/v1/users", &json!({"username": "x", "password": "short", "role": "owner", "seller_ids": ["ok", 5]})).await;
    assert_error_envelope(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = field_errors(&bad).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "username",
            "password",
            "role",
            "seller_ids[0]",
            "seller_ids[1]"
        ]
    );
    let sellerless = app
        .post(
            "/api/v1/users",
            &json!({"username": "carol", "password": "long-enough-password", "role": "seller"}),
        )
        .await;
    assert_eq!(field_errors(&sellerless)[0].0, "seller_ids");
    let empty_patch = app
        .request(Method::PATCH, "/api/v1/users/1", Some(&json!({})))
        .await;
    assert_error_envelope(&empty_patch, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong_type = app
        .request(
            Method::PATCH,
            "/api/v1/users/1",
            Some(&json!({"is_active": "no"})),
        )
        .await;
    assert_eq!(
        field_errors(&wrong_type),
        [("is_active".into(), "must be a boolean".into())]
    );
    let admin_id = app.login("admin", crate::helpers::ADMIN_PASSWORD).await;
    assert!(admin_id["access_token"].is_string());
    let demote_self = app
        .request(
            Method::PATCH,
            "/api/v1/users/1",
            Some(&json!({"is_active": false})),
        )
        .await;
    assert_error_envelope(&demote_self, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn deactivation_stops_refresh_tokens_at_once_and_access_tokens_within_seconds(app: TestApp) {
    let id = app
        .create_user("dave", "dave-password-123", "seller", &[SELLER_A])
        .await;
    let login = app.login("dave", "dave-password-123").await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.request_as(Method::GET, "/api/v1/auth/me", None, Some(&access))
            .await
            .status,
        StatusCode::OK
    );

    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&json!({"is_active": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.json["data"]["is_active"], false);

    let refreshed = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(
        refreshed.status,
        StatusCode::UNAUTHORIZED,
        "refresh tokens die at once"
    );
    let took = eventually(
        &app,
        "/api/v1/auth/me",
        &access,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(6),
    )
    .await;
    assert!(took < Duration::from_secs(6));
    let relogin = app
        .token_request(&[("username", "dave"), ("password", "dave-password-123")])
        .await;
    assert_eq!(relogin.status, StatusCode::UNAUTHORIZED);
}

async fn a_change_of_sellers_applies_to_tokens_already_issued(app: TestApp) {
    let (id, token) = app.seller("erin", &[SELLER_A]).await;
    app.post_ok(
        "/api/v1/inventory",
        &inventory_body(json!({"seller_id": SELLER_B})),
    )
    .await;
    let uri = format!("/api/v1/inventory?seller_id={SELLER_B}");
    assert_eq!(
        app.request_as(Method::GET, &uri, None, Some(&token))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&json!({"seller_ids": [SELLER_B]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);

    eventually(&app, &uri, &token, StatusCode::OK, Duration::from_secs(6)).await;
}

async fn a_seller_id_listed_twice_is_422_on_create_and_on_patch(app: TestApp) {
    let twice = json!([SELLER_A, SELLER_B, SELLER_A]);
    for role in ["seller", "admin"] {
        let created = app
            .post(
                "/api/v1/users",
                &json!({"username": format!("twice.{role}"), "password": "long-enough-password",
                    "role": role, "seller_ids": twice}),
            )
            .await;
        assert_error_envelope(&created, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            field_errors(&created),
            [(
                "seller_ids".into(),
                "must not list a seller_id twice".into()
            )],
            "{role}"
        );
    }
    let listed = app.get("/api/v1/users").await;
    assert_eq!(
        listed.json["data"]["meta"]["total"], 1,
        "nothing was created"
    );

    let (id, _) = app.seller("frank", &[SELLER_A]).await;
    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&json!({"seller_ids": twice})),
        )
        .await;
    assert_error_envelope(&patched, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_errors(&patched),
        [(
            "seller_ids".into(),
            "must not list a seller_id twice".into()
        )]
    );
    let stored = app
        .ok(Method::GET, &format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!(stored["seller_ids"], json!([SELLER_A]));
}

async fn a_seller_cannot_be_left_without_sellers(app: TestApp) {
    let (seller, _) = app.seller("grace", &[SELLER_A]).await;
    let admin = app
        .create_user("heidi", "heidi-password-123", "admin", &[])
        .await;
    for (label, id, patch) in [
        (
            "a seller's sellers emptied",
            seller,
            json!({"seller_ids": []}),
        ),
        (
            "a seller's sellers emptied, role restated",
            seller,
            json!({"role": "seller", "seller_ids": []}),
        ),
        (
            "an admin without sellers demoted",
            admin,
            json!({"role": "seller"}),
        ),
        (
            "an admin demoted with no sellers",
            admin,
            json!({"role": "seller", "seller_ids": []}),
        ),
    ] {
        let response = app
            .request(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&patch))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            response.text
        );
        assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            field_errors(&response),
            [(
                "seller_ids".into(),
                "a seller needs at least one seller_id".into()
            )],
            "{label}"
        );
    }
    let stored = app
        .ok(Method::GET, &format!("/api/v1/users/{seller}"), None)
        .await;
    assert_eq!(stored["seller_ids"], json!([SELLER_A]));
    let stored = app
        .ok(Method::GET, &format!("/api/v1/users/{admin}"), None)
        .await;
    assert_eq!(stored["role"], "admin");
    // What stays allowed: an admin without sellers, and a demotion that brings sellers.
    let emptied_admin = app
        .ok(
            Method::PATCH,
            &format!("/api/v1/users/{admin}"),
            Some(&json!({"seller_ids": []})),
        )
        .await;
    assert_eq!(emptied_admin["seller_ids"], json!([]));
    let demoted = app
        .ok(
            Method::PATCH,
            &format!("/api/v1/users/{admin}"),
            Some(&json!({"role": "seller", "seller_ids": [SELLER_B]})),
        )
        .await;
    assert_eq!(demoted["role"], "seller");
}
