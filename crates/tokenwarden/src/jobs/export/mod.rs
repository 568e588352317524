//! Exports that survive the night: every item of a listing, or every conversation of an analytics
//! interval, written to a file as JSON Lines or CSV, resumable after a kill at any instant with no
//! item missing and none twice.
//!
//! # How a file export records its position
//!
//! After each page, once its items are in the data file, the state sidecar `OUT.twstate` is
//! replaced (atomically) with the data file's good length, the item count and the listing's
//! [`Position`] after the page (a page URL, a page number, an analytics job id and results cursor,
//! the interval slice under way), plus the export's definition (source, API base, format). A
//! resume ([`Mode::Resume`]) refuses a state whose definition differs, cuts the data file back to
//! the recorded length (dropping the items of a page that was being written when the run was
//! killed) and continues from the recorded position. The state stays after success, marked
//! complete, so a resume of a finished export does nothing.
//!
//! Every file is created 0600; the data file is locked for the whole run (a second run on the same
//! output is refused); a state file or output that is a symbolic link, belongs to another user or
//! is writable by others is not trusted.
//!
//! # Conversation exports in slices
//!
//! [`Source::Conversations`] cuts the interval into slices (at most [`MAX_SLICE`] each: the API's
//! own limit for one query) and runs one asynchronous analytics job per slice, submitting the next
//! slice's job while the current one's results are read. The job id is recorded as soon as the job
//! is submitted, so a resume attaches to the same job instead of submitting another; if the API no
//! longer has it (jobs expire), that slice alone is run again. A job includes every conversation
//! whose lifetime overlaps its slice, so a conversation that crosses a slice boundary is kept only
//! in the slice its `conversationStart` falls in (clamped to the interval): the union of the slices
//! is then exactly the whole interval's result.
//!
//! # CSV
//!
//! See [`MAX_CSV_COLUMNS`]: the header is the union of the items' flattened keys, so the items are
//! spooled as JSON Lines (`OUT.twspool`, or an anonymous temporary file for a stream) and the CSV is
//! written at the end, atomically replacing `OUT`.
//!
//! # Secrets
//!
//! Each item is scrubbed ([`redact_json`](crate::redact::redact_json): its strings and keys as decoded
//! text, then the serialised line) before it is written: a server that echoes the bearer token in
//! an item, even spelled with JSON escapes, does not put it in the output.

mod csv;
mod journal;
mod options;
mod report;
mod sink;
mod slices;

pub use self::csv::MAX_CSV_COLUMNS;
/// The export engine's error, now the one error of both engines.
#[deprecated(note = "use `jobs::JobError`, the error of both engines")]
pub type ExportError = crate::jobs::JobError;
pub use journal::resumable_after_stop;
pub use options::{Destination, ExportOptions, Format, Mode, Source};
pub use report::{Event, Report};

use crate::client::ApiClient;
use crate::jobs::{JobError, Refusal, RunReport};
use crate::paginate::{MAX_SLICE, Page, Position, cursor_pages, numbered_pages, query_pages};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use journal::{Found, Paths, Phase, State};
use serde_json::Value;
use sink::Sink;
use slices::{JobRun, conversations};

/// Runs an export of `source` to `destination` (see the module docs), calling `on_event` as it
/// goes.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::jobs::JobError> {
/// use tokenwarden::jobs::export::{self, Destination, ExportOptions, Format, Mode, Source};
/// let source = Source::Pages { path: "/api/v2/users?pageSize=100".into() };
/// let report = export::run(
///     &client,
///     source,
///     Destination::File("users.jsonl".into()),
///     ExportOptions::new(Format::Jsonl, Mode::Resume), // continue if killed before
///     |_event| {},
/// )
/// .await?;
/// println!("{} users", report.items);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`JobError::Api`] when the API fails after retries (the output keeps every complete page and
/// its position: a resume continues there); [`JobError::Refused`] when the output cannot be used
/// as asked (nothing changed); [`JobError::NoDirectory`]; [`JobError::Io`] when a local file
/// cannot be read or written.
pub async fn run(
    client: &ApiClient,
    source: Source,
    destination: Destination,
    options: ExportOptions,
    on_event: impl FnMut(Event),
) -> Result<Report, JobError> {
    let started = tokio::time::Instant::now();
    let mut report = export(client, source, destination, options, on_event).await?;
    report.run.done_earlier = report.items.saturating_sub(report.run.done);
    report.run.elapsed = started.elapsed();
    Ok(report)
}

async fn export(
    client: &ApiClient,
    source: Source,
    destination: Destination,
    options: ExportOptions,
    mut on_event: impl FnMut(Event),
) -> Result<Report, JobError> {
    if let Source::Conversations { slice, .. } = &source
        && (slice.is_zero() || *slice > MAX_SLICE)
    {
        let out = match &destination {
            Destination::File(out) => out.as_path(),
            Destination::Stream(_) => std::path::Path::new("-"),
        };
        return Err(refuse(out, Refusal::SliceLength(*slice)));
    }
    let definition = definition(&source, client, options.format);
    let mut sink = match destination {
        Destination::Stream(w) => Sink::stream(w, options, definition)?,
        Destination::File(out) => {
            let paths = Paths::new(&out, options.format == Format::Csv);
            match journal::open(&paths, options.mode, definition)? {
                Found::Complete(state, _claim) => {
                    if paths.data != paths.out {
                        // Left by a run stopped between writing the CSV and removing its spool.
                        let _ = std::fs::remove_file(&paths.data);
                    }
                    return Ok(Report {
                        run: RunReport {
                            resumed: true,
                            ..RunReport::default()
                        },
                        items: state.items,
                        already_complete: true,
                        ..Report::default()
                    });
                }
                Found::Ready(opened) => Sink::file(paths, opened, options),
            }
        }
    };
    if sink.report.run.resumed {
        on_event(Event::Resumed {
            items: sink.state.items,
            cut_bytes: sink.report.run.cut_bytes,
            from: describe(&sink.state),
        });
    }
    if sink.state.phase == Phase::Fetching {
        let fetched = fetch(client, &source, &mut sink, &mut on_event).await;
        if let Err(e) = fetched {
            sink.discard_if_empty();
            return Err(e);
        }
    }
    sink.finish(&mut on_event)
}

/// Reads every page of `source` from the recorded position into `sink`.
async fn fetch(
    client: &ApiClient,
    source: &Source,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), JobError> {
    let from = sink.state.position.clone();
    let pages = match source {
        Source::Pages { path } => numbered_pages(client, path, from).boxed(),
        Source::Cursor { path } => cursor_pages(client, path, from).boxed(),
        Source::Query { path, body } => query_pages(client, path, body.clone(), from).boxed(),
        Source::Conversations {
            jobs_path,
            interval,
            slice,
            filter,
            options,
        } => {
            let job = JobRun {
                client,
                jobs_path,
                filter,
                options,
            };
            return conversations(&job, interval, *slice, sink, on_event).await;
        }
    };
    read_listing(pages, sink, on_event).await
}

/// The export's refusal of `path`, in its words.
fn refuse(path: impl Into<std::path::PathBuf>, reason: Refusal) -> JobError {
    JobError::refused(crate::jobs::ownership::Writer::Export, path, reason)
}

/// What an export was asked to do (its `Identity`: the source, the API base, the format),
/// recorded with its state as its definition: a resume of another one is refused.
fn definition(source: &Source, client: &ApiClient, format: Format) -> Value {
    source
        .identity()
        .with("api_base", client.api_base().as_str())
        .with("format", format.name())
        .to_value()
}

fn describe(state: &State) -> String {
    let at = state
        .position
        .as_ref()
        .map_or_else(|| "the start".to_string(), Position::describe);
    match &state.slice {
        Some(s) => format!("slice {} at {at}", s.index + 1),
        None if state.phase == Phase::Fetching => at,
        None => "the end (writing the output)".into(),
    }
}

async fn read_listing(
    mut pages: BoxStream<'static, crate::error::Result<Page>>,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), JobError> {
    while let Some(page) = pages.try_next().await? {
        sink.write_items(&page.items)?;
        if page.next.is_none() {
            sink.state.phase = Phase::Fetched;
        }
        sink.state.position = page.next;
        sink.page_done()?;
        on_event(sink.page_event());
    }
    // A listing always ends with a page that has no next one; this only guards an empty stream.
    sink.state.phase = Phase::Fetched;
    sink.save()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paginate::JobOptions;
    use serde_json::json;
    use std::time::Duration;

    /// The definition each source records in its state file, for fixed inputs: the bytes a
    /// resume compares, pinned as the first layout wrote them (a state file on disk keeps
    /// resuming only while these stay the same).
    #[tokio::test]
    async fn the_recorded_definition_is_pinned() {
        let tokens =
            crate::TokenManager::builder(crate::StaticToken::new(crate::AccessToken::new("t")))
                .build();
        let client = ApiClient::builder("https://API.example.com:443/base", tokens)
            .build()
            .unwrap();
        let sources = [
            Source::Pages {
                path: "/api/v2/users?pageSize=100".into(),
            },
            Source::Cursor {
                path: "/api/v2/externalcontacts/scan/contacts?limit=200".into(),
            },
            Source::Query {
                path: "/api/v2/analytics/conversations/details/query".into(),
                body: json!({"interval": "2024-01-01/P1D", "paging": {"pageSize": 100}}),
            },
            Source::Conversations {
                jobs_path: "/api/v2/analytics/conversations/details/jobs".into(),
                interval: "2024-01-01/P7D".parse().unwrap(),
                slice: Duration::from_secs(86_400),
                filter: json!({"order": "asc"}),
                options: JobOptions::default(),
            },
        ];
        let got: Vec<String> = sources
            .iter()
            .zip([Format::Jsonl, Format::Csv, Format::Jsonl, Format::Csv])
            .map(|(s, f)| serde_json::to_string(&definition(s, &client, f)).unwrap())
            .collect();
        assert_eq!(got, PINNED);
    }

    const PINNED: [&str; 4] = [
        r#"{"api_base":"https://api.example.com/base","format":"jsonl","path":"/api/v2/users?pageSize=100","source":"page-number listing"}"#,
        r#"{"api_base":"https://api.example.com/base","format":"csv","path":"/api/v2/externalcontacts/scan/contacts?limit=200","source":"cursor listing"}"#,
        r#"{"api_base":"https://api.example.com/base","body":{"interval":"2024-01-01/P1D","paging":{"pageSize":100}},"format":"jsonl","path":"/api/v2/analytics/conversations/details/query","source":"query"}"#,
        r#"{"api_base":"https://api.example.com/base","filter":{"order":"asc"},"format":"csv","interval":"2024-01-01T00:00:00.000Z/2024-01-08T00:00:00.000Z","page_size":500,"path":"/api/v2/analytics/conversations/details/jobs","slice_seconds":86400.0,"source":"conversation jobs"}"#,
    ];
}
