//! [`ApiClientBuilder`]: what an [`ApiClient`](super::ApiClient) is configured with, its defaults, and the checks
//! made when it is built.

use super::pacer::Pacer;
use super::{ApiClient, Inner, pool, send};
use crate::clock::{Instant, Jitter, RandomJitter};
use crate::error::{Error, Result};
use crate::manager::TokenManager;
use crate::rate::{RateLimit, SharedBudget};
use crate::retry::Backoff;
use crate::transport::{ApiBase, IntoApiBase, ProxyConfig};
use std::sync::Arc;
use std::time::Duration;

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

/// Configures an [`ApiClient`](super::ApiClient).
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
    /// can override it with [`RequestBuilder::timeout`](super::RequestBuilder::timeout).
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
    /// neither the token nor any header given with [`RequestBuilder::header`](super::RequestBuilder::header) to the other origin,
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
                    pool,
                    recorder,
                },
                http,
                forward_http: std::sync::OnceLock::new(),
                connect_timeout: self.connect_timeout,
                user_agent: self.user_agent,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
