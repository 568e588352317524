//! [`RefreshTokenStore`]: where a rotating refresh token lives between refreshes. Beside
//! [`TokenStore`](super::TokenStore) so that every store (the session's files, Redis) implements it
//! from this floor, below the grants that use it.

use super::StoreLock;
use crate::error::Error;
use crate::secret::RefreshToken;
use async_trait::async_trait;

/// Where a rotating refresh token lives between refreshes, shared by every holder.
///
/// [`RefreshTokenGrant::with_store`](crate::RefreshTokenGrant::with_store) uses it so: take the
/// [`lock`](Self::lock), [`load`](Self::load) the token, present it, [`save`](Self::save) the
/// replacement, release the lock. Implementations must be safe for concurrent use, and every
/// method must return in bounded time.
#[async_trait]
pub trait RefreshTokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// Takes the lock that serialises rotations (across processes where the store supports it).
    ///
    /// # Errors
    /// [`Error::Store`]: retryable when another holder kept it past the store's deadline.
    async fn lock(&self) -> Result<StoreLock, Error>;

    /// The refresh token stored now; `None` when there is none (signed out).
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be read or fails the store's safety checks;
    /// [`Error::SignInRequired`] when what is stored belongs to another endpoint or client.
    async fn load(&self) -> Result<Option<RefreshToken>, Error>;

    /// Replaces the stored refresh token (keeping whatever else the store records with it).
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be written; the stored token is then unchanged.
    async fn save(&self, token: &RefreshToken) -> Result<(), Error>;
}
