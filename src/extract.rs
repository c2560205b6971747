//! Request extractors that reject with `ApiError`, so that every bad input gets the envelope.
//!
//! JSON bodies are not deserialised straight into structs: serde stops at the first problem,
//! and SPEC §1 wants *every* problem of a body in one 422. Instead the body is split into its
//! fields (kept as raw JSON text), and `ObjectReader` checks each field's presence, JSON type
//! and rule in turn, collecting a `FieldError` for each, then reports fields nobody asked for.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::PageRequest;
use crate::error::{ApiError, FieldError};

/// A request body type read field by field from a JSON object.
pub trait FromJsonObject: Sized {
    /// Reads every field it knows from `object`, returning `None` when any of them was bad
    /// (the reader holds the reasons).
    fn read(object: &mut ObjectReader<'_, '_>) -> Option<Self>;
}

/// The body, as `T`, of a request whose content type is JSON. Any problem rejects the request:
/// 415 for another content type, 413 past the route's body limit, 422 for malformed JSON or
/// invalid fields.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: FromJsonObject> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body")
            }
        })?;
        let mut errors = Vec::new();
        let value = match serde_json::from_slice::<&RawValue>(&body) {
            Ok(raw) => ObjectReader::open(raw, None, "body", &mut errors).and_then(|mut object| {
                let value = T::read(&mut object);
                object.finish();
                value
            }),
            Err(e) => {
                let message = format!(
                    "is not valid JSON: {} at line {} column {}",
                    describe(&e),
                    e.line(),
                    e.column()
                );
                errors.push(FieldError::new("body", message));
                None
            }
        };
        match value {
            Some(value) if errors.is_empty() => Ok(Self(value)),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// `application/json`, optionally with parameters (`; charset=utf-8`), or a `+json` type.
fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// serde_json's own text names the problem but also repeats the position; keep the category.
fn describe(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable value",
    }
}

/// The fields of one JSON object, each kept as raw JSON text until it is read.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The JSON type of a raw value, by its first character.
fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'-' | b'0'..=b'9') => "number",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'[') => "array",
        _ => "object",
    }
}

/// Reads the fields of one JSON object, collecting a `FieldError` for each problem.
///
/// `index` is set for the items of a batch, so their errors say which item they are about.
pub struct ObjectReader<'a, 'e> {
    fields: Vec<(String, Option<&'a RawValue>)>,
    index: Option<usize>,
    errors: &'e mut Vec<FieldError>,
}

impl<'a, 'e> ObjectReader<'a, 'e> {
    /// Opens `raw` as an object, or records that it is not one (naming it `what`).
    pub fn open(
        raw: &'a RawValue,
        index: Option<usize>,
        what: &'static str,
        errors: &'e mut Vec<FieldError>,
    ) -> Option<Self> {
        match serde_json::from_str::<RawObject<'a>>(raw.get()) {
            Ok(RawObject(fields)) => {
                let mut seen = std::collections::HashSet::new();
                let mut unique = Vec::with_capacity(fields.len());
                for (name, value) in fields {
                    if seen.insert(name.clone()) {
                        unique.push((name, Some(value)));
                    } else {
                        errors.push(FieldError::new(name, "appears more than once").at(index));
                    }
                }
                Some(Self {
                    fields: unique,
                    index,
                    errors,
                })
            }
            Err(_) => {
                errors.push(FieldError::new(what, "must be a JSON object").at(index));
                None
            }
        }
    }

    /// Takes the raw value of a field, recording "is required" when it is absent.
    fn take(&mut self, name: &'static str) -> Option<&'a RawValue> {
        let value = self
            .fields
            .iter_mut()
            .find(|(field, _)| field == name)
            .and_then(|(_, value)| value.take());
        if value.is_none() {
            self.fail(name, "is required");
        }
        value
    }

    /// Whether the object has `name` (not yet read). Optional fields are read only when present.
    pub fn has(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|(field, value)| field == name && value.is_some())
    }

    /// Records a problem with `field`.
    pub fn fail(
        &mut self,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) {
        self.errors
            .push(FieldError::new(field, message).at(self.index));
    }

    /// Checks that `raw` is of JSON type `kind`, recording the mismatch.
    fn expect_kind(&mut self, name: &'static str, raw: &RawValue, kind: &'static str) -> bool {
        match json_kind(raw) {
            found if found == kind => true,
            "null" => {
                self.fail(name, format!("must be a {kind}, not null"));
                false
            }
            _ => {
                self.fail(name, format!("must be a {kind}"));
                false
            }
        }
    }

    /// A required string field, checked by `rule`.
    pub fn text<T>(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let raw = self.take(name)?;
        if !self.expect_kind(name, raw, "string") {
            return None;
        }
        let text: Cow<'_, str> = serde_json::from_str(raw.get()).ok()?;
        rule(&text).map_err(|why| self.fail(name, why)).ok()
    }

    /// A required integer field (no fraction, no exponent), checked by `rule`. An integer too
    /// large for 64 bits is passed to `rule` as the nearest 64-bit bound, so it gets the rule's
    /// message.
    pub fn integer<T>(
        &mut self,
        name: &'static str,
        rule: fn(i64) -> Result<T, &'static str>,
    ) -> Option<T> {
        let raw = self.take(name)?;
        if !self.expect_kind(name, raw, "number") {
            return None;
        }
        let text = raw.get().trim();
        if text.contains(['.', 'e', 'E']) {
            self.fail(name, "must be an integer");
            return None;
        }
        let value = text.parse::<i64>().unwrap_or(if text.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        rule(value).map_err(|why| self.fail(name, why)).ok()
    }

    /// A required number field, given to `rule` as its exact JSON text.
    pub fn number<T>(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let raw = self.take(name)?;
        if !self.expect_kind(name, raw, "number") {
            return None;
        }
        rule(raw.get().trim())
            .map_err(|why| self.fail(name, why))
            .ok()
    }

    /// A required boolean field.
    pub fn boolean(&mut self, name: &'static str) -> Option<bool> {
        let raw = self.take(name)?;
        if !self.expect_kind(name, raw, "boolean") {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }

    /// A required array of strings, each checked by `rule`; a bad element is reported as
    /// `name[i]`.
    pub fn text_list<T>(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<T, &'static str>,
    ) -> Option<Vec<T>> {
        let elements = self.array(name)?;
        let mut values = Vec::with_capacity(elements.len());
        let mut all_valid = true;
        for (i, raw) in elements.into_iter().enumerate() {
            let element = format!("{name}[{i}]");
            let checked = match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
                Ok(text) => rule(&text),
                Err(_) => Err("must be a string"),
            };
            match checked {
                Ok(value) => values.push(value),
                Err(why) => {
                    self.fail(element, why);
                    all_valid = false;
                }
            }
        }
        all_valid.then_some(values)
    }

    /// A required array field, as the raw text of its elements.
    pub fn array(&mut self, name: &'static str) -> Option<Vec<&'a RawValue>> {
        let raw = self.take(name)?;
        if !self.expect_kind(name, raw, "array") {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }

    /// The collected errors, for reading nested objects (batch items) into the same list.
    pub fn errors(&mut self) -> &mut Vec<FieldError> {
        self.errors
    }

    /// Records every field that no reader asked for.
    pub fn finish(self) {
        for (name, value) in self.fields {
            if value.is_some() {
                self.errors
                    .push(FieldError::new(name, "is not a known field").at(self.index));
            }
        }
    }
}

/// Most items one batch request may carry (SPEC §5).
pub const MAX_BATCH_ITEMS: usize = 1000;

/// A batch body `{"items": [...]}`, each item read like a single body; a problem of item `i`
/// is reported with `"index": i`. Also the shape of a batch's answer.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Batch<T> {
    pub items: Vec<T>,
}

impl<T: FromJsonObject> FromJsonObject for Batch<T> {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let raw_items = o.array("items")?;
        if !(1..=MAX_BATCH_ITEMS).contains(&raw_items.len()) {
            o.fail("items", format!("must hold 1 to {MAX_BATCH_ITEMS} items"));
            return None;
        }
        let mut items = Vec::with_capacity(raw_items.len());
        let mut all_valid = true;
        for (index, raw) in raw_items.into_iter().enumerate() {
            let item =
                ObjectReader::open(raw, Some(index), "items", o.errors()).and_then(|mut reader| {
                    let item = T::read(&mut reader);
                    reader.finish();
                    item
                });
            match item {
                Some(item) => items.push(item),
                None => all_valid = false,
            }
        }
        all_valid.then_some(Self { items })
    }
}

/// Refuses a batch that names one key twice: which of the two should win is anyone's guess.
pub fn reject_repeated_keys<K: std::hash::Hash + Eq>(
    keys: impl Iterator<Item = K>,
    key_names: &'static str,
) -> Result<(), ApiError> {
    let mut first_seen = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for (index, key) in keys.enumerate() {
        if let Some(first) = first_seen.get(&key) {
            errors.push(
                FieldError::new(
                    "items",
                    format!("repeats the ({key_names}) of item {first}"),
                )
                .at(Some(index)),
            );
        } else {
            first_seen.insert(key, index);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The `{id}` of a resource path: a positive 64-bit integer, else 422.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid("id", "must be a positive integer"))?;
        match text.parse::<i64>() {
            Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(id)),
            _ => Err(ApiError::invalid("id", "must be a positive integer")),
        }
    }
}

/// The query string of a list request, read parameter by parameter like a JSON body:
/// every bad or unknown parameter is reported at once.
pub struct QueryReader {
    params: Vec<(String, Option<String>)>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        let mut errors = Vec::new();
        let mut params: Vec<(String, Option<String>)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.iter().any(|(seen, _)| *seen == name) {
                errors.push(FieldError::new(name, "is given more than once"));
            } else {
                params.push((name, Some(value)));
            }
        }
        Ok(Self { params, errors })
    }
}

impl QueryReader {
    fn take(&mut self, name: &'static str) -> Option<String> {
        self.params
            .iter_mut()
            .find(|(param, _)| param == name)
            .and_then(|(_, v)| v.take())
    }

    /// An optional filter, checked by `rule` when present.
    pub fn filter<T>(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let text = self.take(name)?;
        rule(&text)
            .map_err(|why| self.errors.push(FieldError::new(name, why)))
            .ok()
    }

    /// `page` (≥ 1, default 1) and `size` (1–100, default 20).
    pub fn page(&mut self) -> PageRequest {
        let mut page = PageRequest::default();
        if let Some(text) = self.take("page") {
            match text.parse::<u32>() {
                Ok(n @ 1..=PageRequest::MAX_PAGE) => page.page = n,
                _ => self.errors.push(FieldError::new(
                    "page",
                    format!("must be an integer from 1 to {}", PageRequest::MAX_PAGE),
                )),
            }
        }
        if let Some(text) = self.take("size") {
            match text.parse::<u32>() {
                Ok(n @ 1..=PageRequest::MAX_SIZE) => page.size = n,
                _ => self.errors.push(FieldError::new(
                    "size",
                    format!("must be an integer from 1 to {}", PageRequest::MAX_SIZE),
                )),
            }
        }
        page
    }

    /// Fails with every problem found, including parameters nobody asked for.
    pub fn finish(mut self) -> Result<(), ApiError> {
        for (name, value) in self.params {
            if value.is_some() {
                self.errors
                    .push(FieldError::new(name, "is not a known parameter"));
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
