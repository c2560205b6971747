//! When sessions end: a password change or a deactivation ends every session of the user
//! (refresh tokens at once, access tokens by their token version); a refresh-token family
//! lives a fixed time from its login; dead refresh tokens are purged. On every backend.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use sellerdesk::{build_app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    a_password_change_ends_every_session_of_the_user,
    a_password_change_reaches_another_instance_within_seconds,
    deactivating_then_reactivating_does_not_revive_old_tokens,
    a_change_of_role_or_sellers_keeps_the_session,
    refreshing_never_extends_a_session_past_its_login_s_lifetime,
    expired_and_revoked_refresh_tokens_are_purged_and_live_ones_kept
);

const PASSWORD: &str = "first-password-123";

/// A seller user `name` (of A1SELLER0001) and its id.
async fn user(app: &TestApp, name: &str) -> i64 {
    app.create_user(name, PASSWORD, "seller", &["A1SELLER0001"])
        .await
}

async fn me(app: &TestApp, login: &Value) -> StatusCode {
    app.request_as(
        Method::GET,
        "/api/v1/auth/me",
        None,
        login["access_token"].as_str(),
    )
    .await
    .status
}

async fn refresh(app: &TestApp, login: &Value) -> crate::helpers::TestResponse {
    let token = login["refresh_token"].as_str().expect("a refresh token");
    app.token_request(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .await
}

async fn patch_user(app: &TestApp, id: i64, body: Value) {
    app.ok(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&body))
        .await;
}

async fn a_password_change_ends_every_session_of_the_user(app: TestApp) {
    let id = user(&app, "ivan").await;
    let laptop = app.login("ivan", PASSWORD).await;
    let phone = app.login("ivan", PASSWORD).await;
    let bystander = {
        user(&app, "judy").await;
        app.login("judy", PASSWORD).await
    };
    assert_eq!(me(&app, &laptop).await, StatusCode::OK);

    patch_user(&app, id, json!({"password": "second-password-456"})).await;

    for (label, session) in [("laptop", &laptop), ("phone", &phone)] {
        assert_eq!(me(&app, session).await, StatusCode::UNAUTHORIZED, "{label}");
        let refreshed = refresh(&app, session).await;
        assert_eq!(
            refreshed.status,
            StatusCode::UNAUTHORIZED,
            "{label}: {}",
            refreshed.text
        );
        assert_eq!(refreshed.json["error"], "invalid_grant");
    }
    let old = app
        .token_request(&[("username", "ivan"), ("password", PASSWORD)])
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let fresh = app.login("ivan", "second-password-456").await;
    assert_eq!(me(&app, &fresh).await, StatusCode::OK);
    assert_eq!(refresh(&app, &fresh).await.status, StatusCode::OK);
    assert_eq!(
        me(&app, &bystander).await,
        StatusCode::OK,
        "other users keep their sessions"
    );
    assert_eq!(refresh(&app, &bystander).await.status, StatusCode::OK);
}

/// Another instance of the service over the same database, with caches of its own.
fn another_instance(app: &TestApp) -> Router {
    let state = AppState::new(app.state.store.clone(), (*app.state.config).clone());
    build_app(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40001))))
}

async fn me_on(instance: &Router, login: &Value) -> StatusCode {
    let token = login["access_token"].as_str().expect("an access token");
    let request = Request::get("/api/v1/auth/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    instance.clone().oneshot(request).await.unwrap().status()
}

async fn a_password_change_reaches_another_instance_within_seconds(app: TestApp) {
    let other = another_instance(&app);
    let id = user(&app, "nina").await;
    let login = app.login("nina", PASSWORD).await;
    assert_eq!(
        me_on(&other, &login).await,
        StatusCode::OK,
        "cached there now"
    );

    patch_user(&app, id, json!({"password": "second-password-456"})).await;
    let changed = Instant::now();

    loop {
        let status = me_on(&other, &login).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(5),
            "the other instance still accepts the old token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let fresh = app.login("nina", "second-password-456").await;
    assert_eq!(
        me_on(&other, &fresh).await,
        StatusCode::OK,
        "the new session works there"
    );
}

async fn deactivating_then_reactivating_does_not_revive_old_tokens(app: TestApp) {
    let id = user(&app, "kate").await;
    let before = app.login("kate", PASSWORD).await;

    patch_user(&app, id, json!({"is_active": false})).await;
    patch_user(&app, id, json!({"is_active": true})).await;

    assert_eq!(me(&app, &before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&app, &before).await.status,
        StatusCode::UNAUTHORIZED
    );
    let after = app.login("kate", PASSWORD).await;
    assert_eq!(me(&app, &after).await, StatusCode::OK);
}

async fn a_change_of_role_or_sellers_keeps_the_session(app: TestApp) {
    let id = user(&app, "leo").await;
    let login = app.login("leo", PASSWORD).await;

    patch_user(&app, id, json!({"seller_ids": ["B1SELLER0001"]})).await;
    patch_user(&app, id, json!({"role": "admin"})).await;

    let response = app
        .request_as(
            Method::GET,
            "/api/v1/auth/me",
            None,
            login["access_token"].as_str(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json["data"]["role"], "admin",
        "the new role applies"
    );
    assert_eq!(refresh(&app, &login).await.status, StatusCode::OK);
}

async fn refreshing_never_extends_a_session_past_its_login_s_lifetime(app: TestApp) {
    let id = user(&app, "mallory").await;
    let login = app.login("mallory", PASSWORD).await;
    assert_eq!(login["refresh_expires_in"], 604800);
    // As if the login had been nearly a week ago.
    app.move_refresh_expiry(id, Utc::now() + Duration::seconds(60))
        .await;

    let first = refresh(&app, &login).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = refresh(&app, &first.json).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);

    for (label, rotated) in [("first", &first), ("second", &second)] {
        let left = rotated.json["refresh_expires_in"]
            .as_u64()
            .expect("refresh_expires_in");
        assert!(
            (55..=60).contains(&left),
            "{label} rotation: the family's deadline, not a new week: {left}"
        );
    }
    // The family's deadline passes: its newest token is dead too.
    app.move_refresh_expiry(id, Utc::now() - Duration::seconds(1))
        .await;
    let late = refresh(&app, &second.json).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.text);
    assert_eq!(late.json["error"], "invalid_grant");
}

async fn expired_and_revoked_refresh_tokens_are_purged_and_live_ones_kept(app: TestApp) {
    let store = app.state.store.clone();
    // Tokens other tests' logins or the bootstrap may have left: none, but be exact.
    sellerdesk::background::purge_refresh_tokens(store.as_ref())
        .await
        .unwrap();
    user(&app, "live").await;
    let live = app.login("live", PASSWORD).await;
    user(&app, "revoked").await;
    let revoked = app.login("revoked", PASSWORD).await;
    let revoke = axum::http::Request::post("/api/v1/auth/revoke")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!(
            "token={}",
            revoked["refresh_token"].as_str().unwrap()
        )))
        .unwrap();
    assert_eq!(app.send_anonymous(revoke).await.status, StatusCode::OK);
    let expired_id = user(&app, "expired").await;
    app.login("expired", PASSWORD).await;
    app.move_refresh_expiry(expired_id, Utc::now() - Duration::seconds(1))
        .await;
    user(&app, "rotated").await;
    let rotated_login = app.login("rotated", PASSWORD).await;
    let rotated = refresh(&app, &rotated_login).await;
    assert_eq!(rotated.status, StatusCode::OK);

    let purged = sellerdesk::background::purge_refresh_tokens(store.as_ref())
        .await
        .unwrap();

    assert_eq!(purged, 2, "the revoked and the expired token");
    let again = sellerdesk::store::Purge::RefreshTokens(sellerdesk::domain::Timestamp::now());
    assert_eq!(store.purge(again, 100).await.unwrap(), 0);
    assert_eq!(refresh(&app, &live).await.status, StatusCode::OK);
    // The used token of a live family was kept: presenting it again is still caught as
    // reuse, and ends its family.
    assert_eq!(
        refresh(&app, &rotated_login).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &rotated.json).await.status,
        StatusCode::UNAUTHORIZED
    );
}
