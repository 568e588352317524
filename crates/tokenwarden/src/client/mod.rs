//! The authenticated HTTP client: every API request goes through it, carries a valid token, heals
//! a 401 once, waits out 429s, retries 5xx and transport failures within a budget, never replays a
//! request when replaying is unsafe, and never sends the token off the API's origin.

mod adaptive;
mod forward;
pub(crate) mod pacer;
pub(crate) mod policy;
mod pool;
mod request;
pub(crate) mod send;

pub use crate::rate::{RateLimit, SharedBudget};
pub use crate::transport::{ApiBase, IntoApiBase, ProxyConfig};
pub use forward::{ForwardRequest, ForwardResponse};
pub use request::RequestBuilder;

use crate::clock::{Instant, Jitter, RandomJitter};
use crate::error::{Error, Result, body_excerpt, excerpt, shown_path};
use crate::manager::TokenManager;
use crate::retry::Backoff;
use ::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use pacer::Pacer;
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
/// Default limit on the size of an answer's body: 64 MiB.
///
/// The largest Genesys answers (a page of 500 users with every expansion, a page of analytics job
/// results) are a few MiB, so no real answer comes near it, while a broken or hostile server
/// cannot make the client buffer without end: the body is read as it arrives and refused the
/// moment it passes the limit (at once when `Content-Length` announces more). Each request in
/// flight holds at most this much, so a batch at concurrency N peaks at N × the limit in the worst
/// case; lower it with [`ApiClientBuilder::max_response_bytes`] for high concurrency on a small
/// machine.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;

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
/// - **Redirects** within the same origin are followed by the client itself (at most
///   [`DEFAULT_MAX_REDIRECTS`]). A redirect to another origin is [`Error::Redirect`] naming it,
///   unless [`follow_redirects_across_origins`](ApiClientBuilder::follow_redirects_across_origins)
///   allows it; then neither the token nor any header given with [`RequestBuilder::header`]
///   crosses, only the client's own (`Accept`, and `Content-Type` with a kept JSON body). The
///   token is only ever sent to the API base's own scheme, host and port.
/// - **Rate limits:** the client learns the rate the API sustains from its 429s and
///   `inin-ratelimit-*` headers and paces every task to it ([`adaptive_rate`](ApiClientBuilder::adaptive_rate),
///   on by default), under an optional fixed [`RateLimit`].
/// - **Bounded answers:** a body larger than [`DEFAULT_MAX_RESPONSE_BYTES`] (or
///   [`max_response_bytes`](ApiClientBuilder::max_response_bytes)) is [`Error::ResponseTooLarge`].
/// - **Proxies:** as [`ProxyConfig::from_env`] says (loopback never through a proxy, plain `http`
///   through one refused).
/// - Other answers (2xx, 404 and other 4xx) are returned as an [`ApiResponse`].
///
/// `ApiClient` is cheap to clone; clones share the connection pool, the pacing and the counters.
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
            .field("api_base", &self.inner.core.origin.as_str())
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// The API base, token, budget, pacing and counters: what the send loop works with.
    pub(crate) core: send::Core,
    pub(crate) http: reqwest::Client,
    pub(crate) request_timeout: Duration,
    pub(crate) max_redirects: u32,
    pub(crate) follow_cross_origin: bool,
    pub(crate) max_response_bytes: u64,
    pub(crate) proxies: ProxyConfig,
}

/// Configures an [`ApiClient`].
pub struct ApiClientBuilder {
    /// The API base, or why the one given is not one (reported by `build`).
    base: Result<ApiBase, Error>,
    tokens: TokenManager,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff: Backoff,
    rate_limit: Option<RateLimit>,
    adaptive_rate: bool,
    allow_insecure_http: bool,
    honor_rate_limit_headers: bool,
    user_agent: String,
    max_redirects: u32,
    follow_cross_origin: bool,
    max_response_bytes: u64,
    proxies: Option<ProxyConfig>,
    jitter: Arc<dyn Jitter>,
    budget: Option<Arc<dyn SharedBudget>>,
    more_tokens: Vec<(TokenManager, Option<Arc<dyn SharedBudget>>)>,
    recorder: Option<crate::observe::Recorder>,
}

impl std::fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("base", &self.base.as_ref().map(ApiBase::as_str))
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

    /// Paces all requests of this client (and its clones) to at most `limit`. Default: none.
    /// Combined with [`adaptive_rate`](Self::adaptive_rate): the slower of the two wins.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Whether the client learns the rate the API sustains and paces every task and clone to it
    /// (default **true**).
    ///
    /// Until the API answers a 429 or sends `inin-ratelimit-*` headers nothing is paced (a request
    /// pays one atomic load). After a 429 the rate is cut to what the server let through (at most
    /// to 90%), and a second 429 in the same window holds every request until its `Retry-After`;
    /// the rate then grows by about 1% a second while requests are waiting for it. With the
    /// headers the rate stays just under the announced allowance. Measured (docs/BENCHMARKS.md):
    /// 16 workers against a limit of 200 requests/s the server does not announce get about 7% of
    /// 429s (and requests failing after 8 of them in a row) without it, well under 1% with it, at
    /// over 90% of the limit.
    ///
    /// On by default because Genesys limits each token, and every worker of a job shares the
    /// token: without it, every worker runs into the exhausted window on its own. Turn it off
    /// when several clients share one token and a fixed [`rate_limit`](Self::rate_limit) split
    /// between them is wanted instead, or when a 429 from one endpoint's own limit should not slow
    /// down the requests to others.
    pub fn adaptive_rate(mut self, adaptive: bool) -> Self {
        self.adaptive_rate = adaptive;
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

    /// Whether a redirect to another origin (scheme, host or port) is followed (default false:
    /// [`Error::Redirect`] naming the target's origin). When followed, the request carries
    /// neither the token nor any header given with [`RequestBuilder::header`] to the other origin,
    /// only the client's own headers; a `307`/`308` keeps its body.
    pub fn follow_redirects_across_origins(mut self, follow: bool) -> Self {
        self.follow_cross_origin = follow;
        self
    }

    /// The largest answer body accepted, in bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a
    /// larger one is [`Error::ResponseTooLarge`], not retried.
    pub fn max_response_bytes(mut self, max: u64) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// The proxy settings (default [`ProxyConfig::from_env`], read when the client is built).
    pub fn proxies(mut self, proxies: ProxyConfig) -> Self {
        self.proxies = Some(proxies);
        self
    }

    /// Draws retry jitter from `jitter` (default random; tests pass `FixedJitter(0.0)`).
    pub fn jitter(mut self, jitter: impl Jitter) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// Paces the requests that carry the (first) token in `budget`, shared with every other
    /// process that uses it (a fleet sharing the token through Redis: see
    /// [`RedisStore::rate_budget`](crate::store::RedisStore::rate_budget)), instead of in this client's
    /// memory: the fixed [`rate_limit`](Self::rate_limit) and the learned rate then hold for the
    /// whole fleet together. While the budget cannot be reached, the client paces on its own.
    pub fn shared_budget(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Adds a token to the client's **token pool**: requests are spread round-robin over the
    /// tokens that are ready, each token with its own pacing (its own rate budget, in `budget`
    /// when given, else in memory), to go past one token's rate limit. A token that is not ready
    /// is fetched in the background while the others serve; give the pool's managers one
    /// [`MintPacing`](crate::manager::MintPacing) so that their tokens are minted one at a time.
    pub fn add_token(
        mut self,
        tokens: TokenManager,
        budget: Option<Arc<dyn SharedBudget>>,
    ) -> Self {
        self.more_tokens.push((tokens, budget));
        self
    }

    /// Records every exchange, and the token events of this client's managers, in `recorder`
    /// (default: a recorder of its own, see [`ApiClient::recorder`]). A manager given a recorder
    /// of its own ([`TokenManagerBuilder::recorder`](crate::TokenManagerBuilder::recorder)) keeps
    /// it.
    pub fn recorder(mut self, recorder: crate::observe::Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Config`] if the API base is not a URL, uses plain `http://` to a non-loopback host
    /// without [`allow_insecure_http`](Self::allow_insecure_http), would go through a proxy over
    /// plain `http://`, or the HTTP client cannot be built (e.g. a proxy setting is not a URL).
    pub fn build(self) -> Result<ApiClient> {
        let base = self.base?;
        base.check_secure(self.allow_insecure_http)?;
        let base = base.into_url();
        let proxies = self.proxies.unwrap_or_else(ProxyConfig::from_env);
        proxies.check(&base)?;
        // Redirects are followed by the send loop, which decides where the token may go.
        let http = crate::transport::http::client(&crate::transport::http::HttpOptions {
            connect_timeout: self.connect_timeout,
            timeout: self.request_timeout,
            user_agent: &self.user_agent,
            proxies: &proxies,
        })?;
        let pacer = |budget: Option<Arc<dyn SharedBudget>>| {
            Arc::new(
                Pacer::new(
                    self.rate_limit,
                    self.adaptive_rate,
                    self.honor_rate_limit_headers,
                    Instant::now(),
                )
                .with_shared(budget),
            )
        };
        let first = pacer(self.budget.clone());
        let pool = (!self.more_tokens.is_empty()).then(|| {
            let mut slots = vec![pool::Slot {
                tokens: self.tokens.clone(),
                pacer: Arc::clone(&first),
            }];
            for (tokens, budget) in self.more_tokens {
                slots.push(pool::Slot {
                    tokens,
                    pacer: pacer(budget),
                });
            }
            Arc::new(pool::Pool::new(slots))
        });
        let recorder = self.recorder.unwrap_or_default();
        recorder.add_rate_source(Arc::clone(&first) as Arc<dyn crate::observe::RateSource>);
        self.tokens.record_into(&recorder);
        if let Some(pool) = &pool {
            for slot in pool.slots.iter().skip(1) {
                recorder.add_rate_source(Arc::clone(&slot.pacer) as Arc<dyn crate::observe::RateSource>);
                slot.tokens.record_into(&recorder);
            }
        }
        Ok(ApiClient {
            inner: Arc::new(Inner {
                core: send::Core {
                    origin: base,
                    tokens: self.tokens,
                    backoff: self.backoff,
                    jitter: self.jitter,
                    pacer: first,
                    counters: Arc::default(),
                    pool,
                    recorder,
                },
                http,
                request_timeout: self.request_timeout,
                max_redirects: self.max_redirects,
                follow_cross_origin: self.follow_cross_origin,
                max_response_bytes: self.max_response_bytes,
                proxies,
            }),
        })
    }
}

impl ApiClient {
    /// Starts configuring a client for the API at `api_base` (e.g. `https://api.mypurecloud.ie`:
    /// an [`ApiBase`], or text checked as [`ApiBase::parse`] checks it, when the client is
    /// built), authenticated by `tokens`.
    pub fn builder(api_base: impl IntoApiBase, tokens: TokenManager) -> ApiClientBuilder {
        ApiClientBuilder {
            base: api_base.into_api_base(),
            tokens,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            backoff: Backoff::default(),
            rate_limit: None,
            adaptive_rate: true,
            allow_insecure_http: false,
            honor_rate_limit_headers: true,
            user_agent: concat!("tokenwarden/", env!("CARGO_PKG_VERSION")).to_string(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            follow_cross_origin: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            proxies: None,
            jitter: Arc::new(RandomJitter),
            budget: None,
            more_tokens: Vec::new(),
            recorder: None,
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

    /// The token manager behind this client (the first token of a pool).
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.core.tokens
    }

    /// The counters of every token manager behind this client together (one, or a pool's):
    /// sums, the earliest expiry, the largest clock skew.
    pub fn token_metrics(&self) -> crate::metrics::Metrics {
        self.token_managers()
            .into_iter()
            .map(TokenManager::metrics)
            .reduce(crate::metrics::Metrics::plus)
            .unwrap_or_default()
    }

    /// Every token manager behind this client: one, or the pool's (see
    /// [`ApiClientBuilder::add_token`]).
    pub fn token_managers(&self) -> Vec<&TokenManager> {
        match &self.inner.core.pool {
            Some(pool) => pool.slots.iter().map(|s| &s.tokens).collect(),
            None => vec![&self.inner.core.tokens],
        }
    }

    /// The API base URL.
    pub fn api_base(&self) -> &Url {
        &self.inner.core.origin
    }

    /// The record of this client's run: every exchange's outcome and latency, its token
    /// refreshes, heals and waits, in totals and per second (see [`crate::observe`]).
    pub fn recorder(&self) -> &crate::observe::Recorder {
        &self.inner.core.recorder
    }

    /// A snapshot of the client's counters.
    pub fn metrics(&self) -> ClientMetrics {
        self.inner.core.counters.snapshot()
    }

    /// The request rate (per second) the client has learned the API sustains and paces to, if it
    /// has learned one (see [`ApiClientBuilder::adaptive_rate`]).
    pub fn learned_rate(&self) -> Option<f64> {
        self.inner.core.pacer.rate()
    }

    /// Resolves a path (or `nextUri`) against the API base; absolute URLs are kept as they are.
    pub(crate) fn resolve(&self, path_or_url: &str) -> Result<Url> {
        resolve(&self.inner.core.origin, path_or_url)
    }

    /// Where a path typed by a person sends a request, checked as the batch engine checks its
    /// records: a path below the API base starting with one `/`, or an absolute URL, whose
    /// target stays on the API's origin. `//host/x`, `/\\host/x` and `http://other-host/x` are
    /// refused, as is a path without its leading `/` (`api/v2/users` would resolve against the
    /// base's own path).
    ///
    /// ```no_run
    /// # fn run(client: tokenwarden::ApiClient) {
    /// assert!(client.url_on_origin("/api/v2/users/me").is_ok());
    /// assert!(client.url_on_origin("//elsewhere.example/x").is_err());
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] saying why, in words that start with the path.
    pub fn url_on_origin(&self, path_or_url: &str) -> Result<Url> {
        let absolute = Url::parse(path_or_url).is_ok();
        if !absolute && !path_or_url.starts_with('/') {
            return Err(Error::Config(format!(
                "path '{}' must start with / (e.g. /api/v2/users)",
                excerpt(path_or_url, QUOTED_PATH)
            )));
        }
        // An absolute URL replaces the base when joined: its own origin is what is checked.
        locate(&self.inner.core.origin, path_or_url)
            .map_err(|why| Error::Config(format!("path {why}")))
    }
}

/// Longest excerpt of a refused path quoted in its error.
const QUOTED_PATH: usize = 200;

/// `path` resolved against `base` as requests resolve it, if the result stays on the base's
/// origin; otherwise why not (a phrase after "path"). The one origin check of what people type
/// and what batch inputs hold: a URL parser reads `/\\host/x` as `//host/x` and drops tabs and
/// newlines, so a check of the text alone is not enough, and paths with control characters are
/// refused outright.
pub(crate) fn locate(base: &Url, path: &str) -> std::result::Result<Url, String> {
    let quoted = || excerpt(path, QUOTED_PATH);
    if path.chars().any(char::is_control) {
        return Err(format!(
            "'{}' contains control characters (a URL parser would drop them): not sent",
            quoted()
        ));
    }
    let url = base
        .join(path)
        .map_err(|e| format!("'{}' is not a valid path ({e}): not sent", quoted()))?;
    // `Url::origin` equality, without its two allocations (this runs for every forwarded request).
    if !policy::same_origin(&url, base) {
        return Err(format!(
            "'{}' leads away from the API ({} instead of {}): not sent",
            quoted(),
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// `path_or_url` against `base`: absolute `http(s)` URLs as they are, anything else as a reference
/// relative to the base (Genesys paths start with `/api/v2/`).
pub(crate) fn resolve(base: &Url, path_or_url: &str) -> Result<Url> {
    match Url::parse(path_or_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(u) => Err(Error::Config(format!(
            "unsupported URL scheme {} in {}",
            excerpt(u.scheme(), 40),
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
                shown_path(&self.url),
                self.status.as_u16()
            ),
            // The parser's complaint can quote the body ("unknown field `...`"): server text.
            detail: format!(
                "{}; body: {}",
                excerpt(&e.to_string(), 200),
                body_excerpt(&self.body, 200)
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
            path: shown_path(&self.url),
            status: self.status.as_u16(),
            body: body_excerpt(&self.body, 300),
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
    pub(crate) rate_cuts: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientMetrics {
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
            rate_cuts: g(&self.rate_cuts),
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
    /// 401s healed by a new token: counted once the retry with the new token was answered with
    /// anything but another 401.
    pub unauthorized_healed: u64,
    /// 429s waited out.
    pub rate_limited_waits: u64,
    /// 5xx answers retried.
    pub server_errors_retried: u64,
    /// Transport failures (connect errors, timeouts, resets) retried.
    pub transport_retries: u64,
    /// Redirects followed.
    pub redirects_followed: u64,
    /// Attempts that waited for their turn (fixed or learned rate).
    pub throttle_waits: u64,
    /// Times every request was held: the `inin-ratelimit-*` headers said the allowance was used
    /// up, or a 429 came after the rate had been cut in the same window.
    pub rate_limit_pauses: u64,
    /// Times the learned rate was cut after a 429.
    pub rate_cuts: u64,
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
    fn server_text_in_errors_is_scrubbed_and_escaped() {
        // A server that echoes a secret (in the body, or in a redirect path) and sends terminal
        // escapes: neither reaches an error message.
        const SECRET: &str = "server-echoed-secret-value-42";
        crate::redact::register_secret(SECRET);
        let echo = |body: String| ApiResponse {
            url: Url::parse(&format!("https://api.example/api/v2/users/{SECRET}")).unwrap(),
            body: Bytes::from(body),
            ..resp(500, "")
        };
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {}
        let unknown_field = echo(format!("{{\"{SECRET}\": 1}}"))
            .json::<Strict>()
            .unwrap_err();
        let Error::Decode { detail, .. } = &unknown_field else {
            panic!("{unknown_field:?}")
        };
        // The parser's own complaint names the field: it is scrubbed too, not only the body.
        let complaint = detail.split("; body:").next().unwrap();
        assert!(complaint.contains(crate::redact::REDACTED), "{complaint}");
        let raw = echo(format!("{SECRET}\x1b[2J not json"));
        for e in [
            unknown_field.clone(),
            raw.json::<u32>().unwrap_err(),
            raw.clone().error_for_status().unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(!msg.contains(SECRET), "{msg}");
            assert!(msg.contains(crate::redact::REDACTED), "{msg}");
            assert!(!msg.contains('\x1b'), "{msg}");
        }
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
