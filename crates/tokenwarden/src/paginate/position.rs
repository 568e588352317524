//! Where a paged listing stands: enough for another process to continue it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One page of a listing, as the `*_pages` streams hand it out: its items, and where the listing
/// continues after it.
///
/// Record `next` once the items are safely stored; a later run that starts from it (with
/// [`numbered_pages`](crate::paginate::numbered_pages) and its siblings) gets every following
/// item exactly once.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The page's items, in the API's order (none for the page that only announces a submitted
    /// analytics job).
    pub items: Vec<Value>,
    /// Where the listing continues; `None` once this was the last page.
    pub next: Option<Position>,
}

/// A resumable position in a listing. It serialises to a small JSON object (`{"kind": "url",
/// "url": ...}`, `{"kind": "page_number", "page_number": 7}`, `{"kind": "job", "job_id": ...,
/// "cursor": ...}`) meant to be stored between runs.
///
/// Which position fits which stream:
///
/// | stream | position |
/// |---|---|
/// | [`numbered_pages`](crate::paginate::numbered_pages) | `Url` (the next page's URL), or a `PageNumber` you choose |
/// | [`cursor_pages`](crate::paginate::cursor_pages) | `Url` (the next page's URL, cursor included) |
/// | [`query_pages`](crate::paginate::query_pages) | `PageNumber` |
/// | [`analytics_job_pages`](crate::paginate::analytics_job_pages) | `Job` |
///
/// A position is only as durable as what the API remembers: page numbers shift if the listing
/// changes between runs, cursors and analytics jobs expire on the server (a job's results are
/// kept for days, not forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Position {
    /// The URL of the next page of a `GET` listing (page-number or cursor style). It must be on
    /// the API's origin.
    Url {
        /// Absolute URL, or a path relative to the API base.
        url: String,
    },
    /// The next page number of a page-number listing or of a `POST` query.
    PageNumber {
        /// 1-based.
        page_number: u64,
    },
    /// An asynchronous analytics job: its id, and the cursor of the next results page (`None`:
    /// the job was submitted and no results page was read yet).
    Job {
        /// The `jobId` the API gave.
        job_id: String,
        /// The `cursor` of the next results page.
        cursor: Option<String>,
    },
}

impl Position {
    /// A short description for messages: `page 7`, `job 3f2a… (results page after cursor …)`.
    pub fn describe(&self) -> String {
        match self {
            Position::Url { url } => format!("page {}", crate::error::excerpt(url, 120)),
            Position::PageNumber { page_number } => format!("page number {page_number}"),
            Position::Job {
                job_id,
                cursor: None,
            } => format!("job {}", crate::error::excerpt(job_id, 64)),
            Position::Job {
                job_id,
                cursor: Some(_),
            } => format!(
                "job {} (part-way through its results)",
                crate::error::excerpt(job_id, 64)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_serialise_to_small_tagged_objects() {
        let cases = [
            (
                Position::Url {
                    url: "/api/v2/users?pageNumber=3".into(),
                },
                json!({"kind": "url", "url": "/api/v2/users?pageNumber=3"}),
            ),
            (
                Position::PageNumber { page_number: 7 },
                json!({"kind": "page_number", "page_number": 7}),
            ),
            (
                Position::Job {
                    job_id: "j1".into(),
                    cursor: None,
                },
                json!({"kind": "job", "job_id": "j1", "cursor": null}),
            ),
        ];
        for (p, j) in cases {
            assert_eq!(serde_json::to_value(&p).unwrap(), j);
            assert_eq!(serde_json::from_value::<Position>(j).unwrap(), p);
        }
        assert!(serde_json::from_value::<Position>(json!({"kind": "other"})).is_err());
    }
}
