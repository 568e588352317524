//! The claim on an output: the lock file `OUT.twlock`, locked for a whole run.

use super::{LOCK_SUFFIX, busy_message, sidecar};
use crate::fs::Access;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Why an output could not be claimed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// Another run (of any command) holds the output.
    #[error("output {}: {}", .out.display(), busy_message())]
    Busy {
        /// The output.
        out: PathBuf,
    },
    /// The lock file could not be created, opened or locked (a directory this user may not
    /// write, a lock file planted as a symbolic link).
    #[error("cannot lock output {} (through {}): {source}", .out.display(), .lock.display())]
    Io {
        /// The output.
        out: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// An output held by this run: dropped, the lock file is removed and the lock released.
#[derive(Debug)]
pub(crate) struct Claim {
    /// Locked while this is alive.
    file: File,
    lock: PathBuf,
}

impl Claim {
    /// Takes `out` for this run, or fails at once when another run holds it.
    ///
    /// The lock is taken on the file that is at `OUT.twlock` once locked: a run that removed the
    /// file between our open and our lock (it was ending) makes us try again, so two runs can
    /// never hold locks on two different lock files.
    ///
    /// # Errors
    /// [`ClaimError::Busy`] when another run holds it; [`ClaimError::Io`] when the lock file cannot
    /// be created or locked.
    pub(crate) fn take(out: &Path) -> Result<Claim, ClaimError> {
        let lock = sidecar(out, LOCK_SUFFIX);
        let io_error = |source| ClaimError::Io {
            out: out.to_path_buf(),
            lock: lock.clone(),
            source,
        };
        for _ in 0..20 {
            // A private file (see `crate::fs`): a lock file planted by another user, or as a
            // link, is refused rather than locked.
            let file = crate::fs::open(&lock, Access::ReadWriteCreate)
                .map_err(|e| io_error(e.into_io("tokenwarden only locks its own lock files")))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ClaimError::Busy {
                        out: out.to_path_buf(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_error(e)),
            }
            let meta = file.metadata().map_err(io_error)?;
            if same_file(&meta, &lock) {
                return Ok(Claim { file, lock });
            }
        }
        Err(io_error(io::Error::other(
            "the lock file keeps being replaced by another process",
        )))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while still locked: a run that opened it meanwhile finds, once it holds the
        // lock, that the file is no longer at the path, and starts over (see `take`).
        let _ = std::fs::remove_file(&self.lock);
        let _ = self.file.unlock();
    }
}

/// Whether the file at `path` is still the one described by `meta`.
fn same_file(meta: &std::fs::Metadata, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::symlink_metadata(path)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_nothing_left_after() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let first = Claim::take(&out).unwrap();
        let second = Claim::take(&out).unwrap_err();
        assert!(matches!(second, ClaimError::Busy { .. }), "{second}");
        // The message names the output, not the lock file.
        let text = second.to_string();
        assert!(text.contains("out.jsonl:"), "{text}");
        assert!(!text.contains("twlock"), "{text}");
        drop(first);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(Claim::take(&out).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_planted_as_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, sidecar(&out, LOCK_SUFFIX)).unwrap();
        let e = Claim::take(&out).unwrap_err();
        assert!(matches!(e, ClaimError::Io { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
