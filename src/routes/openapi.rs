//! The OpenAPI document: its header (`ApiDoc`), the OAuth2 security scheme, `require_token`
//! (which marks the operations of the protected router as needing a token),
//! `idempotent_writes` (`Idempotency-Key` and what it brings, on every write of that router),
//! and the error responses the handlers list in their `#[utoipa::path]` (`WriteErrors`,
//! `ReadErrors`, ...).
//!
//! Every error response carries its own example body. Without one, a client generator or
//! Swagger UI would render the `ErrorBody` schema's field examples, i.e. a 422, for a 401 or a
//! 503 alike.

use std::collections::btree_map::Entry;

use serde_json::json;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    Flow, OAuth2, Password, Scopes, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{content::ContentBuilder, Ref, ResponseBuilder};
use utoipa::openapi::{RefOr, Required};
use utoipa::{IntoParams, IntoResponses, OpenApi};

use crate::error::ErrorBody;

/// The name of the security scheme in the OpenAPI document.
const SECURITY_SCHEME: &str = "oauth2";

/// The request id shown in example error bodies.
const EXAMPLE_REQUEST_ID: &str = "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sellerdesk",
        description = "Sales targets and inventory levels for marketplace sellers.\n\n\
            Every response is JSON. Success: `{\"code\": 200, \"message\": \"Success\", \"data\": ...}`. \
            Failure: `{\"code\": <status>, \"error_code\": \"VALIDATION_FAILED\", \"message\": \"...\", \"detail\": [...], \"request_id\": \"...\"}`, \
            where `error_code` is a stable machine-readable name and `detail`, when present, is structured \
            (for a 422, every invalid field at once).",
    ),
    tags(
        (name = "auth", description = "OAuth2 password flow: log in, refresh, revoke"),
        (name = "sales targets", description = "Monthly and weekly sales targets per parent ASIN"),
        (name = "inventory", description = "Stock levels per seller SKU"),
        (name = "stock", description = "Stock management: adjustments, thresholds, low stock, lookups, the ledger and the consistency check"),
        (name = "reservations", description = "Units held for a cart or an order until released, committed or expired"),
        (name = "users", description = "User management (admin only)"),
        (name = "audit", description = "The audit log of sensitive actions (admin only)"),
        (name = "events", description = "The event feed: every change to inventory, stock and sales targets, in order, with a long poll"),
        (name = "webhooks", description = "Signed HTTP callbacks for events, delivered in order with retries"),
        (name = "operations", description = "Health"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&OAuth2PasswordFlow)
)]
pub struct ApiDoc;

/// Declares the OAuth2 password flow, so that Swagger UI's Authorize button logs in through
/// `/api/v1/auth/token`. Which operations need it is `require_token`'s business.
struct OAuth2PasswordFlow;

impl utoipa::Modify for OAuth2PasswordFlow {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                SECURITY_SCHEME,
                SecurityScheme::OAuth2(OAuth2::with_description(
                    [Flow::Password(Password::new("/api/v1/auth/token", Scopes::new()))],
                    "Log in with a sellerdesk username and password; the access token is then sent as `Authorization: Bearer <token>`.",
                )),
            );
    }
}

/// An error envelope, as an example body.
fn error_example(status: u16, error_code: &str, message: &str) -> serde_json::Value {
    json!({"code": status, "error_code": error_code, "message": message,
        "request_id": EXAMPLE_REQUEST_ID})
}

/// An error response whose body is the envelope, with its own example.
fn error_response(description: &str, example: serde_json::Value) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .example(Some(example))
                .build(),
        )
        .build()
}

/// Marks every operation of `doc` as needing an access token: the security requirement, a 401,
/// and a 403 unless the operation documents a more specific one. Called with the document of
/// the protected router only, so the document says exactly what the router enforces.
pub fn require_token(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                Vec::<String>::new(),
            )]);
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                error_response(
                    "missing, invalid or expired access token (`WWW-Authenticate: Bearer`)",
                    error_example(401, "UNAUTHORIZED", "authentication required"),
                )
                .into()
            });
            // The one refusal every operation can meet, whoever the caller is.
            responses.entry("403".into()).or_insert_with(|| {
                error_response(
                    "behind a TLS-terminating proxy (`TLS_TERMINATED_UPSTREAM`), the request did not arrive over HTTPS",
                    error_example(403, "FORBIDDEN", "HTTPS required"),
                )
                .into()
            });
        }
    }
}

/// Documents safe retries on every write operation (POST, PUT, PATCH, DELETE) of `doc` outside
/// `/api/v1/auth/`, as `crate::middleware::idempotency` applies them: the optional
/// `Idempotency-Key` request header, `Idempotent-Replayed` on the responses that may be
/// replayed (below 500), and the 409 and 422 a key can bring. Called with the document of the
/// protected router, where the layer sits.
pub fn idempotent_writes(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with("/api/v1/auth/") {
            continue;
        }
        for operation in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(idempotency_key_parameter());
            let responses = &mut operation.responses.responses;
            for (status, response) in responses.iter_mut() {
                let replayable = status.parse::<u16>().is_ok_and(|s| s < 500);
                if let (true, RefOr::T(response)) = (replayable, response) {
                    response
                        .headers
                        .insert("Idempotent-Replayed".to_owned(), replayed_header());
                }
            }
            also_fails_with(
                responses,
                409,
                error_example(
                    409,
                    "IDEMPOTENCY_KEY_IN_USE",
                    "a request with this Idempotency-Key is still running; retry later",
                ),
                "the first request with this `Idempotency-Key` is still running (`IDEMPOTENCY_KEY_IN_USE`, with `Retry-After`)",
            );
            // A 422 example lists field problems: the key's own.
            let mut invalid_key = error_example(422, "VALIDATION_FAILED", "validation failed");
            invalid_key["detail"] = json!([{"field": "Idempotency-Key",
                "message": "must be 1 to 255 printable ASCII characters"}]);
            also_fails_with(
                responses,
                422,
                invalid_key,
                "this `Idempotency-Key` was used with another request (`IDEMPOTENCY_KEY_REUSED`), or is not 1 to 255 printable ASCII characters (`VALIDATION_FAILED`)",
            );
        }
    }
}

fn idempotency_key_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes the write safe to retry: 1 to 255 printable ASCII characters, unique per \
             operation. A repeat with the same key, method, path and body within 24 hours \
             gets the first response again (`Idempotent-Replayed: true`) and changes nothing. \
             See docs/api.md, \"Safe retries\".",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .example(Some(json!("7f9c2ba4-e88f-41c5-a6a2-6d3d0b0c9a11")))
        .build()
}

fn replayed_header() -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        )
        .description(Some(
            "`true` when this is the kept response of an earlier request with the same \
             `Idempotency-Key`, replayed; absent otherwise.",
        ))
        .build()
}

/// Adds a failure to the `status` response of an operation: a response of its own, with
/// `example`, when the operation had none, else a line in the description of the one it has.
fn also_fails_with(
    responses: &mut std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>>,
    status: u16,
    example: serde_json::Value,
    description: &str,
) {
    match responses.entry(status.to_string()) {
        Entry::Vacant(entry) => {
            let mut response = error_response(description, example);
            response
                .headers
                .insert("Idempotent-Replayed".to_owned(), replayed_header());
            entry.insert(response.into());
        }
        Entry::Occupied(mut entry) => {
            if let RefOr::T(response) = entry.get_mut() {
                response.description = format!("{}; or {description}", response.description);
            }
        }
    }
}

/// The error responses of a create-or-update endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WriteErrors {
    #[response(status = 413, description = "body larger than 64 KiB",
        example = json!({"code": 413, "error_code": "PAYLOAD_TOO_LARGE", "message": "request body too large", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json",
        example = json!({"code": 415, "error_code": "UNSUPPORTED_MEDIA_TYPE", "message": "body must be application/json", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotJson(ErrorBody),
    #[response(status = 422, description = "malformed JSON, or invalid, missing or unknown fields (all listed in `detail`)",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6",
            "detail": [{"field": "seller_id", "message": "must be 8 to 20 letters or digits"},
                       {"field": "period", "message": "is required"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// The error responses of a batch endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum BatchErrors {
    #[response(status = 403, description = "a seller caller sent an item of another seller (the message names the item)",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "item 3: you may not write data of this seller_id", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Foreign(ErrorBody),
    #[response(status = 413, description = "body larger than 4 MiB",
        example = json!({"code": 413, "error_code": "PAYLOAD_TOO_LARGE", "message": "request body too large", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body is not application/json",
        example = json!({"code": 415, "error_code": "UNSUPPORTED_MEDIA_TYPE", "message": "body must be application/json", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotJson(ErrorBody),
    #[response(status = 422, description = "not 1 to 1000 items, an invalid item (each problem with its `index`), or one key twice",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6",
            "detail": [{"index": 3, "field": "seller_sku", "message": "must be 10 to 30 letters or digits"},
                       {"index": 7, "field": "items", "message": "repeats the (seller_id, market_place_id, seller_sku) of item 2"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// The error responses of an endpoint that reads, changes or deletes one row by id.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReadErrors {
    #[response(status = 404, description = "no row with this id",
        example = json!({"code": 404, "error_code": "NOT_FOUND", "message": "no such resource", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotFound(ErrorBody),
    #[response(status = 422, description = "the id is not a positive integer",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6",
            "detail": [{"field": "id", "message": "must be a positive integer"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// The error responses of a list endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ListErrors {
    #[response(status = 422, description = "an invalid filter, page or size, or an unknown parameter",
        example = json!({"code": 422, "error_code": "VALIDATION_FAILED", "message": "validation failed", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6",
            "detail": [{"field": "size", "message": "must be an integer from 1 to 100"},
                       {"field": "color", "message": "is not a known parameter"}]}))]
    Invalid(ErrorBody),
    #[response(status = 503, description = "database unavailable",
        example = json!({"code": 503, "error_code": "DATABASE_UNAVAILABLE", "message": "database unavailable", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Unavailable(ErrorBody),
}

/// The 403 of a single write by a seller caller.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WriteForbidden {
    #[response(status = 403, description = "a seller caller wrote a row of another seller",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "you may not write data of this seller_id", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    ForeignSeller(ErrorBody),
}

/// The 403 of a list filtered by seller.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum FilterForbidden {
    #[response(status = 403, description = "a seller caller filtered by another seller's `seller_id`",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "you may not read data of this seller_id", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    ForeignSeller(ErrorBody),
}

/// The 403 of an endpoint for admins only.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum AdminOnly {
    #[response(status = 403, description = "the caller is not an admin",
        example = json!({"code": 403, "error_code": "FORBIDDEN", "message": "this needs the admin role", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    NotAdmin(ErrorBody),
}

/// The conditional headers of a write to one row (documentation; `Precondition` reads them).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only
pub struct WritePreconditions {
    /// Write only if the row is at this version: its `ETag`, quoted (`"3"`), or `*` for any
    /// existing row. Otherwise 412 `VERSION_MISMATCH` and nothing changes. Not an entity tag
    /// of this API (e.g. `3` without quotes): 422.
    #[param(rename = "If-Match", example = "\"3\"")]
    if_match: Option<String>,
    /// `*`: write only if no row exists (an upsert then only creates); a quoted version: only
    /// if the row is not at it. Otherwise 412 `VERSION_MISMATCH`.
    #[param(rename = "If-None-Match", example = "*")]
    if_none_match: Option<String>,
}

/// The conditional headers of a read of one row (documentation; `Precondition` reads them).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only
pub struct ReadPreconditions {
    /// The `ETag` of the copy the client holds (or `*`): 304 without a body when it is
    /// current.
    #[param(rename = "If-None-Match", example = "\"3\"")]
    if_none_match: Option<String>,
    /// Answer only if the row is at this version, else 412 `VERSION_MISMATCH`.
    #[param(rename = "If-Match", example = "\"3\"")]
    if_match: Option<String>,
}

/// The 304 of a conditional read.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum NotModified {
    #[response(status = 304, description = "`If-None-Match` names the current version (or is `*`): the client's copy is current. No body; the `ETag` header is sent again.",
        headers(("ETag" = String, description = "the current version, quoted: \"3\"")))]
    Current,
}

/// The 412 of a conditional write (or read).
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum PreconditionErrors {
    #[response(status = 412, description = "VERSION_MISMATCH: `If-Match` names another version than the row's (or the row does not exist: `current_version` null), or `If-None-Match: *` found a row. Nothing was changed.",
        example = json!({"code": 412, "error_code": "VERSION_MISMATCH", "message": "the resource is not at the version the request expects",
            "detail": {"current_version": 4}, "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"}))]
    Mismatch(ErrorBody),
}
