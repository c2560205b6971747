//! `QueryReader`: the query string of a list request, read parameter by parameter like a JSON
//! body (`object/`), so that every bad, repeated or unknown parameter is reported at once.

use std::collections::HashSet;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::domain::PageRequest;
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
