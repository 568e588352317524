//! [`JobError`]: why a job engine ([`batch`](super::batch), [`export`](super::export)) could
//! not start, or had to stop, besides the API's own errors; the one error type of both engines.

use super::ownership::{self, Writer};
use crate::error::{Class, Error};
use crate::paginate::IntervalError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a job ([`batch::run`](super::batch::run), [`export::run`](super::export::run)) failed.
/// The API's and the token's failures are [`JobError::Api`]; the rest are the job's own files:
/// its input, its output and the sidecars beside the output.
///
/// Cheap to clone (the operating system's error is shared behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The API, the token endpoint or the configuration failed (after the client's retries).
    #[error(transparent)]
    Api(#[from] Error),

    /// Reading or writing a local file failed (a missing input, a full disk, a closed pipe).
    /// [`Step`] says which step failed, and the operating system's error is the
    /// [`source`](std::error::Error::source) (not repeated in the message: print the chain,
    /// as `anyhow`'s `{:#}` does, to show it).
    #[error("{step} {}", .path.display())]
    Io {
        /// What was being done.
        step: Step,
        /// The file (or directory; `-` for a stream) it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// Another run (of any command: `paginate`, `export`, `batch`) is writing the output now;
    /// nothing was changed. Nothing typed is wrong: wait for it, or choose another output.
    #[error("output {}: {}", .0.display(), ownership::busy_message())]
    Busy(PathBuf),

    /// The job refused to use a file as asked, and left it as it was: the output exists (without
    /// overwrite or resume), it is another job's, another command's, it was changed outside the
    /// job, it is not a private file of this user's; or what was asked cannot be done (a slice
    /// length out of range). [`Refusal`] says which.
    #[error("{}", Refused::new(*.by, .path, .reason))]
    Refused {
        /// The engine that refused (the message is in its words).
        by: Writer,
        /// The file refused (the output, or the sidecar that says why; `-` for a stream).
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },

    /// The directory the output was to be written in does not exist (it is not created: a typo
    /// should not produce a new directory tree).
    #[error("the directory of {} does not exist (check the path; it is not created)", .0.display())]
    NoDirectory(PathBuf),
}

impl JobError {
    pub(crate) fn io(step: Step, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        JobError::Io {
            step,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A closure for `map_err`: the I/O error of `step` on `path`.
    pub(crate) fn io_at(
        step: Step,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| JobError::io(step, path, source)
    }

    pub(crate) fn refused(by: Writer, path: impl Into<PathBuf>, reason: Refusal) -> Self {
        JobError::Refused {
            by,
            path: path.into(),
            reason,
        }
    }

    /// What the failure means ([`Class`]): an output another run is writing now is
    /// [`Class::Transient`] (try again later); the API's errors are classified as
    /// [`Error::class`] says; a refused output or a file that cannot be used is
    /// [`Class::Fatal`] (something must change first).
    pub fn class(&self) -> Class {
        match self {
            JobError::Api(e) => e.class(),
            JobError::Busy(_) => Class::Transient,
            JobError::Refused { .. } | JobError::NoDirectory(_) | JobError::Io { .. } => {
                Class::Fatal
            }
        }
    }

    /// True when the output was a pipe that its reader closed (`tokenwarden paginate ... | head`):
    /// the reader has what it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, JobError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The step of a job's file handling that failed, for [`JobError::Io`]. Its `Display` is the
/// start of the message ("cannot open input", "writing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Opening the input (missing, unreadable, a directory).
    OpenInput,
    /// Reading the input after it was opened.
    ReadInput,
    /// The directory the output goes into (missing: it is not created).
    OutputDirectory,
    /// Creating or opening a batch's output or its job file.
    CreateOutput,
    /// Taking a batch's output lock.
    LockOutput,
    /// Reading a batch's output back as a journal, to resume.
    ReadJournal,
    /// Writing a batch's output (a full disk, an I/O error).
    WriteOutput,
    /// Taking an export's output lock.
    Lock,
    /// Removing a file an export no longer needs (an earlier CSV, a batch's job file).
    Remove,
    /// Reading a file of an export (its data, state or spool).
    Read,
    /// Cutting an export's data back to its recorded position.
    Truncate,
    /// Moving to a position in an export's data.
    Seek,
    /// Creating an export's data file.
    Create,
    /// Replacing a file of an export (a file others could read, the finished output).
    Replace,
    /// Opening an export's existing data file.
    Open,
    /// Saving an export's state.
    SaveState,
    /// Making an export's finished files durable.
    Sync,
    /// Creating the temporary spool of a CSV written to a stream.
    CreateTemporary,
    /// Creating the temporary file a finished output is written to, before it replaces it.
    CreateTemporaryFor,
    /// Writing an export's output (a full disk, a closed pipe).
    Write,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::OpenInput => "cannot open input",
            Step::ReadInput => "cannot read input",
            Step::OutputDirectory => "output directory",
            Step::CreateOutput => "cannot create output",
            Step::LockOutput => "cannot lock output",
            Step::ReadJournal => "cannot read the journal",
            Step::WriteOutput => "cannot write output",
            Step::Lock => "locking",
            Step::Remove => "removing",
            Step::Read => "reading",
            Step::Truncate => "truncating",
            Step::Seek => "seeking in",
            Step::Create => "creating",
            Step::Replace => "replacing",
            Step::Open => "opening",
            Step::SaveState => "saving",
            Step::Sync => "syncing",
            Step::CreateTemporary => "creating a temporary file",
            Step::CreateTemporaryFor => "creating a temporary file for",
            Step::Write => "writing",
        })
    }
}

/// Why a job refused a file (see [`JobError::Refused`]). In every case the files were left as
/// they were. The first five are the identity decision both engines make on resume (is this
/// file the job asked for?); the rest are one engine's own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The output exists and neither resuming nor overwriting was asked for: it may hold an
    /// unfinished run.
    Exists,
    /// Resuming was asked for, but the output has no sidecar of this engine beside it (a batch's
    /// job file, an export's state), or an unreadable one: this engine did not write it.
    NotAJournal {
        /// The sidecar that is missing or unreadable.
        sidecar: PathBuf,
    },
    /// Resuming was asked for, but the output is kept by the other engine (its sidecar is
    /// beside it).
    OtherCommand {
        /// The other engine's sidecar.
        sidecar: PathBuf,
    },
    /// The output is another job's (another input, format, API or definition).
    OtherJob {
        /// What differs.
        detail: String,
    },
    /// The output is not the file its sidecar describes (replaced, cut short, or holding lines
    /// the engine does not write): it was changed outside this job.
    Changed {
        /// The sidecar that describes it.
        sidecar: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A batch's output is not a regular file (a device, a FIFO), so there is nothing to resume.
    NotResumable,
    /// An export's output exists although nothing did a moment before (another run may have just
    /// created it).
    JustCreated,
    /// An export's data file is missing while its state records items in it.
    DataMissing {
        /// The state.
        state: PathBuf,
        /// The items it records.
        items: u64,
    },
    /// An export's data file is shorter than its recorded position.
    Shorter {
        /// Its length.
        len: u64,
        /// The recorded position.
        recorded: u64,
    },
    /// An export's output is a directory.
    IsADirectory,
    /// An export's output cannot be written for lack of permission.
    NoPermission,
    /// An export's output is a symbolic link.
    Symlink,
    /// An export's state file is a symbolic link.
    StateSymlink,
    /// A file of an export's is not a private file of this user's.
    NotPrivate {
        /// What is wrong with it, in words ("is readable by others").
        why: String,
    },
    /// An export's state file is not JSON an export writes.
    NotAState {
        /// The parser's words.
        detail: String,
    },
    /// An export's state file was written by another version (another layout).
    OtherVersion {
        /// Its layout.
        layout: u32,
    },
    /// An export's spool line is not JSON.
    NotJson {
        /// Its line number, from 1.
        line: u64,
        /// The parser's words.
        detail: String,
    },
    /// Items already written to a stream cannot be taken back (a slice run again).
    StreamTakeBack,
    /// The interval cannot be cut into slices.
    Slices(IntervalError),
    /// The slice length is zero or longer than 31 days.
    SliceLength(Duration),
    /// The recorded slice is outside the interval.
    SliceOutside,
    /// The items have more distinct fields than one CSV header may hold.
    TooManyColumns {
        /// The limit.
        limit: usize,
    },
    /// The CSV writer refused an item.
    Csv {
        /// The writer's words.
        detail: String,
    },
}

/// A refusal in the words of the engine that refused.
struct Refused<'a> {
    by: Writer,
    path: &'a Path,
    reason: &'a Refusal,
}

impl<'a> Refused<'a> {
    fn new(by: Writer, path: &'a Path, reason: &'a Refusal) -> Self {
        Self { by, path, reason }
    }
}

impl fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.by == Writer::Batch {
            write!(f, "output {path}: ")?;
        }
        match (self.by, self.reason) {
            (Writer::Batch, Refusal::Exists) => f.write_str(
                "already exists: it may be the journal of an unfinished run, so it is not overwritten",
            ),
            (Writer::Batch, Refusal::NotAJournal { sidecar }) => write!(
                f,
                "was not written by a batch ({} is missing or unreadable), so it is not resumed and not touched",
                sidecar.display()
            ),
            (Writer::Batch, Refusal::OtherCommand { sidecar }) => write!(
                f,
                "was written by {} ({} records its position), not by a batch, so it is not resumed and not touched",
                Writer::Export.describe(),
                sidecar.display()
            ),
            (Writer::Batch, Refusal::OtherJob { detail }) => {
                write!(f, "is the journal of another job: {detail}; it is not touched")
            }
            (Writer::Batch, Refusal::Changed { detail, .. }) => write!(
                f,
                "is not the file its job file describes ({detail}): it was changed outside this job, so it is not resumed and not touched"
            ),
            (_, Refusal::NotResumable) => {
                f.write_str("is not a regular file, so there is no journal to resume")
            }
            (_, Refusal::Exists) => write!(
                f,
                "{path} already exists: it may hold an unfinished export; rerun with --resume to continue it, or --force to overwrite it"
            ),
            (_, Refusal::NotAJournal { sidecar }) => write!(
                f,
                "{path} has no recorded position ({} is missing): it was not written by a resumable tokenwarden export, so it cannot be continued; use --force to overwrite it",
                sidecar.display()
            ),
            (_, Refusal::OtherCommand { sidecar }) => write!(
                f,
                "{path} was written by {} ({} is its job file), not by paginate or export, so it is not resumed and not touched; rerun that batch with --resume, or use --force to replace it",
                Writer::Batch.describe(),
                sidecar.display()
            ),
            (_, Refusal::OtherJob { detail }) => write!(
                f,
                "{path} records another export ({detail}): rerun the command that started it with --resume, or use --force to start this one over"
            ),
            (_, Refusal::Changed { sidecar, detail }) => write!(
                f,
                "{path} is not the file {} describes ({detail}): it was changed outside this export, so it is not resumed and not touched; use --force to start over",
                sidecar.display()
            ),
            (_, Refusal::JustCreated) => write!(
                f,
                "{path} already exists (another run may have just created it); rerun with --resume or --force"
            ),
            (_, Refusal::DataMissing { state, items }) => write!(
                f,
                "{path} is missing, but {} records {items} items in it: put it back, or use --force to start over",
                state.display()
            ),
            (_, Refusal::Shorter { len, recorded }) => write!(
                f,
                "{path} is shorter ({len} bytes) than its recorded position ({recorded} bytes): it was changed outside tokenwarden; use --force to start over"
            ),
            (_, Refusal::IsADirectory) => {
                write!(f, "{path} is a directory: give a file name for the output")
            }
            (_, Refusal::NoPermission) => write!(
                f,
                "{path} cannot be written (permission denied): choose another --out"
            ),
            (_, Refusal::Symlink) => {
                write!(f, "{path} is a symbolic link: give the file's real path")
            }
            (_, Refusal::StateSymlink) => write!(
                f,
                "{path} is a symbolic link, not a state tokenwarden wrote; remove it"
            ),
            (_, Refusal::NotPrivate { why }) => write!(
                f,
                "{path} {why}: tokenwarden only continues or overwrites its own private files"
            ),
            (_, Refusal::NotAState { detail }) => write!(
                f,
                "{path} is not a tokenwarden export state ({detail}); remove it, or use --force to start over"
            ),
            (_, Refusal::OtherVersion { layout }) => write!(
                f,
                "{path} was written by another version of tokenwarden (layout {layout}); use --force to start over"
            ),
            (_, Refusal::NotJson { line, detail }) => write!(
                f,
                "{path} line {line} is not JSON ({detail}): it was changed outside tokenwarden; use --force to start over"
            ),
            (_, Refusal::StreamTakeBack) => {
                f.write_str("cannot take back items already written to a stream")
            }
            (_, Refusal::Slices(e)) => write!(f, "{e}"),
            (_, Refusal::SliceLength(d)) => write!(
                f,
                "a slice must be longer than zero and at most 31 days, not {}",
                crate::error::human_duration(*d)
            ),
            (_, Refusal::SliceOutside) => f.write_str("the recorded slice is outside the interval"),
            (_, Refusal::TooManyColumns { limit }) => write!(
                f,
                "the items have more than {limit} distinct fields, too many for one CSV header; use --format jsonl"
            ),
            (_, Refusal::Csv { detail }) => write!(f, "CSV: {detail}"),
        }
    }
}
