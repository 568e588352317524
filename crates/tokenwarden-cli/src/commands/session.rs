//! The person's sign-in as the commands use it: where it is kept, and the token manager that acts
//! as that person (`--as-user`, or a profile's `grant = "user"`).

use crate::ConfigError;
use crate::config::{Credentials, Settings};
use anyhow::Result;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use tokenwarden::{
    ClientSecret, RefreshTokenGrant, TokenManager, TokenManagerBuilder, session::Session,
    session::SessionStore, store::TokenKey,
};

/// The keyring service name sign-ins are kept under.
#[cfg(feature = "keyring")]
pub(crate) const KEYRING_SERVICE: &str = "tokenwarden";

/// Where sign-ins are kept: `<data dir>/tokenwarden/sessions` (`~/.local/share/...` on Linux),
/// one directory per profile, token URL and client. Not in the cache directory: clearing a cache
/// must not sign anyone out.
fn sessions_dir() -> Result<PathBuf> {
    dirs::data_local_dir()
        .map(|d| d.join("tokenwarden").join("sessions"))
        .ok_or_else(|| {
            ConfigError(
                "no data directory to keep the sign-in in (set HOME or XDG_DATA_HOME)".into(),
            )
            .into()
        })
}

/// The sign-in store of `s`'s profile, token URL and client, bound to them (with the keyring,
/// when built with it, for sign-ins that keep their refresh token there).
pub(crate) fn store(s: &Settings, client_id: &str) -> Result<SessionStore> {
    let store = store_without_keyring(s, client_id)?;
    #[cfg(feature = "keyring")]
    let store = store.with_keyring(KEYRING_SERVICE);
    Ok(store)
}

/// [`store`] that keeps a new sign-in's refresh token in the file.
pub(crate) fn store_without_keyring(s: &Settings, client_id: &str) -> Result<SessionStore> {
    let mut h = Sha256::new();
    let token_url = s.require_token_url()?;
    for part in [s.profile.as_str(), token_url.as_str(), client_id] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hash: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The profile's name, readable, then what tells sign-ins apart.
    let name: String = s
        .profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    Ok(
        SessionStore::new(sessions_dir()?.join(format!("{name}-{hash}")))
            .bound_to(token_url, client_id),
    )
}

/// The client id and secret of a user setting.
pub(crate) fn user(s: &Settings) -> Result<(&str, Option<&ClientSecret>)> {
    match &s.credentials {
        Credentials::User { id, secret } => Ok((id, secret.as_ref())),
        _ => Err(
            ConfigError("this command acts as the signed-in person: add --as-user".into()).into(),
        ),
    }
}

/// The stored sign-in, or the error that says to sign in.
pub(crate) async fn signed_in(s: &Settings) -> Result<(SessionStore, Session)> {
    let (id, _) = user(s)?;
    let store = store(s, id)?;
    match store.read().await? {
        Some(session) => Ok((store, session)),
        None => Err(ConfigError(format!(
            "not signed in for profile '{}' (client {id:?} at {})\nhint: run `tokenwarden login{}` first",
            s.profile,
            s.token_url_text(),
            s.profile_flag()
        ))
        .into()),
    }
}

/// The cache key of the access tokens a sign-in gives (the secret, when the client has one, so
/// that a changed secret is not hidden by a cached token).
pub(crate) fn access_key(
    s: &Settings,
    session: &Session,
    secret: Option<&ClientSecret>,
) -> Result<TokenKey> {
    let key = TokenKey::new(s.require_token_url()?, &session.client_id);
    Ok(match (session.confidential, secret) {
        (true, Some(secret)) => key.with_secret(secret.clone()),
        _ => key,
    })
}

/// A token manager acting as the signed-in person: the refresh token grant on the stored sign-in
/// (rotations saved before use, serialised with other processes), and its access tokens shared
/// through the cache beside it.
pub(crate) async fn token_builder(s: &Settings) -> Result<TokenManagerBuilder> {
    let (_, secret) = user(s)?;
    let (store, session) = signed_in(s).await?;
    let endpoint = super::endpoint(s)?;
    let grant = match (session.confidential, secret) {
        (true, Some(secret)) => RefreshTokenGrant::new(
            endpoint,
            session.client_id.clone(),
            secret.clone(),
            session.refresh_token.clone(),
        ),
        (true, None) => {
            return Err(ConfigError(format!(
                "the sign-in for profile '{}' was made with OAuth client {:?}'s secret, and no client secret is configured now: set it as when you signed in ({}, --client-secret-file or client_secret in the profile)",
                s.profile,
                session.client_id,
                "GENESYSCLOUD_OAUTHCLIENT_SECRET"
            ))
            .into());
        }
        (false, _) => RefreshTokenGrant::public(
            endpoint,
            session.client_id.clone(),
            session.refresh_token.clone(),
        ),
    };
    let access = store.access_tokens(access_key(s, &session, secret)?);
    let grant = grant.with_store(Arc::new(store));
    Ok(TokenManager::builder(grant).store(access))
}
