//! Behaviour shared by every endpoint: status codes in the envelope, request ids, health, docs.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error_envelope, field_errors, inventory_body, TestApp};

backend_tests!(
    an_unknown_route_is_404_in_the_envelope,
    a_wrong_method_is_405_in_the_envelope,
    a_body_over_64_kib_is_413_in_the_envelope,
    a_body_that_is_not_json_is_415_in_the_envelope,
    malformed_json_and_non_objects_are_422,
    a_sane_request_id_is_kept_and_any_other_is_replaced,
    health_reports_the_database_and_version,
    the_openapi_document_lists_every_endpoint_with_its_errors,
    responses_carry_nosniff_and_no_store,
    a_422_lists_at_most_100_problems_and_counts_the_rest,
    a_query_parameter_given_thousands_of_times_is_reported_within_the_limit,
    the_request_log_names_the_route_template_beside_the_path
);

async fn an_unknown_route_is_404_in_the_envelope(app: TestApp) {
    assert_error_envelope(
        &app.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
    );
    assert_error_envelope(&app.get("/").await, StatusCode::NOT_FOUND);
}

async fn a_wrong_method_is_405_in_the_envelope(app: TestApp) {
    let response = app
        .request(
            Method::PUT,
            "/api/v1/inventory",
            Some(&inventory_body(json!({}))),
        )
        .await;
    assert_error_envelope(&response, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_envelope(
        &app.request(Method::PATCH, "/api/v1/sales/target/1", None)
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
}

async fn a_body_over_64_kib_is_413_in_the_envelope(app: TestApp) {
    let padding = "x".repeat(100 * 1024);
    let response = app
        .post(
            "/api/v1/inventory",
            &inventory_body(json!({"padding": padding})),
        )
        .await;
    assert_error_envelope(&response, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.get("/api/v1/inventory").await.json["data"]["meta"]["total"],
        0
    );
}

async fn a_body_that_is_not_json_is_415_in_the_envelope(app: TestApp) {
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::post("/api/v1/inventory");
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        let body = inventory_body(json!({})).to_string();
        let response = app.send(request.body(Body::from(body)).unwrap()).await;
        assert_error_envelope(&response, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let with_charset = Request::post("/api/v1/inventory")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(inventory_body(json!({})).to_string()))
        .unwrap();
    assert_eq!(app.send(with_charset).await.status, StatusCode::OK);
}

async fn malformed_json_and_non_objects_are_422(app: TestApp) {
    for body in [
        "{\"seller_id\": ",
        "not json",
        "",
        "[1, 2]",
        "\"text\"",
        "null",
        "{\"a\":1,\"a\":2}",
    ] {
        let request = Request::post("/api/v1/sales/target")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.send(request).await;
        assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            !field_errors(&response).is_empty(),
            "{body:?}: {}",
            response.text
        );
    }
}

async fn a_sane_request_id_is_kept_and_any_other_is_replaced(app: TestApp) {
    let kept = app
        .send(
            Request::get("/health")
                .header("x-request-id", "abc-123_X.y")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "abc-123_X.y");

    for bad in ["has space", "semi;colon", &"x".repeat(65)] {
        let response = app
            .send(
                Request::get("/nope")
                    .header("x-request-id", bad)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let id = response.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.len() <= 64);
        assert_eq!(response.json["request_id"], id);
    }
    // Without an id of their own (`send_exact`: the helpers would add this app's ids).
    let health = || Request::get("/health").body(Body::empty()).unwrap();
    let a = app.send_exact(health()).await.headers["x-request-id"].clone();
    let b = app.send_exact(health()).await.headers["x-request-id"].clone();
    assert_ne!(a, b, "each request gets its own id");
}

async fn health_reports_the_database_and_version(app: TestApp) {
    let response = app.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json,
        json!({"status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

async fn the_openapi_document_lists_every_endpoint_with_its_errors(app: TestApp) {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    let paths = &response.json["paths"];
    for (path, method) in [
        ("/api/v1/sales/target", "post"),
        ("/api/v1/sales/target", "get"),
        ("/api/v1/sales/target/{id}", "get"),
        ("/api/v1/sales/target/{id}", "delete"),
        ("/api/v1/inventory", "post"),
        ("/api/v1/inventory", "get"),
        ("/api/v1/inventory/{id}", "get"),
        ("/api/v1/inventory/{id}", "delete"),
        ("/health", "get"),
        ("/api/v1/sales/target/batch", "post"),
        ("/api/v1/inventory/batch", "post"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(
            operation["responses"]["200"].is_object(),
            "{method} {path} documents 200"
        );
    }
    assert!(paths["/api/v1/inventory"]["post"]["responses"]["422"].is_object());
    assert!(paths["/api/v1/inventory/{id}"]["get"]["responses"]["404"].is_object());
    assert!(response.json["components"]["schemas"]["InventoryRequest"].is_object());
    // Swagger UI's Authorize button logs in through the password flow.
    let scheme = &response.json["components"]["securitySchemes"]["oauth2"];
    assert_eq!(
        scheme["flows"]["password"]["tokenUrl"], "/api/v1/auth/token",
        "{scheme}"
    );
    for (path, method) in [
        ("/api/v1/inventory", "post"),
        ("/api/v1/sales/target/{id}", "delete"),
        ("/api/v1/users", "get"),
        ("/api/v1/auth/me", "get"),
    ] {
        let operation = &paths[path][method];
        assert_eq!(
            operation["security"],
            serde_json::json!([{"oauth2": []}]),
            "{method} {path}"
        );
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path} documents 401"
        );
    }
    let token = &paths["/api/v1/auth/token"]["post"];
    assert!(
        token["responses"]["200"].is_object(),
        "the token endpoint is documented"
    );
    assert!(token["security"].is_null(), "logging in needs no token");
    assert!(paths["/api/v1/auth/revoke"]["post"].is_object());
    assert!(paths["/health"]["get"]["security"].is_null());
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.text.contains("swagger"), "Swagger UI is served");
}

async fn responses_carry_nosniff_and_no_store(app: TestApp) {
    for uri in ["/health", "/api/v1/inventory", "/nope"] {
        let response = app.get(uri).await;
        assert_eq!(
            response.headers["x-content-type-options"], "nosniff",
            "{uri}"
        );
        assert_eq!(response.headers["cache-control"], "no-store", "{uri}");
    }
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = crate::helpers::TestApp::with_config(|c| {
        c.cors_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/v1/inventory")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app
        .send_anonymous(preflight("https://app.example.com"))
        .await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = app
        .send_anonymous(preflight("https://evil.example.net"))
        .await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));

    // Conditional writes from a browser: PUT with If-Match, and the ETag readable.
    let conditional = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/v1/inventory/1/thresholds")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type,if-match,if-none-match,idempotency-key",
        )
        .body(Body::empty())
        .unwrap();
    let conditional = app.send_anonymous(conditional).await;
    let allowed_methods = conditional.headers["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(allowed_methods.contains("PUT"), "{allowed_methods}");
    let allowed_headers = conditional.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["if-match", "if-none-match", "idempotency-key"] {
        assert!(allowed_headers.contains(name), "{name}: {allowed_headers}");
    }
    let read = Request::builder()
        .uri("/health")
        .header("origin", "https://app.example.com")
        .body(Body::empty())
        .unwrap();
    let read = app.send_anonymous(read).await;
    let exposed = read.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");

    let default = crate::helpers::TestApp::with_config(|_| {}).await;
    let none = default
        .send_anonymous(preflight("https://app.example.com"))
        .await;
    assert!(
        !none.headers.contains_key("access-control-allow-origin"),
        "no origins configured, no CORS"
    );
}

#[tokio::test]
async fn the_request_log_masks_secret_query_values() {
    let app = crate::helpers::TestApp::with_config(|_| {}).await;
    let marker = format!("hunter{:08x}", rand::random::<u32>());
    let response = app
        .get(&format!("/api/v1/inventory?api_key={marker}"))
        .await;
    let lines = app.log_lines_of(&response);
    assert!(
        lines.iter().any(|l| l.contains("api_key=***")),
        "the masked parameter is logged: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&marker)),
        "the value was masked"
    );
    assert!(
        !crate::helpers::everything_logged().contains(&marker),
        "the value reached no log line at all"
    );
}

async fn a_422_lists_at_most_100_problems_and_counts_the_rest(app: TestApp) {
    let one = app
        .post("/api/v1/inventory/batch", &json!({"items": [{}]}))
        .await;
    assert_error_envelope(&one, StatusCode::UNPROCESSABLE_ENTITY);
    let per_item = one.json["detail"].as_array().expect("a detail list").len();
    assert!(per_item > 1, "{}", one.text);
    assert!(
        one.json.get("more_problems").is_none(),
        "nothing to count when everything is listed: {}",
        one.text
    );

    let items: Vec<_> = (0..1000).map(|_| json!({})).collect();
    let all = app
        .post("/api/v1/inventory/batch", &json!({ "items": items }))
        .await;
    assert_error_envelope(&all, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = all.json["detail"].as_array().expect("a detail list");
    assert_eq!(detail.len(), 100, "at most 100 listed");
    assert_eq!(detail[0], one.json["detail"][0], "the first problems first");
    assert_eq!(
        all.json["more_problems"],
        json!(1000 * per_item - 100),
        "the rest counted"
    );
}

async fn a_query_parameter_given_thousands_of_times_is_reported_within_the_limit(app: TestApp) {
    let query = vec!["x=1"; 5000].join("&");
    let response = app.get(&format!("/api/v1/inventory?{query}")).await;
    assert_error_envelope(&response, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = response.json["detail"].as_array().expect("a detail list");
    assert_eq!(detail.len(), 100);
    assert_eq!(detail[0]["field"], "x");
    assert_eq!(detail[0]["message"], "is given more than once");
    // 4999 repeats and one unknown parameter.
    assert_eq!(response.json["more_problems"], 4900);
}

/// `GET /api/v1/inventory` as the admin, from `client` as a trusted proxy at 127.0.0.1 reports it.
async fn get_from(app: &TestApp, client: &str) -> StatusCode {
    let request = Request::get("/api/v1/inventory")
        .header("x-forwarded-for", client)
        .body(Body::empty())
        .unwrap();
    app.send(request).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
    let app = TestApp::with_config(|config| {
        config.rate_limit_per_minute = 2;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let ok = StatusCode::OK;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    for (client, expected) in [
        ("2001:db8:1:2::1", ok),
        ("2001:db8:1:2::2", ok),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", limited),
        ("2001:db8:1:3::1", ok),
        ("::ffff:198.51.100.7", ok),
        ("198.51.100.7", ok),
        ("::ffff:198.51.100.7", limited),
        ("198.51.100.8", ok),
    ] {
        assert_eq!(get_from(&app, client).await, expected, "{client}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_jwts_never_reach_the_request_log() {
    let app = TestApp::with_config(|_| {}).await;
    let signature = "c2VjcmV0LXNpZ25hdHVyZS1vZi10aGlzLXRlc3Q";
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{signature}");
    for written in [jwt.replace('.', "%2E"), format!("%65{}", &jwt[1..])] {
        app.get(&format!("/api/v1/inventory/{written}")).await;
        app.get(&format!("/api/v1/inventory?note={written}")).await;
    }
    let lines = app.log_lines();
    assert!(lines.len() >= 4, "a line per request: {lines:#?}");
    for line in &lines {
        assert!(!line.contains(signature), "{line}");
        assert!(!line.contains("yJhbGciOiJIUzI1NiJ9"), "{line}");
        assert!(line.contains("***"), "{line}");
    }
}

async fn the_request_log_names_the_route_template_beside_the_path(app: TestApp) {
    let row = app
        .post_ok("/api/v1/inventory", &inventory_body(json!({})))
        .await;
    let id = row["id"].as_i64().unwrap();
    let marker = format!("hunter{:08x}", rand::random::<u32>());
    let response = app
        .get(&format!("/api/v1/inventory/{id}?client_secret={marker}"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let lines = app.log_lines_of(&response);
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    for field in [
        format!("path=/api/v1/inventory/{id}"),
        "route=/api/v1/inventory/{id}".to_owned(),
        "query=\"client_secret=***\"".to_owned(),
        "status=200".to_owned(),
    ] {
        assert!(lines[0].contains(&field), "{field} in {}", lines[0]);
    }
    assert!(
        !lines[0].contains(&marker),
        "the secret is masked: {}",
        lines[0]
    );

    // A path no route matches has no template: the line says `path` only, and a token in
    // the path stays masked.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    let unknown = app.get(&format!("/api/v1/nowhere/{jwt}")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let lines = app.log_lines_of(&unknown);
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    assert!(
        lines[0].contains("path=/api/v1/nowhere/***"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("route="), "{}", lines[0]);
    assert!(!lines[0].contains(jwt), "{}", lines[0]);
}
