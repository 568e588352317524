//! The batch engine: run one API request per input record with bounded concurrency, record one
//! output line per record, and resume after any interruption without losing or repeating a record.
//!
//! - **The output file is the journal.** Each record's line is written (and flushed to the OS) as
//!   soon as the record completes. A run killed at any moment (even `kill -9`) and restarted with
//!   `resume` cuts a torn last line, skips every record already recorded and runs the rest, so the
//!   output ends up with each id exactly once. (A request that was in flight at the kill is sent
//!   again: safe for reads and idempotent writes; see the README for non-idempotent POSTs.)
//! - **Bad input never stops the job:** a line that is not JSON, lacks an id or path, names an
//!   unknown method or repeats an id is recorded as an error with its line number, and the rest runs.
//! - **A credentials failure stops the job at once** ([`Outcome::Abort`]); nothing unfinished is
//!   recorded, so a resume after fixing the credentials picks up exactly there.
//! - **Memory stays flat:** input and output are streamed; at most `concurrency` records are in
//!   flight; resume and duplicate detection keep 16 bytes per id.

mod input;
mod journal;

pub use input::{InputFormat, Record};

use crate::error::Error;
use futures::StreamExt as _;
use input::Parsed;
use journal::{KeySet, line_key};
use serde_json::Value;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
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
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            format: InputFormat::Jsonl,
            concurrency: 8,
            resume: false,
            overwrite: false,
            retry_failed: false,
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
    /// The record failed without a usable response (retries exhausted, permission denied, ...).
    Failed(String),
    /// Stop the whole job: the credentials are wrong (the record is not recorded).
    Abort(Error),
}

/// Live counters of a running batch, for progress display.
#[derive(Debug, Default)]
pub struct BatchProgress {
    /// Input lines (a quick count before the run; blank lines included).
    pub total_lines: AtomicU64,
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
    /// Lines dealt with so far (ok + failed + skipped).
    pub fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.skipped.load(Ordering::Relaxed)
    }
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
    /// Bytes of a torn last line cut from the output on resume.
    pub repaired_bytes: u64,
    /// Wall time of the run.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    #[serde(serialize_with = "err_str")]
    pub aborted: Option<Error>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn err_str<S: serde::Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
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
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("{what} {}: {e}", path.display()))
}

/// Runs a batch from `input` to `output`, calling `exec` for each valid record.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use tokenwarden::batch::{self, BatchOptions, BatchProgress, Outcome};
/// let progress = BatchProgress::default();
/// let report = batch::run(
///     "in.jsonl".as_ref(),
///     "out.jsonl".as_ref(),
///     &BatchOptions { resume: true, ..BatchOptions::default() },
///     &progress,
///     |record| async move { Outcome::Response { status: 200, body: record.path.into() } },
/// )
/// .await?;
/// println!("{} ok, {} failed", report.ok, report.failed);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Config`] when the input cannot be read or the output cannot be written, or when the
/// output exists and neither `resume` nor `overwrite` is set. A credentials failure is not an
/// error here: it ends the run with [`BatchReport::aborted`] set.
pub async fn run<F, Fut>(
    input: &Path,
    output: &Path,
    options: &BatchOptions,
    progress: &BatchProgress,
    exec: F,
) -> Result<BatchReport, Error>
where
    F: Fn(Record) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = tokio::time::Instant::now();
    let (done_keys, repaired_bytes) = prepare_output(output, options).await?;
    let mut out = open_output(output, options.resume)?;

    let total = count_lines(input).await?;
    progress.total_lines.store(total, Ordering::Relaxed);

    let file = tokio::fs::File::open(input)
        .await
        .map_err(|e| io_error("reading", input, e))?;
    let reader = tokio::io::BufReader::with_capacity(256 * 1024, file);
    let format = &options.format;

    // The reader: a stream of work, skipping recorded records and flagging duplicates.
    struct ReadState {
        reader: tokio::io::BufReader<tokio::fs::File>,
        line_no: u64,
        seen: KeySet,
        buf: Vec<u8>,
    }
    let state = ReadState {
        reader,
        line_no: 0,
        seen: KeySet::default(),
        buf: Vec::with_capacity(4096),
    };
    let read_error: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let read_error_ref = &read_error;
    let done_ref = &done_keys;
    let work = futures::stream::unfold((state, done_ref), move |(mut st, done)| async move {
        loop {
            st.buf.clear();
            match st.reader.read_until(b'\n', &mut st.buf).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    *read_error_ref.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Error::Config(format!("reading input: {e}")));
                    return None;
                }
            }
            st.line_no += 1;
            let line_no = st.line_no;
            let parsed = match std::str::from_utf8(&st.buf) {
                Ok(text) => input::parse_line(format, line_no, text),
                Err(_) => Parsed::Invalid {
                    id: None,
                    error: format!("line {line_no}: not UTF-8"),
                },
            };
            let item = match parsed {
                Parsed::Blank => continue,
                Parsed::Record(r) => {
                    if !st.seen.insert(&r.key) {
                        keyed_invalid(
                            done,
                            line_no,
                            format!(
                                "line {line_no}: duplicate id {} (an earlier line has it)",
                                r.id
                            ),
                        )
                    } else if done.contains(&r.key) {
                        progress.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    } else {
                        Some(Work::Run(r))
                    }
                }
                Parsed::Invalid {
                    id: Some((id, key)),
                    error,
                } => {
                    if !st.seen.insert(&key) {
                        keyed_invalid(done, line_no, format!("{error}; also a duplicate id {id}"))
                    } else if done.contains(&key) {
                        progress.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
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
                Some(w) => return Some((w, (st, done))),
                None => {
                    progress.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
    });

    let exec = &exec;
    let results = work
        .map(|w| async move {
            match w {
                Work::Run(r) => {
                    let (id, line) = (r.id.clone(), r.line);
                    Done {
                        id: Some(id),
                        line,
                        outcome: exec(r).await,
                        invalid: false,
                    }
                }
                Work::Invalid { id, line, error } => Done {
                    id,
                    line,
                    outcome: Outcome::Failed(error),
                    invalid: true,
                },
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut results = std::pin::pin!(results);

    let mut report = BatchReport {
        ok: 0,
        failed: 0,
        invalid: 0,
        skipped: 0,
        repaired_bytes,
        elapsed: Duration::ZERO,
        aborted: None,
    };
    let mut line = Vec::with_capacity(1024);
    while let Some(d) = results.next().await {
        line.clear();
        let invalid = d.invalid;
        match d.outcome {
            Outcome::Abort(e) => {
                report.aborted = Some(e);
                break;
            }
            Outcome::Response { status, body } => {
                let body: Value = if body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
                };
                serde_json::to_writer(
                    &mut line,
                    &serde_json::json!({"id": d.id, "status": status, "body": body}),
                )
                .map_err(|e| Error::Internal(format!("encoding output: {e}")))?;
                if (200..300).contains(&status) {
                    report.ok += 1;
                    progress.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    report.failed += 1;
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Failed(error) => {
                let v = if !invalid {
                    serde_json::json!({"id": d.id, "error": error})
                } else {
                    serde_json::json!({"id": d.id, "line": d.line, "error": error})
                };
                serde_json::to_writer(&mut line, &v)
                    .map_err(|e| Error::Internal(format!("encoding output: {e}")))?;
                report.failed += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                if invalid {
                    report.invalid += 1;
                    progress.invalid.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        line.push(b'\n');
        // One write per record, straight to the OS: a kill loses at most the records in flight.
        out.write_all(&line)
            .and_then(|_| out.flush())
            .map_err(|e| io_error("writing", output, e))?;
    }
    out.get_ref()
        .sync_data()
        .map_err(|e| io_error("syncing", output, e))?;
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    report.skipped = progress.skipped.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    Ok(report)
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

async fn prepare_output(output: &Path, options: &BatchOptions) -> Result<(KeySet, u64), Error> {
    let exists = tokio::fs::try_exists(output).await.unwrap_or(false);
    if !options.resume {
        if exists && !options.overwrite {
            return Err(Error::Config(format!(
                "output {} already exists: it may be the journal of an unfinished run; resume it or choose to overwrite it",
                output.display()
            )));
        }
        return Ok((KeySet::default(), 0));
    }
    let path: PathBuf = output.to_path_buf();
    let retry_failed = options.retry_failed;
    let scan = tokio::task::spawn_blocking(move || {
        let scan = journal::scan_and_repair(&path)?;
        if !retry_failed {
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
    .map_err(|e| io_error("resuming from", output, e))?;
    if scan.repaired_bytes > 0 {
        tracing::warn!(
            bytes = scan.repaired_bytes,
            "cut a torn last line from the output (its record runs again)"
        );
    }
    if scan.unreadable_lines > 0 {
        tracing::warn!(
            lines = scan.unreadable_lines,
            "output lines that could not be read were ignored"
        );
    }
    Ok((scan.done, scan.repaired_bytes))
}

fn open_output(output: &Path, append: bool) -> Result<std::io::BufWriter<std::fs::File>, Error> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    let f = o.open(output).map_err(|e| io_error("opening", output, e))?;
    Ok(std::io::BufWriter::with_capacity(64 * 1024, f))
}

async fn count_lines(input: &Path) -> Result<u64, Error> {
    let path = input.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut n, mut last) = (0u64, b'\n');
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
            last = buf[k - 1];
        }
        Ok::<u64, std::io::Error>(n + u64::from(last != b'\n'))
    })
    .await
    .map_err(|e| Error::Internal(format!("counting input: {e}")))?
    .map_err(|e| io_error("reading", input, e))
}

#[cfg(test)]
mod tests;
