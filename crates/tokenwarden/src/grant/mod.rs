//! How a token is obtained: the OAuth 2.0 grants, and the token endpoint they talk to.

use crate::error::Error;
use crate::secret::{AccessToken, RefreshToken};
use async_trait::async_trait;
use std::time::Duration;

mod classify;
mod client_credentials;
mod endpoint;
mod refresh;
mod static_token;
#[cfg(test)]
mod tests;

pub use crate::transport::{IntoTokenUrl, TokenUrl};
pub(crate) use classify::classify;
pub use client_credentials::ClientCredentials;
pub use endpoint::{ClientAuth, TokenEndpoint};
pub use refresh::{RefreshTokenGrant, RotationHook};
pub use static_token::StaticToken;

/// The most that is read of a token endpoint's answer. A token response is a few hundred bytes (a
/// few KiB for a JWT); a larger answer is not a token response, and reading it whole would let a
/// hostile or misconfigured endpoint exhaust memory.
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A successful token response.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `expires_in`, if the endpoint sent it.
    pub expires_in: Option<Duration>,
    /// A refresh token, if the endpoint sent one (Authorization Code grant).
    pub refresh_token: Option<RefreshToken>,
    /// `token_type`, usually `bearer`.
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// Why a token request failed, classified for the retry loop.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FetchError {
    /// A later attempt may succeed (5xx, 429, throttling 400, timeouts, a connection cut short).
    Transient {
        /// What happened, in words (no secrets).
        reason: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The endpoint could not be reached at all: the connection was refused, its name did not
    /// resolve, the TLS handshake failed. Retried like [`FetchError::Transient`] during a run, but
    /// when no token was ever obtained the manager gives up after
    /// `manager::UNREACHABLE_AT_START`: a job started against a wrong URL, or
    /// without network, fails at once with the cause.
    Unreachable {
        /// What happened, in words, with the whole cause (no secrets).
        reason: String,
    },
    /// Retrying cannot help (wrong secret, disabled client, revoked refresh token, ...).
    Fatal(Error),
}

impl FetchError {
    /// What the failure means ([`Class`](crate::error::Class)): a transient or unreachable
    /// endpoint is [`Class::Transient`](crate::error::Class::Transient); a fatal one is classified
    /// as its error is ([`Error::class`]).
    pub fn class(&self) -> crate::error::Class {
        match self {
            FetchError::Transient { .. } | FetchError::Unreachable { .. } => {
                crate::error::Class::Transient
            }
            FetchError::Fatal(e) => e.class(),
        }
    }
}

/// A way to obtain access tokens. Implementations must be safe for concurrent use, though the
/// [`TokenManager`](crate::TokenManager) never calls `fetch` concurrently on one grant.
#[async_trait]
pub trait Grant: Send + Sync + std::fmt::Debug + 'static {
    /// Makes one token request (no retries: the manager retries transient failures).
    async fn fetch(&self) -> Result<TokenResponse, FetchError>;

    /// A short name for messages and logs: `client_credentials`, `refresh_token`, `static`.
    fn name(&self) -> &'static str;

    /// A token to start with, and its remaining lifetime if known (static tokens).
    fn initial(&self) -> Option<(AccessToken, Option<Duration>)> {
        None
    }
}
