//! How a token is obtained: the OAuth 2.0 grants, and the token endpoint they talk to.

use crate::error::{Error, chain, excerpt};
use crate::secret::{AccessToken, ClientSecret, RefreshToken};
use crate::store::RefreshTokenStore;
use async_trait::async_trait;
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// The most that is read of a token endpoint's answer. A token response is a few hundred bytes (a
/// few KiB for a JWT); a larger answer is not a token response, and reading it whole would let a
/// hostile or misconfigured endpoint exhaust memory.
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A successful token response.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `expires_in`, if the endpoint sent it.
    pub expires_in: Option<Duration>,
    /// A refresh token, if the endpoint sent one (Authorization Code grant).
    pub refresh_token: Option<RefreshToken>,
    /// `token_type`, usually `bearer`.
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// Why a token request failed, classified for the retry loop.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FetchError {
    /// A later attempt may succeed (5xx, 429, throttling 400, timeouts, a connection cut short).
    Transient {
        /// What happened, in words (no secrets).
        reason: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The endpoint could not be reached at all: the connection was refused, its name did not
    /// resolve, the TLS handshake failed. Retried like [`FetchError::Transient`] during a run, but
    /// when no token was ever obtained the manager gives up after
    /// [`UNREACHABLE_AT_START`](crate::UNREACHABLE_AT_START): a job started against a wrong URL, or
    /// without network, fails at once with the cause.
    Unreachable {
        /// What happened, in words, with the whole cause (no secrets).
        reason: String,
    },
    /// Retrying cannot help (wrong secret, disabled client, revoked refresh token, ...).
    Fatal(Error),
}

impl FetchError {
    /// What the failure means ([`Class`](crate::error::Class)): a transient or unreachable
    /// endpoint is [`Class::Transient`](crate::error::Class::Transient); a fatal one is classified
    /// as its error is ([`Error::class`]).
    pub fn class(&self) -> crate::error::Class {
        match self {
            FetchError::Transient { .. } | FetchError::Unreachable { .. } => {
                crate::error::Class::Transient
            }
            FetchError::Fatal(e) => e.class(),
        }
    }
}

/// A way to obtain access tokens. Implementations must be safe for concurrent use, though the
/// [`TokenManager`](crate::TokenManager) never calls `fetch` concurrently on one grant.
#[async_trait]
pub trait Grant: Send + Sync + std::fmt::Debug + 'static {
    /// Makes one token request (no retries: the manager retries transient failures).
    async fn fetch(&self) -> Result<TokenResponse, FetchError>;

    /// A short name for messages and logs: `client_credentials`, `refresh_token`, `static`.
    fn name(&self) -> &'static str;

    /// A token to start with, and its remaining lifetime if known (static tokens).
    fn initial(&self) -> Option<(AccessToken, Option<Duration>)> {
        None
    }
}

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
    url: Url,
    http: reqwest::Client,
    auth: ClientAuth,
}

impl TokenEndpoint {
    /// An endpoint at `url` with default timeouts (connect 10 s, request 30 s).
    ///
    /// # Errors
    /// [`Error::Config`] if the URL does not parse, or is plain `http://` to a host other than
    /// loopback (use [`TokenEndpoint::allow_insecure_http`] to permit that knowingly).
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::build(url, false)
    }

    /// Like [`TokenEndpoint::new`], but accepts `http://` to any host.
    ///
    /// # Errors
    /// [`Error::Config`] if the URL does not parse.
    pub fn allow_insecure_http(url: &str) -> Result<Self, Error> {
        Self::build(url, true)
    }

    fn build(url: &str, insecure_ok: bool) -> Result<Self, Error> {
        let url = Url::parse(url)
            .map_err(|e| Error::Config(format!("token URL {url:?} is not a URL: {e}")))?;
        crate::transport::check_scheme(&url, insecure_ok, "token URL")?;
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

    /// The endpoint URL.
    pub fn url(&self) -> &Url {
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
        let mut req = self.http.post(self.url.clone());
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
fn basic_header(client_id: &str, secret: &ClientSecret) -> Option<http::HeaderValue> {
    let credential = basic_credential(client_id, secret);
    let mut value = Zeroizing::new(Vec::with_capacity(6 + credential.len()));
    value.extend_from_slice(b"Basic ");
    value.extend_from_slice(credential.as_bytes());
    let mut v = http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(value)).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `base64(id:secret)`: the secret in another form, so it lives in zeroized buffers only.
fn basic_credential(client_id: &str, secret: &ClientSecret) -> Zeroizing<String> {
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
fn register_basic_credential(client_id: &str, secret: &ClientSecret) {
    crate::redact::register(
        &basic_credential(client_id, secret),
        crate::redact::Lifespan::Process,
    );
}

/// The `application/x-www-form-urlencoded` body of `form`, in a buffer sized up front (so that no
/// reallocation leaves a copy behind) and zeroized when reqwest is done with it.
fn form_body(form: &[(&str, &str)]) -> reqwest::Body {
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
async fn read_capped(
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
fn too_large(status: u16, retry_after: Option<Duration>) -> FetchError {
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

#[derive(serde::Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct RawError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A 2xx answer's token, or what is wrong with it (never quoting the body: it may hold a token).
fn parse_token(status: u16, body: &[u8]) -> Result<TokenResponse, String> {
    let raw: RawToken = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status}, {} bytes, {}",
            body.len(),
            e.to_string().split(" at line").next().unwrap_or_default()
        )
    })?;
    if raw.access_token.is_empty() {
        return Err("empty access_token".into());
    }
    crate::token::check_header_safe(&raw.access_token).map_err(|p| p.to_string())?;
    if let Some(t) = raw.token_type.as_deref()
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "token_type is {:?}, not \"bearer\": tokenwarden can only send bearer tokens",
            excerpt(t, 40)
        ));
    }
    Ok(TokenResponse {
        expires_in: expires_in(raw.expires_in.as_ref())?,
        access_token: AccessToken::new(raw.access_token),
        refresh_token: raw
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(RefreshToken::new),
        token_type: raw.token_type,
    })
}

/// `expires_in` as a duration: absent or `null` is `None` (the manager assumes its default
/// lifetime); a positive number, or a string holding one, is that many seconds (saturating; the
/// manager's policy applies its floor and ceiling). Zero, a negative number, NaN, an infinity or
/// any other JSON type is refused: the token endpoint contradicts itself, and guessing could mean
/// using a dead token or asking for a new one on every request.
fn expires_in(value: Option<&serde_json::Value>) -> Result<Option<Duration>, String> {
    let seconds = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let kind = match value {
        Some(serde_json::Value::String(_)) => "a string",
        Some(serde_json::Value::Bool(_)) => "a boolean",
        Some(serde_json::Value::Array(_)) => "an array",
        Some(serde_json::Value::Object(_)) => "an object",
        _ => "a number",
    };
    match seconds {
        // Positive, however small: at least a nanosecond (the policy's floor applies later).
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(
            Duration::try_from_secs_f64(s)
                .unwrap_or(Duration::MAX)
                .max(Duration::from_nanos(1)),
        )),
        Some(s) if s.is_nan() => Err(format!("expires_in is {kind} that is not a number")),
        Some(s) if s.is_infinite() => Err(format!("expires_in is {kind} that is infinite")),
        Some(s) => Err(format!(
            "expires_in is {s}: the token would be expired before it is used"
        )),
        None => Err(format!("expires_in is {kind}, not a number of seconds")),
    }
}

/// Turns a token endpoint answer into a token or a classified failure. Pure, so every case is tested.
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    location: Option<String>,
    grant: &'static str,
    host: &str,
) -> Result<TokenResponse, FetchError> {
    if (200..300).contains(&status) {
        return parse_token(status, body)
            .map_err(|detail| FetchError::Fatal(Error::TokenDecode { detail }));
    }
    let mut err: RawError = serde_json::from_slice(body).unwrap_or_default();
    // The `error` code is server text like the rest: it reaches log lines and messages, so it is
    // scrubbed, escaped and shortened like them (a code is a short word; 60 is generous).
    err.error = err.error.map(|e| excerpt(&e, 60));
    let description = err
        .error_description
        .clone()
        .or(err.description.clone())
        .or(err.message.clone())
        .map(|d| excerpt(&d, 300));
    let reason = format!(
        "HTTP {status}{}{}",
        err.error
            .as_deref()
            .map(|e| format!(" {e}"))
            .unwrap_or_default(),
        description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    if status == 429 || (500..600).contains(&status) || status == 408 {
        return Err(FetchError::Transient {
            reason,
            retry_after,
        });
    }
    // Genesys throttles token creation with 400 invalid_request "rate limit exceeded; ...".
    let throttled = [&err.description, &err.error_description, &err.message]
        .iter()
        .any(|d| {
            d.as_deref().is_some_and(|d| {
                d.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("rate limit exceeded")
            })
        });
    if status == 400 && throttled {
        return Err(FetchError::Transient {
            reason,
            retry_after,
        });
    }
    if (300..400).contains(&status) {
        return Err(FetchError::Fatal(Error::Config(format!(
            "the token endpoint at {host} redirected (HTTP {status}{}); token requests never follow redirects: check the token URL or region",
            location
                .map(|l| format!(" to {}", excerpt(&l, 200)))
                .unwrap_or_default()
        ))));
    }
    let code = err.error.clone();
    let hint = match code.as_deref() {
        Some("invalid_client") | Some("unauthorized") => format!(
            "check the client id and secret, that the OAuth client exists and is enabled, and that it belongs to the region of {host}"
        ),
        Some("unauthorized_client") | Some("unsupported_grant_type") => format!(
            "the OAuth client is not allowed to use the {grant} grant: check its grant type"
        ),
        Some("invalid_grant") if grant == "refresh_token" => {
            "the refresh token was revoked, expired or already used: sign in again to get a new one"
                .to_string()
        }
        Some("invalid_grant") if grant == "authorization_code" => {
            "the sign-in code was refused (used already, expired, issued for another client or redirect URI, or its PKCE verifier does not match): sign in again".to_string()
        }
        Some("invalid_grant") => {
            "the grant was rejected: check the OAuth client's grant type and credentials".into()
        }
        Some("invalid_scope") => "a requested scope is not allowed for this OAuth client".into(),
        _ if status == 404 => format!("no token endpoint at {host}: check the region or token URL"),
        _ => format!(
            "check the client id and secret, that the OAuth client is enabled and allows the {grant} grant, and the region ({host})"
        ),
    };
    Err(FetchError::Fatal(Error::Credentials {
        status,
        code,
        description,
        hint,
    }))
}

/// The Client Credentials grant: a service identity trading its id and secret for a token. What
/// Genesys Cloud integrations use; there is no refresh token, a new token is simply minted.
#[derive(Clone)]
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    client_id: String,
    secret: ClientSecret,
    scope: Option<String>,
}

impl ClientCredentials {
    /// A grant for `client_id` / `secret` at `endpoint`.
    pub fn new(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        let client_id = client_id.into();
        register_basic_credential(&client_id, &secret);
        Self {
            endpoint,
            client_id,
            secret,
            scope: None,
        }
    }

    /// Asks for these space-separated scopes.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint.url().as_str())
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Grant for ClientCredentials {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(s) = &self.scope {
            params.push(("scope", s.as_str()));
        }
        self.endpoint
            .request(&self.client_id, Some(&self.secret), &params, self.name())
            .await
    }

    fn name(&self) -> &'static str {
        "client_credentials"
    }
}

/// Called with each new refresh token, so that it can be persisted before it is needed again.
pub type RotationHook = Arc<dyn Fn(&RefreshToken) + Send + Sync>;

/// The Refresh Token grant (after an Authorization Code login). Genesys Cloud rotates refresh tokens:
/// each response carries a new one that replaces the old, which stops working. The replacement is
/// stored *before* the new access token is handed out.
///
/// With a [`RefreshTokenStore`] ([`with_store`](Self::with_store), e.g. a
/// [`SessionStore`](crate::SessionStore)), every refresh runs under the store's lock: the refresh
/// token is read back from the store (another process may have rotated it), presented, and its
/// replacement saved before the lock is released and the access token returned. So any number of
/// processes signed in as one user never present one refresh token twice, and a crash at any point
/// leaves the store holding a refresh token that works. A replacement that cannot be saved is kept
/// in memory and the refresh fails ([`Error::Store`], retryable): the access token it came with is
/// not used, and the next attempt saves the replacement first.
pub struct RefreshTokenGrant {
    endpoint: TokenEndpoint,
    client_id: String,
    /// `None` for a public client (PKCE, no secret).
    secret: Option<ClientSecret>,
    /// guards the refresh token held, and whether it still has to be saved.
    refresh: tokio::sync::Mutex<Held>,
    on_rotate: Option<RotationHook>,
    store: Option<Arc<dyn RefreshTokenStore>>,
}

/// The refresh token a grant holds.
struct Held {
    token: RefreshToken,
    /// A replacement the store has not taken yet: saved before anything else happens.
    unsaved: bool,
}

impl std::fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("endpoint", &self.endpoint.url().as_str())
            .field("client_id", &self.client_id)
            .field("public", &self.secret.is_none())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenGrant {
    /// A grant that starts from `refresh_token`, for a confidential client.
    pub fn new(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        secret: ClientSecret,
        refresh_token: RefreshToken,
    ) -> Self {
        let client_id = client_id.into();
        register_basic_credential(&client_id, &secret);
        Self::build(endpoint, client_id, Some(secret), refresh_token)
    }

    /// A grant that starts from `refresh_token`, for a public client: it authenticates with its
    /// `client_id` alone (the sign-in used PKCE).
    pub fn public(
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        refresh_token: RefreshToken,
    ) -> Self {
        Self::build(endpoint, client_id.into(), None, refresh_token)
    }

    fn build(
        endpoint: TokenEndpoint,
        client_id: String,
        secret: Option<ClientSecret>,
        refresh_token: RefreshToken,
    ) -> Self {
        Self {
            endpoint,
            client_id,
            secret,
            refresh: tokio::sync::Mutex::new(Held {
                token: refresh_token,
                unsaved: false,
            }),
            on_rotate: None,
            store: None,
        }
    }

    /// Calls `hook` with every new refresh token, once it is held (and saved, with a store).
    pub fn on_rotate(mut self, hook: RotationHook) -> Self {
        self.on_rotate = Some(hook);
        self
    }

    /// Keeps the refresh token in `store`, shared with every other holder: each refresh takes the
    /// store's lock, presents the refresh token stored (not the one this grant last saw), and
    /// saves the replacement before returning.
    pub fn with_store(mut self, store: Arc<dyn RefreshTokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The refresh token currently held.
    pub async fn current_refresh_token(&self) -> RefreshToken {
        self.refresh.lock().await.token.clone()
    }

    /// Makes `held` the token to present: a replacement not yet saved is saved first; otherwise
    /// the one stored now, which another holder may have rotated.
    async fn sync_with_store(
        &self,
        store: &dyn RefreshTokenStore,
        held: &mut Held,
    ) -> Result<(), FetchError> {
        if held.unsaved {
            store
                .save(&held.token)
                .await
                .map_err(|e| store_failure(unsaved(e)))?;
            held.unsaved = false;
            return Ok(());
        }
        match store.load().await.map_err(store_failure)? {
            Some(stored) => {
                if stored != held.token {
                    tracing::debug!("using the refresh token another process rotated");
                    held.token = stored;
                }
                Ok(())
            }
            None => Err(FetchError::Fatal(Error::SignInRequired {
                reason: "the stored sign-in is gone (signed out?)".into(),
            })),
        }
    }

    /// Presents the refresh token held, and keeps (and saves, with a store) its replacement.
    async fn present(&self, held: &mut Held) -> Result<TokenResponse, FetchError> {
        let resp = self
            .endpoint
            .request(
                &self.client_id,
                self.secret.as_ref(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", held.token.expose_secret()),
                ],
                self.name(),
            )
            .await?;
        if let Some(new) = &resp.refresh_token {
            held.token = new.clone();
            if let Some(store) = &self.store {
                // Saved before the lock is released and before the access token is used: the
                // old refresh token no longer works.
                if let Err(e) = store.save(new).await {
                    held.unsaved = true;
                    return Err(store_failure(unsaved(e)));
                }
            }
            if let Some(hook) = &self.on_rotate {
                hook(new);
            }
        }
        Ok(resp)
    }
}

/// A store failure during a refresh: one that may pass (a lock held elsewhere too long, a
/// replacement not saved yet) is retried by the manager like a flaky endpoint; one someone must fix
/// (an unsafe directory) is not.
fn store_failure(e: Error) -> FetchError {
    if e.is_retryable() {
        FetchError::Transient {
            reason: e.to_string(),
            retry_after: None,
        }
    } else {
        FetchError::Fatal(e)
    }
}

/// The error for a rotated refresh token that could not be saved.
fn unsaved(e: Error) -> Error {
    Error::Store {
        detail: format!(
            "the new refresh token could not be saved ({e}); it is kept in memory and saved before the next token is used, but if this process ends first the sign-in is lost"
        ),
        retryable: true,
    }
}

#[async_trait]
impl Grant for RefreshTokenGrant {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let mut held = self.refresh.lock().await;
        let Some(store) = &self.store else {
            return self.present(&mut held).await;
        };
        let lock = store.lock().await.map_err(store_failure)?;
        let result = match self.sync_with_store(store.as_ref(), &mut held).await {
            Ok(()) => self.present(&mut held).await,
            Err(e) => Err(e),
        };
        // Given back (awaited) before the token is handed out, not left to a task: a process that
        // exits next would otherwise make every other holder wait out the lock's lease.
        lock.release().await;
        result
    }

    fn name(&self) -> &'static str {
        "refresh_token"
    }
}

/// A token supplied directly (e.g. `GENESYSCLOUD_ACCESS_TOKEN`). It cannot be refreshed: when it
/// expires or is rejected, requests fail with [`Error::StaticTokenExpired`]. A token that is not a
/// legal header value (a CR or LF, a space, another control or a non-ASCII character) is refused:
/// requests fail with [`Error::Config`].
#[derive(Clone)]
pub struct StaticToken {
    token: AccessToken,
    lifetime: Option<Duration>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl StaticToken {
    /// A static token; its lifetime comes from a JWT `exp` if it has one, otherwise it is assumed
    /// valid until the API rejects it.
    pub fn new(token: AccessToken) -> Self {
        Self {
            token,
            lifetime: None,
        }
    }

    /// Declares how long the token remains valid from now.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.lifetime = Some(d);
        self
    }
}

#[async_trait]
impl Grant for StaticToken {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        Err(FetchError::Fatal(Error::StaticTokenExpired {
            reason: "has expired",
        }))
    }

    fn name(&self) -> &'static str {
        "static"
    }

    fn initial(&self) -> Option<(AccessToken, Option<Duration>)> {
        Some((self.token.clone(), self.lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fatal(r: Result<TokenResponse, FetchError>) -> Error {
        match r {
            Err(FetchError::Fatal(e)) => e,
            other => panic!("expected fatal, got {:?}", other.map(|_| ())),
        }
    }

    fn transient(r: Result<TokenResponse, FetchError>) -> Option<Duration> {
        match r {
            Err(FetchError::Transient { retry_after, .. }) => retry_after,
            other => panic!("expected transient, got {:?}", other.map(|_| ())),
        }
    }

    const H: &str = "login.example";

    #[test]
    fn success_parses_and_tolerates_string_expiry() {
        let ok = classify(
            200,
            br#"{"access_token":"abc","token_type":"bearer","expires_in":86399}"#,
            None,
            None,
            "client_credentials",
            H,
        )
        .unwrap();
        assert_eq!(ok.access_token.expose_secret(), "abc");
        assert_eq!(ok.expires_in, Some(Duration::from_secs(86399)));
        let s = classify(
            200,
            br#"{"access_token":"x","expires_in":"60"}"#,
            None,
            None,
            "g",
            H,
        )
        .unwrap();
        assert_eq!(s.expires_in, Some(Duration::from_secs(60)));
        let none = classify(200, br#"{"access_token":"x"}"#, None, None, "g", H).unwrap();
        assert_eq!(none.expires_in, None);
    }

    #[test]
    fn undecodable_success_never_echoes_the_body() {
        let e = fatal(classify(
            200,
            b"<html>access_token=SECRETTOKEN</html>",
            None,
            None,
            "g",
            H,
        ));
        assert!(matches!(e, Error::TokenDecode { .. }));
        assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
    }

    #[test]
    fn genesys_token_throttling_is_transient() {
        let body = br#"{"error":"invalid_request","description":"rate limit exceeded; try again","error_description":"rate limit exceeded; try again"}"#;
        assert_eq!(transient(classify(400, body, None, None, "g", H)), None);
        let ra = Some(Duration::from_secs(3));
        assert_eq!(transient(classify(400, body, ra, None, "g", H)), ra);
    }

    #[test]
    fn server_errors_and_429_are_transient() {
        for s in [429, 500, 502, 503, 504, 408] {
            transient(classify(s, b"", None, None, "g", H));
        }
    }

    #[test]
    fn bad_credentials_are_fatal_with_a_hint() {
        let e = fatal(classify(
            401,
            br#"{"error":"invalid_client","description":"client not found"}"#,
            None,
            None,
            "client_credentials",
            H,
        ));
        let msg = e.to_string();
        assert!(msg.contains("client id and secret"), "{msg}");
        assert!(msg.contains("invalid_client"), "{msg}");
        assert!(e.is_credentials());
        let other_400 = fatal(classify(
            400,
            br#"{"error":"invalid_request","description":"bad things"}"#,
            None,
            None,
            "g",
            H,
        ));
        assert!(other_400.is_credentials());
        let grant = fatal(classify(
            400,
            br#"{"error":"invalid_grant"}"#,
            None,
            None,
            "refresh_token",
            H,
        ));
        assert!(grant.to_string().contains("sign in again"), "{grant}");
    }

    #[test]
    fn regression_the_error_code_cannot_inject_escapes_lines_or_secrets() {
        crate::register_secret("code-echoed-secret-1");
        let body = "{\"error\":\"temporarily_unavailable \\u001b[31mRED\\nWARN forged line code-echoed-secret-1\"}";
        let reason = match classify(503, body.as_bytes(), None, None, "g", H) {
            Err(FetchError::Transient { reason, .. }) => reason,
            other => panic!("{:?}", other.map(|_| ())),
        };
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert!(!reason.contains("code-echoed-secret-1"), "{reason}");
        assert!(
            reason.starts_with("HTTP 503 temporarily_unavailable \\u{1b}[31mRED\\n"),
            "{reason}"
        );
        let e = fatal(classify(401, body.as_bytes(), None, None, "g", H));
        let Error::Credentials {
            code: Some(code), ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(
            !code.chars().any(char::is_control) && !code.contains("echoed"),
            "{code:?}"
        );
        assert!(!e.to_string().chars().any(char::is_control), "{e}");
    }

    #[test]
    fn redirects_are_fatal_config_errors() {
        let e = fatal(classify(
            302,
            b"",
            None,
            Some("https://evil.example/".into()),
            "g",
            H,
        ));
        assert!(e.to_string().contains("redirect"), "{e}");
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(TokenEndpoint::new("http://127.0.0.1:8080/oauth/token").is_ok());
        assert!(TokenEndpoint::new("http://localhost/oauth/token").is_ok());
        assert!(TokenEndpoint::new("http://[::1]:9/oauth/token").is_ok());
        assert!(TokenEndpoint::new("https://login.mypurecloud.com/oauth/token").is_ok());
        assert!(TokenEndpoint::new("http://login.mypurecloud.com/oauth/token").is_err());
        assert!(TokenEndpoint::allow_insecure_http("http://login.example/oauth/token").is_ok());
        assert!(TokenEndpoint::new("ftp://x/y").is_err());
        assert!(TokenEndpoint::new("not a url").is_err());
    }

    #[test]
    fn grants_debug_without_secrets() {
        let ep = TokenEndpoint::new("http://127.0.0.1:1/oauth/token").unwrap();
        let cc = ClientCredentials::new(ep.clone(), "id", ClientSecret::new("s3cr3t-value"));
        let rt = RefreshTokenGrant::new(
            ep,
            "id",
            ClientSecret::new("s3cr3t-value"),
            RefreshToken::new("rt-value-123"),
        );
        let st = StaticToken::new(AccessToken::new("static-tok-999"));
        let shown = format!("{cc:?} {rt:?} {st:?}");
        for s in ["s3cr3t-value", "rt-value-123", "static-tok-999"] {
            assert!(!shown.contains(s), "{shown}");
        }
    }

    #[test]
    fn odd_expires_in_is_refused_or_taken_as_given() {
        let parse = |v: &str| {
            let body = format!(r#"{{"access_token":"tok-odd-1","expires_in":{v}}}"#);
            classify(200, body.as_bytes(), None, None, "g", H).map(|t| t.expires_in)
        };
        assert_eq!(parse("3600").unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(parse("\"3600\"").unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(parse("null").unwrap(), None);
        assert_eq!(parse("1e-9").unwrap(), Some(Duration::from_nanos(1)));
        assert_eq!(parse("1e300").unwrap(), Some(Duration::MAX));
        for (v, says) in [
            ("0", "expires_in is 0"),
            ("-1", "expires_in is -1"),
            ("\"soon\"", "a string, not a number"),
            ("\"NaN\"", "not a number"),
            ("\"inf\"", "infinite"),
            ("true", "a boolean"),
            ("{}", "an object"),
        ] {
            match parse(v) {
                Err(FetchError::Fatal(Error::TokenDecode { detail })) => {
                    assert!(detail.contains(says), "{v}: {detail}")
                }
                other => panic!("{v}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn only_bearer_tokens_are_accepted() {
        let with_type = |t: &str| {
            let body = format!(r#"{{"access_token":"tok-type-1","token_type":"{t}"}}"#);
            classify(200, body.as_bytes(), None, None, "g", H)
        };
        assert!(with_type("bearer").is_ok());
        assert!(with_type("Bearer").is_ok());
        let e = fatal(with_type("mac"));
        assert!(e.to_string().contains("\"mac\", not \"bearer\""), "{e}");
        assert!(fatal(with_type("DPoP")).to_string().contains("DPoP"));
    }

    #[test]
    fn a_token_that_would_inject_headers_is_refused_without_echoing_it() {
        for token in [
            r"tok-1\r\nX-Injected: yes",
            r"tok-1\nX-Injected: yes",
            r"tok-1\u0000X-Injected",
            "tok-1 X-Injected",
            "tok-1\u{e9}X-Injected",
        ] {
            let body = format!(r#"{{"access_token":"{token}","expires_in":60}}"#);
            let e = fatal(classify(200, body.as_bytes(), None, None, "g", H));
            assert!(matches!(e, Error::TokenDecode { .. }), "{e}");
            assert!(
                e.to_string().contains("not allowed in an HTTP header"),
                "{e}"
            );
            assert!(!e.to_string().contains("Injected"), "{e}");
        }
    }

    #[test]
    fn an_oversized_answer_is_a_decode_error_unless_its_status_says_retry() {
        let e = fatal(Err(too_large(200, None)));
        assert!(e.to_string().contains("more than 64 KiB"), "{e}");
        assert_eq!(
            transient(Err(too_large(503, Some(Duration::from_secs(2))))),
            Some(Duration::from_secs(2))
        );
    }

    /// A chunked answer (no `Content-Length`) of `chunks` × 8 KiB; counts the chunks produced.
    fn chunked(chunks: usize, produced: Arc<std::sync::atomic::AtomicUsize>) -> reqwest::Response {
        use futures::StreamExt as _;
        use http_body::Frame;
        use http_body_util::StreamBody;
        let stream = futures::stream::iter(0..chunks).map(move |_| {
            produced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Frame::data(bytes::Bytes::from(vec![b'x'; 8192])))
        });
        reqwest::Response::from(http::Response::new(reqwest::Body::wrap(StreamBody::new(
            stream,
        ))))
    }

    #[tokio::test]
    async fn token_answers_are_read_with_a_cap_not_buffered_whole() {
        let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // 8 MiB, streamed: reading stops just past 64 KiB.
        let body = read_capped(chunked(1024, Arc::clone(&produced)), MAX_TOKEN_RESPONSE)
            .await
            .unwrap();
        assert!(body.is_none());
        let read = produced.load(std::sync::atomic::Ordering::SeqCst);
        assert!(read <= 9, "{read} chunks of 8 KiB read");
        // Exactly 64 KiB is fine.
        let body = read_capped(chunked(8, Arc::default()), MAX_TOKEN_RESPONSE)
            .await
            .unwrap();
        assert_eq!(body.map(|b| b.len()), Some(MAX_TOKEN_RESPONSE));
    }

    #[test]
    fn the_form_body_and_basic_credential_are_encoded_as_before() {
        let secret = ClientSecret::new("s3cr3t/+ &=value");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_secret", secret.expose_secret()),
        ];
        let body = form_body(&form);
        assert_eq!(
            body.as_bytes().unwrap(),
            b"grant_type=client_credentials&client_secret=s3cr3t%2F%2B+%26%3Dvalue"
        );
        let v = basic_header("my-client", &secret).unwrap();
        assert!(v.is_sensitive());
        let expected =
            base64::engine::general_purpose::STANDARD.encode("my-client:s3cr3t/+ &=value");
        assert_eq!(v.to_str().unwrap(), format!("Basic {expected}"));
    }

    mod properties {
        //! The token-response parser and the JWT `exp` reader on hostile input: they never panic,
        //! and what they accept is sane.
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::{Value, json};

        /// Any JSON value, a few levels deep.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>()
                    .prop_filter("JSON numbers are finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                ".{0,40}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(".{0,12}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A field that is missing, or holds a plausible or an odd value.
        fn field(plausible: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                2 => Just(None),
                4 => plausible.prop_map(Some),
                2 => any_json().prop_map(Some),
            ]
        }

        fn expires_in() -> BoxedStrategy<Value> {
            prop_oneof![
                (1u64..200_000).prop_map(|n| json!(n)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                Just(json!(0)),
                Just(json!(-1)),
                Just(json!(1e-9)),
                Just(json!(1e300)),
                Just(json!("3600")),
                Just(json!("NaN")),
                Just(json!("-inf")),
                Just(json!("soon")),
            ]
            .boxed()
        }

        /// Short tokens only: every token accepted is registered with the process-wide redaction
        /// registry, which rebuilds its matcher over all of them (seconds per KiB-long token in a
        /// debug build). Long tokens are covered by `MAX_TOKEN_LEN`'s own test, the 64 KiB cap on
        /// whole answers by `token_answers_are_read_with_a_cap_not_buffered_whole`.
        fn access_token() -> BoxedStrategy<Value> {
            prop_oneof![
                "[A-Za-z0-9._~+/-]{1,64}=*".prop_map(Value::String),
                // Anything at all, control characters and non-ASCII included.
                ".{0,64}".prop_map(Value::String),
            ]
            .boxed()
        }

        fn token_type() -> BoxedStrategy<Value> {
            prop_oneof![
                Just(json!("bearer")),
                Just(json!("Bearer")),
                Just(json!("mac")),
                Just(json!("DPoP")),
                ".{0,10}".prop_map(Value::String),
            ]
            .boxed()
        }

        proptest! {
            // Few cases: a debug build on a busy machine must stay well within the suite's budget.
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

            #[test]
            fn classify_never_panics_on_any_bytes(
                status in 100u16..600,
                body in prop::collection::vec(any::<u8>(), 0..512),
            ) {
                let _ = classify(status, &body, None, None, "g", "h");
            }

            #[test]
            fn classify_is_sane_on_token_shaped_answers(
                access in field(access_token()),
                expires in field(expires_in()),
                ttype in field(token_type()),
                refresh in field(".{0,20}".prop_map(Value::String).boxed()),
                extra in any_json(),
            ) {
                let mut obj = serde_json::Map::new();
                for (k, v) in [("access_token", &access), ("expires_in", &expires),
                               ("token_type", &ttype), ("refresh_token", &refresh)] {
                    if let Some(v) = v { obj.insert(k.into(), v.clone()); }
                }
                obj.insert("extra".into(), extra);
                let body = serde_json::to_vec(&Value::Object(obj)).unwrap();
                match classify(200, &body, None, None, "g", "h") {
                    Ok(t) => {
                        let a = t.access_token.expose_secret();
                        prop_assert!(!a.is_empty());
                        prop_assert!(a.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                        prop_assert_eq!(Some(&Value::String(a.to_string())), access.as_ref());
                        prop_assert!(t.expires_in.is_none_or(|d| d > Duration::ZERO));
                        if t.expires_in.is_none() {
                            prop_assert!(matches!(expires, None | Some(Value::Null)));
                        }
                        prop_assert!(t.token_type.as_deref().is_none_or(|ty| ty.eq_ignore_ascii_case("bearer")));
                    }
                    Err(FetchError::Fatal(Error::TokenDecode { detail })) => {
                        // Never the token itself (tokens long enough to be told from words).
                        if let Some(Value::String(a)) = &access && a.len() >= 8 {
                            prop_assert!(!detail.contains(a.as_str()), "{}", detail);
                        }
                        prop_assert!(detail.len() < 400, "{}", detail);
                    }
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }

            #[test]
            fn error_statuses_never_yield_a_token(
                status in 300u16..600,
                body in any_json(),
            ) {
                let body = serde_json::to_vec(&body).unwrap();
                match classify(status, &body, None, None, "g", "h") {
                    Ok(_) => prop_assert!(false, "a token from HTTP {}", status),
                    Err(FetchError::Transient { .. }) => prop_assert!(
                        status == 429 || status == 408 || status >= 500 || status == 400
                    ),
                    Err(_) => prop_assert!(status != 429 && status < 500),
                }
            }

            #[test]
            fn the_jwt_reader_never_panics(token in ".{0,200}") {
                let _ = crate::token::jwt_expiry(&token);
            }

            #[test]
            fn the_jwt_reader_takes_only_a_sane_exp(
                exp in prop_oneof![any_json(), any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f))],
                extra in any_json(),
                sig in "[A-Za-z0-9_-]{0,20}",
            ) {
                let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let claims = json!({"exp": exp, "x": extra});
                let token = format!("{}.{}.{sig}", e.encode(r#"{"alg":"none"}"#), e.encode(claims.to_string()));
                match crate::token::jwt_expiry(&token) {
                    Some(at) => {
                        let secs = exp.as_f64().expect("a number was read");
                        prop_assert!(secs >= 0.0);
                        let got = at.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
                        prop_assert!((got - secs.min(1e11)).abs() < 1e-3 * secs.max(1.0));
                    }
                    None => prop_assert!(exp.as_f64().is_none_or(|s| s < 0.0)),
                }
            }
        }
    }
}
