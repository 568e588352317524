//! [`RunReport`]: what every job run reports, whichever engine ran it.

use std::time::Duration;

/// What every job run has, whichever engine ran it: embedded as `run` in
/// [`BatchReport`](super::batch::BatchReport) and in export's [`Report`](super::export::Report).
/// Counts are in the engine's unit: a batch's records, an export's items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// An earlier run was continued (its output kept and appended to).
    pub resumed: bool,
    /// Done by this run: a batch's records run (ok and failed), an export's items written.
    pub done: u64,
    /// Done by earlier runs, kept in the output: a batch's records skipped as recorded, an
    /// export's items already in the output.
    pub done_earlier: u64,
    /// Bytes of a torn tail cut from the output on resume (a line, or a page, being written when
    /// the earlier run stopped).
    pub cut_bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}
