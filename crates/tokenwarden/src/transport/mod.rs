//! How requests reach a server: the HTTP client every request goes through (timeouts, the
//! proxy decision, the body cap) and the URL rules (no plain `http://` but to loopback; the typed
//! URLs [`TokenUrl`] and [`ApiBase`], parsed and normalised once).

pub(crate) mod http;
pub(crate) mod proxy;
mod typed_url;

pub use proxy::ProxyConfig;
pub use typed_url::{ApiBase, IntoApiBase, IntoTokenUrl, TokenUrl};

use crate::error::Error;
use url::Url;

/// Rejects plain `http://` except to loopback, unless `insecure_ok`.
pub(crate) fn check_scheme(url: &Url, insecure_ok: bool, what: &str) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if insecure_ok || ProxyConfig::is_loopback(url) => Ok(()),
        "http" => Err(Error::Config(format!(
            "{what} {url} uses plain http to a non-loopback host: tokens would travel in clear text (allow it explicitly if you must)"
        ))),
        other => Err(Error::Config(format!(
            "{what} {url} has unsupported scheme {other:?}"
        ))),
    }
}
