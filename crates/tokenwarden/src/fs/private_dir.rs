//! A directory that only the current user can touch: the safety checks behind the token cache and
//! the sign-in session.
//!
//! A directory is trusted when it and every directory above it are owned by the user (or root)
//! and not writable by anyone else (a sticky directory such as `/tmp` is fine above it): then no
//! other user can rename, replace or plant anything on the way to a file, and paths can be used
//! as they are. Files in it follow the module's one rule ([`super::check`]): opened without
//! following a symbolic link, trusted when `fstat` on the open descriptor says it is a regular
//! file owned by the user with no group or other permissions; replaced through an exclusively
//! created temporary file with an unpredictable name (mode 0600), synced, and renamed into place.
//!
//! The owner and mode checks exist on Unix only; elsewhere the files live in the user's profile,
//! protected by its access control lists.

use super::{Access, OpenError, Replacement, Untrusted};
use crate::error::Error;
use std::fs::File;
use std::io::{self, ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Checks that no other user can replace the file at `path` (which need not exist): neither the
/// directory it is in nor any directory above it may be writable by group or others unless it
/// is sticky (`/tmp`, where only an entry's owner may rename or remove it). A secret kept in a
/// file of its own (the agent's key) is only as safe as the directories on its way: whoever can
/// write to one of them can swap the file, or the directory holding it, for their own.
///
/// The directories are those of the canonical path (symbolic links resolved). On other systems
/// than Unix nothing is checked.
///
/// # Errors
/// [`io::ErrorKind::PermissionDenied`] naming the first such directory, its mode and the fix;
/// the operating system's error when the directory cannot be resolved (a missing one:
/// [`io::ErrorKind::NotFound`]).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// tokenwarden::fs::check_parent_dirs(&dir.path().join("agent.key"))?;
/// # Ok(()) }
/// ```
pub fn check_parent_dirs(path: &Path) -> io::Result<()> {
    let dir = std::fs::canonicalize(super::parent(path))?;
    for d in dir.ancestors() {
        if let Some(mode) = os::replaceable_by_others(&std::fs::symlink_metadata(d)?) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is in {}, which other users can write to (mode {mode:04o}, not sticky): \
                     they could replace the file; fix: chmod go-w {}, or keep the file elsewhere",
                    path.display(),
                    d.display(),
                    d.display()
                ),
            ));
        }
    }
    Ok(())
}

/// A directory that passed the checks, by its canonical path (no symbolic links left in it).
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `dir` and its missing parents (mode 0700), then checks it.
    ///
    /// # Errors
    ///
    /// When it cannot be created, or it or a directory above it can be changed by another user:
    /// the message names the directory and the fix.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| io_error("creating the directory", dir, &e))?;
        let path =
            std::fs::canonicalize(dir).map_err(|e| io_error("resolving the directory", dir, &e))?;
        let md = std::fs::symlink_metadata(&path)
            .map_err(|e| io_error("inspecting the directory", &path, &e))?;
        if !md.is_dir() {
            return Err(Error::store(format!(
                "{} is not a directory",
                path.display()
            )));
        }
        os::check_dir(&path, &md)?;
        for ancestor in path.ancestors().skip(1) {
            let md = std::fs::symlink_metadata(ancestor)
                .map_err(|e| io_error("inspecting the directory", ancestor, &e))?;
            os::check_ancestor(&path, ancestor, &md)?;
        }
        Ok(Self { path })
    }

    /// The path of `name` in this directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The contents of the private file `name` (at most `max + 1` bytes, so that the caller can
    /// tell a file that is too long), or `None` when there is none.
    ///
    /// # Errors
    ///
    /// When `name` is a symbolic link, not a regular file, not the user's, or open to others: it
    /// is not read.
    pub(crate) fn read(&self, name: &str, max: usize) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let path = self.join(name);
        let mut file = match super::open(&path, Access::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(refused_or_io("opening", &path, e)),
        };
        let md = file
            .metadata()
            .map_err(|e| io_error("inspecting", &path, &e))?;
        let limit = max.saturating_add(1);
        let capacity = usize::try_from(md.len()).unwrap_or(limit).min(limit);
        // Sized up front so that the secret is not left behind in a reallocated buffer.
        let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
        (&mut file)
            .take(limit as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_error("reading", &path, &e))?;
        Ok(Some(buf))
    }

    /// Checks that whatever is at `name` now, if anything, is a private regular file: something
    /// else is refused rather than silently replaced.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub(crate) fn check_existing(&self, name: &str) -> Result<(), Error> {
        let path = self.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(md) => super::check(&md).map_err(|u| refusal(&path, u)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("inspecting", &path, &e)),
        }
    }

    /// Atomically replaces `name` with `contents` (mode 0600; see [`super::replace`]).
    ///
    /// # Errors
    ///
    /// When the file cannot be written; `name` is then unchanged.
    pub(crate) fn replace(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        let path = self.join(name);
        self.write(name, contents)?
            .commit()
            .map_err(|e| io_error("replacing", &path, &e))
    }

    /// Creates `name` with `contents` (mode 0600) unless it exists; an existing file is left as
    /// it is (the caller reads it back).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub(crate) fn create_new(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        let path = self.join(name);
        match self.write(name, contents)?.commit_new() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("creating", &path, &e)),
        }
    }

    /// Opens the lock file `name`, creating it (mode 0600) when missing.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub(crate) fn open_lock_file(&self, name: &str) -> Result<File, Error> {
        let path = self.join(name);
        super::open(&path, Access::ReadWriteCreate).map_err(|e| refused_or_io("opening", &path, e))
    }

    /// The replacement of `name` holding `contents`, not committed yet.
    fn write(&self, name: &str, contents: &[u8]) -> Result<Replacement, Error> {
        let mut new = Replacement::begin(&self.join(name), &format!(".{name}."))
            .map_err(|e| io_error("creating a temporary file in", &self.path, &e))?;
        new.write_all(contents)
            .map_err(|e| io_error("writing", new.temp_path(), &e))?;
        Ok(new)
    }

    /// Removes the temporary files (`.NAME.XXXXXX.tmp`, see [`Self::replace`]) that a process
    /// killed between writing and renaming left here: each may hold a token until it expires.
    /// Only regular files of the user's (never a symbolic link) last modified more than
    /// `older_than` ago are removed: a live writer renames its file within moments. Returns how
    /// many were removed.
    pub(crate) fn remove_stale_temps(&self, older_than: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return 0;
        };
        // The file system's clock, not the (possibly paused) runtime's: mtimes are real.
        let now = crate::clock::file_system_now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_temp = name
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"));
            let Ok(md) = entry.path().symlink_metadata() else {
                continue;
            };
            if !is_temp || !md.is_file() || !os::is_mine(&md) {
                continue;
            }
            let stale = md
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > older_than);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                tracing::info!(path = %entry.path().display(), "removed a stale temporary file from the token cache");
                removed += 1;
            }
        }
        removed
    }
}

/// The message for a file that is not private, naming the fix.
fn refusal(path: &Path, why: Untrusted) -> Error {
    let p = path.display();
    let remove = format!(
        "refusing to use it; if you did not put it there, someone else may have: remove it (rm {p}) and tokenwarden will create a private one"
    );
    Error::store(match why {
        Untrusted::Symlink => format!("{p} is a symbolic link: {remove}"),
        Untrusted::NotRegular => format!("{p} is not a regular file: {remove}"),
        Untrusted::OtherOwner { uid, me } => {
            format!("{p} belongs to uid {uid}, not to you (uid {me}): {remove}")
        }
        Untrusted::WritableByOthers { mode } | Untrusted::ReadableByOthers { mode } => format!(
            "{p} can be accessed by other users (mode {mode:04o}; it must be 0600): {remove}"
        ),
    })
}

fn refused_or_io(what: &str, path: &Path, e: OpenError) -> Error {
    match e {
        OpenError::Untrusted(u) => refusal(path, u),
        OpenError::Io(e) => io_error(what, path, &e),
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::store(format!("{what} {}: {e}", path.display()))
}

/// The owner and mode checks, against the effective user id.
#[cfg(unix)]
mod os {
    use crate::error::Error;
    use std::fs::Metadata;
    use std::os::unix::fs::MetadataExt as _;
    use std::path::Path;

    /// Group or other may write.
    const SHARED_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    pub(super) fn is_mine(md: &Metadata) -> bool {
        md.uid() == me()
    }

    pub(super) fn check_dir(dir: &Path, md: &Metadata) -> Result<(), Error> {
        let d = dir.display();
        if md.uid() != me() {
            return Err(Error::store(format!(
                "the token cache directory {d} belongs to uid {}, not to you (uid {}): refusing to use it; use a directory of your own",
                md.uid(),
                me()
            )));
        }
        if md.mode() & SHARED_WRITE != 0 {
            return Err(Error::store(format!(
                "the token cache directory {d} is writable by other users (mode {:04o}): refusing to use it; fix: chmod 700 {d}",
                md.mode() & 0o7777
            )));
        }
        Ok(())
    }

    /// A directory above the cache: whoever can write to it can swap the cache directory for one
    /// of theirs, unless it is sticky (then only the owner of an entry may rename it).
    pub(super) fn check_ancestor(dir: &Path, ancestor: &Path, md: &Metadata) -> Result<(), Error> {
        let (d, a) = (dir.display(), ancestor.display());
        if md.uid() != me() && md.uid() != 0 {
            return Err(Error::store(format!(
                "the token cache directory {d} is inside {a}, which belongs to uid {} (neither you nor root) and could be replaced by its owner: refusing to use it; use a cache directory elsewhere",
                md.uid()
            )));
        }
        if let Some(mode) = replaceable_by_others(md) {
            return Err(Error::store(format!(
                "the token cache directory {d} is inside {a}, which other users can write to (mode {mode:04o}) and so could replace it: refusing to use it; fix: chmod go-w {a}, or use a cache directory elsewhere"
            )));
        }
        Ok(())
    }

    /// The mode of a directory whose entries other users can rename or replace (group or others
    /// may write to it and it is not sticky), `None` for one they cannot.
    pub(super) fn replaceable_by_others(md: &Metadata) -> Option<u32> {
        (md.mode() & SHARED_WRITE != 0 && md.mode() & STICKY == 0).then_some(md.mode() & 0o7777)
    }
}

/// No owner or mode bits to check: the files live in the user's profile, under its access control
/// lists.
#[cfg(not(unix))]
mod os {
    use crate::error::Error;
    use std::fs::Metadata;
    use std::path::Path;

    pub(super) fn is_mine(_: &Metadata) -> bool {
        true
    }

    pub(super) fn check_dir(_: &Path, _: &Metadata) -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn check_ancestor(_: &Path, _: &Path, _: &Metadata) -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn replaceable_by_others(_: &Metadata) -> Option<u32> {
        None
    }
}
