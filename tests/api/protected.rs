//! Protected by default, checked against the published document: every operation of
//! `/openapi.json` that declares `security` refuses a request without a valid token before it
//! looks at the path, query or body; only the intended operations are public; and every
//! documented error response shows an example of its own status.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;

use crate::helpers::{assert_error_envelope, Backend, TestApp, TestResponse};

/// The operations that need no token, each public on purpose. `/docs` and `/openapi.json` are
/// public too, but are not operations of the document.
const PUBLIC_OPERATIONS: [(&str, &str); 3] = [
    ("get", "/health"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/revoke"),
];

/// The protected operations of today; fewer means the walk lost its subject.
const MIN_PROTECTED_OPERATIONS: usize = 15;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the document.
struct Operation<'a> {
    method: &'static str,
    path: &'a str,
    spec: &'a Value,
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter_map(move |method| {
                item.get(*method)
                    .map(|spec| Operation { method, path, spec })
            })
        })
        .collect()
}

/// `path` with every `{param}` replaced by a plausible id.
fn fill_path_params(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn openapi(app: &TestApp) -> Value {
    let response = app
        .send_anonymous(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "the document needs no token"
    );
    response.json
}

/// Asserts the 401 of the authentication layer: the envelope, and a `Bearer` challenge that
/// says `invalid_token` exactly when a token was sent.
fn assert_refused(response: &TestResponse, token_sent: bool, label: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{label}: {}",
        response.text
    );
    assert_error_envelope(response, StatusCode::UNAUTHORIZED);
    let challenge = response
        .headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{label}: no WWW-Authenticate"))
        .to_str()
        .unwrap();
    if token_sent {
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
            "{label}: {challenge}"
        );
        assert_eq!(
            response.json["message"], "invalid or expired access token",
            "{label}"
        );
    } else {
        assert_eq!(challenge, "Bearer", "{label}");
        assert_eq!(
            response.json["message"], "authentication required",
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secured_operation_refuses_a_request_without_a_valid_token_before_reading_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = openapi(&app).await;

    let mut public = BTreeSet::new();
    let mut walked = 0;
    for operation in operations(&doc) {
        if operation.spec.get("security").is_none() {
            public.insert((operation.method, operation.path.to_owned()));
            continue;
        }
        let method = Method::from_bytes(operation.method.to_ascii_uppercase().as_bytes()).unwrap();
        // A path a real row could have, a query no list accepts, bodies no handler accepts.
        let uri = format!(
            "{}?page=0&no_such_parameter=1",
            fill_path_params(operation.path)
        );
        let bodies = [
            (Some("application/json"), "{}"),
            (Some("text/plain"), "not json"),
            (None, ""),
        ];
        for (content_type, body) in bodies {
            for token in [None, Some("Bearer not-a-token"), Some("Basic YWRtaW46eA==")] {
                let mut request = Request::builder().method(method.clone()).uri(&uri);
                if let Some(value) = content_type {
                    request = request.header("content-type", value);
                }
                if let Some(value) = token {
                    request = request.header("authorization", value);
                }
                let response = app
                    .send_anonymous(request.body(Body::from(body)).unwrap())
                    .await;
                let label = format!(
                    "{} {uri} with {content_type:?} body {body:?}, authorization {token:?}",
                    operation.method
                );
                assert_refused(&response, token.is_some(), &label);
            }
        }
        walked += 1;
    }

    let expected: BTreeSet<(&str, String)> = PUBLIC_OPERATIONS
        .iter()
        .map(|(method, path)| (*method, (*path).to_owned()))
        .collect();
    assert_eq!(
        public, expected,
        "exactly these operations need no token; a new public one must be added on purpose"
    );
    assert!(
        walked >= MIN_PROTECTED_OPERATIONS,
        "only {walked} protected operations in the document"
    );
    // The refusals above came before any handler: nothing was written.
    let stock = app.get("/api/v1/inventory").await;
    assert_eq!(stock.json["data"]["meta"]["total"], 0, "{}", stock.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_operations_the_docs_and_the_404_answer_without_a_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anonymous = |method: Method, uri: &str, content_type: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };

    let health = app
        .send_anonymous(anonymous(Method::GET, "/health", "text/plain", ""))
        .await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    let form = "application/x-www-form-urlencoded";
    for uri in ["/api/v1/auth/token", "/api/v1/auth/revoke"] {
        // An empty form reaches the endpoint, which answers in OAuth2 terms, not with a 401.
        let response = app
            .send_anonymous(anonymous(Method::POST, uri, form, ""))
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            response.text
        );
        assert_eq!(response.json["error"], "invalid_request", "{uri}");
    }
    for uri in ["/openapi.json", "/docs/"] {
        let response = app
            .send_anonymous(anonymous(Method::GET, uri, "text/plain", ""))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{uri}");
    }
    let unknown = app
        .send_anonymous(anonymous(
            Method::GET,
            "/api/v1/no-such-thing",
            "text/plain",
            "",
        ))
        .await;
    assert_error_envelope(&unknown, StatusCode::NOT_FOUND);
}

/// What the example of an error response with this schema and status must say.
fn check_example(schema: &str, status: u16, example: &Value, label: &str) {
    match schema {
        "ErrorBody" => {
            assert_eq!(example["code"], status, "{label}: {example}");
            assert!(
                example["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{label}: {example}"
            );
            assert!(example["request_id"].is_string(), "{label}: {example}");
            assert!(
                example["error_code"].as_str().is_some_and(
                    |c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                ),
                "{label}: an UPPER_SNAKE error_code: {example}"
            );
            if status == 422 {
                assert!(
                    example["detail"].as_array().is_some_and(|d| !d.is_empty()),
                    "{label}: a 422 lists its field problems: {example}"
                );
            }
        }
        "OAuthError" => {
            let error = example["error"].as_str().unwrap_or_default();
            let allowed: &[&str] = match status {
                400 => &["invalid_request", "unsupported_grant_type"],
                401 | 429 => &["invalid_grant"],
                500 => &["server_error"],
                503 => &["temporarily_unavailable"],
                _ => &[],
            };
            assert!(allowed.contains(&error), "{label}: {example}");
            assert!(
                example["error_description"].is_string(),
                "{label}: {example}"
            );
        }
        "Health" => {
            assert_eq!(status, 503, "{label}");
            assert_eq!(example["status"], "unavailable", "{label}: {example}");
        }
        other => panic!("{label}: an error response with schema {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_error_response_shows_an_example_of_its_own_status() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = openapi(&app).await;

    let mut checked = 0;
    for operation in operations(&doc) {
        let responses = operation.spec["responses"]
            .as_object()
            .expect("every operation documents its responses");
        if operation.spec.get("security").is_some() {
            for status in ["401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{} {} documents {status}",
                    operation.method,
                    operation.path
                );
            }
        }
        for (status, response) in responses {
            let status: u16 = status.parse().expect("statuses, not ranges");
            if status < 400 {
                continue;
            }
            let label = format!("{} {} {status}", operation.method, operation.path);
            let content = &response["content"]["application/json"];
            let schema = content["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_else(|| panic!("{label}: a JSON body of a named schema"));
            let example = &content["example"];
            assert!(example.is_object(), "{label}: no example of its own");
            check_example(schema, status, example, &label);
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * MIN_PROTECTED_OPERATIONS,
        "only {checked} error responses in the document"
    );
    // The 401 and 403 of a protected write used to show the 422 body.
    let upsert = &doc["paths"]["/api/v1/inventory"]["post"]["responses"];
    for status in ["401", "403", "413", "415", "422", "503"] {
        assert_eq!(
            upsert[status]["content"]["application/json"]["example"]["code"].to_string(),
            status,
            "POST /api/v1/inventory {status}"
        );
    }
}
