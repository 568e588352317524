//! [`BatchError`]: why a batch could not start, or had to stop, besides the API's own errors.

use super::output::JournalProblem;
use crate::error::{Class, Error};
use std::sync::Arc;

/// Why [`run`](super::run) failed. The API's and the token's failures are [`BatchError::Api`];
/// the rest are the batch's own files: its input, its output and the output's job file.
///
/// Cheap to clone (the operating system's error is shared behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The API, the token endpoint or the configuration failed.
    #[error(transparent)]
    Api(#[from] Error),

    /// Reading the input, or creating, locking or writing the output, failed (a missing file, a
    /// full disk). [`IoOp`] says which step failed, and the operating system's error is the
    /// [`source`](std::error::Error::source) (not repeated in the message).
    #[error("{op} {}", .path.display())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file (or directory) it was done to.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The batch refused to start on its output file, and left it as it was: another run holds
    /// it, or it is not this job's journal.
    #[error("output {}: {problem}", .path.display())]
    Journal {
        /// The output file.
        path: std::path::PathBuf,
        /// Why it was refused.
        problem: JournalProblem,
    },
}

impl BatchError {
    pub(crate) fn io(op: IoOp, path: &std::path::Path, source: std::io::Error) -> Self {
        BatchError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// What the failure means ([`Class`]): an output another run is writing now is
    /// [`Class::Transient`] (try again later); the API's errors are classified as
    /// [`Error::class`] says; a refused output or a file that cannot be used is
    /// [`Class::Fatal`] (something must change first).
    pub fn class(&self) -> Class {
        match self {
            BatchError::Api(e) => e.class(),
            BatchError::Journal {
                problem: JournalProblem::Busy,
                ..
            } => Class::Transient,
            BatchError::Journal { .. } | BatchError::Io { .. } => Class::Fatal,
        }
    }
}

/// The step of a batch's file handling that failed, for [`BatchError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Opening the input (missing, unreadable, a directory).
    OpenInput,
    /// Reading the input after it was opened.
    ReadInput,
    /// The directory the output goes into (missing: it is not created).
    OutputDirectory,
    /// Creating or opening the output or its job file.
    CreateOutput,
    /// Taking the output's lock.
    LockOutput,
    /// Reading the output back as a journal, to resume.
    ReadJournal,
    /// Writing the output (a full disk, an I/O error).
    WriteOutput,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::OpenInput => "cannot open input",
            IoOp::ReadInput => "cannot read input",
            IoOp::OutputDirectory => "output directory",
            IoOp::CreateOutput => "cannot create output",
            IoOp::LockOutput => "cannot lock output",
            IoOp::ReadJournal => "cannot read the journal",
            IoOp::WriteOutput => "cannot write output",
        })
    }
}
