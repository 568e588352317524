//! A [`reqwest_middleware`] middleware with the [`ApiClient`](crate::ApiClient)'s token, 401, 429
//! and 5xx behaviour, for code that already sends its requests through a
//! `reqwest_middleware::ClientWithMiddleware`. (Feature `middleware`.)

use crate::client::policy::{self, Action, Failure};
use crate::clock::{Clock, Jitter, RandomJitter, TokioClock};
use crate::error::{Error, excerpt};
use crate::manager::TokenManager;
use crate::retry::Backoff;
use crate::token::Bearer;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use std::sync::Arc;
use url::Url;

/// Marks a `POST` or `PATCH` sent through [`AuthMiddleware`] as safe to replay after a 5xx or a
/// timeout (it only reads): `client.post(url).with_extension(ReplaySafe)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplaySafe;

/// Authenticates requests to one API origin with a [`TokenManager`], heals a 401 once, waits out
/// 429s and retries 5xx and transport failures within a [`Backoff`] budget, with the same replay
/// rule as [`ApiClient`](crate::ApiClient): idempotent methods freely, `POST`/`PATCH` only when
/// marked [`ReplaySafe`] or when the failure proves the server did not act (401, 429, failed
/// connect).
///
/// Requests to any other origin pass through untouched, without the token. Redirects are the
/// underlying `reqwest::Client`'s business: build it with `redirect::Policy::none()` (or keep
/// reqwest's default, which drops `Authorization` when the host changes).
///
/// ```no_run
/// # async fn run(tokens: tokenwarden::TokenManager) -> Result<(), Box<dyn std::error::Error>> {
/// use tokenwarden::AuthMiddleware;
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
    origin: Url,
    tokens: TokenManager,
    backoff: Backoff,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("origin", &self.origin.as_str())
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl AuthMiddleware {
    /// A middleware that sends `tokens`' token to `api_base`'s origin only.
    ///
    /// # Errors
    /// [`Error::Config`] if `api_base` is not a URL or is plain `http://` to a non-loopback host.
    pub fn new(api_base: &str, tokens: TokenManager) -> Result<Self, Error> {
        let origin = Url::parse(api_base)
            .map_err(|e| Error::Config(format!("API base {api_base:?} is not a URL: {e}")))?;
        crate::grant::check_scheme(&origin, false, "API base")?;
        Ok(Self {
            origin,
            tokens,
            backoff: Backoff::default(),
            clock: Arc::new(TokioClock::new()),
            jitter: Arc::new(RandomJitter),
        })
    }

    /// The retry budget (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The jitter source (default random).
    pub fn jitter(mut self, jitter: impl Jitter) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }
}

fn mw(e: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(e)
}

#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let carry = policy::may_carry_token(&self.origin, req.url());
        let method = req.method().clone();
        let path = req.url().path().to_string();
        let safe = extensions.get::<ReplaySafe>().is_some();
        let not_replayable = || {
            mw(Error::NotReplayable(format!(
                "{method} {path} has a streaming body, which was already sent and cannot be sent again"
            )))
        };
        let started = self.clock.now();
        let (mut attempts, mut retries, mut after_heal) = (0u32, 0u32, false);
        let mut heals = 0u32;
        let mut template = req;
        loop {
            // Keep a copy for a retry; a streaming body cannot be copied and goes once.
            let (mut attempt, spare) = match template.try_clone() {
                Some(copy) => (copy, Some(template)),
                None => (template, None),
            };
            let bearer: Option<Bearer> = if carry {
                Some(self.tokens.bearer().await.map_err(mw)?)
            } else {
                None
            };
            if let Some(b) = &bearer {
                attempt
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, b.header_value());
            }
            attempts += 1;
            let result = next.clone().run(attempt, extensions).await;
            let (failure, retry_after, outcome) = match result {
                Err(reqwest_middleware::Error::Reqwest(e)) if e.is_builder() => {
                    return Err(reqwest_middleware::Error::Reqwest(e));
                }
                Err(reqwest_middleware::Error::Reqwest(e)) => (
                    policy::transport_failure(e.is_connect()),
                    None,
                    Err(reqwest_middleware::Error::Reqwest(e)),
                ),
                Err(other) => return Err(other),
                Ok(resp) => match policy::action(
                    resp.status(),
                    bearer.is_some(),
                    policy::note_answer(
                        resp.status(),
                        bearer.as_ref(),
                        &self.tokens,
                        after_heal,
                        heals,
                    ),
                ) {
                    Action::Return | Action::Redirect => return Ok(resp),
                    Action::Heal => {
                        let (Some(spare), Some(rejected)) = (spare, bearer.as_ref()) else {
                            return Err(not_replayable());
                        };
                        tracing::info!(%method, %path, "API answered 401; refreshing the token and retrying once");
                        self.tokens.rejected(rejected).await.map_err(mw)?;
                        after_heal = true;
                        heals += 1;
                        template = spare;
                        continue;
                    }
                    Action::Unauthorized => {
                        let body: ErrorBody =
                            serde_json::from_slice(&resp.bytes().await.unwrap_or_default())
                                .unwrap_or_default();
                        return Err(mw(Error::Unauthorized {
                            method: method.to_string(),
                            path,
                            code: body.code,
                        }));
                    }
                    Action::Forbidden => {
                        let bytes = resp.bytes().await.unwrap_or_default();
                        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
                        return Err(mw(Error::Forbidden {
                            method: method.to_string(),
                            path,
                            code: body.code,
                            message: body
                                .message
                                .map(|m| excerpt(&m, 300))
                                .unwrap_or_else(|| excerpt(&String::from_utf8_lossy(&bytes), 300)),
                        }));
                    }
                    Action::Retry(failure) => {
                        let ra = (failure == Failure::RateLimited)
                            .then(|| {
                                crate::retry::retry_after_header(resp.headers(), self.clock.wall())
                            })
                            .flatten();
                        (failure, ra, Ok(resp))
                    }
                },
            };
            after_heal = false;
            if !policy::may_replay(&method, safe, failure) {
                return outcome;
            }
            let Some(spare) = spare else {
                return Err(not_replayable());
            };
            retries += 1;
            let elapsed = self.clock.now().saturating_duration_since(started);
            let Some(delay) = self.backoff.next_delay(
                retries,
                attempts,
                elapsed,
                retry_after,
                self.jitter.sample(),
            ) else {
                let last = match &outcome {
                    Ok(r) => format!("HTTP {}", r.status().as_u16()),
                    Err(e) => e.to_string(),
                };
                return Err(mw(Error::RetriesExhausted {
                    method: method.to_string(),
                    path,
                    attempts,
                    last,
                }));
            };
            tracing::info!(
                %method,
                %path,
                failure = failure.describe(),
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                "retrying API request"
            );
            tokio::time::sleep(delay).await;
            template = spare;
        }
    }
}
