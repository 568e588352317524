//! Where the current token lives beyond one process: the [`TokenStore`] seam.
//!
//! A [`TokenManager`](crate::TokenManager) always keeps the token in memory for its lock-free fast
//! path. A store adds sharing: before minting a token the manager takes the store's lock (so that
//! several processes or machines refresh one at a time) and adopts a valid token another holder has
//! already saved; after minting it saves the new one. The lifecycle rules are written once, in the
//! manager; a store only loads, saves and locks.

use crate::error::Error;
use crate::secret::AccessToken;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A token as kept in a store: absolute wall-clock times, so that other processes can use it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredToken {
    /// The access token.
    pub access_token: AccessToken,
    /// When it was obtained (the token request's send time).
    pub obtained_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
}

/// Held while a refresh runs; dropping it releases the store's lock.
pub struct StoreLock(#[allow(dead_code)] Option<Box<dyn Send + Sync>>);

impl StoreLock {
    /// A lock that holds nothing (stores without cross-process locking).
    pub fn none() -> Self {
        Self(None)
    }

    /// A lock that is released when `guard` is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

/// Shared storage for the current token.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// The stored token, if any.
    async fn load(&self) -> Result<Option<StoredToken>, Error>;
    /// Replaces the stored token.
    async fn save(&self, token: &StoredToken) -> Result<(), Error>;
    /// Takes the store's refresh lock (across processes where the store supports it). The manager
    /// holds it from its `load` until its `save`.
    async fn lock(&self) -> Result<StoreLock, Error> {
        Ok(StoreLock::none())
    }
}

/// A store in this process's memory: lets several managers (say, one per worker pool) share a token.
#[derive(Debug, Default)]
pub struct MemoryStore {
    slot: Mutex<Option<StoredToken>>,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self) -> Result<Option<StoredToken>, Error> {
        Ok(self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(())
    }

    async fn lock(&self) -> Result<StoreLock, Error> {
        Ok(StoreLock::new(self.lock.clone().lock_owned().await))
    }
}

/// A JSON file readable only by its owner (mode 0600), shared by every process of the user: the
/// `tokenwarden token` cache. Writes are atomic (temporary file + rename); refreshes are serialised
/// across processes with an advisory lock on a sibling `.lock` file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileToken {
    access_token: String,
    obtained_at_unix_ms: u128,
    expires_at_unix_ms: u128,
}

impl FileStore {
    /// A store at `path` (created on first save, with its parent directories).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

fn from_unix_ms(ms: u128) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.min(u64::MAX as u128) as u64)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Store(format!("{what} {}: {e}", path.display()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn open_private(path: &Path, write: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if write {
        o.write(true).create(true).truncate(true);
    } else {
        o.write(true).create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<StoredToken>, Error> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err("reading", &path, e)),
            };
            // A corrupt cache is not an error: it is simply empty, and the next save repairs it.
            let Ok(f) = serde_json::from_str::<FileToken>(&text) else {
                tracing::warn!(path = %path.display(), "ignoring unreadable token cache");
                return Ok(None);
            };
            Ok(Some(StoredToken {
                access_token: AccessToken::new(f.access_token),
                obtained_at: from_unix_ms(f.obtained_at_unix_ms),
                expires_at: from_unix_ms(f.expires_at_unix_ms),
            }))
        })
        .await
        .map_err(|e| Error::Store(format!("load task: {e}")))?
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        let path = self.path.clone();
        let body = serde_json::to_string(&FileToken {
            access_token: token.access_token.expose_secret().to_string(),
            obtained_at_unix_ms: unix_ms(token.obtained_at),
            expires_at_unix_ms: unix_ms(token.expires_at),
        })
        .map_err(|e| Error::Store(format!("encoding: {e}")))?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| io_err("creating", dir, e))?;
            }
            let mut tmp = path.clone().into_os_string();
            tmp.push(format!(".tmp{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let mut f = open_private(&tmp, true).map_err(|e| io_err("writing", &tmp, e))?;
            f.write_all(body.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| io_err("writing", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err("replacing", &path, e))
        })
        .await
        .map_err(|e| Error::Store(format!("save task: {e}")))?
    }

    async fn lock(&self) -> Result<StoreLock, Error> {
        let lock_path = self.lock_path();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| io_err("creating", dir, e))?;
            }
            let f =
                open_private(&lock_path, false).map_err(|e| io_err("opening", &lock_path, e))?;
            f.lock().map_err(|e| io_err("locking", &lock_path, e))?;
            // The lock is released when the file is closed, i.e. when the StoreLock is dropped.
            Ok(StoreLock::new(f))
        })
        .await
        .map_err(|e| Error::Store(format!("lock task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_round_trips_privately() {
        let dir = std::env::temp_dir().join(format!("tw-store-{}", rand::random::<u64>()));
        let store = FileStore::new(dir.join("sub/token.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let t = StoredToken {
            access_token: AccessToken::new("tok-1"),
            obtained_at: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(200),
        };
        let guard = store.lock().await.unwrap();
        store.save(&t).await.unwrap();
        drop(guard);
        assert_eq!(store.load().await.unwrap(), Some(t));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(store.path(), "{ torn").unwrap();
        assert_eq!(store.load().await.unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
