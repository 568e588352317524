//! [`MemoryStore`]: a token shared by several managers of one process.

use super::{DEFAULT_LOCK_TIMEOUT, StoreLock, StoredToken, TokenStore};
use crate::error::Error;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store in this process's memory: lets several managers (say, one per worker pool) share a token.
#[derive(Debug)]
pub struct MemoryStore {
    /// The shared token; the std mutex is only held to copy it in or out.
    slot: Mutex<Option<StoredToken>>,
    /// The refresh lock: held by one manager from its `load` to its `save`.
    lock: Arc<tokio::sync::Mutex<()>>,
    lock_timeout: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            slot: Mutex::default(),
            lock: Arc::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

impl MemoryStore {
    /// An empty store whose lock is waited for at most [`DEFAULT_LOCK_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits at most `timeout` for the refresh lock another manager holds.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
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
        match tokio::time::timeout(self.lock_timeout, self.lock.clone().lock_owned()).await {
            Ok(guard) => Ok(StoreLock::new(guard)),
            Err(_) => Err(Error::Store {
                detail: format!(
                    "gave up after {:?} waiting for the in-memory token store's lock, held by another token manager of this process that is still fetching a token",
                    self.lock_timeout
                ),
                retryable: true,
            }),
        }
    }
}
