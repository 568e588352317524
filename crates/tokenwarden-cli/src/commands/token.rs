//! `tokenwarden token`: a valid access token on stdout, cached across invocations.

use crate::args::{GlobalArgs, TokenArgs};
use crate::config::Credentials;
use anyhow::Result;
use std::path::PathBuf;
use tokenwarden::FileStore;

pub(crate) async fn run(g: &GlobalArgs, a: TokenArgs, hint: &mut Option<String>) -> Result<u8> {
    let s = super::settings(g)?;
    *hint = Some(s.credentials_hint());
    let mut builder = super::token_builder(&s)?;
    if let (false, Credentials::Client { id, .. }) = (a.no_cache, &s.credentials)
        && let Some(path) = cache_path(&s.token_url, id)
    {
        tracing::debug!(path = %path.display(), "token cache");
        builder = builder.store(FileStore::new(path));
    }
    let tokens = builder.build();
    let bearer = tokens.bearer().await?;
    if a.json {
        let expires_in = bearer
            .expires_at()
            .saturating_duration_since(tokenwarden::Instant::now());
        let expires_at = bearer
            .expires_at_wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        println!(
            "{}",
            serde_json::json!({
                "access_token": bearer.access_token().expose_secret(),
                "token_type": "bearer",
                "expires_in": expires_in.as_secs(),
                "expires_at_unix": expires_at,
            })
        );
    } else {
        println!("{}", bearer.access_token().expose_secret());
    }
    Ok(crate::exit::OK)
}

/// `<cache dir>/tokenwarden/tokens/<hash of token URL and client id>.json`: keyed by where the token
/// comes from and for whom, never by the secret.
pub(crate) fn cache_path(token_url: &str, client_id: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TOKENWARDEN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("tokenwarden")))?;
    Some(
        dir.join("tokens")
            .join(format!("{:016x}.json", fnv1a(&[token_url, client_id]))),
    )
}

/// FNV-1a 64: stable across Rust versions and platforms (unlike `DefaultHasher`).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_url_and_client_only() {
        assert_eq!(fnv1a(&["a", "b"]), fnv1a(&["a", "b"]));
        assert_ne!(fnv1a(&["a", "b"]), fnv1a(&["a", "c"]));
        assert_ne!(fnv1a(&["ab", ""]), fnv1a(&["a", "b"]));
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
    }
}
