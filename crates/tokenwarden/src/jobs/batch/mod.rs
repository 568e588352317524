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
//!   command shares ([`ownership`](crate::jobs::ownership)): a second run on it, of any command, fails at
//!   once ([`JobError::Busy`](crate::jobs::JobError::Busy)). The job file beside it (`out.jsonl.twjob`) records which job
//!   it belongs to: a resume with another input, format or API is refused before anything is sent
//!   or changed ([`Refusal::OtherJob`](crate::jobs::Refusal::OtherJob)), and a file that no batch wrote, or that was changed
//!   since, is never resumed into ([`Refusal::NotAJournal`](crate::jobs::Refusal::NotAJournal), [`Refusal::Changed`](crate::jobs::Refusal::Changed),
//!   [`Refusal::OtherCommand`](crate::jobs::Refusal::OtherCommand)). The output itself stays plain JSON Lines.
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
mod input;
mod job;
mod journal;
mod limit;
mod output;
mod shard;
mod source;

pub use breaker::Breaker;
/// The batch engine's error, now the one error of both engines.
#[deprecated(note = "use `jobs::JobError`, the error of both engines")]
pub type BatchError = crate::jobs::JobError;
/// The step of a batch's file handling that failed, now the steps of both engines.
#[deprecated(note = "use `jobs::Step`, the steps of both engines")]
pub type IoOp = crate::jobs::Step;
pub use input::{InputFormat, Record};
pub use limit::{FailureLimit, MIN_FAILURE_SAMPLE};
pub use output::job_file_path;
pub use shard::Shard;
pub use source::{DEFAULT_MAX_LINE_BYTES, Input};
mod report;
mod run;
mod work;

pub use report::{BatchProgress, BatchReport, Event, StopReason};
pub use run::run;

use crate::error::Error;
use crate::transport::ApiBase;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The API base: every record's URL is resolved against it and must stay on its origin.
    pub api_base: ApiBase,
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
    /// failure limit, lines up to [`DEFAULT_MAX_LINE_BYTES`]. `api_base` is an [`ApiBase`], or a
    /// reference to one (`BatchOptions::new(client.api_base())`).
    pub fn new(api_base: impl Into<ApiBase>) -> Self {
        Self {
            api_base: api_base.into(),
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

#[cfg(test)]
mod tests;
