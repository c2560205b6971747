//! `ObjectReader`: reads one JSON object field by field, collecting every problem.
//!
//! Bodies are not deserialised straight into structs: serde stops at the first problem, and a
//! client fixing a request wants *every* problem of it in one 422. Instead the object is split
//! into its fields (kept as raw JSON text), and a `FromJsonObject` type asks the reader for each
//! field in turn; the reader checks presence, JSON type and the field's rule, records a
//! `FieldError` for each failure, and finally reports fields nobody asked for.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{FieldError, Problems};

/// A request body type read field by field from a JSON object.
pub trait FromJsonObject: Sized {
    /// Reads every field it knows from `object`, returning `None` when any of them was bad
    /// (the reader holds the reasons).
    fn read(object: &mut ObjectReader<'_, '_>) -> Option<Self>;
}

/// Reads `raw` as a `T`: opens it as an object (naming it `what` if it is not one), lets `T`
/// read its fields, then reports the fields left over. Problems go to `errors`.
pub fn read_object<T: FromJsonObject>(
    raw: &RawValue,
    index: Option<usize>,
    what: &'static str,
    errors: &mut Problems,
) -> Option<T> {
    let mut object = ObjectReader::open(raw, index, what, errors)?;
    let value = T::read(&mut object);
    object.finish();
    value
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
    errors: &'e mut Problems,
}

impl<'a, 'e> ObjectReader<'a, 'e> {
    /// Opens `raw` as an object, or records that it is not one (naming it `what`).
    pub fn open(
        raw: &'a RawValue,
        index: Option<usize>,
        what: &'static str,
        errors: &'e mut Problems,
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

    /// Records a problem with element `i` of the array `name` (`name[i]`); the field name is
    /// formatted only if the problem is to be listed.
    pub fn fail_element(&mut self, name: &'static str, i: usize, message: &'static str) {
        let index = self.index;
        self.errors
            .push_with(|| FieldError::new(format!("{name}[{i}]"), message).at(index));
    }

    /// Checks that `raw` is of JSON type `kind`, recording the mismatch.
    fn expect_kind(&mut self, name: &'static str, raw: &RawValue, kind: &'static str) -> bool {
        let found = json_kind(raw);
        if found == kind {
            return true;
        }
        let message = match (kind, found) {
            ("string", "null") => "must be a string, not null",
            ("number", "null") => "must be a number, not null",
            ("boolean", "null") => "must be a boolean, not null",
            ("array", "null") => "must be a array, not null",
            ("string", _) => "must be a string",
            ("number", _) => "must be a number",
            ("boolean", _) => "must be a boolean",
            _ => "must be a array",
        };
        self.fail(name, message);
        false
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

    /// An optional string field: `Some(None)` when absent, `None` when present but invalid (the
    /// problem is recorded).
    pub fn optional_text<T>(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<T, &'static str>,
    ) -> Option<Option<T>> {
        if self.has(name) {
            self.text(name, rule).map(Some)
        } else {
            Some(None)
        }
    }

    /// An optional integer field: `Some(None)` when absent, `None` when present but invalid.
    pub fn optional_integer<T>(
        &mut self,
        name: &'static str,
        rule: fn(i64) -> Result<T, &'static str>,
    ) -> Option<Option<T>> {
        if self.has(name) {
            self.integer(name, rule).map(Some)
        } else {
            Some(None)
        }
    }

    /// A required integer field that may be `null`: `Some(None)` for null, `None` when absent
    /// or invalid.
    pub fn nullable_integer<T>(
        &mut self,
        name: &'static str,
        rule: fn(i64) -> Result<T, &'static str>,
    ) -> Option<Option<T>> {
        let is_null = self
            .fields
            .iter()
            .any(|(field, value)| field == name && value.is_some_and(|v| json_kind(v) == "null"));
        if is_null {
            self.take(name);
            return Some(None);
        }
        self.integer(name, rule).map(Some)
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
            let checked = match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
                Ok(text) => rule(&text),
                Err(_) => Err("must be a string"),
            };
            match checked {
                Ok(value) => values.push(value),
                Err(why) => {
                    self.fail_element(name, i, why);
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
    pub fn errors(&mut self) -> &mut Problems {
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

#[cfg(test)]
mod tests;
