//! Who owns an output file: one protocol for every command that writes a resumable output
//! (`batch`, `paginate`, `export`), so that two of them never write one file at once and a resume
//! never trusts another command's bookkeeping.
//!
//! - **One writer per output, whatever the command.** A run takes the claim on `OUT`: an advisory
//!   lock (`flock` on Unix) on the lock file `OUT.twlock` (created 0600, never through a symbolic
//!   link), held for the whole run. A second run on `OUT`, by any command, fails at once with
//!   [`ClaimError::Busy`] and touches nothing. The lock dies with the process (a `kill -9` leaves
//!   no stale lock), and the lock file is removed when the run ends.
//! - **Sidecars belong to a command.** Beside `OUT`, a batch keeps its job file `OUT.twjob`;
//!   `paginate` and `export` keep their state `OUT.twstate` (and a CSV spool `OUT.twspool`).
//!   [`written_by`] says which command's sidecars are there, so that a resume refuses another
//!   command's output, and a run that replaces `OUT` removes the other command's sidecars with it.
//! - **A sidecar vouches for its file.** A `Fingerprint` (length and SHA-256 of the first and
//!   last bytes) kept in a sidecar tells whether the file is still the one it describes.
//! - **Streams are not files.** An output that exists and is not a regular file (`/dev/null`, a
//!   FIFO, a terminal), or any path under `/dev/` or `/proc/` (`/dev/stdout` even when the shell
//!   redirected it to a file), is written as a stream ([`is_stream`]): no claim, no sidecar, no
//!   resume.

mod claim;
mod fingerprint;

pub(crate) use claim::Claim;
pub use claim::ClaimError;
pub(crate) use fingerprint::Fingerprint;

use std::path::{Path, PathBuf};

/// The lock file's suffix: `OUT.twlock`.
pub const LOCK_SUFFIX: &str = ".twlock";
/// A batch's job file: `OUT.twjob`.
pub const JOB_SUFFIX: &str = ".twjob";
/// The position of a `paginate` or `export`: `OUT.twstate`.
pub const STATE_SUFFIX: &str = ".twstate";
/// The CSV spool of a `paginate` or `export`: `OUT.twspool`.
pub const SPOOL_SUFFIX: &str = ".twspool";

/// Which command keeps sidecars beside an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Writer {
    /// `tokenwarden batch` (its job file).
    Batch,
    /// `tokenwarden paginate` or `export` (its state and CSV spool).
    Export,
}

impl Writer {
    /// The suffixes of this command's sidecars.
    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            Writer::Batch => &[JOB_SUFFIX],
            Writer::Export => &[STATE_SUFFIX, SPOOL_SUFFIX],
        }
    }

    /// The command, in words ("a batch", "paginate or export").
    pub fn describe(self) -> &'static str {
        match self {
            Writer::Batch => "tokenwarden batch",
            Writer::Export => "tokenwarden paginate or export",
        }
    }

    /// The other command.
    pub(crate) fn other(self) -> Writer {
        match self {
            Writer::Batch => Writer::Export,
            Writer::Export => Writer::Batch,
        }
    }
}

/// `out` with `suffix` appended to its file name: `out.jsonl` → `out.jsonl.twjob`.
pub fn sidecar(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Every file tokenwarden may keep beside `out` (lock, job file, state, spool), whichever command
/// wrote it: a file that is none of them may be chosen for something else (a summary).
pub fn sidecars(out: &Path) -> Vec<PathBuf> {
    std::iter::once(LOCK_SUFFIX)
        .chain(Writer::Batch.suffixes().iter().copied())
        .chain(Writer::Export.suffixes().iter().copied())
        .map(|s| sidecar(out, s))
        .collect()
}

/// The first sidecar of `writer` found beside `out` (a symbolic link counts: it is not followed).
pub fn written_by(out: &Path, writer: Writer) -> Option<PathBuf> {
    writer
        .suffixes()
        .iter()
        .map(|s| sidecar(out, s))
        .find(|p| p.symlink_metadata().is_ok())
}

/// Whether `out` is written as a stream rather than a file: it exists and is not a regular file
/// (`/dev/null`, a FIFO, a terminal, a pipe), or it is under `/dev/` or `/proc/` (`/dev/stdout`,
/// `/dev/fd/3`, `/proc/self/fd/1`: what they stand for may be a regular file the shell opened, but
/// nothing can be kept beside them).
pub fn is_stream(out: &Path) -> bool {
    let special = out.starts_with("/dev/") || out.starts_with("/proc/");
    special || std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The message for an output another run holds, the same for every command: it names the
/// output, not the lock file.
pub(crate) fn busy_message() -> &'static str {
    "another tokenwarden run is writing it now; nothing was changed"
}

/// Removes `writer`'s sidecars beside `out` (a run replacing `out` makes them describe nothing).
/// A sidecar that is already gone is fine.
///
/// # Errors
/// The first removal that failed otherwise, with the file's path.
pub(crate) fn remove_sidecars(out: &Path, writer: Writer) -> Result<(), (PathBuf, std::io::Error)> {
    for s in writer.suffixes() {
        let p = sidecar(out, s);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err((p, e)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_named_beside_the_output() {
        let out = Path::new("dir/out.jsonl");
        let names: Vec<String> = sidecars(out)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "dir/out.jsonl.twlock",
                "dir/out.jsonl.twjob",
                "dir/out.jsonl.twstate",
                "dir/out.jsonl.twspool"
            ]
        );
    }

    #[test]
    fn which_command_wrote_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        assert_eq!(written_by(&out, Writer::Batch), None);
        std::fs::write(sidecar(&out, STATE_SUFFIX), "{}").unwrap();
        assert_eq!(
            written_by(&out, Writer::Export),
            Some(sidecar(&out, STATE_SUFFIX))
        );
        assert_eq!(written_by(&out, Writer::Batch), None);
        remove_sidecars(&out, Writer::Export).unwrap();
        assert_eq!(written_by(&out, Writer::Export), None);
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_streams() {
        assert!(is_stream(Path::new("/dev/null")));
        assert!(is_stream(Path::new("/dev/stdout")));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        assert!(!is_stream(&file), "missing: a file to create");
        std::fs::write(&file, "x").unwrap();
        assert!(!is_stream(&file));
        assert!(!is_stream(dir.path()), "a directory is refused elsewhere");
        let fifo = dir.path().join("fifo");
        crate::fs::make_fifo(&fifo);
        assert!(is_stream(&fifo));
    }
}
