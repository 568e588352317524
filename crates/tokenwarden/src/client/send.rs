//! The send loop, written once: pace, attach the token, send, then act on the answer (heal a
//! 401, stop on a refusal, follow or hand back a redirect, retry a 429, 5xx or transport failure
//! within the budget when the replay rule allows). How one attempt is sent is an [`Attempt`]
//! adapter's business: the [`ApiClient`](super::ApiClient)'s own requests, or a
//! `reqwest-middleware` chain. The rules themselves are the pure functions in [`policy`].

use super::pacer::Pacer;
use super::policy::{self, Action, Failure};
use super::pool::Pool;
use crate::clock::{Instant, Jitter};
use crate::error::{Error, body_excerpt, excerpt, shown_path};
use crate::manager::TokenManager;
use crate::observe::{Class, Recorder, Step};
use crate::retry::Backoff;
use crate::token::Bearer;
use crate::transport::ApiBase;
use http::{HeaderMap, Method, StatusCode};
use std::sync::Arc;
use url::Url;

/// What the loop works with: one per client or middleware, its clones sharing the pacer and the
/// counters.
#[derive(Clone)]
pub(crate) struct Core {
    /// The API base: only its origin ever gets the token.
    pub(crate) origin: ApiBase,
    pub(crate) tokens: TokenManager,
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Arc<dyn Jitter>,
    pub(crate) pacer: Arc<Pacer>,
    /// With a token pool: every token and its pacer (the first being `tokens` and `pacer`).
    pub(crate) pool: Option<Arc<Pool>>,
    /// Where every exchange's outcome goes (shared with the token managers).
    pub(crate) recorder: Recorder,
}

impl Core {
    #[cfg(feature = "middleware")]
    /// A core for the API at `origin`, with the default backoff and jitter, and a pacer.
    pub(crate) fn new(
        origin: ApiBase,
        tokens: TokenManager,
        pacer: impl FnOnce(crate::clock::Instant) -> Pacer,
    ) -> Self {
        Self {
            origin,
            tokens,
            backoff: Backoff::default(),
            pacer: Arc::new(pacer(Instant::now())),
            jitter: Arc::new(crate::clock::RandomJitter),
            pool: None,
            recorder: Recorder::default(),
        }
    }

    /// The token (and its pacer) the next request goes with.
    fn pick(&self) -> (&TokenManager, &Pacer) {
        match &self.pool {
            Some(pool) => {
                let slot = pool.pick();
                (&slot.tokens, &slot.pacer)
            }
            None => (&self.tokens, &self.pacer),
        }
    }
}

/// The outcome of one exchange.
pub(crate) enum Sent<A, E> {
    /// The server answered.
    Answer(A),
    /// The exchange failed in transit. `connect`: no connection was made, so nothing was sent.
    /// `error` is what the caller gets if no retry follows; `what` says it in words (the whole
    /// cause chain).
    Failed {
        connect: bool,
        error: E,
        what: String,
    },
}

/// What became of a redirect.
pub(crate) enum Hop<A> {
    /// The adapter now points at the new target: send again.
    Followed,
    /// Hand this answer to the caller.
    Return(A),
}

/// What an attempt goes to: the method and URL (both can change on a redirect), and whether the
/// request is marked safe to send again after a failure that may have reached the server.
pub(crate) struct Target {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) replay_safe: bool,
}

/// An HTTP answer as an adapter holds it.
pub(crate) trait Answer: Send {
    /// Its status.
    fn status(&self) -> StatusCode;
    /// Its headers.
    fn headers(&self) -> &HeaderMap;
    /// Its body, for the Genesys error body of a 401 or 403 (the answer is not handed back);
    /// adapters that read it bound what they read.
    async fn error_body(self) -> bytes::Bytes;
    /// A failed answer in words, for logs and [`Error::RetriesExhausted`].
    fn describe(&self) -> String;
}

/// The most of an unread answer's 401 or 403 body read for its Genesys error code before a heal.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// An answer whose body is still unread (forwarded requests, the middleware).
impl Answer for reqwest::Response {
    fn status(&self) -> StatusCode {
        reqwest::Response::status(self)
    }

    fn headers(&self) -> &HeaderMap {
        reqwest::Response::headers(self)
    }

    async fn error_body(self) -> bytes::Bytes {
        crate::transport::http::read_body(self, MAX_ERROR_BODY)
            .await
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!("HTTP {}", reqwest::Response::status(self).as_u16())
    }
}

/// One way of sending a request, attempt after attempt.
pub(crate) trait Attempt {
    /// An answer as the adapter holds it.
    type Answer: Answer;
    /// The error its caller gets.
    type Error: Send;

    /// Where the next attempt goes, and how.
    fn target(&self) -> &Target;
    /// The request's method (it can change on a redirect).
    fn method(&self) -> &Method {
        &self.target().method
    }
    /// Where the next attempt goes.
    fn url(&self) -> &Url {
        &self.target().url
    }
    /// Marked safe to send again after a failure that may have reached the server.
    fn marked_replay_safe(&self) -> bool {
        self.target().replay_safe
    }
    /// Whether the request can be sent once more (a streaming body can be sent only once).
    fn can_resend(&self) -> bool;
    /// Whether the caller takes every HTTP answer as it is: a 403 handed back instead of
    /// [`Error::Forbidden`], and the last answer when retries of a 429 or 5xx run out instead of
    /// [`Error::RetriesExhausted`] (a batch records each answer with its status and body).
    fn hands_back_answers(&self) -> bool {
        false
    }
    /// Sends one attempt, with the token when `bearer` is given. `Err`: stop at once (the request
    /// is unusable, or the answer cannot be taken, e.g. too large).
    async fn send(
        &mut self,
        bearer: Option<&Bearer>,
    ) -> Result<Sent<Self::Answer, Self::Error>, Self::Error>;
    /// A 3xx answer: follow it (if the adapter does and may) or hand it back. `hop` counts the
    /// redirects of this request, this one included.
    fn redirect(&mut self, answer: Self::Answer, hop: u32) -> Result<Hop<Self::Answer>, Error>;
    /// A library error as the caller's error.
    fn lift(e: Error) -> Self::Error;
}

/// The Genesys error body: `{"message", "code", "status", "contextId", ...}`.
#[derive(serde::Deserialize, Default)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// Sends `a` until it has an answer to hand back or an error (see [`ApiClient`](super::ApiClient)
/// for the rules), and tells the recorder's observer, if it has one, how the request went.
pub(crate) async fn run<A: Attempt>(ctx: &Core, a: A) -> Result<A::Answer, A::Error> {
    if ctx.recorder.observer().is_none() {
        return send_until_done(ctx, a, &mut Trail::default()).await;
    }
    let started = crate::clock::wall_now();
    let method = a.method().to_string();
    let route = crate::observe::route(a.url().path());
    let mut trail = Trail::default();
    let result = send_until_done(ctx, a, &mut trail).await;
    if let Some(o) = ctx.recorder.observer() {
        o.request(&crate::observe::RequestEnd {
            method: &method,
            route: &route,
            status: trail.status,
            attempts: trail.attempts,
            outcome: match result {
                Ok(_) => crate::observe::Outcome::Answered,
                Err(_) => crate::observe::Outcome::Failed,
            },
            started,
            ended: crate::clock::wall_now(),
            waited_for: trail.waited_for,
        });
    }
    result
}

/// What the observer is told of a request, gathered as it is sent.
#[derive(Default)]
struct Trail {
    attempts: u32,
    status: Option<u16>,
    waited_for: Option<u64>,
}

async fn send_until_done<A: Attempt>(
    ctx: &Core,
    mut a: A,
    trail: &mut Trail,
) -> Result<A::Answer, A::Error> {
    // One token for the whole request: a 401 is reported to the manager whose token it refused.
    let (tokens, pacer) = ctx.pick();
    let started = Instant::now();
    let mut sends = 0u32; // attempts, not counting redirect hops
    let mut retries = 0u32;
    let mut hops = 0u32;
    let mut heals = 0u32;
    let mut after_heal = false;
    // Whether any attempt got an HTTP answer: none means the API could not be reached.
    let mut answered = false;
    // A heal whose retry has not been answered yet: it counts once an answer gets past the
    // token check.
    let mut heal_pending = false;
    loop {
        let carry = policy::may_carry_token(&ctx.origin, a.url());
        let turn = match carry {
            true => Some(pacer.turn().await),
            false => None,
        };
        if turn.is_some_and(|t| t.paced) {
            ctx.recorder.paced();
        }
        // Only the API's origin ever sees the token.
        let bearer = match carry {
            true => {
                let (b, waited) = tokens.bearer_waited().await.map_err(A::lift)?;
                // The token a request waited for (its first, or the one after a 401): its span
                // links to that refresh.
                if (waited || after_heal) && b.held.refresh_id != 0 {
                    trail.waited_for = Some(b.held.refresh_id);
                }
                Some(b)
            }
            false => None,
        };
        sends += 1;
        trail.attempts += 1;
        ctx.recorder.step(Step::Attempt);
        let sent_at = Instant::now();
        let sent = a.send(bearer.as_ref()).await?;
        let answered_at = Instant::now();
        let class = match &sent {
            Sent::Answer(answer) => Class::of_status(answer.status().as_u16()),
            Sent::Failed { .. } => Class::Transport,
        };
        ctx.recorder
            .exchange(class, answered_at - sent_at, answered_at);

        // Either return, or fall through to the retry decision with what went wrong.
        let (failure, retry_after, last, outcome) = match sent {
            Sent::Failed {
                connect,
                error,
                what,
            } => {
                tracing::debug!(method = %a.method(), path = a.url().path(), error = %what, "transport failure");
                (policy::transport_failure(connect), None, what, Err(error))
            }
            Sent::Answer(answer) => {
                answered = true;
                let status = answer.status();
                trail.status = Some(status.as_u16());
                if heal_pending && status != StatusCode::UNAUTHORIZED {
                    heal_pending = false;
                    ctx.recorder.healed();
                }
                tracing::trace!(method = %a.method(), path = a.url().path(), status = status.as_u16(), "API answer");
                let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
                    .then(|| {
                        crate::retry::retry_after_header(answer.headers(), crate::clock::wall_now())
                    })
                    .flatten();
                if let Some(turn) = turn {
                    let seen = pacer.observe(
                        turn,
                        Instant::now(),
                        status.as_u16(),
                        answer.headers(),
                        retry_after,
                        ctx.backoff.max_retry_after,
                    );
                    if seen.new_hold {
                        ctx.recorder.held();
                    }
                    if seen.cut {
                        ctx.recorder.step(Step::RateCut);
                    }
                }
                let refused = policy::note_answer(
                    status,
                    bearer.as_ref(),
                    tokens,
                    after_heal,
                    heals,
                    answered_at,
                );
                match policy::action(status, carry, refused) {
                    Action::Return => return Ok(answer),
                    Action::Redirect => {
                        hops += 1;
                        match a.redirect(answer, hops).map_err(A::lift)? {
                            Hop::Return(answer) => return Ok(answer),
                            Hop::Followed => {
                                ctx.recorder.step(Step::RedirectFollowed);
                                sends -= 1;
                                continue;
                            }
                        }
                    }
                    Action::Heal => {
                        if !a.can_resend() {
                            // Replaced all the same: the caller's next request gets a valid token.
                            if let Some(rejected) = bearer.as_ref() {
                                tokens.rejected(rejected).await.map_err(A::lift)?;
                            }
                            return Err(A::lift(not_replayable(a.method(), a.url())));
                        }
                        // A 401 proves the server did not act: any method may be sent again.
                        debug_assert!(policy::may_replay(a.method(), false, Failure::Unauthorized));
                        let rejected = bearer.as_ref().expect("Heal only with a token");
                        if tokens.single_use_streak(rejected, answered_at) {
                            return Err(A::lift(Error::Unauthorized {
                                method: a.method().to_string(),
                                path: shown_path(a.url()),
                                code: Some(format!(
                                    "again: the last {} tokens were each refused after at most one use",
                                    crate::manager::MAX_SINGLE_USE_TOKENS
                                )),
                            }));
                        }
                        tracing::info!(
                            method = %a.method(),
                            path = a.url().path(),
                            generation = rejected.generation(),
                            "API answered 401; refreshing the token and retrying once"
                        );
                        let body = ErrorBody::parse(&answer.error_body().await);
                        // Doubted by another request while this one read the answer: passed
                        // back as the rule says, not healed.
                        if !policy::may_heal(tokens.doubted_until(rejected), Instant::now()) {
                            return Err(A::lift(Error::Unauthorized {
                                method: a.method().to_string(),
                                path: shown_path(a.url()),
                                code: body.code.map(|c| excerpt(&c, 100)),
                            }));
                        }
                        let why = crate::manager::Rejection::from_code(body.code.as_deref());
                        ctx.recorder.token_refused();
                        tokens.rejected_with(rejected, why).await.map_err(A::lift)?;
                        ctx.recorder.step(Step::Retry);
                        after_heal = true;
                        heal_pending = true;
                        heals += 1;
                        continue;
                    }
                    Action::Unauthorized => {
                        let body = ErrorBody::parse(&answer.error_body().await);
                        let e = Error::Unauthorized {
                            method: a.method().to_string(),
                            path: shown_path(a.url()),
                            code: body.code.map(|c| excerpt(&c, 100)),
                        };
                        // The policy and the error speak one classification.
                        debug_assert_eq!(Action::Unauthorized.class(), Some(e.class()));
                        return Err(A::lift(e));
                    }
                    Action::Forbidden if a.hands_back_answers() => return Ok(answer),
                    Action::Forbidden => {
                        let bytes = answer.error_body().await;
                        let body = ErrorBody::parse(&bytes);
                        let message = match body.message {
                            Some(m) => excerpt(&m, 300),
                            None => body_excerpt(&bytes, 300),
                        };
                        let e = Error::Forbidden {
                            method: a.method().to_string(),
                            path: shown_path(a.url()),
                            code: body.code.map(|c| excerpt(&c, 100)),
                            message,
                        };
                        debug_assert_eq!(Action::Forbidden.class(), Some(e.class()));
                        return Err(A::lift(e));
                    }
                    Action::Retry(failure) => {
                        let last = answer.describe();
                        (failure, retry_after, last, Ok(answer))
                    }
                }
            }
        };

        after_heal = false;
        if !policy::may_replay(a.method(), a.marked_replay_safe(), failure) {
            // The caller gets the answer or the error; why it was not retried is for -v.
            tracing::info!(
                method = %a.method(),
                path = a.url().path(),
                failure = failure.describe(),
                "not retrying: the request may have reached the server and is not marked replay-safe"
            );
            return outcome;
        }
        if !a.can_resend() {
            return Err(A::lift(not_replayable(a.method(), a.url())));
        }
        retries += 1;
        let elapsed = Instant::now().saturating_duration_since(started);
        let Some(delay) =
            ctx.backoff
                .next_delay(retries, sends, elapsed, retry_after, ctx.jitter.sample())
        else {
            // The caller reports it (a batch records it): a debug event only.
            tracing::debug!(method = %a.method(), path = a.url().path(), attempts = sends, %last, "retries exhausted");
            if let Ok(answer) = outcome
                && a.hands_back_answers()
            {
                return Ok(answer);
            }
            return Err(A::lift(Error::RetriesExhausted {
                method: a.method().to_string(),
                path: shown_path(a.url()),
                attempts: sends,
                last,
                no_answer: !answered,
            }));
        };
        ctx.recorder.step(Step::Retry);
        match failure {
            Failure::RateLimited => ctx.recorder.rate_limited_wait(delay),
            Failure::ServerError => ctx.recorder.step(Step::ServerErrorRetried),
            _ => ctx.recorder.step(Step::TransportRetried),
        }
        // Retries are routine (that is the point): visible with -v, not by default.
        tracing::info!(
            method = %a.method(),
            path = a.url().path(),
            failure = failure.describe(),
            attempt = sends,
            retry_in_ms = delay.as_millis() as u64,
            "retrying API request"
        );
        tokio::time::sleep(delay).await;
    }
}

pub(crate) fn not_replayable(method: &Method, url: &Url) -> Error {
    Error::NotReplayable(format!(
        "{method} {} has a streaming body, which was already sent and cannot be sent again: give it as bytes to let the client retry",
        shown_path(url)
    ))
}
