//! `QueryReader`: the query string of a list request, read parameter by parameter like a JSON
//! body (`object/`), so that every bad, repeated or unknown parameter is reported at once.

use std::collections::HashSet;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::domain::{PageRequest, SyncPosition, Timestamp};
use crate::error::{ApiError, FieldError, Problems};

/// The query string of a list request, read parameter by parameter like a JSON body:
/// every bad or unknown parameter is reported at once.
pub struct QueryReader {
    params: Vec<(String, Option<String>)>,
    errors: Problems,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        let mut errors = Problems::new();
        let mut seen = HashSet::with_capacity(pairs.len());
        let mut params: Vec<(String, Option<String>)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if seen.insert(name.clone()) {
                params.push((name, Some(value)));
            } else {
                errors.push(FieldError::new(name, "is given more than once"));
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

    /// Records a problem found across parameters (e.g. a range whose ends are out of order).
    pub fn fail(&mut self, problem: FieldError) {
        self.errors.push(problem);
    }

    /// Incremental sync (docs/sync.md): where the page starts, from `updated_since` (an RFC 3339
    /// time: rows updated then or later) or `cursor` (a `next_cursor`), or `None` for an
    /// ordinary list. The two exclude each other, and sync pages take no `page`. Call before
    /// `page`.
    pub fn sync(&mut self) -> Option<SyncPosition> {
        let since = self
            .filter("updated_since", Timestamp::parse_rfc3339)
            .map(SyncPosition::since);
        let cursor = self.filter("cursor", SyncPosition::parse_cursor);
        let position = match (since, cursor) {
            (Some(_), Some(_)) => {
                self.errors.push(FieldError::new(
                    "cursor",
                    "cannot be combined with updated_since: the cursor already says where to go on",
                ));
                return None;
            }
            (since, cursor) => since.or(cursor)?,
        };
        let paged = self
            .params
            .iter()
            .any(|(name, value)| name == "page" && value.is_some());
        if paged {
            self.errors.push(FieldError::new(
                "page",
                "cannot be combined with updated_since or cursor: follow meta.next_cursor",
            ));
        }
        Some(position)
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
