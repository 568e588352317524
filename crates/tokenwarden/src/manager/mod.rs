//! The token lifecycle: one valid token always at hand, refreshed before it expires, one refresh at a
//! time however many tasks ask.
//!
//! The manager composes four concepts, each in its own module with its own tests:
//! `single_flight` (at most one refresh, shared by every waiter, freed however it ends),
//! `refresh` (how one token is obtained, and how long failures are retried), `timing` (when a
//! token is refreshed and stops being handed out, with `skew` learned from the API's 401s) and
//! `timer` (one refresh timer, aborted when its token is replaced).

mod mint;
mod refresh;
mod single_flight;
mod skew;
mod timer;
mod timing;

pub use crate::metrics::Metrics;
pub use mint::MintPacing;
pub use refresh::UNREACHABLE_AT_START;

use crate::clock::{Instant, Jitter, RandomJitter, wall_now};
use crate::error::Error;
use crate::grant::Grant;
use crate::metrics::Counters;
use crate::observe::RefreshReason;
use crate::retry::Backoff;
use crate::store::TokenStore;
use crate::token::{Bearer, Freshness, HeldToken, RefreshPolicy};
use arc_swap::ArcSwapOption;
use refresh::{Failures, Given, Job, Reason, Refresher};
use single_flight::{Abandoned, Flight, SingleFlight};
use skew::Change;
use std::sync::Arc;
use std::time::Duration;
use timer::RefreshTimer;
use timing::Timing;

/// How long a permanent failure (bad secret, revoked grant) is answered from memory instead of by a
/// new token request: a job whose credentials are wrong must stop, not hammer the token endpoint.
pub const DEFAULT_FATAL_COOLDOWN: Duration = Duration::from_secs(5);

/// Keeps a valid access token at hand.
///
/// - **Fast path without locks:** while the token is fresh, [`bearer`](Self::bearer) is an atomic
///   load and a clock read.
/// - **Proactive refresh:** once the token enters its refresh window (see [`RefreshPolicy`]), the
///   first caller starts a refresh in the background and every caller keeps getting the still-valid
///   token. Callers wait only when no valid token exists. A token in use is also refreshed by a
///   timer (one per manager, aborted when its token is replaced or the manager is dropped).
/// - **Single flight:** at most one token request is in flight per manager; everyone who needs the
///   result shares it (success or error). A refresh that panics (a buggy grant, store or rotation
///   hook) or is cancelled (its runtime shuts down) frees the slot all the same: its waiters get
///   [`Error::Internal`], the next caller starts a new refresh.
/// - **Keyed invalidation:** [`rejected`](Self::rejected) takes the token a 401 came back for. The
///   token is withdrawn at once (no caller gets it again), also while a refresh is running; any
///   number of 401s for the same token cause one refresh; a 401 for a token already replaced causes
///   none.
/// - **Clock skew is learned:** a token the API refuses (401, whatever its code) while the manager
///   still thought it valid shows that the server may let tokens die early (its clock runs ahead);
///   later tokens are refreshed that much earlier, from the first wave of 401s. Revocations are
///   not mistaken for skew for long (see [`rejected_with`](Self::rejected_with) for the rule).
/// - **Outage tolerance:** transient token-endpoint failures are retried with backoff for as long as
///   the current token is still valid, so an outage shorter than the remaining lifetime is invisible;
///   once it is gone (or withdrawn), within the [`Backoff`] budget. At the start of a run (no token
///   ever obtained), an endpoint that cannot be reached at all fails within
///   [`UNREACHABLE_AT_START`], naming the cause.
/// - **Clear failure:** permanent failures (wrong secret, revoked refresh token) are reported at once
///   to every waiter, and repeated from memory for a short cool-down instead of re-requested. A
///   token store whose lock cannot be taken fails the refresh with [`Error::Store`], which is not
///   remembered: the next caller tries again.
///
/// `TokenManager` is cheap to clone; clones share one token. Refreshes run on spawned tokio tasks, so
/// a caller that gives up waiting never cancels a refresh half-way (which could lose a rotated refresh
/// token). Time is tokio's clock: tests pause it (see [`tokio::time::Instant`]).
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use tokenwarden::{ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
///
/// let endpoint = TokenEndpoint::new("https://login.mypurecloud.com/oauth/token")?;
/// let grant = ClientCredentials::new(endpoint, "my-client-id", ClientSecret::new("my-secret"));
/// let tokens = TokenManager::builder(grant).build();
/// let bearer = tokens.bearer().await?;
/// // ... send a request with `bearer.header_value()`; on a 401:
/// let fresh = tokens.rejected(&bearer).await?;
/// # let _ = fresh; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("grant", self.inner.refresher.grant())
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// What an API's 401 said about the token it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Rejection {
    /// The API said the token has expired (Genesys: code `credentials.expired`).
    Expired,
    /// Anything else: revoked, unknown, or no reason given.
    #[default]
    Other,
}

impl Rejection {
    /// Reads the reason from a Genesys error `code` (`credentials.expired`, `bad.credentials`, ...)
    /// or an OAuth `WWW-Authenticate` error description mentioning expiry.
    pub fn from_code(code: Option<&str>) -> Self {
        match code {
            Some(c) if c.to_ascii_lowercase().contains("expired") => Rejection::Expired,
            _ => Rejection::Other,
        }
    }
}

/// The error for the waiters of a refresh that panicked or was cancelled.
fn abandoned(a: Abandoned) -> Error {
    Error::Internal(match a {
        Abandoned::Panicked(msg) => {
            format!("the token refresh panicked ({msg}); the next request starts a new one")
        }
        Abandoned::Cancelled => {
            "the token refresh was cancelled (its runtime is shutting down)".into()
        }
    })
}

struct Inner {
    /// The token handed out on the fast path. Written by a finishing refresh, and cleared (compare
    /// and swap) when the API rejects it.
    current: ArcSwapOption<HeldToken>,
    /// At most one refresh at a time.
    flight: SingleFlight<Bearer, Error>,
    refresher: Refresher,
    timing: Timing,
    timer: RefreshTimer,
    failures: Failures,
    counters: Counters,
    /// Tokens in a row that the API refused after accepting them at most once.
    single_use: std::sync::atomic::AtomicU32,
    /// guards the token whose 401s are not healed for a while (`client::policy::may_heal`).
    doubt: std::sync::Mutex<Doubt>,
    /// Where refreshes are recorded: given to the builder, or the first client's.
    recorder: std::sync::OnceLock<crate::observe::Recorder>,
}

/// How many tokens in a row the API may refuse after at most one use each before the manager
/// stops replacing them: see [`TokenManager::single_use_streak`].
pub(crate) const MAX_SINGLE_USE_TOKENS: u32 = 8;

/// How long the single-use streak stops heals before it lets one through again.
pub(crate) const SINGLE_USE_STOP: std::time::Duration = std::time::Duration::from_secs(300);

/// The token a heal could not help, as the client's heal rule (`client::policy::may_heal`) keeps
/// it: its generation and until when its 401s are not healed, and how many tokens in a row were
/// doubted so (the window grows with them).
#[derive(Debug, Default)]
struct Doubt {
    /// The doubted token's generation, and the end of its window.
    token: Option<(u64, Instant)>,
    /// The generation of the token the last heal gave ([`TokenManager::rejected_with`]).
    healed_to: Option<u64>,
    /// Until when the single-use streak stops heals ([`TokenManager::single_use_streak`]).
    streak_stop: Option<Instant>,
    /// Tokens doubted since the last heal that worked.
    in_a_row: u32,
}

/// Configures a [`TokenManager`].
pub struct TokenManagerBuilder {
    grant: Arc<dyn Grant>,
    store: Option<Arc<dyn TokenStore>>,
    jitter: Arc<dyn Jitter>,
    policy: RefreshPolicy,
    backoff: Backoff,
    fatal_cooldown: Duration,
    mint: Option<MintPacing>,
    recorder: Option<crate::observe::Recorder>,
}

impl std::fmt::Debug for TokenManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManagerBuilder")
            .field("grant", &self.grant)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TokenManagerBuilder {
    /// Draws jitter from `jitter` (default: random; tests pass `FixedJitter(0.0)`).
    pub fn jitter(mut self, jitter: impl Jitter) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// When to refresh (default: [`RefreshPolicy::default`]).
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How to retry transient token-endpoint failures once no valid token is left (default:
    /// [`Backoff::default`]: up to 8 attempts within 60 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Shares the token through `store` (a file, Redis, ...).
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Shares the token through an already shared `store`.
    pub fn shared_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Spaces this manager's token requests with `pacing`, shared with the other managers of a
    /// token pool (and the fleet's processes, when the pacing is shared). Default: no spacing.
    pub fn mint_pacing(mut self, pacing: MintPacing) -> Self {
        self.mint = Some(pacing);
        self
    }

    /// Records this manager's token refreshes (and why they started) in `recorder`. Without it,
    /// the first [`ApiClient`](crate::ApiClient) built with the manager gives its own.
    pub fn recorder(mut self, recorder: crate::observe::Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// How long a permanent failure is repeated from memory (default [`DEFAULT_FATAL_COOLDOWN`]).
    pub fn fatal_cooldown(mut self, d: Duration) -> Self {
        self.fatal_cooldown = d;
        self
    }

    /// The manager. It fetches nothing until the first [`TokenManager::bearer`] call.
    ///
    /// A token supplied up front ([`StaticToken`](crate::StaticToken)) that is not a legal header
    /// value is not used: every [`bearer`](TokenManager::bearer) call then fails with
    /// [`Error::Config`] saying why.
    pub fn build(self) -> TokenManager {
        let timing = Timing::new(self.policy, Arc::clone(&self.jitter));
        let current = ArcSwapOption::empty();
        let given = match self.grant.initial() {
            None => Given::Nothing,
            // A token that says it has already expired (a JWT `exp` in the past, a lifetime of
            // zero) is not handed out for the lifetime floor's second: it cannot be replaced, and
            // the API would refuse it.
            Some((token, lifetime))
                if lifetime.is_some_and(|d| d.is_zero())
                    || crate::token::jwt_expiry(token.expose_secret())
                        .is_some_and(|exp| exp <= wall_now()) =>
            {
                Given::Unusable(Error::StaticTokenExpired {
                    reason: "has expired (its expiry has passed)",
                })
            }
            Some((token, lifetime)) => {
                match timing.given(token, lifetime, Instant::now(), wall_now()) {
                    Ok(held) => {
                        current.store(Some(Arc::new(held)));
                        Given::Usable
                    }
                    Err(problem) => Given::Unusable(Error::Config(format!(
                        "the access token supplied directly cannot be used: {problem}"
                    ))),
                }
            }
        };
        let pause = self.backoff.initial.max(Duration::from_secs(1));
        TokenManager {
            inner: Arc::new(Inner {
                current,
                flight: SingleFlight::new(abandoned),
                refresher: Refresher::new(self.grant, given, self.store, self.backoff, self.jitter)
                    .with_mint_pacing(self.mint),
                timing,
                timer: RefreshTimer::default(),
                failures: Failures::new(self.fatal_cooldown, pause),
                counters: Counters::default(),
                single_use: std::sync::atomic::AtomicU32::new(0),
                doubt: std::sync::Mutex::default(),
                recorder: self
                    .recorder
                    .map(std::sync::OnceLock::from)
                    .unwrap_or_default(),
            }),
        }
    }
}

impl TokenManager {
    /// Starts configuring a manager for `grant`.
    pub fn builder(grant: impl Grant) -> TokenManagerBuilder {
        Self::builder_shared(Arc::new(grant))
    }

    /// Starts configuring a manager for an already shared `grant`.
    pub fn builder_shared(grant: Arc<dyn Grant>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            grant,
            store: None,
            jitter: Arc::new(RandomJitter),
            policy: RefreshPolicy::default(),
            backoff: Backoff::default(),
            fatal_cooldown: DEFAULT_FATAL_COOLDOWN,
            mint: None,
            recorder: None,
        }
    }

    /// A valid token for the next request.
    ///
    /// Returns at once while the token is fresh, and also during its refresh window (starting a
    /// background refresh). Waits only when there is no valid token: the first call, or after the
    /// token expired or was rejected.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the token endpoint rejects the credentials,
    /// [`Error::TokenEndpointUnavailable`] when it keeps failing after the current token expired
    /// (or, at the start of a run, cannot be reached at all),
    /// [`Error::TokenDecode`] when it answers something that is not a usable token,
    /// [`Error::StaticTokenExpired`] for a static token past its expiry, [`Error::Internal`] for a
    /// refresh that panicked or was cancelled.
    pub async fn bearer(&self) -> Result<Bearer, Error> {
        self.bearer_waited().await.map(|(b, _)| b)
    }

    /// [`bearer`](Self::bearer), and whether the caller waited for a refresh to finish (a span
    /// of the request links to it).
    pub(crate) async fn bearer_waited(&self) -> Result<(Bearer, bool), Error> {
        let inner = &self.inner;
        let now = Instant::now();
        {
            let guard = inner.current.load();
            if let Some(t) = guard.as_ref() {
                match t.freshness(now) {
                    Freshness::Fresh => {
                        t.mark_used();
                        return Ok((Bearer::new(Arc::clone(t), now), false));
                    }
                    Freshness::Stale => {
                        t.mark_used();
                        inner.refresh_in_background(now);
                        return Ok((Bearer::new(Arc::clone(t), now), false));
                    }
                    Freshness::Expired => {}
                }
            }
        }
        let (b, waited) = Inner::refresh(inner, Reason::Reactive, None).await?;
        b.held.mark_used();
        Ok((b, waited))
    }

    /// Reports that the API rejected `token` (HTTP 401) and returns a token to retry with.
    ///
    /// Keyed on the rejected token: if it is still current, it is withdrawn at once (also while a
    /// refresh is running) and one refresh starts (however many callers report it); if it was
    /// already replaced, the current token is returned and nothing is fetched.
    ///
    /// # Errors
    /// As [`bearer`](Self::bearer); a static token gives [`Error::StaticTokenExpired`].
    pub async fn rejected(&self, token: &Bearer) -> Result<Bearer, Error> {
        self.rejected_with(token, Rejection::Other).await
    }

    /// [`rejected`](Self::rejected), saying what the 401 said about the token, so that the manager
    /// can learn how early the server lets tokens die (clock skew).
    ///
    /// The rule: a token the API calls **expired** ([`Rejection::Expired`]) while the manager still
    /// believed it valid is learned from at once: later tokens are refreshed as much earlier as
    /// this one died before its advertised expiry. Any other 401 ([`Rejection::Other`]: Genesys
    /// answers `bad.credentials` for expired tokens too) of a token the API had accepted is a
    /// provisional guess, applied to the next tokens at once: confirmed when the next such 401
    /// comes at the same age (within 100 ms or 1% of the lifetime), undone when it comes at
    /// another age or a token outlives the guess (revocations strike at random ages, skew at a
    /// fixed one). After a guess was undone, single 401s make no new guess for an hour; only four
    /// in a row at the same age teach. The learned skew halves every hour without a new sample,
    /// and never shortens a token's lifetime to less than a fifth of what was advertised, nor
    /// below [`RefreshPolicy::min_lifetime`]. The current estimate is in
    /// [`Metrics::clock_skew`].
    ///
    /// # Errors
    /// As [`rejected`](Self::rejected).
    pub async fn rejected_with(&self, token: &Bearer, why: Rejection) -> Result<Bearer, Error> {
        let inner = &self.inner;
        match inner.timing.note_rejection(token, why) {
            Change::None => {}
            Change::Learned(skew) => tracing::info!(
                skew_ms = skew.as_millis() as u64,
                ?why,
                "the API lets tokens die before their advertised expiry; refreshing that much earlier"
            ),
            Change::Guessed(skew) => tracing::info!(
                skew_ms = skew.as_millis() as u64,
                ?why,
                "a token died before its advertised expiry; refreshing the next ones that much \
                 earlier until the next 401 tells skew from revocation"
            ),
            Change::Undone(skew) => tracing::info!(
                skew_ms = skew.as_millis() as u64,
                "tokens die at different ages (revocations, not clock skew); no longer refreshing early"
            ),
        }
        let (b, _) = Inner::refresh(inner, Reason::Rejected, Some(token.generation())).await?;
        b.held.mark_used();
        inner
            .doubt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .healed_to = Some(b.generation());
        Ok(b)
    }

    /// Whether a token is at hand that may still be sent (not expired, not withdrawn): a token
    /// pool sends requests only with tokens that are ready.
    pub(crate) fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.inner
            .current
            .load()
            .as_ref()
            .is_some_and(|t| t.freshness(now) != Freshness::Expired && !t.is_withdrawn())
    }

    /// Starts fetching a token in the background when none is ready, none is being fetched and
    /// no failure is fresh (a token pool warming up its tokens while the others serve).
    pub(crate) fn prefetch(&self) {
        let inner = &self.inner;
        let now = Instant::now();
        if self.is_ready() || inner.flight.is_running() || inner.failures.background_paused(now) {
            return;
        }
        drop(Inner::start_or_join(inner, Reason::Reactive, None, now));
    }

    /// Notes that the API refused `token` (HTTP 401) and says whether to stop replacing tokens:
    /// true once [`MAX_SINGLE_USE_TOKENS`] tokens in a row were each refused after the API had
    /// accepted them at most once.
    ///
    /// A token revoked in use has served many requests; an API (or something in front of it) that
    /// refuses every token after its first use would otherwise make the client buy one token per
    /// request for as long as the job runs. Only the first refusal of the current token counts
    /// (one per token, however many requests carried it); a token accepted twice or more before
    /// its refusal ends the streak.
    ///
    /// The stop lasts [`SINGLE_USE_STOP`] (5 minutes), then one heal is let through, and the
    /// next refusal stops them for as long again: an outage of the API's token check that
    /// refused every token for a while costs a token per 5 minutes, and the job heals within 5
    /// minutes of its end, instead of waiting for the dead token's proactive refresh (hours
    /// later with 24-hour tokens).
    pub(crate) fn single_use_streak(&self, token: &Bearer, now: Instant) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.is_current(token) || token.held.withdrawn.load(Relaxed) {
            return false;
        }
        if token.held.accepted_again.load(Relaxed) {
            self.inner.single_use.store(0, Relaxed);
            self.inner
                .doubt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .streak_stop = None;
            return false;
        }
        if self.inner.single_use.fetch_add(1, Relaxed) < MAX_SINGLE_USE_TOKENS {
            return false;
        }
        let mut doubt = self.inner.doubt.lock().unwrap_or_else(|p| p.into_inner());
        match doubt.streak_stop {
            Some(until) if now < until => true,
            // The stop is over: this one heal goes through; the next refusal stops them again.
            Some(_) => {
                doubt.streak_stop = None;
                false
            }
            None => {
                doubt.streak_stop = Some(now + SINGLE_USE_STOP);
                true
            }
        }
    }

    /// Until when a 401 carrying `token` is not healed, if a heal could not help it (see
    /// [`doubt`](Self::doubt)) and it is still the current token; `None` for any other token (a
    /// doubted token already replaced costs no token request to heal: the current one is
    /// handed on). The rule is the client's (`client::policy::may_heal`); the manager keeps
    /// what it needs, keyed on the generation.
    pub(crate) fn doubted_until(&self, token: &Bearer) -> Option<Instant> {
        if !self.is_current(token) {
            return None;
        }
        let doubt = self.inner.doubt.lock().unwrap_or_else(|p| p.into_inner());
        doubt
            .token
            .filter(|(generation, _)| *generation == token.generation())
            .map(|(_, until)| until)
    }

    /// Whether `token` is the one the last heal gave ([`rejected_with`](Self::rejected_with)):
    /// a 401 of it before the API accepted it says the heal did not help, whichever request
    /// carried it.
    pub(crate) fn came_from_heal(&self, token: &Bearer) -> bool {
        let doubt = self.inner.doubt.lock().unwrap_or_else(|p| p.into_inner());
        doubt.healed_to == Some(token.generation())
    }

    fn is_current(&self, token: &Bearer) -> bool {
        self.inner
            .current
            .load()
            .as_ref()
            .is_some_and(|c| c.generation == token.generation())
    }

    /// Records that a heal could not help `token` (the API refused it right after a heal), so
    /// that its 401s are not healed until `now + window(n)`, `n` counting the tokens doubted in a
    /// row (this one included) since a heal last worked. Only the current token is doubted (the
    /// 401s of a replaced one cost no token request), and once per window: the many requests
    /// refused with one token count once. Returns the window when it starts one.
    pub(crate) fn doubt(
        &self,
        token: &Bearer,
        now: Instant,
        window: impl FnOnce(u32) -> Duration,
    ) -> Option<Duration> {
        let is_current = self.is_current(token);
        let mut doubt = self.inner.doubt.lock().unwrap_or_else(|p| p.into_inner());
        let running = doubt
            .token
            .is_some_and(|(generation, until)| generation == token.generation() && now < until);
        if !is_current || running {
            return None;
        }
        doubt.in_a_row = doubt.in_a_row.saturating_add(1);
        let d = window(doubt.in_a_row);
        doubt.token = Some((token.generation(), now + d));
        Some(d)
    }

    /// A heal worked (the API accepted the request it replayed): the next doubt starts with the
    /// shortest window again.
    pub(crate) fn heal_worked(&self) {
        let mut doubt = self.inner.doubt.lock().unwrap_or_else(|p| p.into_inner());
        doubt.in_a_row = 0;
    }

    /// The current token, if any, without refreshing or waiting (even if it is expired).
    pub fn current(&self) -> Option<Bearer> {
        let now = Instant::now();
        self.inner.current.load_full().map(|t| Bearer::new(t, now))
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let now = Instant::now();
        let tte = self
            .inner
            .current
            .load()
            .as_ref()
            .filter(|t| !t.never_expires)
            .map(|t| t.schedule.expires_at.saturating_duration_since(now));
        self.inner.counters.snapshot(
            tte,
            self.inner.timing.skew(now),
            self.inner.flight.abandoned(),
        )
    }

    /// Records the refreshes in `recorder` unless the manager records somewhere already.
    pub(crate) fn record_into(&self, recorder: &crate::observe::Recorder) {
        let _ = self.inner.recorder.set(recorder.clone());
    }

    /// The record this manager's refreshes go to, if it has one.
    pub fn recorder(&self) -> Option<&crate::observe::Recorder> {
        self.inner.recorder.get()
    }

    /// The grant's name (`client_credentials`, `refresh_token`, `static`).
    pub fn grant_name(&self) -> &'static str {
        self.inner.refresher.grant().name()
    }
}

impl Inner {
    /// Arms the refresh timer for a new token, so that a token in use is refreshed on time even if
    /// no caller happens to ask during its refresh window (say, every worker is waiting out a 429).
    /// An idle token (never handed out) is not refreshed: the next caller fetches on demand, and an
    /// idle process does not mint tokens forever. The timer holds only a weak reference.
    fn arm_timer(self: &Arc<Self>, t: &Arc<HeldToken>) {
        if t.never_expires || self.refresher.is_static() {
            return;
        }
        let weak = Arc::downgrade(self);
        let generation = t.generation;
        self.timer.arm(t.schedule.refresh_at, move || {
            let Some(inner) = weak.upgrade() else { return };
            let due = inner.current.load().as_ref().is_some_and(|c| {
                c.generation == generation && c.used.load(std::sync::atomic::Ordering::Relaxed)
            });
            if due {
                tracing::debug!(generation, "refresh timer fired");
                inner.refresh_in_background(Instant::now());
            }
        });
    }

    /// Starts a refresh without waiting for it, unless one is running or a recent one failed.
    fn refresh_in_background(self: &Arc<Self>, now: Instant) {
        if self.flight.is_running() || self.failures.background_paused(now) {
            return;
        }
        // `start_or_join` re-checks everything under the lock; we just do not await the result.
        drop(Inner::start_or_join(self, Reason::Proactive, None, now));
    }

    /// A token, and whether a refresh was waited for to get it.
    async fn refresh(
        self: &Arc<Self>,
        reason: Reason,
        rejected_generation: Option<u64>,
    ) -> Result<(Bearer, bool), Error> {
        match Inner::start_or_join(self, reason, rejected_generation, Instant::now()) {
            Next::Ready(b) => Ok((b, false)),
            Next::Wait(flight) => flight.await.map(|b| (b, true)),
            Next::Fail(e) => Err(e),
        }
    }

    /// Under the single-flight lock: a token that is ready, the refresh to wait for (started here if
    /// none is running), or a recent permanent failure. A rejected token that is still current is
    /// withdrawn first, whether a refresh is running or not.
    fn start_or_join(
        self: &Arc<Self>,
        reason: Reason,
        rejected_generation: Option<u64>,
        now: Instant,
    ) -> Next {
        let slot = self.flight.lock();
        let replaced = self.current.load_full();
        let mut current = replaced.clone();
        if let (Some(t), Some(g)) = (&replaced, rejected_generation)
            && t.generation == g
        {
            self.withdraw(t);
            current = None;
        }
        if let Some(t) = &current {
            let usable = t.freshness(now) != Freshness::Expired;
            let still_wanted = match reason {
                // Someone refreshed while we were getting here.
                Reason::Proactive => t.freshness(now) == Freshness::Fresh,
                // A token is usable: a caller that found none raced with a refresh, and a rejected
                // token was already replaced by this one.
                Reason::Reactive | Reason::Rejected => true,
            };
            if usable && still_wanted {
                return Next::Ready(Bearer::new(Arc::clone(t), now));
            }
        }
        if let Some(running) = slot.running() {
            return Next::Wait(running);
        }
        if let Some(err) = self.failures.recent_permanent(now) {
            return Next::Fail(err);
        }
        let (counter, observed) = match reason {
            Reason::Proactive => (&self.counters.proactive_refreshes, RefreshReason::Proactive),
            Reason::Reactive => (&self.counters.reactive_refreshes, RefreshReason::OnDemand),
            Reason::Rejected => (
                &self.counters.rejected_refreshes,
                RefreshReason::AfterUnauthorized,
            ),
        };
        Counters::inc(counter);
        if let Some(r) = self.recorder.get() {
            r.refresh_started(observed);
        }
        let this = Arc::clone(self);
        let span = Refreshing {
            id: crate::observe::next_refresh_id(),
            reason: observed,
            started: crate::clock::wall_now(),
        };
        Next::Wait(slot.start(async move { this.run_refresh(reason, replaced, span).await }))
    }

    /// Nobody gets `t` from now on; a refresh waiting for it to run out stops waiting.
    fn withdraw(&self, t: &Arc<HeldToken>) {
        let previous = self.current.compare_and_swap(t, None);
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, t)) {
            tracing::debug!(generation = t.generation, "token withdrawn after a 401");
        }
        self.refresher.withdrawn(t);
    }

    /// The body of a refresh flight: obtains a token and publishes the outcome.
    async fn run_refresh(
        self: Arc<Self>,
        reason: Reason,
        replaced: Option<Arc<HeldToken>>,
        span: Refreshing,
    ) -> Result<Bearer, Error> {
        tracing::debug!(
            ?reason,
            grant = self.refresher.grant().name(),
            "token refresh started"
        );
        let job = Job {
            reason,
            replaced: replaced.as_deref(),
        };
        let obtained = self
            .refresher
            .obtain(&job, &self.timing, &self.counters)
            .await;
        if let Some(o) = self.recorder.get().and_then(|r| r.observer()) {
            o.refresh(&crate::observe::RefreshEnd {
                id: span.id,
                reason: span.reason,
                started: span.started,
                ended: crate::clock::wall_now(),
                ok: obtained.is_ok(),
            });
        }
        match obtained {
            Ok(mut held) => {
                held.refresh_id = span.id;
                let held = Arc::new(held);
                tracing::info!(
                    generation = held.generation,
                    lifetime_s = held.lifetime().as_secs_f64(),
                    ?reason,
                    "new access token"
                );
                self.current.store(Some(Arc::clone(&held)));
                self.arm_timer(&held);
                Ok(Bearer::new(held, Instant::now()))
            }
            Err(failure) => {
                Counters::inc(&self.counters.refresh_failures);
                if let Some(r) = self.recorder.get() {
                    r.refresh_failed();
                }
                self.failures.note(&failure, Instant::now());
                // The error goes to every waiting caller; a background refresh has none, so only
                // its failure is worth a warning of its own.
                if reason == Reason::Proactive {
                    tracing::warn!(error = %failure.error, "background token refresh failed; the current token is still used");
                } else {
                    tracing::debug!(error = %failure.error, "token refresh failed");
                }
                Err(failure.error)
            }
        }
    }
}

/// A refresh being run, for its observer (see `observe::RefreshEnd`).
struct Refreshing {
    id: u64,
    reason: RefreshReason,
    started: std::time::SystemTime,
}

/// What a caller that found no usable token does next.
enum Next {
    Ready(Bearer),
    Wait(Flight<Result<Bearer, Error>>),
    Fail(Error),
}

#[cfg(test)]
mod tests;
