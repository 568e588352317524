//! What can stop an export.

use crate::error::Error;
use std::path::PathBuf;

/// Why an [`export`](super) stopped or did not start.
///
/// The export engine keeps files as well as talking to the API, so besides the library's
/// [`Error`] it reports refusals about the output (which change nothing on disk) and local file
/// failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The API or the token endpoint failed (after the client's retries).
    #[error(transparent)]
    Api(#[from] Error),

    /// The output cannot be used as asked, and nothing was changed: it already exists (without
    /// overwrite or resume), its recorded state belongs to another export, another run is writing
    /// it, it is not a file this user owns. The message says which, and what to do.
    #[error("{0}")]
    Refused(String),

    /// Another run (of any command: `paginate`, `export`, `batch`) is writing the output now;
    /// nothing was changed. Nothing typed is wrong: wait for it, or choose another output.
    #[error("output {}: {}", .0.display(), crate::jobs::ownership::busy_message())]
    Busy(PathBuf),

    /// The directory the output was to be written in does not exist (it is not created: a typo
    /// should not produce a new directory tree).
    #[error("the directory of {} does not exist (check the path; it is not created)", .0.display())]
    NoDirectory(PathBuf),

    /// Reading or writing a local file failed (a full disk, a closed pipe).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: "writing", "reading", ...
        op: &'static str,
        /// The file (`-` for a stream).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ExportError {
    /// True when the output was a pipe that its reader closed (`tokenwarden paginate ... | head`):
    /// the reader has what it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ExportError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What the failure means ([`Class`](crate::error::Class)): the API's errors as
    /// [`Error::class`] says; an output another run is writing now is
    /// [`Class::Transient`](crate::error::Class::Transient); a refused output or a local file
    /// that cannot be used is [`Class::Fatal`](crate::error::Class::Fatal).
    pub fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            ExportError::Api(e) => e.class(),
            ExportError::Busy(_) => Class::Transient,
            ExportError::Refused(_) | ExportError::NoDirectory(_) | ExportError::Io { .. } => {
                Class::Fatal
            }
        }
    }

    pub(super) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ExportError::Io { op, path, source }
    }
}
