//! Request extractors that reject with `ApiError`, so that every bad input gets the envelope
//! and every problem of a request is reported in one 422, not just the first.
//!
//! Reading order:
//!
//! 1. [`json`]: `ValidJson<T>`, the body extractor: content type, size, well-formed JSON.
//! 2. [`object`]: `ObjectReader`, which reads a JSON object field by field for a
//!    `FromJsonObject` type, collecting a `FieldError` per problem.
//! 3. [`batch`]: `Batch<T>`, `{"items": [...]}` of such objects, each item's errors carrying
//!    its index; `reject_repeated_keys` for batches that name one row twice.
//! 4. [`query`]: `QueryReader`, the same approach for the filters and paging of list requests.
//! 5. [`path`]: `IdPath`, the `{id}` of a resource path.
//! 6. [`precondition`]: `Precondition` (defined in `crate::domain`) from `If-Match` and
//!    `If-None-Match`; `refuse_precondition` where they do not apply.

mod batch;
mod json;
mod object;
mod path;
mod precondition;
mod query;

pub use crate::domain::Precondition;
pub use batch::{reject_repeated_keys, Batch, MAX_BATCH_ITEMS};
pub use json::{OptionalJson, ValidJson};
pub use object::{read_object, FromJsonObject, ObjectReader};
pub use path::IdPath;
pub use precondition::refuse_precondition;
pub use query::QueryReader;
