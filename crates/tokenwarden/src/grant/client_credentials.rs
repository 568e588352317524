//! The Client Credentials grant.

use super::endpoint::register_basic_credential;
use super::{FetchError, Grant, TokenEndpoint, TokenResponse};
use crate::secret::ClientSecret;
use async_trait::async_trait;

/// The Client Credentials grant: a service identity trading its id and secret for a token. What
/// Genesys Cloud integrations use; there is no refresh token, a new token is simply minted.
#[derive(Clone)]
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    client_id: String,
    secret: ClientSecret,
    scope: Option<String>,
}

impl ClientCredentials {
    /// A grant for `client_id` / `secret` at `endpoint`.
    pub fn new(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        let client_id = client_id.into();
        register_basic_credential(&client_id, &secret);
        Self {
            endpoint,
            client_id,
            secret,
            scope: None,
        }
    }

    /// Asks for these space-separated scopes.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint.url().as_str())
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Grant for ClientCredentials {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(s) = &self.scope {
            params.push(("scope", s.as_str()));
        }
        self.endpoint
            .request(&self.client_id, Some(&self.secret), &params, self.name())
            .await
    }

    fn name(&self) -> &'static str {
        "client_credentials"
    }
}
