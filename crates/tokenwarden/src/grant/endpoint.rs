//! The token endpoint: its URL and HTTP client, and the wire format of a token request (client
//! authentication, the form body, an answer read with a cap).

use super::{FetchError, MAX_TOKEN_RESPONSE, TokenResponse, classify};
use crate::error::{Error, chain};
use crate::secret::ClientSecret;
use crate::transport::{IntoTokenUrl, TokenUrl};
use base64::Engine as _;
use std::time::Duration;
use zeroize::Zeroizing;

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)`: what Genesys Cloud documents, and the default.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields in the body.
    FormFields,
}

/// An OAuth 2.0 token endpoint: its URL and the HTTP client used to reach it (which follows no
/// redirects, so credentials are never sent anywhere else).
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    url: TokenUrl,
    http: reqwest::Client,
    auth: ClientAuth,
}

impl TokenEndpoint {
    /// An endpoint at `url` (a [`TokenUrl`], or text checked as [`TokenUrl::parse`] checks it)
    /// with default timeouts (connect 10 s, request 30 s).
    ///
    /// # Errors
    /// [`Error::Config`] if the URL does not parse, or is plain `http://` to a host other than
    /// loopback (use [`TokenEndpoint::allow_insecure_http`] to permit that knowingly).
    pub fn new(url: impl IntoTokenUrl) -> Result<Self, Error> {
        Self::build(url.into_token_url()?, false)
    }

    /// Like [`TokenEndpoint::new`], but accepts `http://` to any host.
    ///
    /// # Errors
    /// [`Error::Config`] if the URL does not parse.
    pub fn allow_insecure_http(url: impl IntoTokenUrl) -> Result<Self, Error> {
        Self::build(url.into_token_url()?, true)
    }

    fn build(url: TokenUrl, insecure_ok: bool) -> Result<Self, Error> {
        url.check_secure(insecure_ok)?;
        // No redirects (credentials go nowhere else); proxies from the environment, but never
        // for loopback, and never plain http through one (the proxy would read the secret).
        let proxies = crate::transport::ProxyConfig::from_env();
        proxies.check(&url)?;
        let http = crate::transport::http::client(&crate::transport::http::HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            user_agent: concat!("tokenwarden/", env!("CARGO_PKG_VERSION")),
            proxies: &proxies,
        })?;
        Ok(Self {
            url,
            http,
            auth: ClientAuth::Basic,
        })
    }

    /// Sends client credentials as `auth` (Basic by default).
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Uses this HTTP client (it should not follow redirects).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The endpoint URL (what [`TokenKey`](crate::store::TokenKey)s and
    /// [`SessionStore::bound_to`](crate::session::SessionStore::bound_to) are made of; it
    /// dereferences to the parsed [`Url`](url::Url)).
    pub fn url(&self) -> &TokenUrl {
        &self.url
    }

    fn host(&self) -> String {
        match (self.url.host_str(), self.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => self.url.to_string(),
        }
    }

    /// Posts one token request: `params` plus client authentication (a public client, without
    /// `secret`, sends its `client_id` as a form field). The form body and the Basic credential
    /// hold secrets: both are built in buffers that are zeroized when dropped (the body is handed
    /// to reqwest without a copy). At most [`MAX_TOKEN_RESPONSE`] bytes of the answer are read.
    pub(crate) async fn request(
        &self,
        client_id: &str,
        secret: Option<&ClientSecret>,
        params: &[(&str, &str)],
        grant: &'static str,
    ) -> Result<TokenResponse, FetchError> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.http.post(self.url.url().clone());
        match (self.auth, secret) {
            (_, None) => form.push(("client_id", client_id)),
            (ClientAuth::Basic, Some(secret)) => {
                let v = basic_header(client_id, secret).ok_or_else(|| {
                    FetchError::Fatal(Error::Config(
                        "client id contains characters not allowed in a header".into(),
                    ))
                })?;
                req = req.header(http::header::AUTHORIZATION, v);
            }
            (ClientAuth::FormFields, Some(secret)) => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
        }
        let resp = req
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(&form))
            .send()
            .await
            .map_err(|e| {
                // The host is named once; the URL (whose query could carry anything) is not.
                let e = e.without_url();
                let reason = format!("token request to {} failed: {}", self.host(), chain(&e));
                if e.is_connect() {
                    FetchError::Unreachable { reason }
                } else {
                    FetchError::Transient {
                        reason,
                        retry_after: None,
                    }
                }
            })?;
        let status = resp.status();
        // An HTTP-date Retry-After is the server's real time, so it is compared with the wall
        // clock (Genesys sends delta-seconds, for which the clock does not matter).
        let retry_after =
            crate::retry::retry_after_header(resp.headers(), crate::clock::wall_now());
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body =
            read_capped(resp, MAX_TOKEN_RESPONSE)
                .await
                .map_err(|e| FetchError::Transient {
                    reason: format!(
                        "reading the token response from {}: {}",
                        self.host(),
                        chain(&e.without_url())
                    ),
                    retry_after,
                })?;
        let Some(body) = body else {
            return Err(too_large(status.as_u16(), retry_after));
        };
        classify(
            status.as_u16(),
            &body,
            retry_after,
            location,
            grant,
            &self.host(),
        )
    }
}

/// `Authorization: Basic base64(id:secret)`, sensitive, in bytes that are zeroized when the header
/// is dropped. `None` if the client id makes it an illegal header value.
pub(super) fn basic_header(client_id: &str, secret: &ClientSecret) -> Option<http::HeaderValue> {
    let credential = basic_credential(client_id, secret);
    let mut value = Zeroizing::new(Vec::with_capacity(6 + credential.len()));
    value.extend_from_slice(b"Basic ");
    value.extend_from_slice(credential.as_bytes());
    let mut v = http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(value)).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `base64(id:secret)`: the secret in another form, so it lives in zeroized buffers only.
pub(super) fn basic_credential(client_id: &str, secret: &ClientSecret) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(
        client_id.len() + 1 + secret.expose_secret().len(),
    ));
    raw.extend_from_slice(client_id.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(secret.expose_secret().as_bytes());
    let mut encoded = Zeroizing::new(String::with_capacity(raw.len().div_ceil(3) * 4));
    base64::engine::general_purpose::STANDARD.encode_string(&*raw, &mut encoded);
    encoded
}

/// Registers the Basic credential of `client_id`/`secret` as a secret, so that a server echoing it
/// is scrubbed. Done once per grant, not per request.
pub(super) fn register_basic_credential(client_id: &str, secret: &ClientSecret) {
    crate::redact::register(
        &basic_credential(client_id, secret),
        crate::redact::Lifespan::Process,
    );
}

/// The `application/x-www-form-urlencoded` body of `form`, in a buffer sized up front (so that no
/// reallocation leaves a copy behind) and zeroized when reqwest is done with it.
pub(super) fn form_body(form: &[(&str, &str)]) -> reqwest::Body {
    // Percent-encoding at most triples a byte; one `=` and one `&` per pair.
    let capacity = form
        .iter()
        .map(|(k, v)| 3 * (k.len() + v.len()) + 2)
        .sum::<usize>();
    let mut body = Zeroizing::new(String::with_capacity(capacity));
    {
        let mut ser = url::form_urlencoded::Serializer::new(&mut *body);
        for (k, v) in form {
            ser.append_pair(k, v);
        }
        ser.finish();
    }
    let bytes = Zeroizing::new(std::mem::take(&mut *body).into_bytes());
    reqwest::Body::from(bytes::Bytes::from_owner(bytes))
}

/// Reads at most `cap` bytes of `resp`'s body, chunk by chunk: `Ok(None)` if there is more (the
/// rest is not read).
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, reqwest::Error> {
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    // The body holds the token: sized up front when announced, zeroized when dropped.
    let mut body = Zeroizing::new(Vec::with_capacity(
        announced.map_or(4096, |n| n as usize).min(cap),
    ));
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The failure for an answer larger than [`MAX_TOKEN_RESPONSE`]: for a success status it cannot be
/// a token response; an error status keeps its meaning (a 503 is still worth retrying).
pub(super) fn too_large(status: u16, retry_after: Option<Duration>) -> FetchError {
    let detail = format!(
        "HTTP {status}, more than {} KiB (not read further)",
        MAX_TOKEN_RESPONSE / 1024
    );
    if status == 429 || status == 408 || (500..600).contains(&status) {
        return FetchError::Transient {
            reason: detail,
            retry_after,
        };
    }
    FetchError::Fatal(Error::TokenDecode { detail })
}
