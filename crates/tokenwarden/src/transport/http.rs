//! The HTTP layer under the API client and the token endpoint: how a `reqwest::Client` is built
//! (no automatic redirects, proxies as [`ProxyConfig`] says) and how an answer's body is read
//! within a size limit.

use super::proxy::ProxyConfig;
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use std::time::Duration;

/// What a `reqwest::Client` of tokenwarden is built with.
pub(crate) struct HttpOptions<'a> {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) user_agent: &'a str,
    pub(crate) proxies: &'a ProxyConfig,
}

/// A client that follows no redirects (the caller decides where credentials may go) and uses
/// exactly the given proxies (never loopback through one).
///
/// # Errors
/// [`Error::Config`] if a proxy setting is unusable or the TLS backend cannot start.
pub(crate) fn client(o: &HttpOptions<'_>) -> Result<reqwest::Client> {
    build(o, reqwest::Client::builder().timeout(o.timeout))
}

/// As [`client`], but `o.timeout` bounds the wait for the answer's head and each read of its
/// body (reset by every chunk that arrives), not the whole exchange: for answers that are streamed
/// on as they arrive (the agent's proxy), which may take longer than any one read. A stalled
/// answer still fails after `o.timeout` without a byte.
///
/// # Errors
/// As [`client`].
pub(crate) fn streaming_client(o: &HttpOptions<'_>) -> Result<reqwest::Client> {
    build(o, reqwest::Client::builder().read_timeout(o.timeout))
}

fn build(o: &HttpOptions<'_>, builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    let builder = builder
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(o.connect_timeout)
        .user_agent(o.user_agent);
    o.proxies
        .apply(builder)?
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {}", crate::error::chain(&e))))
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than the limit; the announced length, if the server sent one.
    TooLarge { length: Option<u64> },
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads `resp`'s body, at most `max` bytes: an announced `Content-Length` above it is refused
/// before a byte is read, and a body without one is cut off (and refused) as soon as it passes it.
/// Memory grows with what actually arrives, never with what the server announces.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    max: u64,
) -> std::result::Result<Bytes, BodyError> {
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge { length: announced });
    }
    let mut body = BytesMut::with_capacity(announced.unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge { length: announced });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
