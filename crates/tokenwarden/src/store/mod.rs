//! Where the current token lives beyond one process: the [`TokenStore`] seam.
//!
//! A [`TokenManager`](crate::TokenManager) always keeps the token in memory for its lock-free fast
//! path. A store adds sharing: before minting a token the manager takes the store's lock (so that
//! several processes or machines refresh one at a time) and adopts a valid token another holder has
//! already saved; after minting it saves the new one. The lifecycle rules are written once, in the
//! manager; a store only loads, saves and locks.
//!
//! A store that outlives the process ([`FileStore`], and later ones such as Redis) is told what it
//! holds with a [`TokenKey`] (token URL, client id, scope and the client secret): it serves a token
//! only to the same key, so a token is never handed to another endpoint, client or scope, nor kept
//! after the secret changed.

pub(crate) mod file;
mod fingerprint;
mod key;
mod memory;
pub(crate) mod private_fs;

pub use file::{DEFAULT_LOCK_TIMEOUT, FileStore};
pub use key::TokenKey;
pub use memory::MemoryStore;

use crate::error::Error;
use crate::secret::AccessToken;
use async_trait::async_trait;
use std::time::SystemTime;

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

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock")
            .field("held", &self.0.is_some())
            .finish()
    }
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
}
