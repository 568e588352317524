//! `tokenwarden request METHOD PATH`: one call through the client.

use crate::args::RequestArgs;
use crate::exit::UsageError;
use anyhow::Result;
use std::io::Write as _;
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
    // The body is data, but it came from a server: a secret it echoes is scrubbed.
    out.write_all(&tokenwarden::redact_bytes(resp.body()))?;
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
