//! Logging in, bearer tokens, refresh-token rotation and revocation, on every backend.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use sellerdesk::auth::jwt::Claims;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{
    assert_error_envelope, everything_logged, sales_body, TestApp, ADMIN_PASSWORD,
};

/// Asserts a 401 with a `Bearer` challenge in the error envelope.
fn assert_unauthorized(response: &crate::helpers::TestResponse, label: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{label}: {}",
        response.text
    );
    assert_error_envelope(response, StatusCode::UNAUTHORIZED);
    let challenge = response.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{label}: {challenge}");
}

fn claims(sub: &str, iat: i64, exp: i64, typ: &str) -> Claims {
    Claims {
        sub: sub.into(),
        iat,
        exp,
        jti: "test-jti".into(),
        typ: typ.into(),
        ver: 0,
        nbf: None,
    }
}

backend_tests!(
    the_password_grant_returns_both_tokens_uncached,
    credentials_without_grant_type_mean_the_password_grant,
    malformed_token_requests_get_oauth_errors,
    unknown_user_and_wrong_password_get_byte_identical_answers,
    every_kind_of_bad_bearer_token_is_401_with_a_challenge,
    a_token_not_yet_valid_or_issued_in_the_future_is_401,
    a_refresh_rotates_the_pair_and_the_old_refresh_token_stops_working,
    of_two_concurrent_refreshes_with_one_token_exactly_one_succeeds,
    a_revoked_refresh_token_gets_401_and_revoke_always_answers_200,
    repeated_failed_logins_slow_that_username_down,
    a_name_that_cannot_be_a_username_is_refused_like_a_wrong_password_and_never_throttled,
    no_token_or_password_reaches_the_log
);

async fn the_password_grant_returns_both_tokens_uncached(app: TestApp) {
    let response = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.headers["cache-control"], "no-store");
    let body = &response.json;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["refresh_expires_in"], 604800);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 64, "at least 256 random bits");
    let me = app
        .request_as(
            Method::GET,
            "/api/v1/auth/me",
            None,
            body["access_token"].as_str(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["data"]["username"], "admin");
    assert_eq!(me.json["data"]["role"], "admin");
    assert_eq!(me.json["data"]["seller_ids"], json!([]));
}

async fn credentials_without_grant_type_mean_the_password_grant(app: TestApp) {
    let response = app
        .token_request(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

async fn malformed_token_requests_get_oauth_errors(app: TestApp) {
    for (form, status, error) in [
        (
            vec![("grant_type", "client_credentials")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "password"), ("username", "admin")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![("grant_type", "refresh_token")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        (
            vec![("grant_type", "password"), ("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "not-a-token"),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        ),
    ] {
        let response = app.token_request(&form).await;
        assert_eq!(response.status, status, "{form:?}: {}", response.text);
        assert_eq!(response.json["error"], error, "{form:?}");
        assert!(response.json["error_description"].is_string());
        assert_eq!(response.headers["cache-control"], "no-store");
    }
    let json_body = Request::post("/api/v1/auth/token")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username":"admin","password":"x"}"#))
        .unwrap();
    let response = app.send_anonymous(json_body).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json["error"], "invalid_request");
}

async fn unknown_user_and_wrong_password_get_byte_identical_answers(app: TestApp) {
    let unknown = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", "whatever-password"),
        ])
        .await;
    let wrong = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "not-the-password"),
        ])
        .await;

    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.json["error"], "invalid_grant");
    assert_eq!(
        unknown.text, wrong.text,
        "the bodies do not tell the cases apart"
    );
}

async fn every_kind_of_bad_bearer_token_is_401_with_a_challenge(app: TestApp) {
    let now = chrono::Utc::now().timestamp();
    let admin_id = app.login("admin", ADMIN_PASSWORD).await;
    let refresh = admin_id["refresh_token"].as_str().unwrap().to_owned();
    let keys = &app.state.auth.keys;
    let other_keys = sellerdesk::auth::JwtKeys::new(&sellerdesk::config::Config::default());
    let expired = keys.sign(&claims("1", now - 7300, now - 100, "access"));
    let wrong_type = keys.sign(&claims("1", now, now + 600, "refresh"));
    let wrong_signature = other_keys.sign(&claims("1", now, now + 600, "access"));
    let header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let payload = format!(
        "{{\"sub\":\"1\",\"iat\":{now},\"exp\":{},\"jti\":\"x\",\"typ\":\"access\"}}",
        now + 600
    );
    let alg_none = format!("{header_none}.{}.", base64_url(payload.as_bytes()));
    let unknown_user = keys.sign(&claims("999999", now, now + 600, "access"));

    let no_token = app
        .request_as(Method::GET, "/api/v1/inventory", None, None)
        .await;
    assert_unauthorized(&no_token, "no token");
    assert_eq!(no_token.headers["www-authenticate"], "Bearer");
    for (label, token) in [
        ("garbage", "garbage"),
        ("expired", expired.as_str()),
        ("refresh token as bearer", refresh.as_str()),
        ("typ is not access", wrong_type.as_str()),
        ("wrong signature", wrong_signature.as_str()),
        ("alg none", alg_none.as_str()),
        ("user does not exist", unknown_user.as_str()),
    ] {
        let response = app
            .request_as(Method::GET, "/api/v1/inventory", None, Some(token))
            .await;
        assert_unauthorized(&response, label);
        assert!(
            response.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{label}"
        );
    }
    let basic = app
        .send_anonymous(
            Request::get("/api/v1/inventory")
                .header("authorization", "Basic YWRtaW46eA==")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_unauthorized(&basic, "basic auth");
}

async fn a_token_not_yet_valid_or_issued_in_the_future_is_401(app: TestApp) {
    let now = chrono::Utc::now().timestamp();
    let keys = &app.state.auth.keys;
    let valid_from = |nbf: i64| Claims {
        nbf: Some(nbf),
        ..claims("1", now, now + 600, "access")
    };
    // Within the five seconds of clock leeway, or in the past: accepted.
    for (label, token) in [
        ("nbf in the past", keys.sign(&valid_from(now - 60))),
        ("nbf within the leeway", keys.sign(&valid_from(now + 2))),
        (
            "iat within the leeway",
            keys.sign(&claims("1", now + 2, now + 600, "access")),
        ),
    ] {
        let response = app
            .request_as(Method::GET, "/api/v1/auth/me", None, Some(&token))
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{label}: {}",
            response.text
        );
    }
    for (label, token) in [
        ("nbf in a minute", keys.sign(&valid_from(now + 60))),
        (
            "iat in a minute",
            keys.sign(&claims("1", now + 60, now + 600, "access")),
        ),
        (
            "iat in a day, exp after it",
            keys.sign(&claims("1", now + 86_400, now + 90_000, "access")),
        ),
    ] {
        let response = app
            .request_as(Method::GET, "/api/v1/auth/me", None, Some(&token))
            .await;
        assert_unauthorized(&response, label);
    }
}

async fn a_refresh_rotates_the_pair_and_the_old_refresh_token_stops_working(app: TestApp) {
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let old = first["refresh_token"].as_str().unwrap();

    let rotated = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", old)])
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let new = rotated.json["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    let me = app
        .request_as(
            Method::GET,
            "/api/v1/auth/me",
            None,
            rotated.json["access_token"].as_str(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);

    let reused = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", old)])
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.json["error"], "invalid_grant");
    // Reuse of a rotated token revokes its whole family: the new one is dead too.
    let after_reuse = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", new)])
        .await;
    assert_eq!(
        after_reuse.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        after_reuse.text
    );
    assert_eq!(after_reuse.json["error"], "invalid_grant");
    // Another login's family is untouched.
    let other = app.login("admin", ADMIN_PASSWORD).await;
    let fine = app
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", other["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(fine.status, StatusCode::OK);
}

async fn of_two_concurrent_refreshes_with_one_token_exactly_one_succeeds(app: TestApp) {
    // Many rounds: the interesting interleavings (a deadlock on MySQL, once) are rare.
    for _ in 0..20 {
        let login = app.login("admin", ADMIN_PASSWORD).await;
        let token = login["refresh_token"].as_str().unwrap().to_owned();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
        ];
        let (a, b) = tokio::join!(app.token_request(&form), app.token_request(&form));
        let successes = [a.status, b.status]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(successes, 1, "{} / {}", a.text, b.text);
        let loser = if a.status == StatusCode::OK { &b } else { &a };
        assert_eq!(loser.status, StatusCode::UNAUTHORIZED);
        assert_eq!(loser.json["error"], "invalid_grant");
    }
}

async fn a_revoked_refresh_token_gets_401_and_revoke_always_answers_200(app: TestApp) {
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap();
    let revoke = |token: String| {
        Request::post("/api/v1/auth/revoke")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    };

    assert_eq!(
        app.send_anonymous(revoke(refresh.to_owned())).await.status,
        StatusCode::OK
    );

    let after = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json["error"], "invalid_grant");
    assert_eq!(
        app.send_anonymous(revoke("unknown-token".into()))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send_anonymous(revoke(refresh.to_owned())).await.status,
        StatusCode::OK
    );
}

async fn repeated_failed_logins_slow_that_username_down(app: TestApp) {
    for _ in 0..5 {
        let wrong = app
            .token_request(&[("username", "admin"), ("password", "wrong-password")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = app
        .token_request(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    assert!(throttled.headers.contains_key("retry-after"));
    // Unknown usernames are throttled alike, so the throttle reveals nothing.
    for _ in 0..5 {
        app.token_request(&[("username", "ghost-user"), ("password", "wrong-password")])
            .await;
    }
    let ghost = app
        .token_request(&[("username", "ghost-user"), ("password", "wrong-password")])
        .await;
    assert_eq!(ghost.status, StatusCode::TOO_MANY_REQUESTS);
    let lines = app.log_lines();
    assert!(
        lines.iter().any(|l| l.contains("login failed")),
        "{lines:#?}"
    );
}

async fn a_name_that_cannot_be_a_username_is_refused_like_a_wrong_password_and_never_throttled(
    app: TestApp,
) {
    let marker = rand_suffix();
    let wrong = app
        .token_request(&[("username", "admin"), ("password", "not-the-password")])
        .await;
    for name in [
        format!("no spaces {marker}"),
        format!("{marker}{}", "x".repeat(64)),
        format!("new\nline{marker}"),
        "ab".to_owned(),
    ] {
        // Past the free failures: a name that reached the throttle would now be 429.
        for attempt in 0..8 {
            let response = app
                .token_request(&[("username", &name), ("password", "whatever-password")])
                .await;
            assert_eq!(
                response.status,
                StatusCode::UNAUTHORIZED,
                "{name:?}, attempt {attempt}: {}",
                response.text
            );
            assert_eq!(
                response.text, wrong.text,
                "{name:?}: the answer of a wrong password"
            );
        }
    }
    assert!(
        !everything_logged().contains(&marker),
        "an invalid username reached the log"
    );
    assert_eq!(
        app.state.limits.embedded_throttle().tracked(),
        1,
        "only admin's failure"
    );
}

/// An app that believes `X-Forwarded-For` from the in-process mock peer, so that a test can
/// speak as several clients.
async fn behind_a_trusted_proxy() -> TestApp {
    TestApp::with_config(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

#[tokio::test]
async fn failed_logins_from_one_client_do_not_lock_the_user_out_of_another() {
    let app = behind_a_trusted_proxy().await;
    let (attacker, user) = ("203.0.113.7", "198.51.100.20");
    for _ in 0..10 {
        app.token_request_from(
            attacker,
            &[("username", "admin"), ("password", "a-wrong-guess")],
        )
        .await;
    }
    let throttled = app
        .token_request_from(
            attacker,
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker is slowed down: {}",
        throttled.text
    );

    let real = app
        .token_request_from(user, &[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;

    assert_eq!(real.status, StatusCode::OK, "{}", real.text);
    assert!(real.json["access_token"].is_string());
    let still = app
        .token_request_from(
            attacker,
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(
        still.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the user's success does not clear the attacker's failures"
    );
}

async fn no_token_or_password_reaches_the_log(app: TestApp) {
    let password = format!("unique-password-{}", rand_suffix());
    let username = format!("logcheck{}", rand_suffix());
    app.create_user(&username, &password, "seller", &["A1SELLER0001"])
        .await;
    let login = app.login(&username, &password).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let rotated = app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    let new_access = rotated.json["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated.json["refresh_token"].as_str().unwrap().to_owned();
    app.request_as(
        Method::POST,
        "/api/v1/sales/target",
        Some(&sales_body(json!({}))),
        Some(&new_access),
    )
    .await;
    app.request_as(
        Method::GET,
        &format!("/api/v1/sales/target?access_token={new_access}"),
        None,
        Some(&new_access),
    )
    .await;
    app.token_request(&[("username", &username), ("password", "a-wrong-password-x")])
        .await;

    // One line for this request, with every field the operators need.
    let me = Request::get("/api/v1/auth/me?page=1")
        .header("authorization", format!("Bearer {new_access}"))
        .body(Body::empty())
        .unwrap();
    let me = app.send_anonymous(me).await;
    let user_id = me.json["data"]["id"].as_i64().unwrap();

    let lines = app.log_lines_of(&me);
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    for field in [
        "client_ip=127.0.0.1".to_owned(),
        "method=GET".to_owned(),
        "path=/api/v1/auth/me".to_owned(),
        "query=\"page=1\"".to_owned(),
        "status=200".to_owned(),
        format!("user_id={user_id}"),
        "latency_ms=".to_owned(),
    ] {
        assert!(lines[0].contains(&field), "{field} in {}", lines[0]);
    }
    assert!(
        lines[0].starts_with("20"),
        "the line starts with its time: {}",
        lines[0]
    );

    // The lines the secrets could have reached are there, so their absence below means
    // something: the user's creation, the login and the refresh, the request with a token in
    // its query, and the failed login.
    let own = app.log_lines();
    let logged = |path: &str, status: &str| {
        own.iter()
            .filter(|l| {
                // The span's last field ends with `}`, the others with a space.
                let path_field = format!("path={path}");
                (l.contains(&format!("{path_field} ")) || l.contains(&format!("{path_field}}}")))
                    && l.contains(&format!("status={status} "))
            })
            .count()
    };
    assert_eq!(
        logged("/api/v1/users", "200"),
        1,
        "the user's creation: {own:#?}"
    );
    assert_eq!(
        logged("/api/v1/auth/token", "200"),
        2,
        "the login and the refresh: {own:#?}"
    );
    assert_eq!(
        logged("/api/v1/auth/token", "401"),
        1,
        "the failed login: {own:#?}"
    );
    assert!(
        own.iter()
            .any(|l| l.contains("path=/api/v1/sales/target ") && l.contains("access_token=***")),
        "the request with a token in its query: {own:#?}"
    );
    assert!(
        own.iter()
            .any(|l| l.contains("login failed") && l.contains(&username)),
        "a failed login is logged with its username: {own:#?}"
    );
    let everything = everything_logged();
    for secret in [
        &password,
        &access,
        &refresh,
        &new_access,
        &new_refresh,
        &app.admin_token,
    ] {
        assert!(
            !own.iter().any(|l| l.contains(secret.as_str())),
            "a secret reached this test's log lines"
        );
        assert!(
            !everything.contains(secret.as_str()),
            "a secret reached the log"
        );
    }
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Base64url without padding, for hand-made JWTs.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn base64_url_matches_a_known_value() {
    assert_eq!(
        base64_url(b"{\"alg\":\"none\",\"typ\":\"JWT\"}"),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"
    );
}
