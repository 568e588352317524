//! `tokenwarden request METHOD PATH`: one call through the client.

use crate::ConfigError;
use crate::args::RequestArgs;
use anyhow::Result;
use std::io::Write as _;
use tokenwarden::ApiClient;

pub(crate) async fn run(client: &ApiClient, a: RequestArgs) -> Result<u8> {
    let method = http::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ConfigError(format!("unknown method {:?}", a.method)))?;
    let a_method = method.to_string();
    let mut req = client.request(method, &a.path);
    for h in &a.header {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| ConfigError(format!("header {h:?}: use \"Name: value\"")))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError(format!("bad header name in {h:?}")))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|_| ConfigError(format!("bad header value in {h:?}")))?;
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
    let (resp_method, resp_path) = (a_method, resp.url().path().to_string());
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
        crate::ui::error(&format!(
            "{} {} answered HTTP {status}",
            resp_method, resp_path
        ));
        Ok(crate::exit::FAILED)
    }
}
