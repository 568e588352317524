//! `tokenwarden request METHOD PATH`: one call through the client.

use crate::args::RequestArgs;
use anyhow::Result;
use std::io::Write as _;
use tokenwarden::ApiClient;

pub(crate) async fn run(client: &ApiClient, a: RequestArgs) -> Result<u8> {
    let method = a.method;
    let mut req = client.request(method.clone(), &a.path);
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
        Ok(crate::exit::FAILED)
    }
}
