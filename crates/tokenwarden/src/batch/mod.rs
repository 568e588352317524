//! The batch engine: run one API request per input record with bounded concurrency, record one
//! output line per record, and resume after any interruption without losing or repeating a record.
//!
//! - **The output file is the journal.** Each record's line is written (and flushed to the OS) as
//!   soon as the record completes, so lines are in **completion order**, not input order (sort by
//!   `id`, or by `line` for bad lines, if order matters). A run killed at any moment (even
//!   `kill -9`) and restarted with `resume` cuts a torn last line, skips every record already
//!   recorded and runs the rest, so the output ends up with each id exactly once. (A request that
//!   was in flight at the kill is sent again: safe for reads and idempotent writes; see the README
//!   for non-idempotent POSTs.)
//! - **One writer, one job.** The output is claimed for the whole run, by the protocol every
//!   command shares ([`ownership`](crate::ownership)): a second run on it, of any command, fails at
//!   once ([`JournalProblem::Busy`]). The job file beside it (`out.jsonl.twjob`) records which job
//!   it belongs to: a resume with another input, format or API is refused before anything is sent
//!   or changed ([`JournalProblem::OtherJob`]), and a file that no batch wrote, or that was changed
//!   since, is never resumed into ([`JournalProblem::NotAJournal`], [`JournalProblem::Changed`],
//!   [`JournalProblem::OtherCommand`]). The output itself stays plain JSON Lines.
//! - **Nothing behind on early failure.** The output is created when its first line is ready; a
//!   run that ends before (a typo'd input, wrong credentials) leaves no file behind.
//! - **The input is read once**, front to back: a file, a FIFO, `/dev/stdin` or standard input
//!   ([`Input::Stdin`]). Lines longer than [`BatchOptions::max_line_bytes`] are bad lines.
//! - **Bad input never stops the job:** a line that is not JSON, lacks an id or path, names an
//!   unknown method, repeats an id, is too long or whose path leaves the API's origin is recorded
//!   as an error with its line number, and the rest runs. Nothing is sent for it.
//! - **A credentials failure stops the job at once** ([`Outcome::Abort`]); nothing unfinished is
//!   recorded, so a resume after fixing the credentials picks up exactly there. Too many failed
//!   records ([`BatchOptions::max_failures`]) stop it too, after the records in flight are recorded.
//! - **An API that cannot be reached stops the job** ([`Breaker`]): records that found it
//!   unreachable ([`Outcome::Unreachable`]) are held back, not recorded; once the breaker trips (20
//!   in a row, or 30 s), the job stops and a resume runs them. If the API answers again first, they
//!   are recorded as failed.
//! - **Interrupted, it stops cleanly** ([`BatchOptions::interrupt`]): the records in flight are
//!   abandoned unrecorded (a resume runs them), and the report says so.
//! - **Nothing secret is written:** response bodies and error texts are scrubbed of every secret
//!   the process knows ([`redact_bytes`](crate::redact::redact_bytes)) before they reach the output.
//! - **Memory stays flat:** input and output are streamed; at most `concurrency` records are in
//!   flight; resume and duplicate detection keep 16 bytes per id.

mod breaker;
mod error;
mod input;
mod job;
mod journal;
mod limit;
mod output;
mod shard;
mod source;

pub use breaker::Breaker;
pub use error::{BatchError, IoOp};
pub use input::{InputFormat, Record};
pub use limit::{FailureLimit, MIN_FAILURE_SAMPLE};
pub use output::{JournalProblem, job_file_path};
pub use shard::Shard;
pub use source::{DEFAULT_MAX_LINE_BYTES, Input};

use crate::error::Error;
use breaker::Streak;
use futures::StreamExt as _;
use input::{Parsed, Parser};
use job::{JobIdentity, Mismatch};
pub(crate) use journal::KeySet;
use journal::line_key;
use output::Output;
use serde_json::Value;
use source::Line;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use url::Url;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The API base: every record's URL is resolved against it and must stay on its origin.
    pub api_base: Url,
    /// How input lines are read.
    pub format: InputFormat,
    /// Records in flight at once (at least 1).
    pub concurrency: usize,
    /// Continue an earlier run: keep the output file and skip the records it holds.
    pub resume: bool,
    /// Replace an existing output file (without `resume` or this, an existing output is an error:
    /// it may be the journal of an unfinished run).
    pub overwrite: bool,
    /// With `resume`: also run again the records that failed (non-2xx or an error), replacing
    /// their lines. Invalid input lines are kept: they would fail the same way.
    pub retry_failed: bool,
    /// Stop the job early when this many records fail (see [`FailureLimit`]); `None`: never.
    pub max_failures: Option<FailureLimit>,
    /// Longest input line, in bytes; a longer line is a bad line ([`DEFAULT_MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
    /// Run only this shard's records (see [`Shard`]); the output is this shard's journal, and a
    /// resume must name the same shard.
    pub shard: Option<Shard>,
    /// When to stop a job whose API cannot be reached ([`Breaker::default`]: 20 records in a
    /// row, or 30 s).
    pub breaker: Breaker,
    /// Stop the job when this turns `true` (Ctrl-C): the records in flight are abandoned,
    /// unrecorded, and the report's [`stopped`](BatchReport::stopped) is
    /// [`StopReason::Interrupted`]. `None`: run to the end.
    pub interrupt: Option<tokio::sync::watch::Receiver<bool>>,
}

impl BatchOptions {
    /// The defaults for a batch against `api_base`: JSON Lines, 8 in flight, a fresh output, no
    /// failure limit, lines up to [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new(api_base: Url) -> Self {
        Self {
            api_base,
            format: InputFormat::Jsonl,
            concurrency: 8,
            resume: false,
            overwrite: false,
            retry_failed: false,
            max_failures: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            shard: None,
            breaker: Breaker::default(),
            interrupt: None,
        }
    }
}

/// How one record ended, as told by the executor.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The API answered (any status: 2xx counts as ok, anything else as failed).
    Response {
        /// HTTP status.
        status: u16,
        /// The response body.
        body: bytes::Bytes,
    },
    /// The record failed without a usable response (a redirect elsewhere, an answer too large,
    /// a timeout of a request that may not be sent again, ...).
    Failed(String),
    /// The API could not be reached for this record (connection refused, DNS, no answer within
    /// the retries). Not recorded while the API stays unreachable: see [`Breaker`].
    Unreachable(Error),
    /// Stop the whole job: the credentials are wrong (the record is not recorded).
    Abort(Error),
}

impl Outcome {
    /// What a request that failed with `e` (no HTTP answer to record) means for the job, by the
    /// rule every executor shares: when no token can be had ([`Error::is_token_failure`]) the job
    /// stops ([`Outcome::Abort`]): nothing is recorded, so a resume continues exactly there; an
    /// API that cannot be reached ([`Error::is_unreachable`]) holds the record back
    /// ([`Outcome::Unreachable`]); anything else fails this record alone
    /// ([`Outcome::Failed`], with the error's message).
    pub fn from_error(e: Error) -> Outcome {
        if e.is_token_failure() {
            Outcome::Abort(e)
        } else if e.is_unreachable() {
            Outcome::Unreachable(e)
        } else {
            Outcome::Failed(e.to_string())
        }
    }
}

/// Live counters of a running batch, for progress display.
#[derive(Debug, Default)]
pub struct BatchProgress {
    /// The number of non-blank input lines, once known: a regular file is counted in the
    /// background while the job runs; a pipe's total is never known.
    pub total_lines: OnceLock<u64>,
    /// Records answered 2xx.
    pub ok: AtomicU64,
    /// Records that failed (non-2xx, errors, invalid lines).
    pub failed: AtomicU64,
    /// Records skipped because an earlier run recorded them.
    pub skipped: AtomicU64,
    /// Lines rejected as invalid input (also counted in `failed`).
    pub invalid: AtomicU64,
}

impl BatchProgress {
    /// Lines dealt with so far (ok + failed + skipped): the position against `total_lines`.
    pub fn done(&self) -> u64 {
        self.ran() + self.skipped.load(Ordering::Relaxed)
    }

    /// Records dealt with in this run (ok + failed): what a rate should count.
    pub fn ran(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// Why a batch stopped before the end of its input.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StopReason {
    /// The executor stopped the job ([`Outcome::Abort`], e.g. rejected credentials). The records
    /// in flight were abandoned unrecorded: a resume runs them.
    Aborted(Error),
    /// More records failed than [`BatchOptions::max_failures`] allows. The records in flight were
    /// finished and recorded.
    TooManyFailures {
        /// Records failed in this run.
        failed: u64,
        /// Records run in this run.
        ran: u64,
        /// The limit that was passed.
        limit: FailureLimit,
    },
    /// The input could not be read to its end (the records before were run and recorded).
    Input(BatchError),
    /// The API could not be reached ([`Outcome::Unreachable`]) for every record in the
    /// [`Breaker`]'s window, or for the last records of the input. Those records were not
    /// recorded, nor were the records in flight: a resume runs them.
    Unreachable {
        /// Records in a row that found the API unreachable.
        records: u64,
        /// For how long.
        lasted: Duration,
        /// The last of their errors.
        last: Error,
    },
    /// [`BatchOptions::interrupt`] stopped the job; the records in flight were abandoned
    /// unrecorded.
    Interrupted,
}

impl StopReason {
    /// The API's error behind the stop, if there is one (an input that breaks off is
    /// [`StopReason::Input`]'s own).
    pub fn error(&self) -> Option<&Error> {
        match self {
            StopReason::Aborted(e) => Some(e),
            StopReason::Input(BatchError::Api(e)) => Some(e),
            StopReason::Unreachable { last, .. } => Some(last),
            StopReason::Input(_) | StopReason::TooManyFailures { .. } | StopReason::Interrupted => {
                None
            }
        }
    }
}

impl fmt::Display for StopReason {
    /// The reason in one line, with the error's whole chain of causes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Aborted(e) => f.write_str(&with_causes(e)),
            StopReason::Input(e) => f.write_str(&with_causes(e)),
            StopReason::Unreachable {
                records,
                lasted,
                last,
            } => write!(
                f,
                "the API could not be reached for {} in a row (for {}): {}",
                crate::error::plural(*records, "record"),
                crate::error::human_duration(*lasted),
                with_causes(last)
            ),
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::TooManyFailures { failed, ran, limit } => write!(
                f,
                "{failed} of the {ran} records run failed, more than the limit of {limit}"
            ),
        }
    }
}

/// An error with its whole chain of causes, on one line.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        // Some messages already quote their cause.
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}

/// What a finished (or stopped) batch did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchReport {
    /// Records answered 2xx in this run.
    pub ok: u64,
    /// Records failed in this run (including invalid lines).
    pub failed: u64,
    /// Of which invalid input lines.
    pub invalid: u64,
    /// Records skipped as already recorded.
    pub skipped: u64,
    /// Of the skipped records, those an earlier run recorded as failed (including invalid
    /// lines) and that stay in the output as failed: the output holds `failed +
    /// earlier_failed` failed records.
    pub earlier_failed: u64,
    /// Of which invalid input lines.
    pub earlier_invalid: u64,
    /// Whether the output exists at the end of the run (written by this run or an earlier one):
    /// there is something to resume.
    pub output_exists: bool,
    /// Bytes of a torn last line cut from the output on resume.
    pub repaired_bytes: u64,
    /// Wall time of the run.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    #[serde(serialize_with = "reason_str")]
    pub stopped: Option<StopReason>,
}

impl BatchReport {
    /// Requests sent and answered in this run (invalid lines send nothing).
    pub fn requests(&self) -> u64 {
        self.ok + self.failed - self.invalid
    }

    /// Failed records in the whole output: this run's and those recorded earlier.
    pub fn failed_in_output(&self) -> u64 {
        self.failed + self.earlier_failed
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn reason_str<S: serde::Serializer>(r: &Option<StopReason>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(&r.to_string()),
        None => s.serialize_none(),
    }
}

enum Work {
    Run(Record),
    Invalid {
        id: Option<Value>,
        line: u64,
        error: String,
    },
}

struct Done {
    id: Option<Value>,
    line: u64,
    outcome: Outcome,
    /// An input line that could not be run (recorded with its line number).
    invalid: bool,
    /// When the record was started.
    started: tokio::time::Instant,
}

/// Runs a batch from `input` to `output`, calling `exec` for each valid record; see the
/// [module documentation](self) for what it guarantees.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::batch::BatchError> {
/// use tokenwarden::batch::{self, BatchOptions, BatchProgress, Input, Outcome};
/// let progress = BatchProgress::default();
/// let base = url::Url::parse("https://api.mypurecloud.ie").unwrap();
/// let report = batch::run(
///     &Input::from_arg("in.jsonl"),
///     "out.jsonl".as_ref(),
///     &BatchOptions { resume: true, ..BatchOptions::new(base) },
///     &progress,
///     |record| async move { Outcome::Response { status: 200, body: record.path.into() } },
/// )
/// .await?;
/// println!("{} ok, {} failed", report.ok, report.failed);
/// # Ok(()) }
/// ```
///
/// # Errors
/// Before anything is sent or written:
/// - [`BatchError::Journal`] when the output is busy (another run writes it), exists (without
///   `resume` or `overwrite`), or is not this job's journal (with `resume`).
/// - [`BatchError::Io`] when the input cannot be opened ([`IoOp::OpenInput`]), the output's
///   directory does not exist ([`IoOp::OutputDirectory`]) or a file cannot be created or locked.
/// - [`BatchError::Api`] with [`Error::Config`] for a path template that lacks `{id}` or leaves
///   the API's origin.
///
/// During the run, [`BatchError::Io`] with [`IoOp::WriteOutput`] when the output cannot be written (a
/// full disk): the job stops there. A credentials failure, too many failed records or an input
/// that breaks off are not errors here: they end the run with [`BatchReport::stopped`] set.
pub async fn run<F, Fut>(
    input: &Input,
    output: &Path,
    options: &BatchOptions,
    progress: &BatchProgress,
    exec: F,
) -> Result<BatchReport, BatchError>
where
    F: Fn(Record) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = tokio::time::Instant::now();
    let parser = Parser::new(&options.format, &options.api_base)?;
    let Prepared {
        mut out,
        mut source,
        scan,
    } = prepare(input, output, options).await?;
    let done_keys = scan.done;
    // A regular file's lines are counted on a handle of their own, for a percentage.
    let cancel_count = Arc::new(AtomicBool::new(false));
    let count = {
        let cancel = Arc::clone(&cancel_count);
        // A shard runs part of the lines: their count is not its total.
        let path = source.countable.take().filter(|_| options.shard.is_none());
        async move {
            if let Some(path) = path
                && let Some(n) = source::count_lines(path, cancel).await
            {
                let _ = progress.total_lines.set(n);
            }
            std::future::pending::<()>().await
        }
    };
    let prefix = source.lines.prefix();
    let identity = || {
        let prefix = prefix.lock().unwrap_or_else(|p| p.into_inner());
        JobIdentity::new(&input.name(), &options.format, &options.api_base, &prefix)
            .with_shard(options.shard)
    };
    let stop_reading = AtomicBool::new(false);
    let read_error: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);
    let work = work_stream(
        source.lines,
        &parser,
        &done_keys,
        progress,
        &stop_reading,
        &read_error,
        options.max_line_bytes.max(1),
        options.shard,
    );
    let exec = &exec;
    let results = work
        .map(|w| async move {
            let started = tokio::time::Instant::now();
            match w {
                Work::Run(r) => {
                    let (id, line) = (r.id.clone(), r.line);
                    Done {
                        id: Some(id),
                        line,
                        outcome: exec(r).await,
                        invalid: false,
                        started,
                    }
                }
                Work::Invalid { id, line, error } => Done {
                    id,
                    line,
                    outcome: Outcome::Failed(error),
                    invalid: true,
                    started,
                },
            }
        })
        .buffer_unordered(options.concurrency.max(1));

    let mut report = BatchReport {
        ok: 0,
        failed: 0,
        invalid: 0,
        skipped: 0,
        earlier_failed: scan.failed,
        earlier_invalid: scan.invalid,
        output_exists: false,
        repaired_bytes: scan.repaired_bytes,
        elapsed: Duration::ZERO,
        stopped: None,
    };
    let record_all = async {
        let mut results = std::pin::pin!(results);
        let mut line = Vec::with_capacity(1024);
        // Failures that count against the limit: records run, not invalid lines.
        let (mut ran, mut failed_runs) = (0u64, 0u64);
        // Records that found the API unreachable, held back while it stays so.
        let mut streak = Streak::new(options.breaker);
        let mut last_unreachable = None;
        while let Some(d) = results.next().await {
            let d = match d.outcome {
                Outcome::Abort(e) => {
                    report.stopped = Some(StopReason::Aborted(e));
                    break;
                }
                Outcome::Unreachable(e) => {
                    let now = tokio::time::Instant::now();
                    let started = d.started;
                    let tripped = streak.unreachable(
                        Done {
                            outcome: Outcome::Failed(e.to_string()),
                            ..d
                        },
                        started,
                        now,
                    );
                    if tripped {
                        report.stopped = Some(StopReason::Unreachable {
                            records: streak.held(),
                            lasted: streak.lasted(now),
                            last: e,
                        });
                        break;
                    }
                    last_unreachable = Some(e);
                    continue;
                }
                _ => d,
            };
            // The API answers (or failed otherwise): what was held back failed while it was up.
            let mut batch = streak.answered();
            batch.push(d);
            for d in batch {
                line.clear();
                let ok = journal::encode_line(&mut line, d.id, d.line, &d.outcome, d.invalid)?;
                out.write_line(&line, identity)?;
                let counter = if ok {
                    report.ok += 1;
                    &progress.ok
                } else {
                    report.failed += 1;
                    &progress.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if d.invalid {
                    report.invalid += 1;
                    progress.invalid.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                ran += 1;
                failed_runs += u64::from(!ok);
                if let Some(limit) = options.max_failures
                    && report.stopped.is_none()
                    && limit.exceeded(failed_runs, ran)
                {
                    // Read no more; the records in flight finish and are recorded.
                    stop_reading.store(true, Ordering::Relaxed);
                    report.stopped = Some(StopReason::TooManyFailures {
                        failed: failed_runs,
                        ran,
                        limit,
                    });
                }
            }
        }
        // The input ended while the API was still unreachable: those records run on resume.
        if report.stopped.is_none()
            && let Some(last) = last_unreachable.filter(|_| streak.held() > 0)
        {
            report.stopped = Some(StopReason::Unreachable {
                records: streak.held(),
                lasted: streak.lasted(tokio::time::Instant::now()),
                last,
            });
        }
        if let Some(StopReason::TooManyFailures { failed, ran: r, .. }) = &mut report.stopped {
            (*failed, *r) = (failed_runs, ran);
        }
        Ok::<(), BatchError>(())
    };
    let interrupted = async {
        let stopped = match options.interrupt.clone() {
            Some(mut stop) => stop.wait_for(|s| *s).await.is_ok(),
            None => false,
        };
        if !stopped {
            // No interrupt, or nobody left to send one.
            std::future::pending::<()>().await;
        }
    };
    // `None`: interrupted.
    let recorded = tokio::select! {
        r = record_all => Some(r),
        () = interrupted => None,
        () = count => unreachable!("the count never ends on its own"),
    };
    cancel_count.store(true, Ordering::Relaxed);
    match recorded {
        Some(r) => r?,
        None => report.stopped = Some(StopReason::Interrupted),
    }
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take()
        && report.stopped.is_none()
    {
        report.stopped = Some(StopReason::Input(input_error(input, e)));
    }
    out.finish(report.stopped.is_none(), identity)?;
    report.output_exists = out.exists();
    report.skipped = progress.skipped.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A run ready to go: its output taken, its input open, and what an earlier run recorded.
struct Prepared {
    out: Output,
    source: source::Source,
    scan: journal::Scan,
}

/// Takes the output (locked), opens the input and, when resuming, makes sure both belong to this
/// job before anything is changed: nothing is sent or written before this returns.
async fn prepare(
    input: &Input,
    output: &Path,
    options: &BatchOptions,
) -> Result<Prepared, BatchError> {
    let mut out = Output::acquire(output, options.resume, options.overwrite)?;
    // A corrected path template or method is accepted when every failure runs again.
    let mut corrected = None;
    if let Some(why) = out
        .resuming()
        .and_then(|job| job.shard_mismatch(options.shard))
    {
        return Err(other_job(output, why));
    }
    match out
        .resuming()
        .and_then(|job| job.mismatch(&options.format, &options.api_base))
    {
        None => {}
        Some(Mismatch::Definition(why)) if options.retry_failed => corrected = Some(why),
        Some(m) => return Err(other_job(output, m.into_detail())),
    }
    let mut source = input.open(options.max_line_bytes).await?;
    if let Some(job) = out.resuming() {
        let prefix = source
            .lines
            .peek_prefix(job.prefix_len())
            .await
            .map_err(|e| input_error(input, e))?;
        if let Some(problem) = job.same_input(&prefix) {
            return Err(other_job(output, problem));
        }
    }
    if let Some(why) = corrected {
        let succeeded = journal::has_success(output)
            .map_err(|e| BatchError::io(IoOp::ReadJournal, output, e))?;
        if succeeded {
            return Err(other_job(
                output,
                format!("{why}; some of its records succeeded, so they would not match"),
            ));
        }
        if let Some(job) = out.resuming().map(|j| j.redefined(&options.format)) {
            out.redefine(job)?;
        }
    }
    let scan = match out.resuming().cloned() {
        Some(job) => {
            if options.retry_failed {
                // The failed records' lines are about to go: the output will not be the file
                // last recorded.
                out.redefine(job.without_output())?;
            }
            scan_journal(output, options.retry_failed).await?
        }
        None => journal::Scan::default(),
    };
    Ok(Prepared { out, source, scan })
}

fn input_error(input: &Input, e: std::io::Error) -> BatchError {
    BatchError::io(IoOp::ReadInput, Path::new(&input.name()), e)
}

fn other_job(output: &Path, detail: String) -> BatchError {
    BatchError::Journal {
        path: output.to_path_buf(),
        problem: JournalProblem::OtherJob { detail },
    }
}

/// The stream of work: each input line parsed, records of other shards passed over, records an
/// earlier run recorded skipped, duplicates flagged. Ends at the end of the input, at a read error
/// (left in `read_error`), or when `stop` is set.
#[allow(clippy::too_many_arguments)]
fn work_stream<'a>(
    lines: source::LineReader,
    parser: &'a Parser,
    done: &'a KeySet,
    progress: &'a BatchProgress,
    stop: &'a AtomicBool,
    read_error: &'a std::sync::Mutex<Option<std::io::Error>>,
    max_line: usize,
    shard: Option<Shard>,
) -> impl futures::Stream<Item = Work> + 'a {
    // Whether this shard runs the line with this id (`None`: a line without a readable id).
    let mine = move |key: Option<&str>| match (shard, key) {
        (None, _) => true,
        (Some(s), Some(k)) => s.takes(k),
        (Some(s), None) => s.takes_lines_without_id(),
    };
    let state = (lines, KeySet::default());
    futures::stream::unfold(state, move |(mut lines, mut seen)| async move {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let (line_no, line) = match lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => {
                    *read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return None;
                }
            };
            let parsed = match line {
                Line::TooLong(len) => Parsed::Invalid {
                    id: None,
                    error: format!(
                        "line {line_no}: {len} bytes long, over the limit of {} bytes (not read)",
                        max_line
                    ),
                },
                Line::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => parser.parse(line_no, text),
                    Err(_) => Parsed::Invalid {
                        id: None,
                        error: format!("line {line_no}: not UTF-8"),
                    },
                },
            };
            let key = match &parsed {
                Parsed::Blank => continue,
                Parsed::Draft(d) => Some(d.key()),
                Parsed::Invalid {
                    id: Some((_, k)), ..
                } => Some(k.as_str()),
                Parsed::Invalid { id: None, .. } => None,
            };
            if !mine(key) {
                continue;
            }
            let item = match parsed {
                Parsed::Blank => continue,
                Parsed::Draft(d) => {
                    if !seen.insert(d.key()) {
                        keyed_invalid(
                            done,
                            line_no,
                            format!(
                                "line {line_no}: duplicate id {} (an earlier line has it)",
                                crate::error::excerpt(d.key(), 200)
                            ),
                        )
                    } else if done.contains(d.key()) {
                        None
                    } else {
                        // Where it goes is checked only for what runs.
                        Some(match parser.confine(d) {
                            Ok(r) => Work::Run(r),
                            Err(((id, _), error)) => Work::Invalid {
                                id: Some(id),
                                line: line_no,
                                error,
                            },
                        })
                    }
                }
                Parsed::Invalid {
                    id: Some((id, key)),
                    error,
                } => {
                    if !seen.insert(&key) {
                        keyed_invalid(
                            done,
                            line_no,
                            format!(
                                "{error}; also a duplicate id {}",
                                crate::error::excerpt(&id.to_string(), 200)
                            ),
                        )
                    } else if done.contains(&key) {
                        None
                    } else {
                        Some(Work::Invalid {
                            id: Some(id),
                            line: line_no,
                            error,
                        })
                    }
                }
                Parsed::Invalid { id: None, error } => keyed_invalid(done, line_no, error),
            };
            match item {
                Some(w) => return Some((w, (lines, seen))),
                None => {
                    progress.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// An invalid line keyed by its position; `None` (skip) if an earlier run recorded it.
fn keyed_invalid(done: &KeySet, line: u64, error: String) -> Option<Work> {
    if done.contains(&line_key(line)) {
        return None;
    }
    Some(Work::Invalid {
        id: None,
        line,
        error,
    })
}

/// Reads this job's journal (already recognised as this job's): cuts a torn last line, drops the
/// failed records when they are to run again, and collects the keys of the recorded ones.
async fn scan_journal(output: &Path, retry_failed: bool) -> Result<journal::Scan, BatchError> {
    let path = output.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || {
        let scan = journal::scan_and_repair(&path)?;
        if !retry_failed || scan.foreign_line.is_some() {
            return Ok(scan);
        }
        let dropped = journal::drop_failed(&path)?;
        tracing::info!(records = dropped, "failed records will run again");
        let mut again = journal::scan_and_repair(&path)?;
        again.repaired_bytes = scan.repaired_bytes;
        Ok::<_, std::io::Error>(again)
    })
    .await
    .map_err(|e| Error::Internal(format!("resume scan: {e}")))?
    .map_err(|e| BatchError::io(IoOp::ReadJournal, output, e))?;
    if let Some(line) = scan.foreign_line {
        return Err(BatchError::Journal {
            path: output.to_path_buf(),
            problem: JournalProblem::Changed {
                detail: format!("line {line} is not a line a batch writes"),
            },
        });
    }
    // Said by whoever shows the report (`repaired_bytes`): a debug event only.
    if scan.repaired_bytes > 0 {
        tracing::debug!(
            bytes = scan.repaired_bytes,
            "cut a torn last line from the output (its record runs again)"
        );
    }
    if scan.unreadable_lines > 0 {
        tracing::warn!(
            lines = scan.unreadable_lines,
            "output lines that could not be read were ignored; their records run again"
        );
    }
    Ok(scan)
}

#[cfg(test)]
mod tests;
