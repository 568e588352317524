//! What a batch tells while it runs (each [`Event`], which [`BatchProgress`] adds up) and once it
//! ends ([`BatchReport`], with the [`StopReason`] of a run that stopped early).

use super::FailureLimit;
use crate::error::Error;
use crate::jobs::{JobError, RunReport};
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What happens during a batch, for progress display: [`run`](super::run) tells each event as it
/// happens, as an export tells its own ([`export::Event`](crate::jobs::export::Event)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The input's non-blank lines were counted: the total the position is measured against. Told
    /// at most once, for a regular file (counted in the background while the job runs), never for
    /// a pipe or a shard.
    Total {
        /// Non-blank input lines.
        lines: u64,
    },
    /// A record an earlier run recorded was skipped.
    Skipped,
    /// A line was written to the output: a record's outcome, or an invalid input line.
    Recorded {
        /// The record was answered 2xx.
        ok: bool,
        /// It was an invalid input line (counted as failed too).
        invalid: bool,
    },
}

/// Live counters of a running batch, for progress display, added up from its events
/// ([`BatchProgress::apply`]): readable from another task while the job runs.
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
    /// Counts `event`.
    pub fn apply(&self, event: &Event) {
        match *event {
            Event::Total { lines } => {
                let _ = self.total_lines.set(lines);
            }
            Event::Skipped => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Event::Recorded { ok, invalid } => {
                let counter = if ok { &self.ok } else { &self.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if invalid {
                    self.invalid.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

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
    /// The executor stopped the job ([`Outcome::Abort`](super::Outcome::Abort), e.g. rejected credentials). The records
    /// in flight were abandoned unrecorded: a resume runs them.
    Aborted(Error),
    /// More records failed than [`BatchOptions::max_failures`](super::BatchOptions::max_failures) allows. The records in flight were
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
    Input(JobError),
    /// The API could not be reached ([`Outcome::Unreachable`](super::Outcome::Unreachable)) for every record in the
    /// [`Breaker`](super::Breaker)'s window, or for the last records of the input. Those records were not
    /// recorded, nor were the records in flight: a resume runs them.
    Unreachable {
        /// Records in a row that found the API unreachable.
        records: u64,
        /// For how long.
        lasted: Duration,
        /// The last of their errors.
        last: Error,
    },
    /// [`BatchOptions::interrupt`](super::BatchOptions::interrupt) stopped the job; the records in flight were abandoned
    /// unrecorded.
    Interrupted,
}

impl StopReason {
    /// The API's error behind the stop, if there is one (an input that breaks off is
    /// [`StopReason::Input`]'s own).
    pub fn error(&self) -> Option<&Error> {
        match self {
            StopReason::Aborted(e) => Some(e),
            StopReason::Input(JobError::Api(e)) => Some(e),
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

/// What a finished (or stopped) batch did. Serialized with the field names it always had
/// (`skipped`, `repaired_bytes`, `elapsed` in seconds, `stopped` in words).
#[derive(Debug, Clone)]
pub struct BatchReport {
    /// What every run reports: resumed or not, records run by this run (`done`: ok + failed) and
    /// skipped as recorded by earlier ones (`done_earlier`), bytes of a torn last line cut from
    /// the output on resume (`cut_bytes`), wall time.
    pub run: RunReport,
    /// Records answered 2xx in this run.
    pub ok: u64,
    /// Records failed in this run (including invalid lines).
    pub failed: u64,
    /// Of which invalid input lines.
    pub invalid: u64,
    /// Of the skipped records, those an earlier run recorded as failed (including invalid
    /// lines) and that stay in the output as failed: the output holds `failed +
    /// earlier_failed` failed records.
    pub earlier_failed: u64,
    /// Of which invalid input lines.
    pub earlier_invalid: u64,
    /// Whether the output exists at the end of the run (written by this run or an earlier one):
    /// there is something to resume.
    pub output_exists: bool,
    /// Why the run stopped early, if it did.
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

impl serde::Serialize for BatchReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut r = s.serialize_struct("BatchReport", 10)?;
        r.serialize_field("ok", &self.ok)?;
        r.serialize_field("failed", &self.failed)?;
        r.serialize_field("invalid", &self.invalid)?;
        r.serialize_field("skipped", &self.run.done_earlier)?;
        r.serialize_field("earlier_failed", &self.earlier_failed)?;
        r.serialize_field("earlier_invalid", &self.earlier_invalid)?;
        r.serialize_field("output_exists", &self.output_exists)?;
        r.serialize_field("repaired_bytes", &self.run.cut_bytes)?;
        r.serialize_field("elapsed", &self.run.elapsed.as_secs_f64())?;
        r.serialize_field("stopped", &self.stopped.as_ref().map(ToString::to_string))?;
        r.end()
    }
}
