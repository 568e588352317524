//! A person's sign-in kept between runs: [`SessionStore`], the sign-in kept in a private
//! directory (the refresh token in the file, or in the OS keyring with the `keyring` feature),
//! a [`RefreshTokenStore`](crate::store::RefreshTokenStore) for the
//! [`RefreshTokenGrant`](crate::RefreshTokenGrant).
//!
//! A refresh token is the most valuable secret tokenwarden holds: it mints access tokens for weeks.
//! Genesys Cloud rotates it on every use, so whoever presents it must save the replacement before
//! anything else happens, and several processes signed in as one user must take turns: the store's
//! lock serialises rotations, and each holder re-reads the stored token once it holds the lock.

mod file;
#[cfg(feature = "keyring")]
mod keyring;

pub use file::{Session, SessionStore, SessionUser};
