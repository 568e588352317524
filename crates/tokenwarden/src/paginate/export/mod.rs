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
mod error;
mod journal;

pub use self::csv::MAX_CSV_COLUMNS;
pub use error::ExportError;
pub use journal::resumable_after_stop;

use super::analytics::{delete, results, submit, wait_for};
use super::{
    Interval, JobOptions, MAX_SLICE, Page, Position, cursor_pages, numbered_pages, query_pages,
};
use crate::client::ApiClient;
use crate::error::Error;
use crate::ownership;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use journal::{Found, Paths, Phase, SliceState, Start, State, Want};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};
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
        /// Longest slice, at most [`MAX_SLICE`].
        slice: Duration,
        /// Other job body fields (filters, order); `interval` is set per slice.
        filter: Value,
        /// Polling and results page size.
        options: JobOptions,
    },
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
    fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// What to do when the output file exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse ([`ExportError::Refused`]) if the output or its state exists.
    #[default]
    New,
    /// Start over, replacing the output.
    Overwrite,
    /// Continue the export recorded beside the output (start one if there is none and no output).
    Resume,
}

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

/// What happens during an export, for progress messages.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An earlier run is continued.
    Resumed {
        /// Items already in the output.
        items: u64,
        /// Bytes after the last recorded position that were cut off (a page being written when
        /// the earlier run stopped).
        cut_bytes: u64,
        /// Where it continues, in words.
        from: String,
    },
    /// A page was written; totals so far.
    Page {
        /// Items in the output.
        items: u64,
        /// Pages read by this run.
        pages: u64,
    },
    /// A slice of a conversation export begins (or continues).
    SliceStarted {
        /// 0-based.
        index: usize,
        /// Number of slices.
        count: usize,
        /// Its interval.
        interval: Interval,
    },
    /// An analytics job was submitted for a slice.
    JobSubmitted {
        /// 0-based slice index.
        slice: usize,
        /// The job's id.
        job_id: String,
    },
    /// A slice is run again from its start (its job expired, was deleted or failed).
    SliceRedone {
        /// 0-based.
        index: usize,
        /// Why, in words.
        reason: String,
    },
    /// A slice is done.
    SliceDone {
        /// 0-based.
        index: usize,
        /// Number of slices.
        count: usize,
        /// Items in the output.
        items: u64,
    },
    /// Every item is in; the CSV is being written.
    WritingCsv,
}

/// How an export went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Items in the output.
    pub items: u64,
    /// Items written by this run.
    pub new_items: u64,
    /// Pages read by this run.
    pub pages: u64,
    /// An earlier run was continued.
    pub resumed: bool,
    /// Bytes cut from the end of the output on resume (items of a page that was being written).
    pub cut_bytes: u64,
    /// The export was complete already: nothing was done.
    pub already_complete: bool,
    /// Slices of a conversation export.
    pub slices: usize,
    /// Slices run again because their job was gone or failed.
    pub slices_redone: usize,
    /// Conversations a job returned that belong to another slice (they crossed a slice boundary).
    pub left_to_other_slices: u64,
}

/// Runs an export of `source` to `destination` (see the module docs), calling `on_event` as it
/// goes.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::export::ExportError> {
/// use tokenwarden::export::{self, Destination, ExportOptions, Format, Mode, Source};
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
/// [`ExportError::Api`] when the API fails after retries (the output keeps every complete page and
/// its position: a resume continues there); [`ExportError::Refused`] when the output cannot be used
/// as asked (nothing changed); [`ExportError::NoDirectory`]; [`ExportError::Io`] when a local file
/// cannot be read or written.
pub async fn run(
    client: &ApiClient,
    source: Source,
    destination: Destination,
    options: ExportOptions,
    mut on_event: impl FnMut(Event),
) -> Result<Report, ExportError> {
    if let Source::Conversations { slice, .. } = &source
        && (slice.is_zero() || *slice > MAX_SLICE)
    {
        return Err(ExportError::Refused(format!(
            "a slice must be longer than zero and at most 31 days, not {}",
            crate::error::human_duration(*slice)
        )));
    }
    let definition = definition(&source, client, options.format);
    let mut sink = match destination {
        Destination::Stream(w) => Sink::stream(w, options, definition)?,
        Destination::File(out) => {
            let paths = Paths::new(&out, options.format == Format::Csv);
            let want = match options.mode {
                Mode::New => Want::New,
                Mode::Overwrite => Want::Overwrite,
                Mode::Resume => Want::Resume,
            };
            match journal::open(&paths, want, definition)? {
                Found::Complete(state, _claim) => {
                    if paths.data != paths.out {
                        // Left by a run stopped between writing the CSV and removing its spool.
                        let _ = std::fs::remove_file(&paths.data);
                    }
                    return Ok(Report {
                        items: state.items,
                        already_complete: true,
                        resumed: true,
                        ..Report::default()
                    });
                }
                Found::Ready(opened) => Sink::file(paths, opened, options),
            }
        }
    };
    if sink.report.resumed {
        on_event(Event::Resumed {
            items: sink.state.items,
            cut_bytes: sink.report.cut_bytes,
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
) -> Result<(), ExportError> {
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

/// What an export was asked to do, recorded with its state: a resume of another one is refused.
fn definition(source: &Source, client: &ApiClient, format: Format) -> Value {
    let mut d = match source {
        Source::Pages { path } => json!({"source": "page-number listing", "path": path}),
        Source::Cursor { path } => json!({"source": "cursor listing", "path": path}),
        Source::Query { path, body } => json!({"source": "query", "path": path, "body": body}),
        Source::Conversations {
            jobs_path,
            interval,
            slice,
            filter,
            options,
        } => json!({
            "source": "conversation jobs",
            "path": jobs_path,
            "interval": interval.to_string(),
            "slice_seconds": slice.as_secs_f64(),
            "filter": filter,
            "page_size": options.page_size,
        }),
    };
    d["api_base"] = json!(client.api_base().as_str());
    d["format"] = json!(format.name());
    d
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
) -> Result<(), ExportError> {
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

/// The pieces of a conversation export that every slice uses.
struct JobRun<'a> {
    client: &'a ApiClient,
    jobs_path: &'a str,
    filter: &'a Value,
    options: &'a JobOptions,
}

impl JobRun<'_> {
    fn body(&self, slice: &Interval) -> Value {
        let mut body = match self.filter {
            Value::Object(m) => Value::Object(m.clone()),
            _ => json!({}),
        };
        body["interval"] = json!(slice.to_string());
        body
    }
}

/// Whether a job error means "run the slice again": the job is gone (404, expired) or failed on
/// the server's side. A job that is merely slow (still running after `max_wait`) is not
/// submitted again.
fn job_gone(e: &Error) -> bool {
    match e {
        Error::Status { status: 404, .. } => true,
        Error::JobFailed { state, .. } => {
            matches!(state.as_str(), "FAILED" | "CANCELLED" | "EXPIRED")
        }
        _ => false,
    }
}

async fn conversations(
    job: &JobRun<'_>,
    interval: &Interval,
    slice_len: Duration,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), ExportError> {
    let slices = interval
        .slices(slice_len)
        .map_err(|e| ExportError::Refused(e.to_string()))?;
    let count = slices.len();
    sink.report.slices = count;
    if sink.state.slice.is_none() {
        sink.state.slice = Some(SliceState {
            index: 0,
            start_bytes: sink.state.bytes,
            start_items: sink.state.items,
            next_job: None,
        });
    }
    // Each slice is run again at most once per run (a job that keeps failing is an error).
    let mut redone = vec![false; count];
    while sink.state.phase == Phase::Fetching {
        let Some(k) = sink.state.slice.as_ref().map(|s| s.index) else {
            break;
        };
        let Some(slice) = slices.get(k) else {
            return Err(ExportError::Refused(
                "the recorded slice is outside the interval".into(),
            ));
        };
        on_event(Event::SliceStarted {
            index: k,
            count,
            interval: *slice,
        });
        let (job_id, cursor) = match sink.state.position.clone() {
            Some(Position::Job { job_id, cursor }) => (job_id, cursor),
            _ => {
                let id = submit(job.client, job.jobs_path, &job.body(slice)).await?;
                sink.state.position = Some(Position::Job {
                    job_id: id.clone(),
                    cursor: None,
                });
                sink.save()?;
                on_event(Event::JobSubmitted {
                    slice: k,
                    job_id: id.clone(),
                });
                (id, None)
            }
        };
        let outcome = read_slice(job, &slices, interval, k, &job_id, cursor, sink, on_event).await;
        match outcome {
            Ok(()) => {
                // Recorded first: deleting the job before would make a resume redo the slice.
                let _ = delete(job.client, job.jobs_path, &job_id).await;
            }
            Err(ExportError::Api(e)) if job_gone(&e) && !redone[k] && sink.can_restart_slice() => {
                redone[k] = true;
                sink.report.slices_redone += 1;
                on_event(Event::SliceRedone {
                    index: k,
                    reason: e.to_string(),
                });
                sink.restart_slice()?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits for slice `k`'s job, submits the next slice's, and writes the results this slice owns.
#[allow(clippy::too_many_arguments)]
async fn read_slice(
    job: &JobRun<'_>,
    slices: &[Interval],
    interval: &Interval,
    k: usize,
    job_id: &str,
    cursor: Option<String>,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), ExportError> {
    wait_for(job.client, job.jobs_path, job_id, job.options).await?;
    // The next slice's job runs on the server while this one's results are read.
    let wants_next = sink
        .state
        .slice
        .as_ref()
        .is_some_and(|s| s.next_job.is_none());
    if let Some(next) = slices.get(k + 1).filter(|_| wants_next) {
        let id = submit(job.client, job.jobs_path, &job.body(next)).await?;
        if let Some(s) = sink.state.slice.as_mut() {
            s.next_job = Some((k + 1, id.clone()));
        }
        sink.save()?;
        on_event(Event::JobSubmitted {
            slice: k + 1,
            job_id: id,
        });
    }
    let mut pages = results(
        job.client,
        job.jobs_path,
        job_id,
        job.options.page_size,
        cursor,
    )
    .boxed();
    while let Some(page) = pages.try_next().await? {
        let mut items = page.items;
        let before = items.len();
        items.retain(|c| owner(slices, interval, c).is_none_or(|o| o == k));
        sink.report.left_to_other_slices += (before - items.len()) as u64;
        sink.write_items(&items)?;
        match page.next {
            Some(p) => sink.state.position = Some(p),
            None => sink.next_slice(k, slices.len()),
        }
        sink.page_done()?;
        on_event(sink.page_event());
        if sink.state.slice.as_ref().is_none_or(|s| s.index != k) {
            on_event(Event::SliceDone {
                index: k,
                count: slices.len(),
                items: sink.state.items,
            });
            return Ok(());
        }
    }
    // The results ended without a last page (an empty stream): the slice is done all the same.
    sink.next_slice(k, slices.len());
    sink.save()
}

/// The slice a conversation belongs to: the one its start falls in, clamped to the interval (a
/// conversation that began before the interval and runs into it belongs to the first slice).
/// `None` when it has no readable `conversationStart` (it is kept).
fn owner(slices: &[Interval], interval: &Interval, conversation: &Value) -> Option<usize> {
    let start: Timestamp = conversation
        .get("conversationStart")?
        .as_str()?
        .parse()
        .ok()?;
    let last = interval
        .end_ts()
        .checked_sub(jiff::SignedDuration::from_nanos(1))
        .ok()?;
    let t = start.clamp(interval.start_ts(), last);
    Some(slices.partition_point(|s| s.end_ts() <= t))
}

/// Where items go while the listing is read.
enum Data {
    /// A file that can be cut back (the output, the CSV spool, an anonymous spool).
    File { w: BufWriter<File>, path: PathBuf },
    /// A stream that cannot.
    Stream(BufWriter<Box<dyn Write + Send>>),
}

/// Where the CSV goes at the end.
enum CsvTo {
    File(PathBuf),
    Stream(Box<dyn Write + Send>),
}

/// The writing side of an export: the data, its state, and what this run did.
struct Sink {
    data: Data,
    /// The state file, when the position is recorded.
    state_path: Option<PathBuf>,
    state: State,
    csv: Option<CsvTo>,
    /// The CSV spool beside the output, removed once the CSV is written.
    spool: Option<PathBuf>,
    terminal: bool,
    report: Report,
    /// The output file (none for a stream).
    output: Option<PathBuf>,
    /// The output's claim, held until the run ends.
    _claim: Option<ownership::Claim>,
}

const STREAM: &str = "-";

impl Sink {
    fn stream(
        w: Box<dyn Write + Send>,
        options: ExportOptions,
        definition: Value,
    ) -> Result<Self, ExportError> {
        let (data, csv) = match options.format {
            Format::Jsonl => (Data::Stream(BufWriter::with_capacity(1 << 16, w)), None),
            Format::Csv => {
                let spool = tempfile::tempfile()
                    .map_err(ExportError::io("creating a temporary file", "$TMPDIR"))?;
                (
                    Data::File {
                        w: BufWriter::with_capacity(1 << 16, spool),
                        path: PathBuf::from("(temporary spool)"),
                    },
                    Some(CsvTo::Stream(w)),
                )
            }
        };
        Ok(Self {
            data,
            state_path: None,
            state: State::new(definition),
            csv,
            spool: None,
            terminal: options.terminal,
            report: Report::default(),
            output: None,
            _claim: None,
        })
    }

    fn file(paths: Paths, opened: journal::Opened, options: ExportOptions) -> Self {
        let (resumed, cut_bytes) = match opened.start {
            Start::Fresh => (false, 0),
            Start::Resumed { cut } => (true, cut),
        };
        Self {
            data: Data::File {
                w: BufWriter::with_capacity(1 << 16, opened.data),
                path: paths.data.clone(),
            },
            state_path: Some(paths.state.clone()),
            report: Report {
                resumed,
                cut_bytes,
                items: opened.state.items,
                ..Report::default()
            },
            state: opened.state,
            csv: (options.format == Format::Csv).then(|| CsvTo::File(paths.out.clone())),
            spool: (paths.data != paths.out).then(|| paths.data.clone()),
            terminal: options.terminal,
            output: Some(paths.out.clone()),
            _claim: Some(opened.claim),
        }
    }

    fn data_path(&self) -> &Path {
        match &self.data {
            Data::File { path, .. } => path,
            Data::Stream(_) => Path::new(STREAM),
        }
    }

    /// Writes `items`, each scrubbed of every secret the process knows, one per line.
    fn write_items(&mut self, items: &[Value]) -> Result<(), ExportError> {
        let mut buf = Vec::with_capacity(items.len() * 256);
        for item in items {
            buf.extend_from_slice(&scrub_line(item));
            buf.push(b'\n');
        }
        let path = self.data_path().to_path_buf();
        match &mut self.data {
            Data::File { w, .. } => w.write_all(&buf),
            Data::Stream(w) => w.write_all(&buf),
        }
        .map_err(ExportError::io("writing", path))?;
        self.state.bytes += buf.len() as u64;
        self.state.items += items.len() as u64;
        self.report.new_items += items.len() as u64;
        self.report.items = self.state.items;
        Ok(())
    }

    fn page_done(&mut self) -> Result<(), ExportError> {
        self.state.pages += 1;
        self.report.pages += 1;
        self.save()
    }

    fn page_event(&self) -> Event {
        Event::Page {
            items: self.state.items,
            pages: self.report.pages,
        }
    }

    /// Flushes the items to the data file, then records the state: never the other way round, so
    /// the state never claims an item the file does not hold.
    fn save(&mut self) -> Result<(), ExportError> {
        let path = self.data_path().to_path_buf();
        match &mut self.data {
            Data::File { w, .. } => w.flush(),
            Data::Stream(w) => w.flush(),
        }
        .map_err(ExportError::io("writing", path))?;
        if let Some(p) = &self.state_path {
            self.state.fingerprint = self.fingerprint()?;
            journal::save_state(p, &self.state)?;
        }
        Ok(())
    }

    /// What the state vouches for: the good part of the data file while fetching, the output
    /// once complete (for a CSV, the spool is gone by then).
    fn fingerprint(&self) -> Result<Option<ownership::Fingerprint>, ExportError> {
        let Data::File { path, .. } = &self.data else {
            return Ok(None);
        };
        let fp = match (&self.output, self.state.phase) {
            (Some(out), Phase::Complete) => {
                ownership::Fingerprint::of_whole(out).map_err(ExportError::io("reading", out))?
            }
            _ => ownership::Fingerprint::of(path, self.state.bytes)
                .map_err(ExportError::io("reading", path))?,
        };
        Ok(Some(fp))
    }

    /// Whether the current slice can start over: its items can be taken back (not from a
    /// stream), or none were written yet.
    fn can_restart_slice(&self) -> bool {
        matches!(self.data, Data::File { .. })
            || self
                .state
                .slice
                .as_ref()
                .is_some_and(|s| s.start_bytes == self.state.bytes)
    }

    /// Moves the state from slice `k` to the next one (or to "fetched" after the last).
    fn next_slice(&mut self, k: usize, count: usize) {
        let (bytes, items) = (self.state.bytes, self.state.items);
        let Some(s) = self.state.slice.as_mut() else {
            return;
        };
        if k + 1 >= count {
            self.state.phase = Phase::Fetched;
            self.state.position = None;
            s.index = count;
            s.next_job = None;
            return;
        }
        let next_job = s.next_job.take();
        self.state.position =
            next_job
                .filter(|(i, _)| *i == k + 1)
                .map(|(_, job_id)| Position::Job {
                    job_id,
                    cursor: None,
                });
        *s = SliceState {
            index: k + 1,
            start_bytes: bytes,
            start_items: items,
            next_job: None,
        };
    }

    /// Takes back everything written for the current slice and forgets its job.
    fn restart_slice(&mut self) -> Result<(), ExportError> {
        let Some(s) = self.state.slice.clone() else {
            return Ok(());
        };
        if s.start_bytes != self.state.bytes {
            let Data::File { w, path } = &mut self.data else {
                return Err(ExportError::Refused(
                    "cannot take back items already written to a stream".into(),
                ));
            };
            let io = |op| ExportError::io(op, path.clone());
            w.flush().map_err(io("writing"))?;
            w.get_mut()
                .set_len(s.start_bytes)
                .map_err(io("truncating"))?;
            w.get_mut()
                .seek(SeekFrom::Start(s.start_bytes))
                .map_err(io("seeking in"))?;
        }
        self.report.new_items = self
            .report
            .new_items
            .saturating_sub(self.state.items - s.start_items);
        self.state.bytes = s.start_bytes;
        self.state.items = s.start_items;
        self.report.items = s.start_items;
        self.state.position = None;
        self.save()
    }

    /// Removes the files of a run that created them and stopped before its first page: a typo in a
    /// path or a refused credential must not leave an "unfinished export" that blocks the
    /// corrected command.
    fn discard_if_empty(&mut self) {
        if self.report.resumed || self.state.pages > 0 || self.state.bytes > 0 {
            return;
        }
        let Some(state) = &self.state_path else {
            return;
        };
        if let Data::File { path, .. } = &self.data {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(state);
    }

    /// Writes the CSV if needed, marks the export complete, makes the files durable.
    fn finish(mut self, on_event: &mut impl FnMut(Event)) -> Result<Report, ExportError> {
        self.save()?;
        if self.state.phase == Phase::Fetched {
            if let (Data::File { w, path }, Some(to)) = (&mut self.data, self.csv.take()) {
                on_event(Event::WritingCsv);
                let (spool, len) = (w.get_mut(), self.state.bytes);
                match to {
                    CsvTo::Stream(mut out) => {
                        csv::render(spool, path, len, &mut out, Path::new(STREAM), self.terminal)?;
                        out.flush().map_err(ExportError::io("writing", STREAM))?;
                    }
                    CsvTo::File(out) => write_csv_file(spool, path, len, &out, self.terminal)?,
                }
            }
            self.state.phase = Phase::Complete;
        }
        if let (Data::File { w, path }, Some(_), None) = (&self.data, &self.state_path, &self.spool)
        {
            journal::sync(w.get_ref(), path)?;
        }
        self.save()?;
        if let Some(spool) = &self.spool {
            // The CSV is in place and recorded complete: its spool is no longer needed.
            let _ = std::fs::remove_file(spool);
        }
        self.report.items = self.state.items;
        Ok(self.report)
    }
}

/// Writes the CSV in place of `out`, atomically ([`crate::fs::Replacement`]: a private temporary
/// file beside it, synced, renamed over it, the directory synced).
fn write_csv_file(
    spool: &mut File,
    spool_path: &Path,
    len: u64,
    out: &Path,
    terminal: bool,
) -> Result<(), ExportError> {
    let new = crate::fs::Replacement::begin(out, ".twcsv-")
        .map_err(ExportError::io("creating a temporary file for", out))?;
    let tmp_path = new.temp_path().to_path_buf();
    let mut w = BufWriter::with_capacity(1 << 16, new);
    csv::render(spool, spool_path, len, &mut w, &tmp_path, terminal)?;
    let new = w
        .into_inner()
        .map_err(|e| ExportError::io("writing", tmp_path.clone())(e.into_error()))?;
    new.commit().map_err(ExportError::io("replacing", out))
}

/// An item as one JSON line with every registered secret replaced by `[REDACTED]`: its strings
/// and keys scrubbed as decoded text ([`redact_json`](crate::redact::redact_json): a secret spelled with
/// JSON escapes is caught), then the line itself.
fn scrub_line(item: &Value) -> Vec<u8> {
    let item = crate::redact::redact_json(item);
    crate::redact::scrub_serialized(serde_json::to_vec(&*item).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_scrubbed_and_stay_json() {
        crate::redact::register_secret("tok-export-SECRET-1");
        let item = json!({"id": 1, "echo": "Bearer tok-export-SECRET-1", "n": [1]});
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        assert_eq!(line, r#"{"echo":"Bearer [REDACTED]","id":1,"n":[1]}"#);
        // A secret that spans JSON punctuation when serialised: the line stays JSON, and the
        // secret inside a key is still scrubbed.
        crate::redact::register_secret("x1\",\"b-secret");
        let item = json!({"a": "x1", "b-secret": 2, "key x1\",\"b-secret": 3});
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["a"], "x1");
        assert_eq!(back["key [REDACTED]"], 3, "{line}");
        let clean = json!({"id": 2});
        assert_eq!(scrub_line(&clean), br#"{"id":2}"#);
    }

    #[test]
    fn regression_an_item_echoing_the_token_with_json_escapes_is_scrubbed() {
        crate::redact::register_secret("tok-export-ESCAPED-2");
        let item: Value = serde_json::from_str(
            r#"{"t": "\u0074\u006f\u006b-export-ESCAPED-2", "p": "tok\u002dexport-ESCAPED-2"}"#,
        )
        .unwrap();
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        assert_eq!(line, r#"{"p":"[REDACTED]","t":"[REDACTED]"}"#);
    }

    #[test]
    fn only_a_job_that_is_gone_or_failed_is_submitted_again() {
        let failed = |state: &str| Error::JobFailed {
            job_id: "j".into(),
            state: state.into(),
        };
        assert!(job_gone(&failed("EXPIRED")) && job_gone(&failed("FAILED")));
        assert!(!job_gone(&failed(
            "PENDING (still running after 2h; gave up)"
        )));
        let status = |status| Error::Status {
            method: "GET".into(),
            path: "/x".into(),
            status,
            body: String::new(),
        };
        assert!(job_gone(&status(404)) && !job_gone(&status(400)));
    }

    #[test]
    fn a_conversation_belongs_to_the_slice_it_started_in() {
        let week: Interval = "2024-01-01/2024-01-08".parse().unwrap();
        let days = week.slices(Duration::from_secs(86_400)).unwrap();
        let at = |t: &str| json!({"conversationStart": t});
        assert_eq!(
            owner(&days, &week, &at("2024-01-01T00:00:00.000Z")),
            Some(0)
        );
        assert_eq!(
            owner(&days, &week, &at("2024-01-02T23:59:59.999Z")),
            Some(1)
        );
        assert_eq!(owner(&days, &week, &at("2024-01-03T00:00:00Z")), Some(2));
        // Started before the interval: the first slice; at or after its end: the last.
        assert_eq!(owner(&days, &week, &at("2023-12-31T23:50:00Z")), Some(0));
        assert_eq!(owner(&days, &week, &at("2024-01-08T00:00:00Z")), Some(6));
        assert_eq!(owner(&days, &week, &json!({"id": 1})), None);
        assert_eq!(owner(&days, &week, &at("yesterday")), None);
    }
}
