//! A [`reqwest_middleware`] middleware with the [`ApiClient`](crate::ApiClient)'s token, 401, 429
//! and 5xx behaviour, for code that already sends its requests through a
//! `reqwest_middleware::ClientWithMiddleware`. (Feature `middleware`.) It is an adapter over the
//! client's own send loop: the rules are the same code.

use crate::client::send::{self, Attempt, Core, Hop, Sent, Target};
use crate::client::{ClientMetrics, RateLimit, pacer::Pacer};
use crate::clock::Jitter;
use crate::error::Error;
use crate::manager::TokenManager;
use crate::retry::Backoff;
use crate::token::Bearer;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use std::sync::Arc;

/// Marks a `POST` or `PATCH` sent through [`AuthMiddleware`] as safe to replay after a 5xx or a
/// timeout (it only reads): `client.post(url).with_extension(ReplaySafe)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplaySafe;

/// Authenticates requests to one API origin with a [`TokenManager`], heals a 401 once, waits out
/// 429s and retries 5xx and transport failures within a [`Backoff`] budget, with the same replay
/// rule as [`ApiClient`](crate::ApiClient): idempotent methods freely, `POST`/`PATCH` only when
/// marked [`ReplaySafe`] or when the failure proves the server did not act (401, 429, failed
/// connect). It paces requests to the rate the API sustains as the client does
/// ([`adaptive_rate`](Self::adaptive_rate), on by default).
///
/// Requests to any other origin pass through untouched, without the token. Redirects, response
/// body sizes and proxies are the underlying `reqwest::Client`'s business: build it with
/// `redirect::Policy::none()` (or keep reqwest's default, which drops `Authorization` when the
/// host changes).
///
/// ```no_run
/// # async fn run(tokens: tokenwarden::TokenManager) -> Result<(), Box<dyn std::error::Error>> {
/// use tokenwarden::middleware::AuthMiddleware;
///
/// let http = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(http)
///     .with(AuthMiddleware::new("https://api.mypurecloud.ie", tokens)?)
///     .build();
/// let me = client.get("https://api.mypurecloud.ie/api/v2/tokens/me").send().await?;
/// # let _ = me; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthMiddleware {
    /// Shared by clones, as the client's: the pacer and the counters.
    core: Core,
    rate_limit: Option<RateLimit>,
    adaptive: bool,
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("origin", &self.core.origin.as_str())
            .field("backoff", &self.core.backoff)
            .finish_non_exhaustive()
    }
}

impl AuthMiddleware {
    /// A middleware that sends `tokens`' token to `api_base`'s origin only.
    ///
    /// # Errors
    /// [`Error::Config`] if `api_base` is not a URL or is plain `http://` to a non-loopback host.
    pub fn new(
        api_base: impl crate::client::IntoApiBase,
        tokens: TokenManager,
    ) -> Result<Self, Error> {
        let origin = api_base.into_api_base()?;
        origin.check_secure(false)?;
        Ok(Self {
            core: Core::new(origin, tokens, |now| Pacer::new(None, true, true, now)),
            rate_limit: None,
            adaptive: true,
        })
    }

    /// The retry budget (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.core.backoff = backoff;
        self
    }

    /// The jitter source (default random).
    pub fn jitter(mut self, jitter: impl Jitter) -> Self {
        self.core.jitter = Arc::new(jitter);
        self
    }

    /// Paces requests to the API to at most `limit` (default: none), as
    /// [`ApiClientBuilder::rate_limit`](crate::ApiClientBuilder::rate_limit).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self.new_pacer()
    }

    /// Whether to learn the rate the API sustains and pace to it (default true), as
    /// [`ApiClientBuilder::adaptive_rate`](crate::ApiClientBuilder::adaptive_rate).
    pub fn adaptive_rate(mut self, adaptive: bool) -> Self {
        self.adaptive = adaptive;
        self.new_pacer()
    }

    /// A snapshot of the counters (shared by clones), as [`ApiClient::metrics`](crate::ApiClient::metrics).
    pub fn metrics(&self) -> ClientMetrics {
        ClientMetrics::of(&self.core.recorder)
    }

    fn new_pacer(mut self) -> Self {
        let now = crate::clock::Instant::now();
        self.core.pacer = Arc::new(Pacer::new(self.rate_limit, self.adaptive, true, now));
        self
    }
}

fn mw(e: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(e)
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let recorder = &self.core.recorder;
        recorder.step(crate::observe::Step::Request);
        let attempt = MiddlewareAttempt {
            target: Target {
                method: req.method().clone(),
                url: req.url().clone(),
                replay_safe: extensions.get::<ReplaySafe>().is_some(),
            },
            template: Some(req),
            next,
            extensions,
        };
        let result = send::run(&self.core, attempt).await;
        if result.is_err() {
            recorder.step(crate::observe::Step::Failure);
        }
        result
    }
}

/// The middleware's [`Attempt`]: each attempt is a copy of the request run through the rest of
/// the chain; a request whose body cannot be copied goes once.
struct MiddlewareAttempt<'a> {
    target: Target,
    /// The request as given, kept for the next attempt (`None` once a streaming body was sent).
    template: Option<reqwest::Request>,
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl Attempt for MiddlewareAttempt<'_> {
    type Answer = reqwest::Response;
    type Error = reqwest_middleware::Error;

    fn target(&self) -> &Target {
        &self.target
    }

    fn can_resend(&self) -> bool {
        self.template.is_some()
    }

    async fn send(
        &mut self,
        bearer: Option<&Bearer>,
    ) -> reqwest_middleware::Result<Sent<reqwest::Response, reqwest_middleware::Error>> {
        let template = self
            .template
            .take()
            .ok_or_else(|| mw(send::not_replayable(&self.target.method, &self.target.url)))?;
        // Keep a copy for a retry; a streaming body cannot be copied and goes once.
        let mut attempt = match template.try_clone() {
            Some(copy) => {
                self.template = Some(template);
                copy
            }
            None => template,
        };
        if let Some(b) = bearer {
            attempt
                .headers_mut()
                .insert(http::header::AUTHORIZATION, b.header_value());
        }
        match self.next.clone().run(attempt, self.extensions).await {
            Ok(resp) => Ok(Sent::Answer(resp)),
            Err(reqwest_middleware::Error::Reqwest(mut e)) if !e.is_builder() => {
                // The error goes back to the caller as reqwest made it, but its URL without
                // query, fragment or credentials (which may hold anything).
                if let Some(u) = e.url_mut() {
                    u.set_query(None);
                    u.set_fragment(None);
                    let _ = u.set_password(None);
                    let _ = u.set_username("");
                }
                let what = format!(
                    "transport error talking to {} {}: {}",
                    self.target.method,
                    crate::error::shown_path(&self.target.url),
                    crate::error::chain(&e)
                );
                Ok(Sent::Failed {
                    connect: e.is_connect(),
                    error: reqwest_middleware::Error::Reqwest(e),
                    what,
                })
            }
            Err(other) => Err(other),
        }
    }

    fn redirect(
        &mut self,
        answer: reqwest::Response,
        _hop: u32,
    ) -> Result<Hop<reqwest::Response>, Error> {
        // Redirects are the underlying client's business.
        Ok(Hop::Return(answer))
    }

    fn lift(e: Error) -> reqwest_middleware::Error {
        mw(e)
    }
}
