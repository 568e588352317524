//! The token lifecycle: one valid token always at hand, refreshed before it expires, one refresh at a
//! time however many tasks ask.

use crate::clock::{Clock, Instant, Jitter, RandomJitter, TokioClock};
use crate::error::Error;
use crate::grant::{FetchError, Grant, TokenResponse};
use crate::metrics::{Counters, Metrics};
use crate::retry::Backoff;
use crate::store::{StoredToken, TokenStore};
use crate::token::{Bearer, Freshness, HeldToken, RefreshPolicy, expiry, jwt_expiry};
use arc_swap::ArcSwapOption;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long a permanent failure (bad secret, revoked grant) is answered from memory instead of by a
/// new token request: a job whose credentials are wrong must stop, not hammer the token endpoint.
pub const DEFAULT_FATAL_COOLDOWN: Duration = Duration::from_secs(5);

/// Keeps a valid access token at hand.
///
/// - **Fast path without locks:** while the token is fresh, [`bearer`](Self::bearer) is an atomic
///   load and a clock read.
/// - **Proactive refresh:** once the token enters its refresh window (see [`RefreshPolicy`]), the
///   first caller starts a refresh in the background and every caller keeps getting the still-valid
///   token. Callers wait only when no valid token exists.
/// - **Single flight:** at most one token request is in flight per manager; everyone who needs the
///   result shares it (success or error).
/// - **Keyed invalidation:** [`rejected`](Self::rejected) takes the token a 401 came back for. Any
///   number of 401s for the same token cause one refresh; a 401 for a token already replaced causes
///   none.
/// - **Outage tolerance:** transient token-endpoint failures are retried with backoff for as long as
///   the current token is still valid, so an outage shorter than the remaining lifetime is invisible.
/// - **Clear failure:** permanent failures (wrong secret, revoked refresh token) are reported at once
///   to every waiter, and repeated from memory for a short cool-down instead of re-requested.
///
/// `TokenManager` is cheap to clone; clones share one token. Refreshes run on spawned tokio tasks, so
/// a caller that gives up waiting never cancels a refresh half-way (which could lose a rotated refresh
/// token).
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
            .field("grant", &self.inner.grant)
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

type SharedRefresh = Shared<BoxFuture<'static, Result<Bearer, Error>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Proactive,
    Reactive,
    Rejected,
}

struct Inner {
    /// The token handed out on the fast path. Written only by a finishing refresh (and cleared by a
    /// rejection), always while `inflight` is locked or by the refresh that owns `inflight`.
    current: ArcSwapOption<HeldToken>,
    /// True while a refresh is in flight: lets the fast path skip the `inflight` lock.
    refreshing: AtomicBool,
    /// guards the single in-flight refresh, shared by everyone waiting for it.
    inflight: Mutex<Option<SharedRefresh>>,
    /// The last permanent failure and when it happened (answered from memory for `fatal_cooldown`).
    fatal: Mutex<Option<(Instant, Error)>>,
    /// No background refresh before this many nanoseconds after `origin` (set after a failure).
    proactive_not_before: AtomicU64,
    origin: Instant,
    grant: Arc<dyn Grant>,
    /// The grant supplies its one token up front (a static token): nothing can be fetched.
    static_grant: bool,
    store: Option<Arc<dyn TokenStore>>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    policy: RefreshPolicy,
    backoff: Backoff,
    fatal_cooldown: Duration,
    next_generation: AtomicU64,
    counters: Counters,
}

/// Configures a [`TokenManager`].
pub struct TokenManagerBuilder {
    grant: Arc<dyn Grant>,
    store: Option<Arc<dyn TokenStore>>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    policy: RefreshPolicy,
    backoff: Backoff,
    fatal_cooldown: Duration,
}

impl TokenManagerBuilder {
    /// Reads time from `clock` (default: tokio's clock, which tests can pause).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

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

    /// How long a permanent failure is repeated from memory (default [`DEFAULT_FATAL_COOLDOWN`]).
    pub fn fatal_cooldown(mut self, d: Duration) -> Self {
        self.fatal_cooldown = d;
        self
    }

    /// The manager. It fetches nothing until the first [`TokenManager::bearer`] call.
    pub fn build(self) -> TokenManager {
        let origin = self.clock.now();
        let initial = self.grant.initial();
        let inner = Inner {
            static_grant: initial.is_some(),
            current: ArcSwapOption::empty(),
            refreshing: AtomicBool::new(false),
            inflight: Mutex::new(None),
            fatal: Mutex::new(None),
            proactive_not_before: AtomicU64::new(0),
            origin,
            grant: self.grant,
            store: self.store,
            clock: self.clock,
            jitter: self.jitter,
            policy: self.policy,
            backoff: self.backoff,
            fatal_cooldown: self.fatal_cooldown,
            next_generation: AtomicU64::new(1),
            counters: Counters::default(),
        };
        if let Some((token, lifetime)) = initial {
            let now = inner.clock.now();
            let held = inner.held_static(token, lifetime, now, inner.clock.wall());
            inner.current.store(Some(Arc::new(held)));
        }
        TokenManager {
            inner: Arc::new(inner),
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
            clock: Arc::new(TokioClock::new()),
            jitter: Arc::new(RandomJitter),
            policy: RefreshPolicy::default(),
            backoff: Backoff::default(),
            fatal_cooldown: DEFAULT_FATAL_COOLDOWN,
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
    /// [`Error::TokenEndpointUnavailable`] when it keeps failing after the current token expired,
    /// [`Error::StaticTokenExpired`] for a static token past its expiry.
    pub async fn bearer(&self) -> Result<Bearer, Error> {
        let inner = &self.inner;
        let now = inner.clock.now();
        {
            let guard = inner.current.load();
            if let Some(t) = guard.as_ref() {
                match t.freshness(now) {
                    Freshness::Fresh => {
                        t.mark_used();
                        return Ok(Bearer(Arc::clone(t)));
                    }
                    Freshness::Stale => {
                        t.mark_used();
                        inner.refresh_in_background(now);
                        return Ok(Bearer(Arc::clone(t)));
                    }
                    Freshness::Expired => {}
                }
            }
        }
        let b = Inner::refresh(inner, Reason::Reactive, None).await?;
        b.0.mark_used();
        Ok(b)
    }

    /// Reports that the API rejected `token` (HTTP 401) and returns a token to retry with.
    ///
    /// Keyed on the rejected token: if it is still current, it is withdrawn and one refresh starts
    /// (however many callers report it); if it was already replaced, the current token is returned
    /// and nothing is fetched.
    ///
    /// # Errors
    /// As [`bearer`](Self::bearer); a static token gives [`Error::StaticTokenExpired`].
    pub async fn rejected(&self, token: &Bearer) -> Result<Bearer, Error> {
        self.rejected_with(token, Rejection::Other).await
    }

    /// [`rejected`](Self::rejected), saying what the 401 said about the token: a token the API
    /// calls expired while this manager still thought it valid is evidence that the server's clock
    /// runs ahead (or that it shortens lifetimes), which the manager can learn from.
    ///
    /// # Errors
    /// As [`rejected`](Self::rejected).
    pub async fn rejected_with(&self, token: &Bearer, why: Rejection) -> Result<Bearer, Error> {
        let _ = why; // learned from by the skew estimator
        let b = Inner::refresh(&self.inner, Reason::Rejected, Some(token.generation())).await?;
        b.0.mark_used();
        Ok(b)
    }

    /// The current token, if any, without refreshing or waiting (even if it is expired).
    pub fn current(&self) -> Option<Bearer> {
        self.inner.current.load_full().map(Bearer)
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let now = self.inner.clock.now();
        let tte = self
            .inner
            .current
            .load()
            .as_ref()
            .filter(|t| !t.never_expires)
            .map(|t| t.expires_at.saturating_duration_since(now));
        self.inner.counters.snapshot(tte)
    }

    /// The grant's name (`client_credentials`, `refresh_token`, `static`).
    pub fn grant_name(&self) -> &'static str {
        self.inner.grant.name()
    }
}

impl Inner {
    fn nanos_since_origin(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin)
            .as_nanos()
            .min(u64::MAX as u128) as u64
    }

    /// Arms a timer for the token's refresh point, so that a token in use is refreshed on time even
    /// if no caller happens to ask during its refresh window (say, every worker is waiting out a
    /// 429). An idle token (never handed out) is not refreshed: the next caller fetches on demand,
    /// and an idle process does not mint tokens forever. The timer holds only a weak reference.
    fn schedule_refresh(self: &Arc<Self>, t: &Arc<HeldToken>) {
        if t.never_expires || self.static_grant {
            return;
        }
        let weak = Arc::downgrade(self);
        let (generation, at) = (t.generation, t.refresh_at);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(inner) = weak.upgrade() else { return };
            let due = inner
                .current
                .load()
                .as_ref()
                .is_some_and(|c| c.generation == generation && c.used.load(Ordering::Relaxed));
            if due {
                tracing::debug!(generation, "refresh timer fired");
                inner.refresh_in_background(inner.clock.now());
            }
        });
    }

    /// Starts a refresh without waiting for it, unless one is running or a recent one failed.
    fn refresh_in_background(self: &Arc<Self>, now: Instant) {
        if self.refreshing.load(Ordering::Acquire) {
            return;
        }
        if self.nanos_since_origin(now) < self.proactive_not_before.load(Ordering::Relaxed) {
            return;
        }
        let this = Arc::clone(self);
        // `refresh` re-checks everything under the lock; we just do not await the result.
        drop(Inner::start_or_join(&this, Reason::Proactive, None, now));
    }

    async fn refresh(
        self: &Arc<Self>,
        reason: Reason,
        rejected_generation: Option<u64>,
    ) -> Result<Bearer, Error> {
        let now = self.clock.now();
        match Inner::start_or_join(self, reason, rejected_generation, now) {
            Next::Ready(b) => Ok(b),
            Next::Wait(shared) => shared.await,
            Next::Fail(e) => Err(e),
        }
    }

    /// Under the `inflight` lock: a token that is ready, the refresh to wait for (started here if
    /// none is running), or a recent permanent failure.
    fn start_or_join(
        self: &Arc<Self>,
        reason: Reason,
        rejected_generation: Option<u64>,
        now: Instant,
    ) -> Next {
        let mut slot = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = slot.as_ref() {
            return Next::Wait(running.clone());
        }
        let current = self.current.load_full();
        if let Some(t) = &current {
            let usable = t.freshness(now) != Freshness::Expired;
            let still_wanted = match (reason, rejected_generation) {
                // The rejected token was already replaced: use its replacement.
                (Reason::Rejected, Some(g)) => t.generation != g,
                // Someone refreshed while we were getting here.
                (Reason::Proactive, _) => t.freshness(now) == Freshness::Fresh,
                _ => true,
            };
            if usable && still_wanted {
                return Next::Ready(Bearer(Arc::clone(t)));
            }
        }
        if let Some(err) = self.recent_fatal(now) {
            return Next::Fail(err);
        }
        let replaced = current.clone();
        if reason == Reason::Rejected
            && current
                .as_ref()
                .is_some_and(|t| Some(t.generation) == rejected_generation)
        {
            // Nobody else gets the rejected token from now on.
            self.current.store(None);
        }
        match reason {
            Reason::Proactive => Counters::inc(&self.counters.proactive_refreshes),
            Reason::Reactive => Counters::inc(&self.counters.reactive_refreshes),
            Reason::Rejected => Counters::inc(&self.counters.rejected_refreshes),
        }
        self.refreshing.store(true, Ordering::Release);
        let this = Arc::clone(self);
        let task = tokio::spawn(async move { this.run_refresh(reason, replaced).await });
        let shared = async move {
            task.await
                .unwrap_or_else(|e| Err(Error::Internal(format!("token refresh task ended: {e}"))))
        }
        .boxed()
        .shared();
        *slot = Some(shared.clone());
        Next::Wait(shared)
    }

    fn recent_fatal(&self, now: Instant) -> Option<Error> {
        let g = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.fatal_cooldown)
            .map(|(_, e)| e.clone())
    }

    /// The body of the spawned refresh task: obtains a token, publishes the outcome, frees the slot.
    async fn run_refresh(
        self: Arc<Self>,
        reason: Reason,
        replaced: Option<Arc<HeldToken>>,
    ) -> Result<Bearer, Error> {
        tracing::debug!(?reason, grant = self.grant.name(), "token refresh started");
        let result = self.obtain(reason, replaced.as_deref()).await;
        let now = self.clock.now();
        match &result {
            Ok(b) => {
                tracing::info!(
                    generation = b.0.generation,
                    lifetime_s = b.0.lifetime().as_secs_f64(),
                    ?reason,
                    "new access token"
                );
                self.current.store(Some(Arc::clone(&b.0)));
                Inner::schedule_refresh(&self, &b.0);
            }
            Err(e) => {
                Counters::inc(&self.counters.refresh_failures);
                // No background retry for a while: the refresh loop already retried.
                let pause = self.backoff.initial.max(Duration::from_secs(1));
                self.proactive_not_before
                    .store(self.nanos_since_origin(now + pause), Ordering::Relaxed);
                // The error goes to every waiting caller; a background refresh has none, so only
                // its failure is worth a warning of its own.
                if reason == Reason::Proactive {
                    tracing::warn!(error = %e, "background token refresh failed; the current token is still used");
                } else {
                    tracing::debug!(error = %e, "token refresh failed");
                }
                if !e.is_retryable() {
                    *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, e.clone()));
                }
            }
        }
        let mut slot = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        self.refreshing.store(false, Ordering::Release);
        result
    }

    async fn obtain(&self, reason: Reason, replaced: Option<&HeldToken>) -> Result<Bearer, Error> {
        if self.static_grant {
            return Err(Error::StaticTokenExpired {
                reason: if reason == Reason::Rejected {
                    "was rejected by the API"
                } else {
                    "has expired"
                },
            });
        }
        let _store_lock = match &self.store {
            Some(s) => Some(s.lock().await?),
            None => None,
        };
        if let Some(store) = &self.store {
            match store.load().await {
                Ok(Some(stored)) => {
                    let is_replaced = replaced.is_some_and(|r| r.access == stored.access_token);
                    if !is_replaced && let Some(held) = self.held_from_store(&stored) {
                        Counters::inc(&self.counters.adopted_from_store);
                        tracing::debug!("adopted a token from the shared store");
                        return Ok(Bearer(Arc::new(held)));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "token store load failed; fetching"),
            }
        }
        let (resp, sent_at, sent_wall) = self.fetch_with_retry(reason, replaced).await?;
        let held = self.held_from_response(resp, sent_at, sent_wall);
        Counters::inc(&self.counters.tokens_fetched);
        if let Some(store) = &self.store {
            let stored = StoredToken {
                access_token: held.access.clone(),
                obtained_at: sent_wall,
                expires_at: held.expires_at_wall,
            };
            if let Err(e) = store.save(&stored).await {
                tracing::warn!(error = %e, "token store save failed; token kept in memory");
            }
        }
        Ok(Bearer(Arc::new(held)))
    }

    async fn fetch_with_retry(
        &self,
        reason: Reason,
        replaced: Option<&HeldToken>,
    ) -> Result<(TokenResponse, Instant, SystemTime), Error> {
        // While the token being replaced is still valid (a proactive refresh), keep trying until it
        // runs out: callers are served meanwhile. The retry budget counts from then.
        let serving_until = replaced
            .filter(|_| reason == Reason::Proactive)
            .map(|t| t.usable_until);
        let started = self.clock.now();
        let mut attempts = 0u32;
        let mut budget_attempts = 0u32;
        loop {
            attempts += 1;
            Counters::inc(&self.counters.token_requests);
            let sent_at = self.clock.now();
            let sent_wall = self.clock.wall();
            let failure = match self.grant.fetch().await {
                Ok(resp) => return Ok((resp, sent_at, sent_wall)),
                Err(FetchError::Fatal(e)) => return Err(e),
                Err(FetchError::Transient {
                    reason,
                    retry_after,
                }) => (reason, retry_after),
            };
            let now = self.clock.now();
            let delay = self
                .backoff
                .delay(attempts, failure.1, self.jitter.sample());
            let within_lifetime = serving_until.is_some_and(|until| now + delay < until);
            if !within_lifetime {
                budget_attempts += 1;
                let budget_start = serving_until.map_or(started, |u| u.max(started));
                let spent = now.saturating_duration_since(budget_start);
                if !self.backoff.allows(budget_attempts, spent, delay) {
                    return Err(Error::TokenEndpointUnavailable {
                        attempts,
                        elapsed: now.saturating_duration_since(started),
                        last: failure.0,
                    });
                }
            }
            tracing::warn!(
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                reason = %failure.0,
                "token request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn new_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    fn timed(
        &self,
        access: crate::AccessToken,
        obtained_at: Instant,
        expires_at: Instant,
        now_wall_at_obtained: SystemTime,
        refreshable: bool,
    ) -> HeldToken {
        let lifetime = expires_at.saturating_duration_since(obtained_at);
        let margin = self.policy.refresh_margin(lifetime, self.jitter.sample());
        let buffer = self.policy.expiry_buffer(lifetime);
        let usable_until = sub(expires_at, buffer, obtained_at);
        HeldToken {
            access,
            generation: self.new_generation(),
            obtained_at,
            expires_at,
            refresh_at: if refreshable {
                sub(expires_at, margin, obtained_at)
            } else {
                usable_until
            },
            usable_until,
            expires_at_wall: now_wall_at_obtained + lifetime,
            never_expires: false,
            used: AtomicBool::new(false),
            accepted: AtomicBool::new(false),
        }
    }

    fn held_from_response(
        &self,
        resp: TokenResponse,
        sent_at: Instant,
        sent_wall: SystemTime,
    ) -> HeldToken {
        let jwt = jwt_expiry(resp.access_token.expose_secret());
        let expires_at = expiry(
            sent_at,
            sent_wall,
            resp.expires_in,
            jwt,
            self.policy.default_lifetime,
        );
        self.timed(resp.access_token, sent_at, expires_at, sent_wall, true)
    }

    fn held_from_store(&self, stored: &StoredToken) -> Option<HeldToken> {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let remaining = stored.expires_at.duration_since(wall).ok()?;
        let lifetime = stored
            .expires_at
            .duration_since(stored.obtained_at)
            .unwrap_or(remaining)
            .max(remaining);
        let expires_at = now + remaining;
        let obtained_at = expires_at.checked_sub(lifetime).unwrap_or(now);
        let held = self.timed(
            stored.access_token.clone(),
            obtained_at,
            expires_at,
            wall - (lifetime - remaining),
            true,
        );
        (held.freshness(now) == Freshness::Fresh).then_some(held)
    }

    fn held_static(
        &self,
        token: crate::AccessToken,
        lifetime: Option<Duration>,
        now: Instant,
        wall: SystemTime,
    ) -> HeldToken {
        let jwt = jwt_expiry(token.expose_secret());
        if lifetime.is_none() && jwt.is_none() {
            // Unknown lifetime: valid until the API says otherwise.
            let far = Duration::from_secs(86400 * 365 * 30);
            return HeldToken {
                access: token,
                generation: self.new_generation(),
                obtained_at: now,
                expires_at: now + far,
                refresh_at: now + far,
                usable_until: now + far,
                expires_at_wall: wall + far,
                never_expires: true,
                used: AtomicBool::new(false),
                accepted: AtomicBool::new(false),
            };
        }
        let expires_at = expiry(now, wall, lifetime, jwt, self.policy.default_lifetime);
        self.timed(token, now, expires_at, wall, false)
    }
}

/// `t - d`, but not before `floor`.
fn sub(t: Instant, d: Duration, floor: Instant) -> Instant {
    t.checked_sub(d).map_or(floor, |x| x.max(floor))
}

/// What a caller that found no usable token does next.
enum Next {
    Ready(Bearer),
    Wait(SharedRefresh),
    Fail(Error),
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
