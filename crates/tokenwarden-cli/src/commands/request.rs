//! `tokenwarden request METHOD PATH`: one call through the client.

use crate::args::RequestArgs;
use crate::exit::UsageError;
use anyhow::Result;
use std::borrow::Cow;
use std::io::{IsTerminal as _, Write as _};
use tokenwarden::ApiClient;

pub(crate) async fn run(client: &ApiClient, a: RequestArgs) -> Result<u8> {
    let method = a.method;
    // The same origin check as batch records: a typed path never leads elsewhere.
    let url = super::on_origin(client, &a.path)?;
    if a.header
        .iter()
        .any(|(n, _)| n == http::header::AUTHORIZATION)
    {
        return Err(UsageError(
            "-H Authorization: tokenwarden sends its managed token as Authorization, so yours would be replaced; drop the header (to use a token of your own, set GENESYSCLOUD_ACCESS_TOKEN)".into(),
        )
        .into());
    }
    let mut req = client.request(method.clone(), url.as_str());
    for (name, value) in a.header {
        register_credential(&name, &value);
        req = req.header(name, value);
    }
    if let Some(d) = &a.data {
        req = req.json(&super::json_arg(d)?);
    }
    if a.replay_safe {
        req = req.replay_safe();
    }
    let resp = req.send().await?;
    let status = resp.status();
    let path = resp.url().path().to_string();
    let mut out = std::io::stdout().lock();
    // The body is data, but it came from a server: a secret it echoes is scrubbed (a JSON body as
    // decoded text). On a terminal, control characters are shown escaped (an answer cannot clear
    // the screen or retitle the window); in a pipe or a file the bytes are exact.
    let body = tokenwarden::redact::redact_json_bytes(resp.body());
    let body = if out.is_terminal() {
        match tokenwarden::redact::terminal_lines(&String::from_utf8_lossy(&body)) {
            Cow::Borrowed(_) => body,
            Cow::Owned(shown) => Cow::Owned(shown.into_bytes()),
        }
    } else {
        body
    };
    out.write_all(&body)?;
    if !resp.body().is_empty() && !resp.body().ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if status.is_success() {
        Ok(crate::exit::OK)
    } else {
        crate::ui::error(&format!("{method} {path} answered HTTP {status}"));
        // A 5xx is the server's failure (4, after the retries a replay-safe request gets);
        // anything else, the request's (1).
        Ok(if status.is_server_error() {
            crate::exit::RUNTIME
        } else {
            crate::exit::FAILED
        })
    }
}

/// Registers the value of a header that carries a credential (`-H 'X-Api-Key: ...'`) as a secret,
/// so that an answer or a message echoing it is scrubbed like the token. A value after an
/// authentication scheme (`Bearer abc`) is registered alone too. Values of other headers
/// (`Accept: application/json`) are not: they would be scrubbed out of ordinary answers.
fn register_credential(name: &http::HeaderName, value: &http::HeaderValue) {
    if !is_credential(name.as_str()) {
        return;
    }
    let Ok(value) = value.to_str() else { return };
    tokenwarden::redact::register_secret(value);
    if let Some((_scheme, credential)) = value.trim().split_once(' ') {
        tokenwarden::redact::register_secret(credential.trim());
    }
}

/// Whether a header name (lower case, as `http` keeps them) says it carries a credential.
fn is_credential(name: &str) -> bool {
    matches!(name, "authorization" | "proxy-authorization" | "cookie")
        || [
            "key",
            "token",
            "secret",
            "password",
            "passwd",
            "auth",
            "session",
            "signature",
            "credential",
        ]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_told_by_name() {
        for yes in [
            "authorization",
            "x-api-key",
            "x-auth-token",
            "cookie",
            "x-client-secret",
            "apikey",
            "x-amz-security-token",
        ] {
            assert!(is_credential(yes), "{yes}");
        }
        for no in [
            "accept",
            "accept-language",
            "content-type",
            "x-request-id",
            "user-agent",
        ] {
            assert!(!is_credential(no), "{no}");
        }
    }
}
