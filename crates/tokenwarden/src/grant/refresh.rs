//! The Refresh Token grant, with rotation saved before the new access token is used.

use super::endpoint::register_basic_credential;
use super::{FetchError, Grant, TokenEndpoint, TokenResponse};
use crate::error::Error;
use crate::secret::{ClientSecret, RefreshToken};
use crate::store::RefreshTokenStore;
use async_trait::async_trait;
use std::sync::Arc;

/// Called with each new refresh token, so that it can be persisted before it is needed again.
pub type RotationHook = Arc<dyn Fn(&RefreshToken) + Send + Sync>;

/// The Refresh Token grant (after an Authorization Code login). Genesys Cloud rotates refresh tokens:
/// each response carries a new one that replaces the old, which stops working. The replacement is
/// stored *before* the new access token is handed out.
///
/// With a [`RefreshTokenStore`] ([`with_store`](Self::with_store), e.g. a
/// [`SessionStore`](crate::session::SessionStore)), every refresh runs under the store's lock: the refresh
/// token is read back from the store (another process may have rotated it), presented, and its
/// replacement saved before the lock is released and the access token returned. So any number of
/// processes signed in as one user never present one refresh token twice, and a crash at any point
/// leaves the store holding a refresh token that works. A replacement that cannot be saved is kept
/// in memory and the refresh fails ([`Error::Store`], retryable): the access token it came with is
/// not used, and the next attempt saves the replacement first.
pub struct RefreshTokenGrant {
    endpoint: TokenEndpoint,
    client_id: String,
    /// `None` for a public client (PKCE, no secret).
    secret: Option<ClientSecret>,
    /// guards the refresh token held, and whether it still has to be saved.
    refresh: tokio::sync::Mutex<Held>,
    on_rotate: Option<RotationHook>,
    store: Option<Arc<dyn RefreshTokenStore>>,
}

/// The refresh token a grant holds.
pub(super) struct Held {
    token: RefreshToken,
    /// A replacement the store has not taken yet: saved before anything else happens.
    unsaved: bool,
}

impl std::fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("endpoint", &self.endpoint.url().as_str())
            .field("client_id", &self.client_id)
            .field("public", &self.secret.is_none())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenGrant {
    /// A grant that starts from `refresh_token`, for a confidential client.
    pub fn new(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        secret: ClientSecret,
        refresh_token: RefreshToken,
    ) -> Self {
        let client_id = client_id.into();
        register_basic_credential(&client_id, &secret);
        Self::build(endpoint, client_id, Some(secret), refresh_token)
    }

    /// A grant that starts from `refresh_token`, for a public client: it authenticates with its
    /// `client_id` alone (the sign-in used PKCE).
    pub fn public(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        refresh_token: RefreshToken,
    ) -> Self {
        Self::build(endpoint, client_id.into(), None, refresh_token)
    }

    fn build(
        endpoint: TokenEndpoint,
        client_id: String,
        secret: Option<ClientSecret>,
        refresh_token: RefreshToken,
    ) -> Self {
        Self {
            endpoint,
            client_id,
            secret,
            refresh: tokio::sync::Mutex::new(Held {
                token: refresh_token,
                unsaved: false,
            }),
            on_rotate: None,
            store: None,
        }
    }

    /// Calls `hook` with every new refresh token, once it is held (and saved, with a store).
    pub fn on_rotate(mut self, hook: RotationHook) -> Self {
        self.on_rotate = Some(hook);
        self
    }

    /// Keeps the refresh token in `store`, shared with every other holder: each refresh takes the
    /// store's lock, presents the refresh token stored (not the one this grant last saw), and
    /// saves the replacement before returning.
    pub fn with_store(mut self, store: Arc<dyn RefreshTokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The refresh token currently held.
    pub async fn current_refresh_token(&self) -> RefreshToken {
        self.refresh.lock().await.token.clone()
    }

    /// Makes `held` the token to present: a replacement not yet saved is saved first; otherwise
    /// the one stored now, which another holder may have rotated.
    async fn sync_with_store(
        &self,
        store: &dyn RefreshTokenStore,
        held: &mut Held,
    ) -> Result<(), FetchError> {
        if held.unsaved {
            store
                .save(&held.token)
                .await
                .map_err(|e| store_failure(unsaved(e)))?;
            held.unsaved = false;
            return Ok(());
        }
        match store.load().await.map_err(store_failure)? {
            Some(stored) => {
                if stored != held.token {
                    tracing::debug!("using the refresh token another process rotated");
                    held.token = stored;
                }
                Ok(())
            }
            None => Err(FetchError::Fatal(Error::SignInRequired {
                reason: "the stored sign-in is gone (signed out?)".into(),
            })),
        }
    }

    /// Presents the refresh token held, and keeps (and saves, with a store) its replacement.
    async fn present(&self, held: &mut Held) -> Result<TokenResponse, FetchError> {
        let resp = self
            .endpoint
            .request(
                &self.client_id,
                self.secret.as_ref(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", held.token.expose_secret()),
                ],
                self.name(),
            )
            .await?;
        if let Some(new) = &resp.refresh_token {
            held.token = new.clone();
            if let Some(store) = &self.store {
                // Saved before the lock is released and before the access token is used: the
                // old refresh token no longer works.
                if let Err(e) = store.save(new).await {
                    held.unsaved = true;
                    return Err(store_failure(unsaved(e)));
                }
            }
            if let Some(hook) = &self.on_rotate {
                hook(new);
            }
        }
        Ok(resp)
    }
}

/// A store failure during a refresh: one that may pass (a lock held elsewhere too long, a
/// replacement not saved yet) is retried by the manager like a flaky endpoint; one someone must fix
/// (an unsafe directory) is not.
pub(super) fn store_failure(e: Error) -> FetchError {
    if e.is_retryable() {
        FetchError::Transient {
            reason: e.to_string(),
            retry_after: None,
        }
    } else {
        FetchError::Fatal(e)
    }
}

/// The error for a rotated refresh token that could not be saved.
pub(super) fn unsaved(e: Error) -> Error {
    Error::Store {
        detail: format!(
            "the new refresh token could not be saved ({e}); it is kept in memory and saved before the next token is used, but if this process ends first the sign-in is lost"
        ),
        retryable: true,
    }
}

#[async_trait]
impl Grant for RefreshTokenGrant {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let mut held = self.refresh.lock().await;
        let Some(store) = &self.store else {
            return self.present(&mut held).await;
        };
        let lock = store.lock().await.map_err(store_failure)?;
        let result = match self.sync_with_store(store.as_ref(), &mut held).await {
            Ok(()) => self.present(&mut held).await,
            Err(e) => Err(e),
        };
        // Given back (awaited) before the token is handed out, not left to a task: a process that
        // exits next would otherwise make every other holder wait out the lock's lease.
        lock.release().await;
        result
    }

    fn name(&self) -> &'static str {
        "refresh_token"
    }
}
