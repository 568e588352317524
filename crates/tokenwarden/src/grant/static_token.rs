//! A token supplied directly, which cannot be refreshed.

use super::{FetchError, Grant, TokenResponse};
use crate::error::Error;
use crate::secret::AccessToken;
use async_trait::async_trait;
use std::time::Duration;

/// A token supplied directly (e.g. `GENESYSCLOUD_ACCESS_TOKEN`). It cannot be refreshed: when it
/// expires or is rejected, requests fail with [`Error::StaticTokenExpired`]. A token that is not a
/// legal header value (a CR or LF, a space, another control or a non-ASCII character) is refused:
/// requests fail with [`Error::Config`].
#[derive(Clone)]
pub struct StaticToken {
    token: AccessToken,
    lifetime: Option<Duration>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl StaticToken {
    /// A static token; its lifetime comes from a JWT `exp` if it has one, otherwise it is assumed
    /// valid until the API rejects it.
    pub fn new(token: AccessToken) -> Self {
        Self {
            token,
            lifetime: None,
        }
    }

    /// Declares how long the token remains valid from now.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.lifetime = Some(d);
        self
    }
}

#[async_trait]
impl Grant for StaticToken {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        Err(FetchError::Fatal(Error::StaticTokenExpired {
            reason: "has expired",
        }))
    }

    fn name(&self) -> &'static str {
        "static"
    }

    fn initial(&self) -> Option<(AccessToken, Option<Duration>)> {
        Some((self.token.clone(), self.lifetime))
    }
}
