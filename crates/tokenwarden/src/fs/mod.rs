//! Files that hold the organisation's data or a secret: the one place where they are opened,
//! checked, replaced and locked. The token cache, the sign-in session, output claims, a batch's
//! job file and journal, an export's state and data file, and the CLI's summary all go through
//! here, so the rules below hold for every one of them.
//!
//! - **One rule for what is private.** A private file is a regular file of the current user's
//!   with nothing for group or others (mode 0600 or stricter): `check`. Anything else at the
//!   path (a symbolic link, a FIFO, another user's file, a file open to others) is refused, never
//!   read, written or silently replaced.
//! - **Checked on the descriptor.** `open` never follows a symbolic link in the last component
//!   (`O_NOFOLLOW`) and never waits for a FIFO's other end (`O_NONBLOCK`); the checks are made with
//!   `fstat` on the open file, so nothing can be swapped in between the check and the use.
//! - **Created private.** New files are created 0600: exclusively (`create_new`, which follows
//!   no link since nothing may exist at the path) or through `open`.
//! - **Replaced atomically.** [`replace`] writes an exclusively created temporary file with an
//!   unpredictable name (0600) beside the target, syncs it, renames it over the target and syncs
//!   the directory: a reader sees the old contents or the new, never a torn file, and a link
//!   planted at the name is replaced, not followed.
//! - **One way to wait for a lock.** `wait_for_lock` tries an advisory lock (`flock`) again and
//!   again, the wait doubling from 10 ms up to 250 ms, until a deadline. (An output's claim does
//!   not wait at all: a second run on an output is refused at once.)
//! - **Streams are the exception.** An output that is not a regular file (`/dev/stdout`, a FIFO)
//!   is written as it is, by [`open_stream`], unless it belongs to another user.
//! - **Trusted directories.** `PrivateDir` adds the checks of the directory and the ones above
//!   it, for the token cache and the session, whose paths are used as they are.
//!
//! The owner and mode checks exist on Unix only; elsewhere the files live in directories the user
//! chose, protected by their access control lists.

mod private_dir;

pub(crate) use private_dir::PrivateDir;
pub use private_dir::check_parent_dirs;

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a file is not private: the one rule, [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Untrusted {
    /// A symbolic link (not followed).
    Symlink,
    /// A directory, a FIFO, a device...
    NotRegular,
    /// Another user's file.
    OtherOwner {
        /// Its owner.
        uid: u32,
        /// The effective user id of this process.
        me: u32,
    },
    /// Group or others may write to it.
    WritableByOthers {
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others may read (or run) it.
    ReadableByOthers {
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untrusted::Symlink => f.write_str("is a symbolic link (not followed)"),
            Untrusted::NotRegular => f.write_str("is not a regular file"),
            Untrusted::OtherOwner { uid, me } => {
                write!(f, "belongs to another user (uid {uid}; you are uid {me})")
            }
            Untrusted::WritableByOthers { mode } => {
                write!(f, "is writable by other users (mode {mode:04o})")
            }
            Untrusted::ReadableByOthers { mode } => {
                write!(f, "can be read by other users (mode {mode:04o})")
            }
        }
    }
}

/// Whether `md` (from `fstat` on an open file, or `lstat` on a path) describes a private file:
/// a regular file of this user's with nothing for group or others.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn check(md: &Metadata) -> Result<(), Untrusted> {
    if md.file_type().is_symlink() {
        return Err(Untrusted::Symlink);
    }
    if !md.is_file() {
        return Err(Untrusted::NotRegular);
    }
    os::check_owner_and_mode(md)
}

/// How [`open`] opens a private file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads an existing file.
    Read,
    /// Reads and writes an existing file.
    ReadWrite,
    /// Reads and writes a file, creating it (0600) when missing.
    ReadWriteCreate,
    /// Appends to a file, creating it (0600) when missing.
    Append,
}

/// Why [`open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Something is at the path that is not a private file (see [`check`]); it was not used.
    Untrusted(Untrusted),
    /// The operating system's error (a missing file: [`io::ErrorKind::NotFound`]).
    Io(io::Error),
}

impl OpenError {
    /// Whether nothing is at the path.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, OpenError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// As an I/O error: a refusal is [`io::ErrorKind::PermissionDenied`] with the reason,
    /// followed by `why_refused` (what tokenwarden does with such files).
    pub(crate) fn into_io(self, why_refused: &str) -> io::Error {
        match self {
            OpenError::Untrusted(u) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{u}: {why_refused}"),
            ),
            OpenError::Io(e) => e,
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// Opens the private file at `path` as `access` says, never through a symbolic link, and checks
/// it on the open descriptor ([`check`]).
///
/// # Errors
/// [`OpenError::Untrusted`] when what is there is not a private file (a symbolic link included),
/// [`OpenError::Io`] otherwise (nothing there: `NotFound`).
pub(crate) fn open(path: &Path, access: Access) -> Result<File, OpenError> {
    let mut o = OpenOptions::new();
    match access {
        Access::Read => o.read(true),
        Access::ReadWrite => o.read(true).write(true),
        Access::ReadWriteCreate => o.read(true).write(true).create(true).truncate(false),
        Access::Append => o.append(true).create(true),
    };
    os::private_no_follow(&mut o);
    let file = o.open(path).map_err(|e| {
        // O_NOFOLLOW answers ELOOP on Linux, EMLINK on FreeBSD: asked, the path says it is a link.
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_symlink() => OpenError::Untrusted(Untrusted::Symlink),
            _ => OpenError::Io(e),
        }
    })?;
    check(&file.metadata()?).map_err(OpenError::Untrusted)?;
    Ok(file)
}

/// Opens the private file at `path` for reading (as `open` does, see the [module](self)): for other crates that keep a
/// secret in a file of their own (the agent's key). `None` when nothing is at the path.
///
/// # Errors
/// Something that is not a private file (a symbolic link, another user's file, one that group
/// or others may read or write): [`io::ErrorKind::PermissionDenied`] with the reason; otherwise
/// the operating system's error.
pub fn open_private(path: &Path) -> io::Result<Option<File>> {
    match open(path, Access::Read) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(OpenError::Untrusted(u)) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            u.to_string(),
        )),
        Err(OpenError::Io(e)) => Err(e),
    }
}

/// Creates the private file `path` (0600) for writing; nothing may be at the path, not even a
/// symbolic link (which is therefore never followed).
///
/// # Errors
/// The operating system's: [`io::ErrorKind::AlreadyExists`] when something is at the path.
pub fn create_private(path: &Path) -> io::Result<File> {
    create_new(path)
}

/// Creates `path` for reading and writing, 0600; it must not exist (not even as a symbolic link,
/// which is therefore never followed).
///
/// # Errors
/// The operating system's: [`io::ErrorKind::AlreadyExists`] when something is at the path.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    os::private_no_follow(&mut o);
    o.open(path)
}

/// Atomically replaces the file at `path` with `contents`, private (0600): a temporary file beside
/// it (created exclusively, under an unpredictable name), synced, renamed over it, and the
/// directory synced. A symbolic link at `path` is replaced, not followed.
///
/// # Errors
/// When the file cannot be written; whatever was at `path` is then unchanged.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    replace_with_prefix(path, &format!(".{}.", name.to_string_lossy()), contents)
}

/// [`replace`], handing back the [`FileId`] of the file put in place: what a caller that must
/// later recognise its own file (and tell it from one someone else put there since) keeps.
///
/// # Errors
/// As [`replace`].
pub fn replace_identified(path: &Path, contents: &[u8]) -> io::Result<FileId> {
    replace_announced(path, contents, |_| Ok(()))
}

/// [`replace_identified`], telling `before_rename` the [`FileId`] the file will have (the
/// temporary file's, which the rename keeps) once the contents are written and synced, just
/// before it is renamed into place. A caller that records identities elsewhere (a marker file)
/// records the new one there first, so that a kill at any point leaves the file at `path` with an
/// identity it recorded. An error from `before_rename` leaves `path` unchanged.
///
/// # Errors
/// As [`replace`], and `before_rename`'s.
pub fn replace_announced(
    path: &Path,
    contents: &[u8],
    before_rename: impl FnOnce(FileId) -> io::Result<()>,
) -> io::Result<FileId> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut new = Replacement::begin(path, &format!(".{}.", name.to_string_lossy()))?;
    new.write_all(contents)?;
    new.tmp.as_file().sync_all()?;
    let id = FileId::of(&new.tmp.as_file().metadata()?);
    before_rename(id)?;
    new.commit()?;
    Ok(id)
}

/// Creates the private file `path` (0600) holding `contents`, complete or not at all: written to a
/// private temporary file beside it, synced, then linked into place only if nothing is at the
/// path (not even a symbolic link, which is never followed). Of several processes creating the
/// same file at once, one wins and the others get [`io::ErrorKind::AlreadyExists`]; a reader
/// never finds the file empty or half-written.
///
/// # Errors
/// [`io::ErrorKind::AlreadyExists`] when something is at the path; the operating system's.
pub fn create_private_with(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut new = Replacement::begin(path, &format!(".{}.", name.to_string_lossy()))?;
    new.write_all(contents)?;
    new.commit_new()
}

/// Which file a path leads to: the device and inode numbers (`st_dev`, `st_ino`) on Unix. Two
/// `FileId`s are equal when they name the same file; a file renamed keeps its identity, one
/// written in its place by [`replace`] (or by anyone else) has another.
///
/// Elsewhere, where the standard library gives no stable file identity, it is a fingerprint of
/// the file's length and modification time: weaker (a file rewritten with the same length within
/// the clock's resolution looks the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file `md` describes (from `fstat` on an open file, or `lstat` on a
    /// path: a symbolic link has its own).
    pub fn of(md: &Metadata) -> Self {
        os::file_id(md)
    }

    /// The identity of what is at `path`, not following a symbolic link (`lstat`); `None` when
    /// nothing is there.
    ///
    /// # Errors
    /// The operating system's, other than nothing at the path.
    pub fn at(path: &Path) -> io::Result<Option<Self>> {
        match std::fs::symlink_metadata(path) {
            Ok(md) => Ok(Some(Self::of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A file identity from its two numbers (as recorded by [`dev`](Self::dev) and
    /// [`ino`](Self::ino)).
    pub fn from_parts(dev: u64, ino: u64) -> Self {
        Self { dev, ino }
    }

    /// The device number (`st_dev`).
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The inode number (`st_ino`).
    pub fn ino(&self) -> u64 {
        self.ino
    }
}

/// [`replace`], the temporary file's name starting with `prefix`.
pub(crate) fn replace_with_prefix(path: &Path, prefix: &str, contents: &[u8]) -> io::Result<()> {
    let mut new = Replacement::begin(path, prefix)?;
    new.write_all(contents)?;
    new.commit()
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The new contents of a file, written to a temporary file beside it and put in its place by
/// [`commit`](Self::commit) (synced, renamed, the directory synced): for contents written as a
/// stream (a CSV); [`replace`] when they are at hand. Dropped without a commit, the temporary
/// file is removed and the file is unchanged.
#[derive(Debug)]
pub(crate) struct Replacement {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Replacement {
    /// Starts the replacement of `path`: an empty temporary file in its directory, created with
    /// `O_EXCL` under a random name starting with `prefix`, mode 0600, so that nothing planted in
    /// advance can receive the contents.
    ///
    /// # Errors
    /// The operating system's.
    pub(crate) fn begin(path: &Path, prefix: &str) -> io::Result<Self> {
        let dir = parent(path);
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix).suffix(".tmp");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let tmp = builder.tempfile_in(dir)?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The temporary file's path (for messages).
    pub(crate) fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the new contents and renames them over the file.
    ///
    /// # Errors
    /// When they cannot be synced or renamed; the file is then unchanged.
    pub(crate) fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(parent(&self.path));
        Ok(())
    }

    /// As [`commit`](Self::commit), but only when nothing is at the path: an existing file is
    /// left as it is ([`io::ErrorKind::AlreadyExists`]; whoever linked first wins).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub(crate) fn commit_new(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp
            .persist_noclobber(&self.path)
            .map_err(|e| e.error)?;
        sync_dir(parent(&self.path));
        Ok(())
    }
}

impl io::Write for Replacement {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

/// Makes a rename in `dir` durable. Some file systems cannot sync a directory; the file itself is
/// already synced, so that is not worth failing for.
pub(crate) fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(path = %dir.display(), error = %e, "could not sync the directory");
    }
}

/// Opens a stream output (a device, a FIFO: not a regular file) for writing. Appending:
/// `/dev/stdout` redirected with `>>` to a file is not written over (and with `>` the file is
/// empty anyway); pipes and devices ignore it.
///
/// # Errors
/// The operating system's, e.g. a device this user may not write.
pub fn open_stream(out: &Path) -> io::Result<File> {
    // A stream the person named (`/dev/stdout`, a FIFO of theirs, `/dev/null`) is written as it
    // is; one another user made (a FIFO planted in a shared directory) would hand them the data.
    // Checked before the open (which would wait for a FIFO's reader) and on the open descriptor.
    if let Ok(meta) = std::fs::metadata(out) {
        stream_owner_check(&meta)?;
    }
    let file = std::fs::OpenOptions::new().append(true).open(out)?;
    stream_owner_check(&file.metadata()?)?;
    Ok(file)
}

/// Refuses a stream that belongs to another user than this one or root.
fn stream_owner_check(meta: &Metadata) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let me = rustix::process::geteuid().as_raw();
        if !meta.is_file() && meta.uid() != me && meta.uid() != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "is not a regular file and belongs to another user (a FIFO planted for the data?): not written to",
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// The first wait between two attempts at a lock, doubled up to [`MAX_LOCK_POLL`].
const FIRST_LOCK_POLL: Duration = Duration::from_millis(10);
const MAX_LOCK_POLL: Duration = Duration::from_millis(250);
/// Waiting longer than this for a lock gets a warning.
const SLOW_LOCK: Duration = Duration::from_secs(2);

/// Why [`wait_for_lock`] returned without the lock.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process still held it at the deadline.
    TimedOut,
    /// The lock could not be taken (the operating system's error, or the blocking task failed).
    Io(io::Error),
}

/// Takes an exclusive advisory lock on `file` (at `path`), trying again until `timeout` has passed:
/// 10 ms between the first attempts, doubling up to 250 ms. Waiting more than 2 s is worth a
/// warning naming `what` is waited for. The lock is released when the file is closed, or when the
/// process dies (a `kill -9` leaves no stale lock).
///
/// # Errors
/// [`LockError::TimedOut`] at the deadline; [`LockError::Io`] when locking fails.
pub(crate) async fn wait_for_lock(
    file: File,
    path: &Path,
    timeout: Duration,
    what: &str,
) -> Result<File, LockError> {
    let started = tokio::time::Instant::now();
    // A timeout past what an Instant can hold (`Duration::MAX`) waits without end, not panics.
    let deadline = started.checked_add(timeout);
    let mut poll = FIRST_LOCK_POLL;
    let mut file = file;
    let mut told = false;
    loop {
        let (f, attempt) = tokio::task::spawn_blocking(move || {
            let r = file.try_lock();
            (file, r)
        })
        .await
        .map_err(|e| LockError::Io(io::Error::other(format!("lock task: {e}"))))?;
        file = f;
        match attempt {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(LockError::TimedOut);
        }
        // Contention for a few hundred milliseconds is normal (parallel invocations); longer is
        // worth telling the person who is waiting.
        if !told && now.duration_since(started) >= SLOW_LOCK {
            told = true;
            tracing::warn!(
                path = %path.display(),
                "waiting for another process that holds {what}; giving up after {}",
                crate::error::human_duration(timeout)
            );
        }
        let left = deadline.map_or(Duration::MAX, |d| d - now);
        tokio::time::sleep(poll.min(left)).await;
        poll = (poll * 2).min(MAX_LOCK_POLL);
    }
}

/// The owner and mode checks, against the effective user id.
#[cfg(unix)]
mod os {
    use super::Untrusted;
    use std::fs::{Metadata, OpenOptions};
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};

    /// Group or others may write.
    const SHARED_WRITE: u32 = 0o022;
    /// Group or others may do anything.
    const SHARED_ANY: u32 = 0o077;

    pub(super) fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    pub(super) fn file_id(md: &Metadata) -> super::FileId {
        super::FileId {
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    /// 0600 when created; no symbolic link followed; no wait for a FIFO's other end (`fstat`
    /// then refuses it).
    pub(super) fn private_no_follow(options: &mut OpenOptions) {
        options.mode(0o600);
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }

    pub(super) fn check_owner_and_mode(md: &Metadata) -> Result<(), Untrusted> {
        let mode = md.mode() & 0o7777;
        if md.uid() != me() {
            Err(Untrusted::OtherOwner {
                uid: md.uid(),
                me: me(),
            })
        } else if mode & SHARED_WRITE != 0 {
            Err(Untrusted::WritableByOthers { mode })
        } else if mode & SHARED_ANY != 0 {
            Err(Untrusted::ReadableByOthers { mode })
        } else {
            Ok(())
        }
    }
}

/// No owner or mode bits to check: the files live under the access control lists of the user's
/// directories.
#[cfg(not(unix))]
mod os {
    use super::Untrusted;
    use std::fs::{Metadata, OpenOptions};

    pub(super) fn private_no_follow(_: &mut OpenOptions) {}

    /// No stable identity in the standard library here: the length and modification time.
    pub(super) fn file_id(md: &Metadata) -> super::FileId {
        let modified = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        super::FileId {
            dev: md.len(),
            ino: modified,
        }
    }

    pub(super) fn check_owner_and_mode(_: &Metadata) -> Result<(), Untrusted> {
        Ok(())
    }
}

/// Makes a FIFO at `path` (0600), for the tests of what is not a regular file.
#[cfg(all(test, unix))]
pub(crate) fn make_fifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn one_rule_nothing_for_group_or_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        drop(open(&p, Access::ReadWriteCreate).unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "created private");
        for (m, writable) in [
            (0o644, false),
            (0o640, false),
            (0o604, false),
            (0o601, false),
            (0o620, true),
            (0o602, true),
            (0o666, true),
        ] {
            chmod(&p, m);
            for access in [Access::Read, Access::ReadWrite, Access::Append] {
                match open(&p, access).unwrap_err() {
                    OpenError::Untrusted(Untrusted::WritableByOthers { mode }) => {
                        assert!(writable, "{m:o}");
                        assert_eq!(mode, m);
                    }
                    OpenError::Untrusted(Untrusted::ReadableByOthers { mode }) => {
                        assert!(!writable, "{m:o}");
                        assert_eq!(mode, m);
                    }
                    e => panic!("{m:o}: {e:?}"),
                }
            }
        }
        chmod(&p, 0o400);
        open(&p, Access::Read).expect("stricter than 0600 is fine");
    }

    #[test]
    fn links_fifos_and_directories_are_refused_without_waiting_or_following() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        chmod(&victim, 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for access in [
            Access::Read,
            Access::ReadWrite,
            Access::ReadWriteCreate,
            Access::Append,
        ] {
            assert!(
                matches!(
                    open(&link, access),
                    Err(OpenError::Untrusted(Untrusted::Symlink))
                ),
                "{access:?}"
            );
        }
        // A link to nothing: not created through.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(matches!(
            open(&dangling, Access::ReadWriteCreate),
            Err(OpenError::Untrusted(Untrusted::Symlink))
        ));
        assert!(!dir.path().join("nothing").exists());
        assert!(create_new(&dangling).is_err());
        assert!(!dir.path().join("nothing").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // A FIFO: refused at once, not waited on.
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        assert!(matches!(
            open(&fifo, Access::Read),
            Err(OpenError::Untrusted(Untrusted::NotRegular))
        ));
        assert!(matches!(
            open(dir.path(), Access::Read),
            Err(OpenError::Untrusted(Untrusted::NotRegular))
        ));
        assert!(
            open(&dir.path().join("missing"), Access::Read)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn replace_is_atomic_private_and_does_not_follow_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("summary.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        replace(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert!(md.is_file());
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // Nothing else is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn replace_identified_names_the_file_it_put_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sink");
        let first = replace_identified(&p, b"one").unwrap();
        assert_eq!(FileId::at(&p).unwrap(), Some(first));
        let mut announced = None;
        let second = replace_announced(&p, b"two", |id| {
            // Told before the rename: the old file is still in place.
            assert_eq!(FileId::at(&p).unwrap(), Some(first));
            announced = Some(id);
            Ok(())
        })
        .unwrap();
        assert_eq!(announced, Some(second));
        assert_ne!(first, second, "a new file in place is another file");
        assert_eq!(FileId::at(&p).unwrap(), Some(second));
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Refused before the rename: nothing changes, no temporary file is left.
        let e = replace_announced(&p, b"three", |_| Err(io::Error::other("no"))).unwrap_err();
        assert_eq!(e.to_string(), "no");
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A rename keeps the identity.
        let moved = dir.path().join("moved");
        std::fs::rename(&p, &moved).unwrap();
        assert_eq!(FileId::at(&moved).unwrap(), Some(second));
        assert_eq!(FileId::at(&p).unwrap(), None);
        let parts = FileId::from_parts(second.dev(), second.ino());
        assert_eq!(parts, second);
    }

    #[test]
    fn create_private_with_is_whole_and_never_over_anything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        create_private_with(&p, b"first").unwrap();
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let e = create_private_with(&p, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        // A dangling link is not created through.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &dangling).unwrap();
        let e = create_private_with(&dangling, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("elsewhere").exists());
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lock_is_waited_for_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = open(&p, Access::ReadWriteCreate).unwrap();
        held.try_lock().unwrap();
        let again = open(&p, Access::ReadWriteCreate).unwrap();
        let e = wait_for_lock(again, &p, Duration::from_millis(300), "the lock")
            .await
            .unwrap_err();
        assert!(matches!(e, LockError::TimedOut), "{e:?}");
        drop(held);
        let again = open(&p, Access::ReadWriteCreate).unwrap();
        wait_for_lock(again, &p, Duration::from_millis(300), "the lock")
            .await
            .expect("free once the holder is gone");
    }
}
