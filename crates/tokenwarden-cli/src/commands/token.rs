//! `tokenwarden token`: a valid access token on stdout, cached across invocations.

use crate::args::{GlobalArgs, TokenArgs};
use crate::config::{Credentials, Settings};
use anyhow::Result;
use std::io::Write as _;
use tokenwarden::AccessToken;

pub(crate) async fn run(g: &GlobalArgs, a: TokenArgs, hint: &mut Option<String>) -> Result<u8> {
    let s = super::settings(g)?;
    *hint = Some(s.credentials_hint());
    if matches!(s.credentials, Credentials::User { .. })
        && (g.connection.no_cache || a.lock_timeout.is_some())
    {
        return Err(crate::exit::UsageError(
            "--no-cache and --lock-timeout do not apply with --as-user: the signed-in person's tokens are always kept beside the sign-in, so that its refresh token is rotated by one process at a time".into(),
        )
        .into());
    }
    // The user's file cache by default, as for every command: a shell loop makes one token
    // request, not one per command.
    let one = crate::args::PoolArgs::default();
    let tokens = super::tokens::tokens(&s, g, &one, a.lock_timeout)
        .await?
        .managers
        .remove(0);
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
            .saturating_duration_since(tokio::time::Instant::now());
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
            format!(
                "the access token from the token endpoint {}",
                s.token_url_text()
            )
        }
        Credentials::User { .. } => format!(
            "the access token of the person signed in for profile '{}'",
            s.profile
        ),
        Credentials::Static(_) => "the access token in GENESYSCLOUD_ACCESS_TOKEN".into(),
    }
}
