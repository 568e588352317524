//! The refresh procedure: how one new token is obtained. Take the store's lock, adopt a fresh token
//! another holder saved, or ask the grant (retrying transient failures within the budget), then save
//! the new token for the others.
//!
//! **How long transient failures are retried:**
//! - while the token being replaced may still be handed out (a background refresh), for as long as
//!   it may: callers are served meanwhile, so an outage shorter than the remaining lifetime is
//!   invisible. The moment that token is withdrawn (the API answered 401), the wait ends and the
//!   normal budget starts;
//! - then within the [`Backoff`] budget (default: 8 attempts within 60 s);
//! - but when no token was ever obtained and the endpoint cannot be reached at all (connection
//!   refused, name not resolved: [`FetchError::Unreachable`]), within [`UNREACHABLE_AT_START`]: a
//!   job started against a wrong URL or without network fails at once with the cause, while a job
//!   already running rides out a network blip with the full budget.
//!
//! A store whose lock cannot be taken (another process held it past the store's deadline, the cache
//! fails its safety checks) fails the refresh with that [`Error::Store`], and nothing is fetched:
//! the store's lock is what keeps several processes from minting tokens at once, and an unsafe
//! cache needs fixing. The failure is not remembered: the next caller tries again at once. Load and
//! save failures only lose the sharing (with a warning).
//!
//! **A fleet's store** ([`LockAttempt`]): when another holder is refreshing, the refresh waits for
//! its token (adopting it the moment it is saved) for at most the store's
//! [`lock_wait`](TokenStore::lock_wait), then fetches one itself; when the store cannot be reached
//! it fetches at once, on its own. A 401's token is withdrawn from the store (compare-and-delete)
//! before anything else. (A grant that rotates refresh tokens serialises its rotations through its
//! own [`RefreshTokenStore`](crate::store::RefreshTokenStore).)

use super::mint::MintPacing;
use super::timing::Timing;
use crate::clock::{Instant, Jitter, wall_now};
use crate::error::Error;
use crate::grant::{FetchError, Grant, TokenResponse};
use crate::metrics::Counters;
use crate::retry::Backoff;
use crate::store::{LockAttempt, StoreLock, StoredToken, TokenStore};
use crate::token::HeldToken;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// When no token was ever obtained, an unreachable token endpoint is given up after this long (then
/// the error names the cause: connection refused, DNS failure, ...).
pub const UNREACHABLE_AT_START: Duration = Duration::from_secs(4);

/// Why a refresh runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The token entered its refresh window: it is still handed out meanwhile.
    Proactive,
    /// No valid token: callers are waiting.
    Reactive,
    /// The API refused the token (HTTP 401): callers are waiting.
    Rejected,
}

/// One refresh to run.
pub(crate) struct Job<'a> {
    pub(crate) reason: Reason,
    /// The token being replaced, if any.
    pub(crate) replaced: Option<&'a HeldToken>,
}

impl Job<'_> {
    /// Until when the token being replaced may still be handed out, while it may: a background
    /// refresh of a token that has not been withdrawn.
    fn serving_until(&self) -> Option<Instant> {
        self.replaced
            .filter(|t| self.reason == Reason::Proactive && !t.is_withdrawn())
            .map(|t| t.schedule.usable_until)
    }
}

/// How a refresh failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The grant said that retrying cannot help (wrong secret, revoked grant): remembered for the
    /// fatal cool-down instead of asked again.
    pub(crate) permanent: bool,
}

impl Failure {
    fn permanent(error: Error) -> Self {
        Self {
            error,
            permanent: true,
        }
    }

    /// Reported to the waiting callers, not remembered.
    fn transient(error: Error) -> Self {
        Self {
            error,
            permanent: false,
        }
    }
}

/// A token given up front (a static grant).
pub(crate) enum Given {
    /// The grant fetches tokens.
    Nothing,
    /// A usable static token: when it expires or is rejected, there is no other.
    Usable,
    /// A static token that cannot be used, and why.
    Unusable(Error),
}

/// Obtains tokens for one manager.
pub(crate) struct Refresher {
    grant: Arc<dyn Grant>,
    given: Given,
    store: Option<Arc<dyn TokenStore>>,
    backoff: Backoff,
    jitter: Arc<dyn Jitter>,
    /// Wakes a refresh waiting out the token it replaces, when that token is withdrawn.
    withdrawals: Notify,
    /// Some token was obtained at some point (this tells the start of a run from a run).
    ever_obtained: AtomicBool,
    /// Spaces token requests (a token pool, a fleet).
    mint: Option<MintPacing>,
}

/// How a refresh stands with a shared store.
enum Coordinated {
    /// Another holder's fresh token was adopted: nothing to fetch.
    Adopted(HeldToken),
    /// This refresh holds the store's lock.
    Held(StoreLock),
    /// Fetch without the lock: the store cannot be reached, or the other holder took too long.
    Alone,
}

impl Refresher {
    pub(crate) fn new(
        grant: Arc<dyn Grant>,
        given: Given,
        store: Option<Arc<dyn TokenStore>>,
        backoff: Backoff,
        jitter: Arc<dyn Jitter>,
    ) -> Self {
        Self {
            ever_obtained: AtomicBool::new(matches!(given, Given::Usable)),
            grant,
            given,
            store,
            backoff,
            jitter,
            withdrawals: Notify::new(),
            mint: None,
        }
    }

    /// Spaces token requests with `mint`.
    pub(crate) fn with_mint_pacing(mut self, mint: Option<MintPacing>) -> Self {
        self.mint = mint;
        self
    }

    pub(crate) fn grant(&self) -> &Arc<dyn Grant> {
        &self.grant
    }

    pub(crate) fn is_static(&self) -> bool {
        !matches!(self.given, Given::Nothing)
    }

    /// Tells a refresh that may be waiting out `token` that it was withdrawn.
    pub(crate) fn withdrawn(&self, token: &HeldToken) {
        token.withdrawn.store(true, Ordering::Release);
        self.withdrawals.notify_waiters();
    }

    /// Obtains a token.
    pub(crate) async fn obtain(
        &self,
        job: &Job<'_>,
        timing: &Timing,
        counters: &Counters,
    ) -> Result<HeldToken, Failure> {
        match &self.given {
            Given::Nothing => {}
            Given::Usable => {
                return Err(Failure::permanent(Error::StaticTokenExpired {
                    reason: if job.reason == Reason::Rejected {
                        "was rejected by the API"
                    } else {
                        "has expired"
                    },
                }));
            }
            Given::Unusable(e) => return Err(Failure::permanent(e.clone())),
        }
        if let Some(replaced) = job.replaced
            && job.reason == Reason::Proactive
            && let super::skew::Change::Undone(skew) =
                timing.note_survivor(replaced, Instant::now())
        {
            tracing::info!(
                skew_ms = skew.as_millis() as u64,
                "a token outlived the age a clock-skew guess gave it; no longer refreshing early"
            );
        }
        if let (Some(store), Some(replaced)) = (&self.store, job.replaced)
            && job.reason == Reason::Rejected
            && let Err(e) = store.invalidate(&replaced.access).await
        {
            tracing::warn!(error = %e, "could not withdraw the rejected token from the token store");
        }
        let lock = match &self.store {
            Some(store) => match self.coordinate(store.as_ref(), job, timing).await? {
                Coordinated::Adopted(held) => {
                    Counters::inc(&counters.adopted_from_store);
                    self.ever_obtained.store(true, Ordering::Relaxed);
                    return Ok(held);
                }
                Coordinated::Held(lock) => Some(lock),
                Coordinated::Alone => None,
            },
            None => None,
        };
        if lock.is_some()
            && let Some(adopted) = self.adopt(job, timing).await
        {
            if let Some(lock) = lock {
                lock.release().await;
            }
            Counters::inc(&counters.adopted_from_store);
            self.ever_obtained.store(true, Ordering::Relaxed);
            return Ok(adopted);
        }
        let (resp, sent_at, sent_wall) = self.fetch_with_retry(job, counters).await?;
        let held = timing
            .fetched(resp, sent_at, sent_wall)
            .map_err(|problem| {
                Failure::permanent(Error::TokenDecode {
                    detail: problem.to_string(),
                })
            })?;
        Counters::inc(&counters.tokens_fetched);
        self.ever_obtained.store(true, Ordering::Relaxed);
        self.save(&held).await;
        // Given back before the token is handed out: a process that exits right after does not
        // leave the fleet waiting for the lock's lease to run out.
        if let Some(lock) = lock {
            lock.release().await;
        }
        Ok(held)
    }

    /// Takes the store's lock, or adopts the token of another holder that is refreshing (waiting
    /// for it at most the store's `lock_wait`), or says to go on alone.
    async fn coordinate(
        &self,
        store: &dyn TokenStore,
        job: &Job<'_>,
        timing: &Timing,
    ) -> Result<Coordinated, Failure> {
        let give_up = Instant::now() + store.lock_wait();
        loop {
            match store.try_lock().await.map_err(Failure::transient)? {
                LockAttempt::Held(lock) => return Ok(Coordinated::Held(lock)),
                LockAttempt::Unavailable => return Ok(Coordinated::Alone),
                LockAttempt::Busy => {}
            }
            if let Some(held) = self.adopt(job, timing).await {
                return Ok(Coordinated::Adopted(held));
            }
            let now = Instant::now();
            if now >= give_up {
                tracing::warn!(
                    waited_ms = store.lock_wait().as_millis() as u64,
                    "another process has held the token store's refresh lock too long; fetching a token without it"
                );
                return Ok(Coordinated::Alone);
            }
            store.changed(give_up - now).await;
        }
    }

    /// A fresh token another holder saved, unless it is the one being replaced.
    async fn adopt(&self, job: &Job<'_>, timing: &Timing) -> Option<HeldToken> {
        let stored = match self.store.as_ref()?.load().await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(error = %e, "token store load failed; fetching");
                return None;
            }
        };
        if job
            .replaced
            .is_some_and(|r| r.access == stored.access_token)
        {
            return None;
        }
        let held = timing.adopted(&stored, Instant::now(), wall_now())?;
        tracing::debug!("adopted a token from the shared store");
        Some(held)
    }

    async fn save(&self, held: &HeldToken) {
        let Some(store) = &self.store else { return };
        let stored = StoredToken {
            access_token: held.access.clone(),
            obtained_at: held.obtained_wall,
            expires_at: held.advertised_expires_at_wall(),
        };
        if let Err(e) = store.save(&stored).await {
            tracing::warn!(error = %e, "token store save failed; token kept in memory");
        }
    }

    async fn fetch_with_retry(
        &self,
        job: &Job<'_>,
        counters: &Counters,
    ) -> Result<(TokenResponse, Instant, SystemTime), Failure> {
        let first_token = !self.ever_obtained.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut attempts = 0u32;
        // When the budget started (the first attempt made once nobody was served any more), and
        // the attempts counted against it.
        let mut budget: Option<(Instant, u32)> = None;
        loop {
            attempts += 1;
            if let Some(mint) = &self.mint {
                mint.turn().await;
            }
            Counters::inc(&counters.token_requests);
            let sent_at = Instant::now();
            let sent_wall = wall_now();
            let (reason, retry_after, unreachable) = match self.grant.fetch().await {
                Ok(resp) => return Ok((resp, sent_at, sent_wall)),
                Err(FetchError::Fatal(e)) => return Err(Failure::permanent(e)),
                Err(FetchError::Transient {
                    reason,
                    retry_after,
                }) => (reason, retry_after, false),
                Err(FetchError::Unreachable { reason }) => (reason, None, true),
            };
            let now = Instant::now();
            let delay = self
                .backoff
                .delay(attempts, retry_after, self.jitter.sample());
            let serving = job.serving_until().is_some_and(|until| now + delay < until);
            if !serving {
                let (since, counted) = budget.get_or_insert((sent_at, 0));
                *counted += 1;
                let limit = if first_token && unreachable {
                    Backoff {
                        max_elapsed: self.backoff.max_elapsed.min(UNREACHABLE_AT_START),
                        ..self.backoff.clone()
                    }
                } else {
                    self.backoff.clone()
                };
                if !limit.allows(*counted, now.saturating_duration_since(*since), delay) {
                    return Err(Failure::transient(Error::TokenEndpointUnavailable {
                        attempts,
                        elapsed: now.saturating_duration_since(started),
                        last: reason,
                    }));
                }
            }
            // Retries are routine (throttling, a blip): visible with -v; a failure that outlasts
            // them is reported as an error.
            tracing::info!(
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                %reason,
                "token request failed; retrying"
            );
            if serving {
                self.wait_unless_withdrawn(delay, job).await;
            } else {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Sleeps `delay`, or less if the token being replaced is withdrawn meanwhile: callers are
    /// waiting from then on, and the next attempt should not wait out a backoff meant for a
    /// background refresh.
    async fn wait_unless_withdrawn(&self, delay: Duration, job: &Job<'_>) {
        let withdrawn = self.withdrawals.notified();
        tokio::pin!(withdrawn);
        // Registered before the check, so that a withdrawal between the two is not missed.
        withdrawn.as_mut().enable();
        if job.serving_until().is_none() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = withdrawn => {}
        }
    }
}

/// What failed refreshes leave behind: a permanent failure answered from memory for a cool-down,
/// and a pause before the next background refresh.
pub(crate) struct Failures {
    /// guards the last permanent failure and when it happened.
    fatal: Mutex<Option<(Instant, Error)>>,
    cooldown: Duration,
    /// No background refresh before this many nanoseconds after `origin`.
    background_not_before: AtomicU64,
    origin: Instant,
    /// How long background refreshes pause after a failure.
    pause: Duration,
}

impl Failures {
    pub(crate) fn new(cooldown: Duration, pause: Duration) -> Self {
        Self {
            fatal: Mutex::new(None),
            cooldown,
            background_not_before: AtomicU64::new(0),
            origin: Instant::now(),
            pause,
        }
    }

    fn nanos_since_origin(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64
    }

    /// Remembers a failure at `now`.
    pub(crate) fn note(&self, failure: &Failure, now: Instant) {
        // No background retry for a while: the refresh loop already retried.
        self.background_not_before
            .store(self.nanos_since_origin(now + self.pause), Ordering::Relaxed);
        if failure.permanent {
            *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((now, failure.error.clone()));
        }
    }

    /// The permanent failure to answer from memory at `now`, if one is recent.
    pub(crate) fn recent_permanent(&self, now: Instant) -> Option<Error> {
        let g = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.cooldown)
            .map(|(_, e)| e.clone())
    }

    /// Whether background refreshes are paused at `now` after a failure.
    pub(crate) fn background_paused(&self, now: Instant) -> bool {
        self.nanos_since_origin(now) < self.background_not_before.load(Ordering::Relaxed)
    }
}
