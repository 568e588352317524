//! `tokenwarden token`: a valid access token on stdout, cached across invocations.

use crate::args::{GlobalArgs, TokenArgs};
use crate::config::{Credentials, Settings};
use anyhow::Result;
use std::io::Write as _;
use std::path::PathBuf;
use tokenwarden::{AccessToken, FileStore, TokenKey};

pub(crate) async fn run(g: &GlobalArgs, a: TokenArgs, hint: &mut Option<String>) -> Result<u8> {
    let s = super::settings(g)?;
    *hint = Some(s.credentials_hint());
    if matches!(s.credentials, Credentials::User { .. }) && (a.no_cache || a.lock_timeout.is_some())
    {
        return Err(crate::exit::UsageError(
            "--no-cache and --lock-timeout do not apply with --as-user: the signed-in person's tokens are always kept beside the sign-in, so that its refresh token is rotated by one process at a time".into(),
        )
        .into());
    }
    let mut builder = super::token_builder(&s).await?;
    if !a.no_cache
        && let Some(store) = cache(&s, &a)
    {
        tracing::debug!(path = %store.path().display(), "token cache");
        builder = builder.store(store);
    }
    let tokens = builder.build();
    let bearer = tokens.bearer().await?;
    let token = bearer.access_token().expose_secret();
    // `curl -H "Authorization: Bearer $(tokenwarden token)"` must not get a second header.
    if !AccessToken::is_header_value(token) {
        anyhow::bail!(
            "{} holds characters that are not allowed in an HTTP header (CR, LF or other control characters, spaces or non-ASCII): refusing to print it, since it would inject headers into `Authorization: Bearer $(tokenwarden token)`",
            source(&s)
        );
    }
    if a.json {
        let expires_in = bearer
            .expires_at()
            .saturating_duration_since(tokenwarden::Instant::now());
        let expires_at = bearer
            .expires_at_wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::json!({
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in.as_secs(),
                "expires_at_unix": expires_at,
            })
        )?;
    } else {
        writeln!(std::io::stdout(), "{token}")?;
    }
    Ok(crate::exit::OK)
}

/// The token and where it came from, for the error about an unprintable one.
fn source(s: &Settings) -> String {
    match &s.credentials {
        Credentials::Client { .. } => {
            format!("the access token from the token endpoint {}", s.token_url)
        }
        Credentials::User { .. } => format!(
            "the access token of the person signed in for profile '{}'",
            s.profile
        ),
        Credentials::Static(_) => "the access token in GENESYSCLOUD_ACCESS_TOKEN".into(),
    }
}

/// The file cache for client credentials, bound to the token URL, client id, scope and secret:
/// `<cache dir>/tokenwarden/tokens/` (`TOKENWARDEN_CACHE_DIR/tokens/` when set). A static token
/// is not cached, and a signed-in person's tokens are cached beside the sign-in.
fn cache(s: &Settings, a: &TokenArgs) -> Option<FileStore> {
    let Credentials::Client { id, secret } = &s.credentials else {
        return None;
    };
    let dir = std::env::var_os("TOKENWARDEN_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("tokenwarden")))?;
    let mut key = TokenKey::new(&s.token_url, id).with_secret(secret.clone());
    if let Some(scope) = &s.scope {
        key = key.with_scope(scope);
    }
    let store = FileStore::new(dir.join("tokens"), key);
    Some(match a.lock_timeout {
        Some(t) => store.with_lock_timeout(t),
        None => store,
    })
}
