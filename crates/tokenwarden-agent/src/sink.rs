//! Sinks: the real token written to files, for programs that read it from a shared volume (a
//! sidecar's app container). Each write is atomic (a private temporary file renamed over the
//! sink) and 0600; the first is made before the agent listens, then a new token is written as
//! soon as the manager has it, which is at its refresh point (the refresh margin before expiry),
//! so that a reader always finds a token with at least that margin left.
//!
//! A sink never takes a file the agent did not create. Beside each sink the agent keeps a marker,
//! `DIR/.NAME.tokenwarden-sink` (0600, no secret in it), recording which file (device and inode)
//! it put at the sink's path. At start, something already at the path is refused unless it is
//! recognisably a sink an agent left (killed with `-9`; in Kubernetes an `emptyDir` outlives a
//! restarted sidecar): a regular file of the user's, 0600, one link, whose identity the marker
//! records. A new token replaces the file at the path, and at stop the sink is removed, only if
//! that file is still the one last written (its identity and its contents): a file someone put
//! there since (moved there, or written anew, even on a reused inode) is left alone, and the
//! sink is given up with one warning.

use crate::error::AgentError;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokenwarden::fs::FileId;
use tokenwarden::{ApiClient, Bearer};

/// How a sink file holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkFormat {
    /// The token alone, no newline.
    #[default]
    Raw,
    /// `{"access_token", "token_type", "expires_in", "expires_at"}` (`expires_at` in Unix seconds).
    Json,
}

impl SinkFormat {
    fn name(self) -> &'static str {
        match self {
            SinkFormat::Raw => "raw",
            SinkFormat::Json => "json",
        }
    }
}

/// A file the token is written to.
///
/// A sink never takes a file the agent did not create: beside it the agent keeps a marker,
/// `DIR/.NAME.tokenwarden-sink` (0600, no secret in it), recording which file (device and inode)
/// it put at the path. Something already at the path is refused by [`check`](Self::check) unless
/// the marker names it (a sink an agent killed with `-9` left), and at stop the sink is removed
/// only if it is still the file last written ([`remove_written`](Self::remove_written)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The file.
    pub path: PathBuf,
    /// How it holds the token.
    pub format: SinkFormat,
}

/// What ends the name of a sink's marker file: `DIR/.NAME.tokenwarden-sink`.
const MARKER_SUFFIX: &str = "tokenwarden-sink";
/// What ends the name of a sink's lock file: `DIR/.NAME.tokenwarden-sink.lock`, locked
/// (`flock`) by the agent that writes the sink for as long as it runs.
const LOCK_SUFFIX: &str = "tokenwarden-sink.lock";
/// The most of a marker file read (a few identities in JSON).
const MAX_MARKER: u64 = 4096;
/// The marker's layout version.
const MARKER_VERSION: u64 = 1;

impl Sink {
    /// Checks that the sink can be written: its directory exists, and nothing is at the path, or
    /// only a sink an agent left there (see [`Sink`]): a regular file of the user's,
    /// 0600, one link, that its marker file names.
    ///
    /// # Errors
    /// [`AgentError::Sink`] saying what is at the path and what to do.
    pub fn check(&self) -> Result<(), AgentError> {
        let err = |why: String| AgentError::Sink {
            path: self.path.display().to_string(),
            why,
        };
        let dir = parent(&self.path);
        if !dir.is_dir() {
            return Err(err(format!(
                "its directory {} does not exist",
                dir.display()
            )));
        }
        if self.path.file_name().is_none() {
            return Err(err("is not a file name".into()));
        }
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The marker's name is the agent's too: a file there that is no marker is not
                // written over either.
                let marker = self.marker_path();
                match read_marker(&marker) {
                    Ok(_) => Ok(()),
                    Err(why) => Err(err(format!(
                        "its marker's name {} is taken by a file that {why}: move it away",
                        marker.display()
                    ))),
                }
            }
            Err(e) => Err(err(format!("cannot be examined: {e}"))),
            Ok(_) => self.left_by_an_agent().map_err(|what| {
                err(format!(
                    "already exists and {what}; the agent writes the token over its sink and \
                     deletes it when it stops, so it never takes a file it did not create: give \
                     a path where nothing is (e.g. in a directory of the agent's own), or move \
                     the file away"
                ))
            }),
        }
    }

    /// The marker file beside the sink: `DIR/.NAME.tokenwarden-sink`.
    pub fn marker_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        parent(&self.path).join(format!(".{name}.{MARKER_SUFFIX}"))
    }

    /// The lock file beside the sink: `DIR/.NAME.tokenwarden-sink.lock`.
    pub fn lock_path(&self) -> PathBuf {
        let mut marker = self.marker_path().into_os_string();
        marker.push(".lock");
        debug_assert!(marker.to_string_lossy().ends_with(LOCK_SUFFIX));
        PathBuf::from(marker)
    }

    /// Takes the sink for this agent: an exclusive advisory lock on its lock file (created
    /// private, 0600, when missing), held for as long as the returned file is open and released
    /// by the kernel when the process dies, a `kill -9` included. So a sink an agent left (its
    /// marker naming it) is taken over only when that agent is gone, never while it still writes
    /// the sink.
    ///
    /// # Errors
    /// [`AgentError::Sink`] when another agent running now holds the sink, or when the lock file
    /// cannot be had.
    pub fn claim(&self) -> Result<std::fs::File, AgentError> {
        let err = |why: String| AgentError::Sink {
            path: self.path.display().to_string(),
            why,
        };
        let path = self.lock_path();
        // Three tries at most: a lock file removed (by the agent that held it, at its stop) between
        // being opened and locked is one no other agent will look at.
        for _ in 0..3 {
            let file = match tokenwarden::fs::open_private(&path) {
                Ok(Some(f)) => f,
                Ok(None) => match tokenwarden::fs::create_private(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(err(format!(
                            "its lock file {} cannot be created: {e}",
                            path.display()
                        )));
                    }
                },
                Err(e) => {
                    return Err(err(format!(
                        "its lock file {} cannot be used: {e}",
                        path.display()
                    )));
                }
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(err(
                        "is in use by another agent running now (it holds the sink's lock file): \
                         give each agent a sink of its own, or stop the other agent first"
                            .into(),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(err(format!(
                        "its lock file {} cannot be locked: {e}",
                        path.display()
                    )));
                }
            }
            let held = file.metadata().map(|m| FileId::of(&m)).ok();
            if held.is_some() && FileId::at(&path).ok().flatten() == held {
                return Ok(file);
            }
        }
        Err(err(format!(
            "its lock file {} keeps being replaced: is another agent starting and stopping on it?",
            path.display()
        )))
    }

    /// `Ok` when what is at the path is a sink an agent left; otherwise what it is.
    fn left_by_an_agent(&self) -> Result<(), String> {
        let md =
            std::fs::symlink_metadata(&self.path).map_err(|e| format!("cannot be read: {e}"))?;
        if md.file_type().is_symlink() {
            return Err("is a symlink (give the file itself)".into());
        }
        if !md.is_file() {
            return Err("is not a regular file".into());
        }
        // Opened the library's private way (never through a link; the owner and mode checked on
        // the descriptor, so that what is examined is what was opened).
        let file = match tokenwarden::fs::open_private(&self.path) {
            Ok(Some(f)) => f,
            Ok(None) => return Err("vanished while it was examined".into()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "is a file that {e}, not a sink of an agent (those are 0600)"
                ));
            }
            Err(e) => return Err(format!("cannot be read: {e}")),
        };
        let md = file
            .metadata()
            .map_err(|e| format!("cannot be read: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            if md.mode() & 0o7777 != 0o600 {
                return Err(format!(
                    "has mode {:04o}, not the 0600 of a sink",
                    md.mode() & 0o7777
                ));
            }
            if md.nlink() != 1 {
                return Err(format!(
                    "has {} hard links, where a sink has one",
                    md.nlink()
                ));
            }
        }
        let marker = self.marker_path();
        let recorded = match read_marker(&marker) {
            Ok(Some(ids)) => ids,
            Ok(None) => {
                return Err(format!(
                    "is not a sink an agent left (no marker {} beside it)",
                    marker.display()
                ));
            }
            Err(why) => return Err(format!("its marker {} {why}", marker.display())),
        };
        if recorded.contains(&FileId::of(&md)) {
            tracing::info!(path = %self.path.display(), "a sink an agent left is taken over");
            Ok(())
        } else {
            Err(format!(
                "is not the file an agent left there (its marker {} names another: the file \
                 was replaced since)",
                marker.display()
            ))
        }
    }

    /// Writes `bearer` to the sink, atomically and 0600, and records the new file in the marker
    /// (before it is renamed into place, so that a kill at any point leaves a sink its marker
    /// names). `last`: what this agent wrote there last, if it did; the file at the path is
    /// replaced only if it is that one (or, for the first write, one the marker names, or
    /// nothing). Returns what was written, for the next write and
    /// [`remove_written`](Self::remove_written).
    ///
    /// # Errors
    /// [`AgentError::Sink`] when another file has taken the sink's place (it is left as it is);
    /// [`AgentError::Io`] when the file or its marker cannot be written.
    pub fn write(&self, bearer: &Bearer, last: Option<&Written>) -> Result<Written, AgentError> {
        let token = bearer.access_token().expose_secret();
        let contents = zeroize::Zeroizing::new(match self.format {
            SinkFormat::Raw => token.to_string(),
            SinkFormat::Json => {
                let expires_at = bearer
                    .expires_at_wall()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let expires_in = bearer
                    .expires_at()
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs();
                serde_json::json!({
                    "access_token": token,
                    "token_type": "bearer",
                    "expires_in": expires_in,
                    "expires_at": expires_at,
                })
                .to_string()
            }
        });
        let marker = self.marker_path();
        // The file now at the path, if it is ours: kept in the marker until the new one is in
        // place. Anything else there is someone's file, never overwritten.
        let current =
            FileId::at(&self.path).map_err(|e| AgentError::io("examine", &self.path, e))?;
        let previous = match (current, last) {
            (None, _) => None,
            (Some(c), Some(last)) if self.holds(last, c) => Some(c),
            (Some(c), None)
                if read_marker(&marker)
                    .ok()
                    .flatten()
                    .is_some_and(|ours| ours.contains(&c)) =>
            {
                Some(c)
            }
            (Some(_), _) => {
                return Err(AgentError::Sink {
                    path: self.path.display().to_string(),
                    why: "another file has taken its place since the agent wrote it: left as it \
                          is, and the sink is no longer written"
                        .into(),
                });
            }
        };
        // The library's one atomic replace: a private (0600) temporary file beside the sink,
        // synced and renamed over it (the directory synced too): a reader sees the old token or
        // the new one, never half of one, and a link planted at the name is replaced, not
        // followed.
        let written = tokenwarden::fs::replace_announced(&self.path, contents.as_bytes(), |new| {
            let mut ids: Vec<FileId> = previous.into_iter().collect();
            ids.push(new);
            self.write_marker(&marker, &ids)
        })
        .map_err(|e| AgentError::io("replace", &self.path, e))?;
        // Only the new file is ours now.
        self.write_marker(&marker, &[written])
            .map_err(|e| AgentError::io("replace", &marker, e))?;
        Ok(Written {
            id: written,
            contents,
        })
    }

    /// Whether the file at the path (identity `at`) is still what `last` says was written: the
    /// same file, holding the same bytes. The identity alone is not enough: a file deleted and
    /// written anew often gets the freed inode back.
    fn holds(&self, last: &Written, at: FileId) -> bool {
        if at != last.id {
            return false;
        }
        let Ok(Some(file)) = tokenwarden::fs::open_private(&self.path) else {
            return false;
        };
        let mut now = zeroize::Zeroizing::new(Vec::with_capacity(last.contents.len() + 1));
        let read = file
            .take(last.contents.len() as u64 + 1)
            .read_to_end(&mut now);
        read.is_ok() && now.as_slice() == last.contents.as_bytes()
    }

    fn write_marker(&self, marker: &Path, ids: &[FileId]) -> std::io::Result<()> {
        let files: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"dev": id.dev(), "ino": id.ino()}))
            .collect();
        let text = serde_json::json!({
            "tokenwarden_sink": MARKER_VERSION,
            "format": self.format.name(),
            "files": files,
        })
        .to_string();
        tokenwarden::fs::replace(marker, text.as_bytes())
    }

    /// Removes the sink and its marker when the agent stops (the token must not outlive it
    /// there), but the sink only if the file at the path is still `written`, what the agent
    /// last wrote (the same file, the same bytes): a file someone put there since is left as it
    /// is. Returns whether the sink was removed (or was already gone).
    pub fn remove_written(&self, written: &Written) -> bool {
        let removed = match FileId::at(&self.path) {
            Ok(None) => true,
            Ok(Some(id)) if self.holds(written, id) => match std::fs::remove_file(&self.path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove sink");
                    false
                }
            },
            Ok(Some(_)) => {
                tracing::warn!(
                    path = %self.path.display(),
                    "the sink was replaced by another file since the agent wrote it: left as it is"
                );
                false
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot examine sink");
                false
            }
        };
        self.remove_marker_and_lock();
        removed
    }

    /// Removes the sink's marker and lock file (the agent's own files beside it).
    fn remove_marker_and_lock(&self) {
        match std::fs::remove_file(self.marker_path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.marker_path().display(), error = %e, "cannot remove the sink's marker")
            }
        }
        // Removed while still held (the caller keeps the lock until after this): an agent that
        // opened it meanwhile sees it gone from the path once it has the lock, and starts over.
        let _ = std::fs::remove_file(self.lock_path());
    }
}

/// The identities a marker records; `None` when there is no marker. An error says what is wrong
/// with the one there.
fn read_marker(marker: &Path) -> Result<Option<Vec<FileId>>, String> {
    let file = match tokenwarden::fs::open_private(marker) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut text = String::new();
    file.take(MAX_MARKER)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| "is not a sink marker".to_string())?;
    if v["tokenwarden_sink"].as_u64() != Some(MARKER_VERSION) {
        return Err("is not a sink marker".into());
    }
    let ids = v["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| Some(FileId::from_parts(f["dev"].as_u64()?, f["ino"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ids))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The sinks of one agent, with the file last written to each: written at start, by the refresh
/// task, and removed at stop (after which nothing is written any more).
/// What a sink was last written with: the file's identity and its bytes (the token; never shown).
pub struct Written {
    id: FileId,
    contents: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A sink's state in a running agent.
#[derive(Debug)]
enum Slot {
    /// Not written yet.
    Empty,
    /// Written, with what.
    Written(Written),
    /// Given up: another file took its place (said once, never written again).
    Taken,
}

#[derive(Debug)]
pub(crate) struct Sinks {
    sinks: Vec<Sink>,
    state: Mutex<State>,
    /// The sinks' lock files, held (locked) for the agent's life ([`Sink::claim`]).
    _locks: Vec<std::fs::File>,
}

#[derive(Debug)]
struct State {
    written: Vec<Slot>,
    stopped: bool,
}

impl Sinks {
    /// The sinks, each claimed ([`Sink::claim`]) and then checked ([`Sink::check`]): a sink an
    /// agent left is taken over only once its lock shows that agent gone.
    ///
    /// # Errors
    /// The first sink that cannot be claimed or is refused.
    pub(crate) fn claim(sinks: Vec<Sink>) -> Result<Self, AgentError> {
        let mut locks = Vec::with_capacity(sinks.len());
        for s in &sinks {
            locks.push(s.claim()?);
            s.check()?;
        }
        let written = sinks.iter().map(|_| Slot::Empty).collect();
        Ok(Self {
            sinks,
            state: Mutex::new(State {
                written,
                stopped: false,
            }),
            _locks: locks,
        })
    }

    pub(crate) fn list(&self) -> &[Sink] {
        &self.sinks
    }

    /// Writes `bearer` to every sink; the first error, if any (the others are still written).
    pub(crate) fn write_all(&self, bearer: &Bearer) -> Result<(), AgentError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.stopped {
            return Ok(());
        }
        let mut first = None;
        for (sink, slot) in self.sinks.iter().zip(state.written.iter_mut()) {
            let last = match &*slot {
                Slot::Taken => continue,
                Slot::Written(w) => Some(w),
                Slot::Empty => None,
            };
            match sink.write(bearer, last) {
                Ok(w) => *slot = Slot::Written(w),
                Err(e @ AgentError::Sink { .. }) => {
                    // Said once; the other sinks and the agent go on.
                    tracing::warn!(error = %e, "sink given up");
                    *slot = Slot::Taken;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sink not written");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Removes every sink the agent wrote (if it is still the file written), and stops writing.
    pub(crate) fn remove_all(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped = true;
        for (sink, slot) in self.sinks.iter().zip(state.written.iter_mut()) {
            match std::mem::replace(slot, Slot::Empty) {
                Slot::Written(w) => {
                    sink.remove_written(&w);
                }
                // Its marker and lock are ours all the same; the file is not.
                Slot::Taken => sink.remove_marker_and_lock(),
                Slot::Empty => {}
            }
        }
    }
}

/// How long until the next look at the token: a tenth of what is left of it, between 50 ms and
/// 10 s. The manager refreshes at its refresh point by itself; this only notices the new token
/// soon after, at a cost of one atomic load per look.
fn next_look(left: Duration) -> Duration {
    (left / 10).clamp(Duration::from_millis(50), Duration::from_secs(10))
}

/// Keeps the agent's token fresh and every sink holding it, until cancelled; `written` is the
/// generation of the token already written (at start). With no sink it still runs: an idle
/// agent keeps a valid token at hand (its `/healthz` stays 200, the next caller waits for no
/// token request), at one token request per lifetime. Without sinks it starts once a first
/// caller has had a token: an agent nobody has used yet asks for none.
pub(crate) async fn run(client: ApiClient, sinks: std::sync::Arc<Sinks>, mut written: Option<u64>) {
    let mut failing = false;
    loop {
        if sinks.list().is_empty() && client.tokens().current().is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let wait = match client.tokens().bearer().await {
            Ok(bearer) => {
                if failing {
                    tracing::info!("a token is at hand again");
                    failing = false;
                }
                if written != Some(bearer.generation()) && sinks.write_all(&bearer).is_ok() {
                    written = Some(bearer.generation());
                    if !sinks.list().is_empty() {
                        tracing::debug!(
                            generation = bearer.generation(),
                            sinks = sinks.list().len(),
                            "token written to the sinks"
                        );
                    }
                }
                next_look(
                    bearer
                        .expires_at()
                        .saturating_duration_since(tokio::time::Instant::now()),
                )
            }
            Err(e) => {
                // Once per outage: the manager's own backoff decides when it asks again.
                if !failing {
                    tracing::warn!(error = %e, "no token at hand (the agent keeps asking)");
                    failing = true;
                }
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bearer(token: &str) -> Bearer {
        tokenwarden::TokenManager::builder(tokenwarden::StaticToken::new(
            tokenwarden::AccessToken::new(token),
        ))
        .build()
        .bearer()
        .await
        .unwrap()
    }

    // A new user's finding: a file moved into a sink's place was overwritten with the token at
    // the next refresh and deleted at stop; one written anew at the path (the same inode, or a
    // freed one reused) was deleted at stop.
    #[tokio::test]
    async fn regression_a_file_put_in_a_sinks_place_is_never_overwritten_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let s = Sink {
            path: path.clone(),
            format: SinkFormat::Raw,
        };
        let (one, two) = (
            bearer("token-one-0123").await,
            bearer("token-two-4567").await,
        );
        let private = |p: &Path, text: &str| {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        };

        // Moved into its place (another inode).
        let w = s.write(&one, None).unwrap();
        let w = s.write(&two, Some(&w)).expect("its own file is replaced");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "token-two-4567");
        let theirs = dir.path().join("theirs");
        private(&theirs, "user data");
        std::fs::rename(&theirs, &path).unwrap();
        let e = s.write(&one, Some(&w)).expect_err("not overwritten");
        assert!(matches!(e, AgentError::Sink { .. }), "{e:?}");
        assert!(
            e.to_string().contains("another file has taken its place"),
            "{e}"
        );
        assert!(!s.remove_written(&w), "not removed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "user data");

        // Written anew in place: the same inode, other bytes.
        std::fs::remove_file(&path).unwrap();
        let w = s.write(&one, None).unwrap();
        private(&path, "more user data");
        assert_eq!(FileId::at(&path).unwrap(), Some(w.id), "the same file");
        assert!(s.write(&two, Some(&w)).is_err(), "not overwritten");
        assert!(!s.remove_written(&w), "not removed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "more user data");

        // Through the agent's sinks: given up with one warning, the others go on, and at stop
        // the file is left and the agent's marker and lock are removed.
        std::fs::remove_file(&path).unwrap();
        let other = dir.path().join("other");
        let sinks = Sinks::claim(vec![
            s.clone(),
            Sink {
                path: other.clone(),
                format: SinkFormat::Raw,
            },
        ])
        .unwrap();
        let (logs, _guard) = tokenwarden_test_support::logs::capture();
        sinks.write_all(&one).unwrap();
        private(&path, "user data");
        sinks
            .write_all(&two)
            .expect("a sink given up is no failure");
        sinks.write_all(&one).unwrap();
        assert_eq!(
            logs.text().matches("sink given up").count(),
            1,
            "{}",
            logs.text()
        );
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "token-one-0123");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "user data");
        sinks.remove_all();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "user data");
        assert!(!other.exists());
        assert!(!s.marker_path().exists() && !s.lock_path().exists());
        assert!(!logs.text().contains("token-"), "no token logged");
    }

    #[test]
    fn looks_often_enough_for_short_tokens_and_rarely_for_long_ones() {
        assert_eq!(
            next_look(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
        assert_eq!(next_look(Duration::ZERO), Duration::from_millis(50));
        assert_eq!(
            next_look(Duration::from_secs(86_400)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_marker_sits_beside_the_sink() {
        let s = Sink {
            path: PathBuf::from("/run/tw/token"),
            format: SinkFormat::Json,
        };
        assert_eq!(
            s.marker_path(),
            PathBuf::from("/run/tw/.token.tokenwarden-sink")
        );
    }
}
