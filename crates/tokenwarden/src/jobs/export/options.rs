//! What an export is asked to do: its [`Source`], its [`Destination`] and how it writes
//! ([`ExportOptions`]: the [`Format`], the [`Mode`] for an existing output).

use crate::jobs::identity::Identity;
use crate::paginate::{Interval, JobOptions};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// What to export.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Source {
    /// A page-number listing such as `/api/v2/users?pageSize=100` (see
    /// [`numbered_pages`](crate::paginate::numbered_pages)).
    Pages {
        /// Path (query parameters allowed).
        path: String,
    },
    /// A cursor listing such as `/api/v2/externalcontacts/scan/contacts?limit=200` (see
    /// [`cursor_pages`](crate::paginate::cursor_pages)).
    Cursor {
        /// Path (query parameters allowed).
        path: String,
    },
    /// A `POST` query paged in its body, such as the analytics details query (see
    /// [`query_pages`](crate::paginate::query_pages)).
    Query {
        /// Path of the query endpoint.
        path: String,
        /// The query.
        body: Value,
    },
    /// Every conversation of `interval`, through one asynchronous analytics job per slice (see the
    /// module docs).
    Conversations {
        /// The jobs endpoint, e.g. `/api/v2/analytics/conversations/details/jobs`.
        jobs_path: String,
        /// The whole interval.
        interval: Interval,
        /// Longest slice, at most [`MAX_SLICE`](crate::paginate::MAX_SLICE).
        slice: Duration,
        /// Other job body fields (filters, order); `interval` is set per slice.
        filter: Value,
        /// Polling and results page size.
        options: JobOptions,
    },
}

impl Source {
    /// What this source is, for the export's [`Identity`]: its kind and what it reads.
    pub(super) fn identity(&self) -> Identity {
        let what = Identity::new();
        match self {
            Source::Pages { path } => what
                .with("source", "page-number listing")
                .with("path", path),
            Source::Cursor { path } => what.with("source", "cursor listing").with("path", path),
            Source::Query { path, body } => what
                .with("source", "query")
                .with("path", path)
                .with("body", body),
            Source::Conversations {
                jobs_path,
                interval,
                slice,
                filter,
                options,
            } => what
                .with("source", "conversation jobs")
                .with("path", jobs_path)
                .with("interval", interval.to_string())
                .with("slice_seconds", slice.as_secs_f64())
                .with("filter", filter)
                .with("page_size", options.page_size),
        }
    }
}

/// How the items are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// CSV with a header (see the module docs).
    Csv,
}

impl Format {
    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

pub use crate::jobs::Mode;

/// Where the items go.
pub enum Destination {
    /// A file, with its position recorded beside it: resumable.
    File(PathBuf),
    /// A stream such as stdout: not resumable. JSON Lines are flushed after each page.
    Stream(Box<dyn Write + Send>),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::File(p) => f.debug_tuple("File").field(p).finish(),
            Destination::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// How the export runs.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Output format.
    pub format: Format,
    /// What to do with an existing output.
    pub mode: Mode,
    /// The output is a terminal: control characters in CSV cells are shown escaped.
    pub terminal: bool,
}

impl ExportOptions {
    /// Options with `format` and `mode`.
    pub fn new(format: Format, mode: Mode) -> Self {
        Self {
            format,
            mode,
            terminal: false,
        }
    }

    /// Marks the destination as a terminal.
    pub fn terminal(mut self, yes: bool) -> Self {
        self.terminal = yes;
        self
    }
}
