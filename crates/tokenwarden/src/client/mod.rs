//! The authenticated HTTP client: every API request goes through it, carries a valid token, heals
//! a 401 once, waits out 429s, retries 5xx and transport failures within a budget, never replays a
//! request when replaying is unsafe, and never sends the token off the API's origin.

mod adaptive;
mod builder;
mod counters;
mod forward;
mod origin;
pub(crate) mod pacer;
pub(crate) mod policy;
mod pool;
mod request;
mod response;
pub(crate) mod send;

pub use crate::rate::{RateLimit, SharedBudget};
pub use crate::transport::{ApiBase, IntoApiBase, ProxyConfig};
pub use builder::{
    ApiClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use counters::ClientMetrics;
pub use forward::{ForwardRequest, ForwardResponse};
pub(crate) use origin::locate;
pub use request::RequestBuilder;
pub use response::ApiResponse;

use crate::error::Result;
use crate::manager::TokenManager;
use ::http::Method;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP client for one API (one origin) that authenticates every request with a
/// [`TokenManager`].
///
/// What it does for each request sent with [`RequestBuilder::send`]:
/// - **Token:** every attempt carries `Authorization: Bearer …` from the manager, marked sensitive.
/// - **401:** the token that was refused is reported ([`TokenManager::rejected`]) and the request
///   is sent once more with the new token, whatever its method: Genesys authenticates before it
///   acts, so a 401 proves nothing happened. A 401 again, with that fresh token, is
///   [`Error::Unauthorized`](crate::Error::Unauthorized) (the client's role or scopes are the problem), never a loop.
///   That token is then not healed again for a while (15 s, doubling up to 5 minutes while such
///   refusals go on): its 401s are [`Error::Unauthorized`](crate::Error::Unauthorized) at once, without a token request, so
///   an API that refuses every token cannot make each request buy one. Any other token (revoked
///   after the API accepted it, or refreshed since) is healed at once.
/// - **403:** [`Error::Forbidden`](crate::Error::Forbidden) with Genesys's message and code; never a refresh.
/// - **429:** waits `Retry-After` (plus a little jitter, capped by
///   [`Backoff::max_retry_after`](crate::retry::Backoff::max_retry_after)), or backs off exponentially without it.
/// - **500, 502, 503, 504, timeouts, resets:** exponential backoff with jitter, within the
///   [`Backoff`](crate::retry::Backoff) budget (attempts and elapsed time).
/// - **Replay safety:** `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` are sent again freely; `POST` and
///   `PATCH` only when marked [`replay_safe`](RequestBuilder::replay_safe), or when the failure
///   proves the server did not act (401, 429, or a failed connect). Otherwise a 5xx is returned as
///   it is and a timeout as [`Error::Transport`](crate::Error::Transport).
/// - **Redirects** within the same origin are followed by the client itself (at most
///   [`DEFAULT_MAX_REDIRECTS`]). A redirect to another origin is [`Error::Redirect`](crate::Error::Redirect) naming it,
///   unless [`follow_redirects_across_origins`](ApiClientBuilder::follow_redirects_across_origins)
///   allows it; then neither the token nor any header given with [`RequestBuilder::header`]
///   crosses, only the client's own (`Accept`, and `Content-Type` with a kept JSON body). The
///   token is only ever sent to the API base's own scheme, host and port.
/// - **Rate limits:** the client learns the rate the API sustains from its 429s and
///   `inin-ratelimit-*` headers and paces every task to it ([`adaptive_rate`](ApiClientBuilder::adaptive_rate),
///   on by default), under an optional fixed [`RateLimit`].
/// - **Bounded answers:** a body larger than [`DEFAULT_MAX_RESPONSE_BYTES`] (or
///   [`max_response_bytes`](ApiClientBuilder::max_response_bytes)) is [`Error::ResponseTooLarge`](crate::Error::ResponseTooLarge).
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
    /// The HTTP client of forwarded requests ([`ApiClient::forward`]): the same settings, but the
    /// request timeout bounds the wait for the head and each read, not a whole streamed answer.
    /// Built at the first forwarded request (most clients never forward one).
    pub(crate) forward_http: std::sync::OnceLock<reqwest::Client>,
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
    pub(crate) request_timeout: Duration,
    pub(crate) max_redirects: u32,
    pub(crate) follow_cross_origin: bool,
    pub(crate) max_response_bytes: u64,
    pub(crate) proxies: ProxyConfig,
}

impl ApiClient {
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
    /// As [`RequestBuilder::send`], plus [`Error::Status`](crate::Error::Status) for a non-2xx answer and
    /// [`Error::Decode`](crate::Error::Decode) for a body that is not JSON.
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

    /// The largest answer body the client accepts, in bytes
    /// ([`ApiClientBuilder::max_response_bytes`]); a forwarding proxy applies it too.
    pub fn max_response_bytes(&self) -> u64 {
        self.inner.max_response_bytes
    }

    /// The timeout of one attempt ([`ApiClientBuilder::request_timeout`]); a forwarding proxy
    /// bounds each read of a caller's body by it too.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.inner.request_timeout
    }

    /// The API base URL.
    pub fn api_base(&self) -> &ApiBase {
        &self.inner.core.origin
    }

    /// The record of this client's run: every exchange's outcome and latency, its token
    /// refreshes, heals and waits, in totals and per second (see [`crate::observe`]).
    pub fn recorder(&self) -> &crate::observe::Recorder {
        &self.inner.core.recorder
    }

    /// A snapshot of the client's counters: read from its [recorder](Self::recorder), the one
    /// record the summary, the report and the metrics endpoint read too (a recorder shared with
    /// other clients counts what they all did).
    pub fn metrics(&self) -> ClientMetrics {
        ClientMetrics::of(&self.inner.core.recorder)
    }

    /// The request rate (per second) the client has learned the API sustains and paces to, if it
    /// has learned one (see [`ApiClientBuilder::adaptive_rate`]).
    pub fn learned_rate(&self) -> Option<f64> {
        self.inner.core.pacer.rate()
    }
}
