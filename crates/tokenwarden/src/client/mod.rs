//! The authenticated HTTP client: every API request goes through it, carries a valid token, heals
//! a 401 once, waits out 429s, retries 5xx and transport failures within a budget, never replays a
//! request when replaying is unsafe, and never sends the token off the API's origin.

pub(crate) mod policy;
mod ratelimit;
mod request;

pub use ratelimit::RateLimit;
pub use request::RequestBuilder;

use crate::clock::{Clock, Jitter, RandomJitter, TokioClock};
use crate::error::{Error, Result, excerpt};
use crate::manager::TokenManager;
use crate::retry::Backoff;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use ratelimit::RateLimiter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout of one attempt (connect, send, and read the whole answer). Analytics queries
/// over long intervals can take tens of seconds, so it is generous.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on redirects followed by one request.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// An HTTP client for one API (one origin) that authenticates every request with a
/// [`TokenManager`].
///
/// What it does for each request sent with [`RequestBuilder::send`]:
/// - **Token:** every attempt carries `Authorization: Bearer …` from the manager, marked sensitive.
/// - **401:** the token that was refused is reported ([`TokenManager::rejected`]) and the request
///   is sent once more with the new token, whatever its method: Genesys authenticates before it
///   acts, so a 401 proves nothing happened. A 401 again, with that fresh token, is
///   [`Error::Unauthorized`] (the client's role or scopes are the problem), never a loop.
/// - **403:** [`Error::Forbidden`] with Genesys's message and code; never a refresh.
/// - **429:** waits `Retry-After` (plus a little jitter, capped by
///   [`Backoff::max_retry_after`]), or backs off exponentially without it.
/// - **500, 502, 503, 504, timeouts, resets:** exponential backoff with jitter, within the
///   [`Backoff`] budget (attempts and elapsed time).
/// - **Replay safety:** `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` are sent again freely; `POST` and
///   `PATCH` only when marked [`replay_safe`](RequestBuilder::replay_safe), or when the failure
///   proves the server did not act (401, 429, or a failed connect). Otherwise a 5xx is returned as
///   it is and a timeout as [`Error::Transport`].
/// - **Redirects** are followed by the client itself (at most [`DEFAULT_MAX_REDIRECTS`]), and the
///   token is only ever sent to the API base's own scheme, host and port.
/// - **Rate limit:** an optional client-side [`RateLimit`] shared by every clone and task.
/// - Other answers (2xx, 404 and other 4xx) are returned as an [`ApiResponse`].
///
/// `ApiClient` is cheap to clone; clones share the connection pool, the rate limit and the
/// counters.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, Region, TokenEndpoint, TokenManager};
///
/// let region = Region::parse("eu-west-1")?;
/// let endpoint = TokenEndpoint::new(&region.token_url())?;
/// let tokens = TokenManager::builder(ClientCredentials::new(endpoint, "id", ClientSecret::new("secret"))).build();
/// let client = ApiClient::builder(&region.api_base(), tokens)
///     .rate_limit(tokenwarden::RateLimit::per_minute(300))
///     .build()?;
/// let me = client.get_json("/api/v2/tokens/me").await?;
/// println!("{}", me["organization"]["name"]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApiClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("api_base", &self.inner.base.as_str())
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) base: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: TokenManager,
    pub(crate) backoff: Backoff,
    pub(crate) request_timeout: Duration,
    pub(crate) max_redirects: u32,
    pub(crate) limiter: Option<RateLimiter>,
    /// Pause requests to the API until this instant (from `inin-ratelimit-*` headers), if set.
    pub(crate) honor_rate_limit_headers: bool,
    /// No request goes to the API before `origin` + this many nanoseconds (`inin-ratelimit-*`
    /// pause; 0: none). An atomic, because every request reads it.
    pub(crate) paused_until_nanos: AtomicU64,
    /// The instant `paused_until_nanos` counts from.
    pub(crate) origin: crate::clock::Instant,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) jitter: Arc<dyn Jitter>,
    pub(crate) counters: Counters,
}

/// Configures an [`ApiClient`].
pub struct ApiClientBuilder {
    base: String,
    tokens: TokenManager,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff: Backoff,
    rate_limit: Option<RateLimit>,
    allow_insecure_http: bool,
    honor_rate_limit_headers: bool,
    user_agent: String,
    max_redirects: u32,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
}

impl std::fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClientBuilder {
    /// Timeout for establishing a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Timeout of one attempt, answer included (default [`DEFAULT_REQUEST_TIMEOUT`]); a request
    /// can override it with [`RequestBuilder::timeout`].
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The retry budget and delays for 429, 5xx and transport failures (default
    /// [`Backoff::default`]: 8 attempts within 60 s, `Retry-After` capped at 60 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Paces all requests of this client (and its clones) to `limit`. Default: none.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Accepts a plain `http://` API base on a host other than loopback. The token would travel in
    /// clear text: only for test networks.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Whether to pause before a 429 when Genesys's `inin-ratelimit-*` headers say the allowance is
    /// used up, until the window resets (default true; the headers are not officially documented,
    /// so a reset longer than [`Backoff::max_retry_after`] is ignored).
    pub fn honor_rate_limit_headers(mut self, honor: bool) -> Self {
        self.honor_rate_limit_headers = honor;
        self
    }

    /// The `User-Agent` header (default `tokenwarden/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Most redirects followed by one request (default [`DEFAULT_MAX_REDIRECTS`]).
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Reads time from `clock` (default: tokio's clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Draws retry jitter from `jitter` (default random; tests pass `FixedJitter(0.0)`).
    pub fn jitter(mut self, jitter: impl Jitter) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Config`] if the API base is not a URL, uses plain `http://` to a non-loopback host
    /// without [`allow_insecure_http`](Self::allow_insecure_http), or the HTTP client cannot be
    /// built.
    pub fn build(self) -> Result<ApiClient> {
        let base = Url::parse(&self.base)
            .map_err(|e| Error::Config(format!("API base {:?} is not a URL: {e}", self.base)))?;
        crate::grant::check_scheme(&base, self.allow_insecure_http, "API base")?;
        if base.host_str().is_none() {
            return Err(Error::Config(format!("API base {base} has no host")));
        }
        let http = reqwest::Client::builder()
            // Redirects are followed by the send loop, which decides where the token may go.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(ApiClient {
            inner: Arc::new(Inner {
                base,
                http,
                tokens: self.tokens,
                backoff: self.backoff,
                request_timeout: self.request_timeout,
                max_redirects: self.max_redirects,
                limiter: self.rate_limit.map(RateLimiter::new),
                honor_rate_limit_headers: self.honor_rate_limit_headers,
                paused_until_nanos: AtomicU64::new(0),
                origin: self.clock.now(),
                clock: self.clock,
                jitter: self.jitter,
                counters: Counters::default(),
            }),
        })
    }
}

impl ApiClient {
    /// Starts configuring a client for the API at `api_base` (e.g. `https://api.mypurecloud.ie`),
    /// authenticated by `tokens`.
    pub fn builder(api_base: &str, tokens: TokenManager) -> ApiClientBuilder {
        ApiClientBuilder {
            base: api_base.to_string(),
            tokens,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            backoff: Backoff::default(),
            rate_limit: None,
            allow_insecure_http: false,
            honor_rate_limit_headers: true,
            user_agent: concat!("tokenwarden/", env!("CARGO_PKG_VERSION")).to_string(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            clock: Arc::new(TokioClock::new()),
            jitter: Arc::new(RandomJitter),
        }
    }

    /// A request to `path_or_url`: a path such as `/api/v2/users?pageSize=25` (or a Genesys
    /// `nextUri`), resolved against the API base, or an absolute URL (which only gets the token if
    /// it is on the API base's origin).
    ///
    /// ```no_run
    /// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
    /// use http::Method;
    /// let resp = client
    ///     .request(Method::POST, "/api/v2/analytics/conversations/details/query")
    ///     .json(&serde_json::json!({"interval": "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z"}))
    ///     .replay_safe() // a read: may be sent again after a 5xx or a timeout
    ///     .send()
    ///     .await?
    ///     .error_for_status()?;
    /// let page: serde_json::Value = resp.json()?;
    /// # let _ = page; Ok(()) }
    /// ```
    pub fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, path_or_url)
    }

    /// A `GET` request to `path_or_url` (see [`request`](Self::request)).
    pub fn get(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::GET, path_or_url)
    }

    /// `GET path_or_url`, expecting a 2xx JSON answer.
    ///
    /// ```no_run
    /// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
    /// let user = client.get_json("/api/v2/users/me").await?;
    /// # let _ = user; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`RequestBuilder::send`], plus [`Error::Status`] for a non-2xx answer and
    /// [`Error::Decode`] for a body that is not JSON.
    pub async fn get_json(&self, path_or_url: &str) -> Result<serde_json::Value> {
        self.get(path_or_url)
            .send()
            .await?
            .error_for_status()?
            .json()
    }

    /// The token manager behind this client.
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// The API base URL.
    pub fn api_base(&self) -> &Url {
        &self.inner.base
    }

    /// A snapshot of the client's counters.
    pub fn metrics(&self) -> ClientMetrics {
        self.inner.counters.snapshot()
    }

    /// Resolves a path (or `nextUri`) against the API base; absolute URLs are kept as they are.
    pub(crate) fn resolve(&self, path_or_url: &str) -> Result<Url> {
        resolve(&self.inner.base, path_or_url)
    }
}

/// `path_or_url` against `base`: absolute `http(s)` URLs as they are, anything else as a reference
/// relative to the base (Genesys paths start with `/api/v2/`).
pub(crate) fn resolve(base: &Url, path_or_url: &str) -> Result<Url> {
    match Url::parse(path_or_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(u) => Err(Error::Config(format!(
            "unsupported URL scheme {:?} in {}",
            u.scheme(),
            excerpt(path_or_url, 200)
        ))),
        Err(_) => base.join(path_or_url).map_err(|e| {
            Error::Config(format!(
                "{} is not a path or URL: {e}",
                excerpt(path_or_url, 200)
            ))
        }),
    }
}

/// An API answer, read in full.
#[derive(Clone)]
pub struct ApiResponse {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl std::fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse")
            .field("method", &self.method)
            .field("path", &self.url.path())
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body, consuming the response.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body decoded as JSON into `T`.
    ///
    /// # Errors
    /// [`Error::Decode`] with the parser's complaint and an excerpt of the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            what: format!(
                "the answer to {} {} (HTTP {})",
                self.method,
                self.url.path(),
                self.status.as_u16()
            ),
            detail: format!(
                "{e}; body: {}",
                excerpt(&String::from_utf8_lossy(&self.body), 200)
            ),
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response itself if its status is 2xx.
    ///
    /// # Errors
    /// [`Error::Status`] with the method, path, status and an excerpt of the body otherwise.
    pub fn error_for_status(self) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(Error::Status {
            method: self.method.to_string(),
            path: self.url.path().to_string(),
            status: self.status.as_u16(),
            body: excerpt(&String::from_utf8_lossy(&self.body), 300),
        })
    }
}

/// Live counters of an [`ApiClient`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) unauthorized_healed: AtomicU64,
    pub(crate) rate_limited_waits: AtomicU64,
    pub(crate) server_errors_retried: AtomicU64,
    pub(crate) transport_retries: AtomicU64,
    pub(crate) redirects_followed: AtomicU64,
    pub(crate) throttle_waits: AtomicU64,
    pub(crate) rate_limit_pauses: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ClientMetrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientMetrics {
            requests: g(&self.requests),
            attempts: g(&self.attempts),
            retries: g(&self.retries),
            unauthorized_healed: g(&self.unauthorized_healed),
            rate_limited_waits: g(&self.rate_limited_waits),
            server_errors_retried: g(&self.server_errors_retried),
            transport_retries: g(&self.transport_retries),
            redirects_followed: g(&self.redirects_followed),
            throttle_waits: g(&self.throttle_waits),
            rate_limit_pauses: g(&self.rate_limit_pauses),
            failures: g(&self.failures),
        }
    }
}

/// A snapshot of an [`ApiClient`]'s counters (shared by its clones). Relaxed atomics: each value is
/// exact, a snapshot is not one instant across fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClientMetrics {
    /// Requests sent by callers ([`RequestBuilder::send`] calls).
    pub requests: u64,
    /// HTTP exchanges, counting every retry and redirect hop.
    pub attempts: u64,
    /// Attempts that repeated a failed one (heals included, redirects not).
    pub retries: u64,
    /// 401s healed by a new token.
    pub unauthorized_healed: u64,
    /// 429s waited out.
    pub rate_limited_waits: u64,
    /// 5xx answers retried.
    pub server_errors_retried: u64,
    /// Transport failures (connect errors, timeouts, resets) retried.
    pub transport_retries: u64,
    /// Redirects followed.
    pub redirects_followed: u64,
    /// Attempts that waited for the client-side rate limit.
    pub throttle_waits: u64,
    /// Pauses taken because `inin-ratelimit-*` headers said the API's allowance was used up.
    pub rate_limit_pauses: u64,
    /// Requests that ended in an error.
    pub failures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_and_next_uris() {
        let base = Url::parse("https://api.mypurecloud.ie").unwrap();
        assert_eq!(
            resolve(&base, "/api/v2/users?pageSize=25&pageNumber=2")
                .unwrap()
                .as_str(),
            "https://api.mypurecloud.ie/api/v2/users?pageSize=25&pageNumber=2"
        );
        assert_eq!(
            resolve(&base, "https://other.example/x").unwrap().as_str(),
            "https://other.example/x"
        );
        assert!(resolve(&base, "ftp://x/y").is_err());
        let local = Url::parse("http://127.0.0.1:4000/").unwrap();
        assert_eq!(
            resolve(&local, "/api/v2/users").unwrap().as_str(),
            "http://127.0.0.1:4000/api/v2/users"
        );
    }

    fn resp(status: u16, body: &'static str) -> ApiResponse {
        ApiResponse {
            method: Method::GET,
            url: Url::parse("https://api.example/api/v2/users?secret=no").unwrap(),
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn response_helpers() {
        let ok = resp(200, r#"{"a":1}"#);
        let v: serde_json::Value = ok.json().unwrap();
        assert_eq!(v["a"], 1);
        assert!(ok.error_for_status().is_ok());
        let e = resp(404, r#"{"message":"nope"}"#)
            .error_for_status()
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("404") && msg.contains("/api/v2/users") && msg.contains("nope"));
        assert!(
            !msg.contains("secret=no"),
            "no query strings in errors: {msg}"
        );
        let e = resp(200, "not json")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");
    }

    #[test]
    fn rejects_insecure_bases() {
        let tokens =
            TokenManager::builder(crate::StaticToken::new(crate::AccessToken::new("t"))).build();
        assert!(
            ApiClient::builder("http://api.example.com", tokens.clone())
                .build()
                .is_err()
        );
        assert!(
            ApiClient::builder("http://api.example.com", tokens.clone())
                .allow_insecure_http(true)
                .build()
                .is_ok()
        );
        assert!(
            ApiClient::builder("http://127.0.0.1:1234", tokens.clone())
                .build()
                .is_ok()
        );
        assert!(ApiClient::builder("not a url", tokens).build().is_err());
    }
}
