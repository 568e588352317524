//! `tokenwarden check`: the preflight before a long job.

use crate::ConfigError;
use crate::args::CheckArgs;
use anyhow::Result;
use serde_json::Value;
use std::io::Write as _;
use tokenwarden::ApiClient;

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
        human(r.lifetime_secs)
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

pub(crate) fn human(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Fetches a token, calls `GET /api/v2/tokens/me`, and checks the required scopes.
pub(crate) async fn preflight(client: &ApiClient, required: &[String]) -> Result<CheckReport> {
    let bearer = client.tokens().bearer().await?;
    let me = client.get_json("/api/v2/tokens/me").await?;
    let scopes: Vec<String> = me
        .get("authorizedScope")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
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
            .get("organization")
            .map(described)
            .unwrap_or_else(|| "?".into()),
        client: me
            .get("OAuthClient")
            .map(described)
            .unwrap_or_else(|| "?".into()),
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
    tokenwarden::terminal_safe(text, 200)
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
pub(crate) fn described(v: &Value) -> String {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| "?".into(), shown);
    match v.get("id").and_then(Value::as_str) {
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
        tokenwarden::register_secret("org-echoed-token-42");
        let org = serde_json::json!({
            "name": "Acme\u{1b}[2J\u{1b}]0;pwned\u{7} org-echoed-token-42",
            "id": "id\r\nforged: line",
        });
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
    fn durations() {
        assert_eq!(human(86399), "23h 59m");
        assert_eq!(human(299), "4m 59s");
        assert_eq!(human(5), "5s");
    }
}
