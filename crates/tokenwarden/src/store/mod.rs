//! Where the current token lives beyond one process: the [`TokenStore`] seam.
//!
//! A [`TokenManager`](crate::TokenManager) always keeps the token in memory for its lock-free fast
//! path. A store adds sharing: before minting a token the manager takes the store's lock (so that
//! several processes or machines refresh one at a time) and adopts a valid token another holder has
//! already saved; after minting it saves the new one. The lifecycle rules are written once, in the
//! manager; a store only loads, saves and locks.
//!
//! A store that outlives the process ([`FileStore`], [`RedisStore`]) is told what it holds with a
//! [`TokenKey`] (token URL, client id, scope and the client secret): it serves a token only to the
//! same key, so a token is never handed to another endpoint, client or scope, nor kept after the
//! secret changed.
//!
//! **Fleets.** A store shared by processes on several machines ([`RedisStore`]) answers a lock
//! attempt at once ([`TokenStore::try_lock`]): held, busy (another holder is refreshing: keep using
//! the still-valid token, or wait for the new one with [`TokenStore::changed`], at most
//! [`TokenStore::lock_wait`]) or unavailable (refresh without it). A token the API rejected is
//! withdrawn fleet-wide, keyed ([`TokenStore::invalidate`]). A rotating refresh token is shared
//! through the [`RefreshTokenStore`] seam, which `RedisStore` implements
//! too.

pub(crate) mod file;
mod fingerprint;
mod key;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod refresh;

pub use file::{DEFAULT_LOCK_TIMEOUT, FileStore};
pub use key::TokenKey;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisBudget, RedisOptions, RedisRefreshTokens, RedisStore};
pub use refresh::RefreshTokenStore;

use crate::error::Error;
use crate::secret::AccessToken;
use async_trait::async_trait;
use std::time::{Duration, SystemTime};

/// How often a refresh waiting for another holder's token looks at the store again (by default).
pub(crate) const CHANGE_POLL: Duration = Duration::from_millis(20);

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

/// How a lock held elsewhere (in Redis) is given back: a future that must run to its end.
type Release = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Held while a refresh runs; dropping it releases the store's lock.
///
/// A lock held in another process (Redis) is released by a request: the manager awaits
/// [`release`](Self::release) when its refresh is done, so that a process that exits right after
/// (`tokenwarden token`) does not leave the lock to expire; dropped without it, the release is
/// sent from a task.
pub struct StoreLock {
    #[allow(dead_code)]
    guard: Option<Box<dyn Send + Sync>>,
    release: Option<Release>,
}

impl StoreLock {
    /// A lock that holds nothing (stores without cross-process locking).
    pub fn none() -> Self {
        Self {
            guard: None,
            release: None,
        }
    }

    /// A lock that is released when `guard` is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            guard: Some(Box::new(guard)),
            release: None,
        }
    }

    /// A lock that is released by the future `release` makes, after `guard` is dropped.
    pub fn with_release<F>(
        guard: impl Send + Sync + 'static,
        release: impl FnOnce() -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        use futures::FutureExt as _;
        Self {
            guard: Some(Box::new(guard)),
            release: Some(Box::new(move || release().boxed())),
        }
    }

    /// Releases the lock now, and waits until that is done.
    pub async fn release(mut self) {
        self.guard = None;
        if let Some(release) = self.release.take() {
            release().await;
        }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        self.guard = None;
        if let Some(release) = self.release.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(release());
        }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock")
            .field("held", &self.guard.is_some())
            .finish()
    }
}

/// One attempt at a store's refresh lock ([`TokenStore::try_lock`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum LockAttempt {
    /// Taken: this holder refreshes, and publishes the new token before dropping it.
    Held(StoreLock),
    /// Another holder (another process or machine) is refreshing: use the still-valid token, or
    /// wait for its new one ([`TokenStore::changed`]).
    Busy,
    /// The store cannot be reached: refresh without it (it has warned about that already).
    Unavailable,
}

/// Shared storage for the current token.
///
/// Implementations must be safe for concurrent use, and every method must return in bounded time.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// The stored token, if there is one that this store may serve (a store bound to a
    /// [`TokenKey`] returns only a token saved under the same key).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the storage cannot be read or fails its safety checks; the caller
    /// must then not use anything from it.
    async fn load(&self) -> Result<Option<StoredToken>, Error>;

    /// Replaces the stored token.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the token cannot be written, or when what is stored now fails the
    /// safety checks (it is then left as it is, for someone to look at).
    async fn save(&self, token: &StoredToken) -> Result<(), Error>;

    /// Takes the store's refresh lock (across processes where the store supports it). The manager
    /// holds it from its `load` until its `save`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`]: retryable ([`Error::is_retryable`]) when another holder kept the lock past
    /// the store's deadline, not retryable when the store fails its safety checks. A lock is never
    /// waited for without a deadline.
    async fn lock(&self) -> Result<StoreLock, Error> {
        Ok(StoreLock::none())
    }

    /// Takes the refresh lock if it is free, without waiting for another holder: a store shared by
    /// a fleet answers [`LockAttempt::Busy`] at once, so that the caller can keep serving a valid
    /// token, adopt the other holder's new one, or give up waiting after [`lock_wait`](Self::lock_wait).
    /// The default waits for [`lock`](Self::lock), as a store of one machine may.
    ///
    /// # Errors
    /// As [`lock`](Self::lock): the refresh must not go ahead.
    async fn try_lock(&self) -> Result<LockAttempt, Error> {
        self.lock().await.map(LockAttempt::Held)
    }

    /// Waits until the stored token may have changed (another holder saved or withdrew one), at
    /// most `max`. The default polls: it sleeps a short while.
    async fn changed(&self, max: Duration) {
        tokio::time::sleep(max.min(CHANGE_POLL)).await;
    }

    /// How long a refresh waits for another holder's new token ([`LockAttempt::Busy`]) before
    /// fetching one without the lock.
    fn lock_wait(&self) -> Duration {
        DEFAULT_LOCK_TIMEOUT
    }

    /// The API rejected `token`: removes it from the store if it is still the one stored
    /// (compare-and-delete), so that no other holder adopts it, and a newer token saved meanwhile
    /// stays. The default does nothing (a store of one machine is told by the next save).
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be changed; the caller goes on without it.
    async fn invalidate(&self, token: &AccessToken) -> Result<(), Error> {
        let _ = token;
        Ok(())
    }
}
