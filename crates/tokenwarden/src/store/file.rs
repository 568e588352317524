//! [`FileStore`]: the token cache on disk, shared by every process of the user.

use super::fingerprint::{FingerprintKey, KEY_FILE};
use super::{StoreLock, StoredToken, TokenKey, TokenStore};
use crate::error::Error;
use crate::fs::{LockError, PrivateDir};
use crate::secret::AccessToken;
use crate::transport::TokenUrl;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// How long [`FileStore::lock`](TokenStore::lock) waits for another process's refresh by default:
/// longer than a token request normally takes, short enough that a stuck process is noticed.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A record larger than this is not a token record (a token response is capped well below).
const MAX_RECORD: usize = 64 * 1024;
const RECORD_VERSION: u32 = 1;

/// A token cache in a directory of the user's: the `tokenwarden token` cache. One JSON file per
/// [`TokenKey`] (`<id>.json`, readable only by its owner), a lock file next to it, and the key of
/// the secret fingerprints (`fingerprint.key`).
///
/// The cache cannot be subverted by another local user:
/// - the directory is created 0700, and refused when it or a directory above it can be changed by
///   someone else (the message names the directory and the fix, e.g. `chmod 700 DIR`);
/// - files are opened through [`crate::fs`], never through a symbolic link, and trusted only
///   when `fstat` says they are regular files of the user's with mode 0600 (or stricter);
///   anything else is refused loudly, never read and never silently replaced;
/// - a token is written to an exclusively created temporary file with a random name (0600),
///   synced, then renamed into place;
/// - each record names its token URL, client id and scope, and carries an HMAC-SHA256 fingerprint
///   of the client secret under a random key kept in the directory: a record is served only to
///   the same [`TokenKey`], so a changed or wrong secret is not hidden by a cached token;
/// - a stored token that is not a legal header value is not served;
/// - the refresh lock is waited for at most a deadline ([`DEFAULT_LOCK_TIMEOUT`]).
///
/// A damaged record is ignored with a warning and replaced by the next token saved.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use tokenwarden::{ClientCredentials, ClientSecret, FileStore, TokenEndpoint, store::TokenKey, TokenManager, TokenUrl};
///
/// let url = TokenUrl::parse("https://login.mypurecloud.ie/oauth/token")?;
/// let secret = ClientSecret::new("the secret");
/// let grant = ClientCredentials::new(TokenEndpoint::new(&url)?, "my-client", secret.clone());
/// let key = TokenKey::new(&url, "my-client").with_secret(secret);
/// let tokens = TokenManager::builder(grant)
///     .store(FileStore::new("/home/me/.cache/tokenwarden/tokens", key))
///     .build();
/// let bearer = tokens.bearer().await?; // another process's valid token is adopted
/// # let _ = bearer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    key: TokenKey,
    lock_timeout: Duration,
    /// Set once this store (and its clones) swept the directory of stale temporary files.
    swept: Arc<AtomicBool>,
}

impl FileStore {
    /// The store of `key`'s token in `dir` (created, 0700, on first use).
    pub fn new(dir: impl Into<PathBuf>, key: TokenKey) -> Self {
        Self {
            dir: dir.into(),
            key,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            swept: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits at most `timeout` for the lock another process holds while it refreshes.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.file_name())
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(self.lock_name())
    }

    fn file_name(&self) -> String {
        format!("{}.json", self.key.id())
    }

    /// On this store's first use, removes the temporary files a killed process left in the
    /// directory (older than the lock timeout, the user's own): each may hold a token.
    fn sweep_once(&self, dir: &PrivateDir) {
        if !self.swept.swap(true, Ordering::Relaxed) {
            dir.remove_stale_temps(self.lock_timeout);
        }
    }

    fn lock_name(&self) -> String {
        format!("{}.json.lock", self.key.id())
    }
}

/// How every record kept in a private directory begins (the token cache's here, and the sign-in's
/// of the session floor above): its format's version, and the endpoint and client its token is
/// from.
/// Flattened into the record, so that the file reads `{"version":1,"token_url":…,"client_id":…,…}`.
#[derive(Serialize, Deserialize)]
pub(crate) struct RecordHead<'a> {
    pub(crate) version: u32,
    #[serde(borrow)]
    pub(crate) token_url: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) client_id: Cow<'a, str>,
}

impl<'a> RecordHead<'a> {
    /// The head of a record of format `version` for `client_id` at `token_url`.
    pub(crate) fn new(version: u32, token_url: &'a TokenUrl, client_id: &'a str) -> Self {
        Self {
            version,
            token_url: token_url.as_str().into(),
            client_id: client_id.into(),
        }
    }
}

/// The file's contents. Strings borrow from the read buffer where they can, so that the token is
/// not copied more than needed.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(flatten, borrow)]
    head: RecordHead<'a>,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
    #[serde(borrow)]
    secret_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    access_token: Cow<'a, str>,
    obtained_at_unix_ms: u64,
    expires_at_unix_ms: u64,
}

impl Record<'_> {
    fn is_for(&self, key: &TokenKey) -> bool {
        self.head.token_url == key.token_url().as_str()
            && self.head.client_id == key.client_id()
            && self.scope.as_deref() == key.scope()
    }
}

/// Why a record is not served (none of these is a safety failure: the next save replaces it).
fn unusable(
    record: &Record<'_>,
    key: &TokenKey,
    dir: &PrivateDir,
) -> Result<Option<&'static str>, Error> {
    if record.head.version != RECORD_VERSION {
        return Ok(Some("written by another version of tokenwarden"));
    }
    if !record.is_for(key) {
        return Ok(Some("for another token URL, client or scope"));
    }
    let secret_matches = match (key.secret(), record.secret_fingerprint.as_deref()) {
        (None, None) => true,
        (Some(secret), Some(stored)) => {
            FingerprintKey::load_or_create(dir)?.matches(secret, stored)
        }
        _ => false,
    };
    if !secret_matches {
        return Ok(Some("obtained with another client secret"));
    }
    if !AccessToken::is_header_value(&record.access_token) {
        return Ok(Some("not a legal header value"));
    }
    Ok(None)
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("token store task: {e}")))?
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<StoredToken>, Error> {
        let (dir, name, key) = (self.dir.clone(), self.file_name(), self.key.clone());
        let this = self.clone();
        blocking(move || {
            let dir = PrivateDir::open(&dir)?;
            this.sweep_once(&dir);
            let path = dir.join(&name);
            let Some(bytes) = dir.read(&name, MAX_RECORD)? else {
                return Ok(None);
            };
            let record = match serde_json::from_slice::<Record<'_>>(&bytes) {
                Ok(r) if bytes.len() <= MAX_RECORD => r,
                // Not the parser's message: it may quote a value, and a value may be a token.
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        path = %path.display(),
                        "ignoring a damaged token cache file; the next token replaces it"
                    );
                    return Ok(None);
                }
            };
            if let Some(why) = unusable(&record, &key, &dir)? {
                tracing::info!(path = %path.display(), reason = why, "not using the cached token");
                return Ok(None);
            }
            Ok(Some(StoredToken {
                access_token: AccessToken::new(record.access_token.into_owned()),
                obtained_at: from_unix_ms(record.obtained_at_unix_ms),
                expires_at: from_unix_ms(record.expires_at_unix_ms),
            }))
        })
        .await
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        let (dir, name, key) = (self.dir.clone(), self.file_name(), self.key.clone());
        let token = token.clone();
        blocking(move || {
            let dir = PrivateDir::open(&dir)?;
            // Something that fails the checks is left for someone to look at, not overwritten.
            dir.check_existing(&name)?;
            let secret_fingerprint = key
                .secret()
                .map(|s| FingerprintKey::load_or_create(&dir).map(|k| k.fingerprint(s)))
                .transpose()?;
            let record = Record {
                head: RecordHead::new(RECORD_VERSION, key.token_url(), key.client_id()),
                scope: key.scope().map(Cow::from),
                secret_fingerprint: secret_fingerprint.map(Cow::from),
                access_token: token.access_token.expose_secret().into(),
                obtained_at_unix_ms: unix_ms(token.obtained_at),
                expires_at_unix_ms: unix_ms(token.expires_at),
            };
            // Sized up front so that no copy of the token is left in a reallocated buffer.
            let mut body = Zeroizing::new(Vec::with_capacity(1024 + record.access_token.len()));
            serde_json::to_writer(&mut *body, &record)
                .map_err(|e| Error::store(format!("encoding the token record: {e}")))?;
            dir.replace(&name, &body)
        })
        .await
    }

    async fn lock(&self) -> Result<StoreLock, Error> {
        let (dir, name, lock_name) = (self.dir.clone(), self.file_name(), self.lock_name());
        let this = self.clone();
        let file = blocking(move || {
            let dir = PrivateDir::open(&dir)?;
            this.sweep_once(&dir);
            // Checked before anything else happens: an unsafe cache stops the refresh here, loudly,
            // instead of being skipped by `load` and then replaced by `save`.
            dir.check_existing(&name)?;
            dir.check_existing(KEY_FILE)?;
            dir.open_lock_file(&lock_name)
        })
        .await?;
        lock_with_deadline(file, self.lock_path(), self.lock_timeout).await
    }
}

/// Takes an exclusive advisory lock on `file` (see [`crate::fs::wait_for_lock`]: one wait, one
/// backoff), giving up after `timeout`. The lock is released when the returned guard (the file)
/// is dropped, or when the process dies.
pub(crate) async fn lock_with_deadline(
    file: File,
    path: PathBuf,
    timeout: Duration,
) -> Result<StoreLock, Error> {
    match crate::fs::wait_for_lock(file, &path, timeout, "the token cache lock").await {
        Ok(file) => Ok(StoreLock::new(file)),
        Err(LockError::Io(e)) => Err(Error::store(format!("locking {}: {e}", path.display()))),
        Err(LockError::TimedOut) => Err(Error::Store {
            detail: format!(
                "gave up after {timeout:?} waiting for the lock on {}: another process holds it (another tokenwarden fetching a token, perhaps from a slow token endpoint); try again, or look for that process (fuser {})",
                path.display(),
                path.display()
            ),
            retryable: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as tokenwarden wrote it before its head was a [`RecordHead`]: read the same,
    /// written to the same bytes.
    #[test]
    fn the_record_format_is_unchanged() {
        const OLD: &str = concat!(
            r#"{"version":1,"token_url":"https://login.example/oauth/token","client_id":"c","#,
            r#""scope":"users:readonly","secret_fingerprint":"fp","access_token":"at-old-1","#,
            r#""obtained_at_unix_ms":1700000000000,"expires_at_unix_ms":1700000086400}"#
        );
        let record: Record<'_> = serde_json::from_str(OLD).unwrap();
        let url = TokenUrl::parse("https://login.example/oauth/token").unwrap();
        let key = TokenKey::new(&url, "c").with_scope("users:readonly");
        assert!(record.head.version == RECORD_VERSION && record.is_for(&key));
        assert!(matches!(record.access_token, Cow::Borrowed("at-old-1")));
        assert_eq!(serde_json::to_string(&record).unwrap(), OLD);
    }
}
