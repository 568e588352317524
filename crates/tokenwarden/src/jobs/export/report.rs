//! What an export tells as it goes ([`Event`]) and once it ends ([`Report`]).

use crate::jobs::RunReport;
use crate::paginate::Interval;

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
    /// What every run reports: resumed or not, items written by this run (`done`) and before it
    /// (`done_earlier`), bytes cut from the end of the output on resume (items of a page that was
    /// being written), wall time.
    pub run: RunReport,
    /// Items in the output.
    pub items: u64,
    /// Pages read by this run.
    pub pages: u64,
    /// The export was complete already: nothing was done.
    pub already_complete: bool,
    /// Slices of a conversation export.
    pub slices: usize,
    /// Slices run again because their job was gone or failed.
    pub slices_redone: usize,
    /// Conversations a job returned that belong to another slice (they crossed a slice boundary).
    pub left_to_other_slices: u64,
}
