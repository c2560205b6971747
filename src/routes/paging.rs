//! Paging of list endpoints: `Page` (one page of rows with its `PageMeta`) in responses, and
//! `PageParams`, the documentation of the `page` and `size` query parameters (which
//! `crate::extract::QueryReader::page` reads and checks), and `SyncParams`, that of
//! incremental sync's `updated_since` and `cursor` (`QueryReader::sync`; docs/sync.md).

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{PageRequest, SyncPosition, Timestamp};
use crate::store::{Listed, Synced};

/// One page of a list, with the numbers a client needs to page through it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub meta: PageMeta,
}

/// Where a page is. Incremental-sync pages (`updated_since` or `cursor`) are not numbered or
/// counted: they have `size`, `has_next` and `next_cursor` only.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageMeta {
    /// Rows that match in all (not on sync pages).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 42)]
    pub total: Option<u64>,
    /// Not on sync pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1)]
    pub page: Option<u32>,
    #[schema(example = 20)]
    pub size: u32,
    /// Not on sync pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    pub pages: Option<u64>,
    /// Whether another page follows (on a sync page: now; more may come later).
    pub has_next: bool,
    /// Not on sync pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_prev: Option<bool>,
    /// Only with `updated_since` or `cursor` (incremental sync): the `cursor` of the next page,
    /// and, on the last page, of the next poll (docs/sync.md). Opaque.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "czEuMTc5NTc3NjIwMDEyMzQ1Ni40Mg")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(listed: Listed<T>, request: PageRequest) -> Self {
        let pages = listed.total.div_ceil(u64::from(request.size));
        Self {
            items: listed.items,
            meta: PageMeta {
                total: Some(listed.total),
                page: Some(request.page),
                size: request.size,
                pages: Some(pages),
                has_next: u64::from(request.page) < pages,
                has_prev: Some(request.page > 1),
                next_cursor: None,
            },
        }
    }

    /// A page of incremental sync: the rows after `after`, and the cursor that continues after
    /// its last row (or, when it is empty, from `after` again). `position` gives a row's
    /// (`update_time`, `id`).
    pub fn synced(
        synced: Synced<T>,
        after: SyncPosition,
        size: u32,
        position: fn(&T) -> (Timestamp, i64),
    ) -> Self {
        let next = synced.items.last().map_or(after, |row| {
            let (time, id) = position(row);
            SyncPosition::after(time, id)
        });
        Self {
            items: synced.items,
            meta: PageMeta {
                total: None,
                page: None,
                size,
                pages: None,
                has_next: synced.has_next,
                has_prev: None,
                next_cursor: Some(next.to_cursor()),
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

/// The incremental-sync parameters of the inventory and sales-target lists (documentation;
/// `QueryReader::sync` reads them). With either, rows come in (`update_time`, `id`) order
/// and `meta.next_cursor` is set; `page` may not be given (docs/sync.md).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// Only rows updated at or after this time (RFC 3339 with a zone), in the order of sync.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-21T10:30:00Z")]
    pub updated_since: Option<String>,
    /// The `meta.next_cursor` of the previous page, to continue from it (not with
    /// `updated_since`).
    pub cursor: Option<String>,
}
