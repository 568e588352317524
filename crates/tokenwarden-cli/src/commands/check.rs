//! `tokenwarden check`: the preflight before a long job.

use crate::ConfigError;
use crate::args::CheckArgs;
use anyhow::Result;
use std::io::Write as _;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokenwarden::identity::Named;

/// What the preflight learned.
#[derive(Debug)]
pub(crate) struct CheckReport {
    pub(crate) organization: String,
    pub(crate) client: String,
    pub(crate) lifetime_secs: u64,
    pub(crate) scopes: Vec<String>,
}

pub(crate) async fn run(client: &ApiClient, a: &CheckArgs) -> Result<u8> {
    let r = preflight(client, &a.require_scope).await?;
    let scopes = if r.scopes.is_empty() {
        "(none reported)".to_string()
    } else {
        shown_scope_list(&r.scopes)
    };
    // stdout may be a closed pipe or a full disk: an error to report, never a panic.
    let mut out = std::io::stdout().lock();
    writeln!(out, "organization:     {}", r.organization)?;
    writeln!(out, "OAuth client:     {}", r.client)?;
    let grant = client.tokens().grant_name();
    // A static token with no expiry it could read (not a JWT) is kept "forever": that is not
    // an expiry to print.
    let expires = if grant == "static" && r.lifetime_secs > OPAQUE_STATIC_LIFETIME_SECS {
        "unknown (opaque static token)".to_string()
    } else {
        tokenwarden::duration::human(Duration::from_secs(r.lifetime_secs))
    };
    writeln!(out, "token expires in: {expires} (grant: {grant})")?;
    writeln!(out, "scopes:           {scopes}")?;
    if !a.require_scope.is_empty() {
        writeln!(out, "required scopes:  all present")?;
    }
    writeln!(out, "ok")?;
    out.flush()?;
    Ok(crate::exit::OK)
}

/// Fetches a token, asks who it is (`GET /api/v2/tokens/me`), and checks the required scopes.
pub(crate) async fn preflight(client: &ApiClient, required: &[String]) -> Result<CheckReport> {
    let bearer = client.tokens().bearer().await?;
    let me = client.token_identity().await?;
    let scopes = me.scopes;
    let missing: Vec<&String> = required
        .iter()
        .filter(|r| !scope_granted(&scopes, r))
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError(format!(
            "the OAuth client lacks required scope(s) {}: it has {}. Add them to the client's scopes (Admin > Integrations > OAuth) before running the job",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if scopes.is_empty() {
                "none reported".to_string()
            } else {
                scopes.join(" ")
            }
        ))
        .into());
    }
    Ok(CheckReport {
        organization: me
            .organization
            .as_ref()
            .map_or_else(|| "?".into(), described),
        client: me
            .oauth_client
            .as_ref()
            .map_or_else(|| "?".into(), described),
        lifetime_secs: bearer
            .expires_at()
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs(),
        scopes,
    })
}

/// Longer than any token Genesys issues (at most 48 hours): the lifetime of a static token whose
/// expiry is not known.
const OPAQUE_STATIC_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// Server text shown to a person (a name, an id, a scope): scrubbed of secrets, control characters
/// escaped, shortened. `check` and `whoami` print to stdout, where a hostile organisation name
/// could otherwise clear the screen, retitle the terminal or forge a line.
pub(crate) fn shown(text: &str) -> String {
    tokenwarden::redact::terminal_safe(text, 200)
}

/// Scopes as `check` prints them: each [`shown`], separated by spaces.
fn shown_scope_list(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(|s| shown(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `name (id)` of an object of `/api/v2/tokens/me` (the organization, the OAuth client), fit to
/// be shown ([`shown`]).
pub(crate) fn described(n: &Named) -> String {
    let name = n.name.as_deref().map_or_else(|| "?".into(), shown);
    match &n.id {
        Some(id) => format!("{name} ({})", shown(id)),
        None => name,
    }
}

/// A scope is granted when present, or when asking for `X:readonly` and `X` (read-write) is held.
fn scope_granted(have: &[String], want: &str) -> bool {
    have.iter()
        .any(|h| h == want || want.strip_suffix(":readonly").is_some_and(|base| h == base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let have = vec!["analytics".to_string(), "users:readonly".to_string()];
        assert!(scope_granted(&have, "analytics"));
        assert!(scope_granted(&have, "analytics:readonly"));
        assert!(scope_granted(&have, "users:readonly"));
        assert!(!scope_granted(&have, "users"));
        assert!(!scope_granted(&have, "routing"));
    }

    #[test]
    fn regression_server_names_cannot_drive_the_terminal_or_show_a_secret() {
        // The organisation name went to stdout as it was: `ESC[2J ESC]0;pwned BEL`, CR/LF, the
        // token.
        tokenwarden::redact::register_secret("org-echoed-token-42");
        let org = Named {
            name: Some("Acme\u{1b}[2J\u{1b}]0;pwned\u{7} org-echoed-token-42".into()),
            id: Some("id\r\nforged: line".into()),
        };
        let shown = described(&org);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(!shown.contains("org-echoed-token-42"), "{shown}");
        assert_eq!(
            shown,
            "Acme\\u{1b}[2J\\u{1b}]0;pwned\\u{7} [REDACTED] (id\\r\\nforged: line)"
        );
        assert_eq!(shown_scope_list(&["a\u{1b}[31m".into()]), "a\\u{1b}[31m");
    }

    #[test]
    fn lifetimes_read_like_the_library_s_durations() {
        let human = |secs| tokenwarden::duration::human(Duration::from_secs(secs));
        assert_eq!(human(86399), "23 h 59 min");
        assert_eq!(human(299), "4 min 59 s");
        assert_eq!(human(5), "5 s");
    }
}
