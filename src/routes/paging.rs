//! Paging of list endpoints: `Page` (one page of rows with its `PageMeta`) in responses, and
//! `PageParams`, the documentation of the `page` and `size` query parameters (which
//! `crate::extract::QueryReader::page` reads and checks).

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::PageRequest;
use crate::store::Listed;

/// One page of a list, with the numbers a client needs to page through it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub meta: PageMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageMeta {
    #[schema(example = 42)]
    pub total: u64,
    #[schema(example = 1)]
    pub page: u32,
    #[schema(example = 20)]
    pub size: u32,
    #[schema(example = 3)]
    pub pages: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

impl<T> Page<T> {
    pub fn new(listed: Listed<T>, request: PageRequest) -> Self {
        let pages = listed.total.div_ceil(u64::from(request.size));
        Self {
            items: listed.items,
            meta: PageMeta {
                total: listed.total,
                page: request.page,
                size: request.size,
                pages,
                has_next: u64::from(request.page) < pages,
                has_prev: request.page > 1,
            },
        }
    }
}

/// The paging parameters every list takes (documentation; `QueryReader::page` reads them).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    pub page: Option<u32>,
    /// Rows per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub size: Option<u32>,
}
