//! A person's sign-in kept between runs: the [`RefreshTokenStore`] seam of the
//! [`RefreshTokenGrant`](crate::RefreshTokenGrant), and [`SessionStore`], the sign-in kept in a
//! private directory (the refresh token in the file, or in the OS keyring with the `keyring`
//! feature).
//!
//! A refresh token is the most valuable secret tokenwarden holds: it mints access tokens for weeks.
//! Genesys Cloud rotates it on every use, so whoever presents it must save the replacement before
//! anything else happens, and several processes signed in as one user must take turns: the store's
//! lock serialises rotations, and each holder re-reads the stored token once it holds the lock.

mod file;
#[cfg(feature = "keyring")]
mod keyring;

pub use file::{Session, SessionStore, SessionUser};

use crate::error::Error;
use crate::secret::RefreshToken;
use crate::store::StoreLock;
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
