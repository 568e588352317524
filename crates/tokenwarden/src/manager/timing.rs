//! The timing rules: from what the token endpoint (or a store, or the caller) said about a token's
//! lifetime to when it is refreshed and when it stops being handed out, with the lifetime floor and
//! ceiling, the learned clock skew and jitter applied.

use super::Rejection;
use super::skew::{self, Change, SkewEstimator};
use crate::clock::{Instant, Jitter};
use crate::grant::TokenResponse;
use crate::secret::AccessToken;
use crate::store::StoredToken;
use crate::token::{
    Bearer, Freshness, HeaderProblem, HeldToken, RefreshPolicy, Schedule, jwt_expiry, lifetime,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The lifetime given to a static token whose expiry is unknown: valid until the API says
/// otherwise.
const FOREVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The pure rule. A token obtained at `obtained_at`, advertised to live `advertised`, with `skew`
/// learned so far and a `jitter` sample in `[0, 1)`:
///
/// 1. the advertised lifetime is held between the policy's floor and ceiling;
/// 2. the skew (capped at [`skew::MAX_FRACTION`] of it) is taken off, but not below the floor;
/// 3. the refresh margin and the expiry buffer are reckoned on what is left.
///
/// A token that cannot be refreshed (`refreshable: false`, a static token) is "refreshed" when it
/// stops being usable, i.e. never early.
pub(crate) fn schedule(
    policy: &RefreshPolicy,
    obtained_at: Instant,
    advertised: Duration,
    skew: Duration,
    jitter: f64,
    refreshable: bool,
) -> Schedule {
    let advertised = policy.clamp_lifetime(advertised);
    let floor = policy.min_lifetime.min(advertised);
    let lifetime = advertised
        .saturating_sub(skew::capped(skew, advertised))
        .max(floor);
    let expires_at = obtained_at + lifetime;
    let usable_until = expires_at - policy.expiry_buffer(lifetime);
    Schedule {
        obtained_at,
        advertised_expires_at: obtained_at + advertised,
        expires_at,
        refresh_at: if refreshable {
            expires_at - policy.refresh_margin(lifetime, jitter)
        } else {
            usable_until
        },
        usable_until,
    }
}

/// The timing rules of one manager, and what they have learned.
pub(crate) struct Timing {
    policy: RefreshPolicy,
    jitter: Arc<dyn Jitter>,
    /// guards the skew learned from the API's refusals (written rarely, read once per new token).
    skew: Mutex<SkewEstimator>,
    next_generation: AtomicU64,
}

impl Timing {
    pub(crate) fn new(policy: RefreshPolicy, jitter: Arc<dyn Jitter>) -> Self {
        Self {
            policy,
            jitter,
            skew: Mutex::new(SkewEstimator::default()),
            next_generation: AtomicU64::new(1),
        }
    }

    /// The clock skew learned so far, as it applies to a token obtained at `now`.
    pub(crate) fn skew(&self, now: Instant) -> Duration {
        self.skew
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current(now)
    }

    fn held(
        &self,
        access: AccessToken,
        obtained_at: Instant,
        obtained_wall: SystemTime,
        advertised: Duration,
        refreshable: bool,
    ) -> Result<HeldToken, HeaderProblem> {
        let schedule = schedule(
            &self.policy,
            obtained_at,
            advertised,
            self.skew(obtained_at),
            self.jitter.sample(),
            refreshable,
        );
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        HeldToken::new(access, generation, schedule, obtained_wall, false)
    }

    /// A token from the token endpoint, whose request was sent at `sent_at` (`sent_wall`): its
    /// lifetime is `expires_in` from then, or a JWT `exp` if that is earlier.
    ///
    /// # Errors
    /// The token is not a legal header value.
    pub(crate) fn fetched(
        &self,
        resp: TokenResponse,
        sent_at: Instant,
        sent_wall: SystemTime,
    ) -> Result<HeldToken, HeaderProblem> {
        let jwt = jwt_expiry(resp.access_token.expose_secret());
        let advertised = lifetime(
            sent_wall,
            resp.expires_in,
            jwt,
            self.policy.default_lifetime,
        );
        self.held(resp.access_token, sent_at, sent_wall, advertised, true)
    }

    /// A token another holder saved in a shared store, if it is fresh at `now` (`wall`) and a legal
    /// header value.
    pub(crate) fn adopted(
        &self,
        stored: &StoredToken,
        now: Instant,
        wall: SystemTime,
    ) -> Option<HeldToken> {
        let remaining = stored.expires_at.duration_since(wall).ok()?;
        let lifetime = stored
            .expires_at
            .duration_since(stored.obtained_at)
            .unwrap_or(remaining)
            .max(remaining);
        let expires_at = now.checked_add(remaining)?;
        let obtained_at = expires_at.checked_sub(lifetime).unwrap_or(now);
        let obtained_wall = wall.checked_sub(lifetime - remaining).unwrap_or(wall);
        let held = match self.held(
            stored.access_token.clone(),
            obtained_at,
            obtained_wall,
            lifetime,
            true,
        ) {
            Ok(h) => h,
            Err(problem) => {
                tracing::warn!(%problem, "ignoring the token in the shared store");
                return None;
            }
        };
        (held.freshness(now) == Freshness::Fresh).then_some(held)
    }

    /// A token supplied directly, valid for `lifetime` from `now` if known, else until its JWT
    /// `exp`, else until the API rejects it.
    ///
    /// # Errors
    /// The token is not a legal header value.
    pub(crate) fn given(
        &self,
        token: AccessToken,
        given: Option<Duration>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<HeldToken, HeaderProblem> {
        let jwt = jwt_expiry(token.expose_secret());
        if given.is_none() && jwt.is_none() {
            let far = now + FOREVER;
            let schedule = Schedule {
                obtained_at: now,
                advertised_expires_at: far,
                expires_at: far,
                refresh_at: far,
                usable_until: far,
            };
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            return HeldToken::new(token, generation, schedule, wall, true);
        }
        let advertised = lifetime(wall, given, jwt, self.policy.default_lifetime);
        self.held(token, now, wall, advertised, false)
    }

    /// Learns from the API's refusal of a request that carried `bearer` (see [`skew`] for the
    /// rule); returns what changed. The refusal is dated when the token was handed out for that
    /// request: the request was sent after that, so the server's expiry was no later than its
    /// arrival, and a slow answer does not make the skew look smaller than it is.
    pub(crate) fn note_rejection(&self, bearer: &Bearer, why: Rejection) -> Change {
        let (token, now) = (&*bearer.held, bearer.handed_out);
        if token.never_expires || token.rejection_noted.swap(true, Ordering::AcqRel) {
            return Change::None;
        }
        // A token the API never accepted and now refuses without saying "expired" is a permission
        // problem, not a clock.
        if why == Rejection::Other && !token.accepted.load(Ordering::Relaxed) {
            return Change::None;
        }
        let Some(sample) = skew::sample(
            token.schedule.advertised_expires_at,
            token.schedule.expires_at,
            now,
        ) else {
            return Change::None;
        };
        self.skew.lock().unwrap_or_else(|e| e.into_inner()).observe(
            why,
            sample,
            token.advertised_lifetime(),
            now,
        )
    }

    /// Notes that `token`, accepted by the API and never refused, is being replaced ahead of time
    /// at `now`: it lived that long, so a provisional skew guess that gave it a shorter life is
    /// undone (see [`skew`]).
    pub(crate) fn note_survivor(&self, token: &HeldToken, now: Instant) -> Change {
        if token.never_expires || token.is_withdrawn() || !token.accepted.load(Ordering::Relaxed) {
            return Change::None;
        }
        let age = now.saturating_duration_since(token.schedule.obtained_at);
        self.skew
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outlived(age, token.advertised_lifetime(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedJitter;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, s: &Schedule) -> [Duration; 4] {
        [
            s.refresh_at - t0,
            s.usable_until - t0,
            s.expires_at - t0,
            s.advertised_expires_at - t0,
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn without_skew_the_policy_applies_to_the_advertised_lifetime() {
        let p = RefreshPolicy::default();
        let t0 = Instant::now();
        let s = schedule(&p, t0, 100 * S, Duration::ZERO, 0.0, true);
        assert_eq!(at(t0, &s), [75 * S, 95 * S, 100 * S, 100 * S]);
        let fixed = schedule(&p, t0, 100 * S, Duration::ZERO, 0.0, false);
        assert_eq!(fixed.refresh_at, fixed.usable_until);
    }

    #[tokio::test(start_paused = true)]
    async fn skew_shortens_the_lifetime_and_the_margins_follow() {
        let p = RefreshPolicy::default();
        let t0 = Instant::now();
        // Advertised 4 s, the server kills it after 1 s: reckoned as a 1-second token.
        let s = schedule(&p, t0, 4 * S, 3 * S, 0.0, true);
        assert_eq!(at(t0, &s), [750 * MS, 950 * MS, S, 4 * S]);
    }

    #[tokio::test(start_paused = true)]
    async fn skew_is_capped_at_four_fifths_and_never_below_the_floor() {
        let p = RefreshPolicy::default();
        let t0 = Instant::now();
        let s = schedule(&p, t0, 100 * S, 99 * S, 0.0, true);
        assert_eq!(s.expires_at - t0, 20 * S);
        let s = schedule(&p, t0, 100 * S, 80 * S, 0.0, true);
        assert_eq!(s.expires_at - t0, 20 * S);
        let s = schedule(&p, t0, 100 * S, 80 * S - MS, 0.0, true);
        assert_eq!(s.expires_at - t0, 20 * S + MS);
        // 2 s advertised, 80% would leave 0.4 s: the 1 s floor wins.
        let s = schedule(&p, t0, 2 * S, 10 * S, 0.0, true);
        assert_eq!(s.expires_at - t0, S);
    }

    #[tokio::test(start_paused = true)]
    async fn odd_lifetimes_are_held_between_floor_and_ceiling() {
        let p = RefreshPolicy::default();
        let t0 = Instant::now();
        for tiny in [Duration::ZERO, Duration::from_nanos(1), 999 * MS] {
            let s = schedule(&p, t0, tiny, Duration::ZERO, 0.0, true);
            assert_eq!(at(t0, &s), [750 * MS, 950 * MS, S, S], "{tiny:?}");
        }
        let s = schedule(&p, t0, Duration::MAX, Duration::ZERO, 0.0, true);
        assert_eq!(
            s.advertised_expires_at - t0,
            crate::token::DEFAULT_MAX_LIFETIME
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_sample_per_token_and_only_for_a_token_believed_valid() {
        let timing = Timing::new(RefreshPolicy::default(), Arc::new(FixedJitter(0.0)));
        let t0 = Instant::now();
        let resp = |n: u32| TokenResponse {
            access_token: AccessToken::new(format!("timing-token-{n}")),
            expires_in: Some(4 * S),
            refresh_token: None,
            token_type: None,
        };
        let wall = crate::clock::wall_now();
        let held = |n, at| Arc::new(timing.fetched(resp(n), at, wall).unwrap());
        let a = held(1, t0);
        // A request carrying it, handed out after 1 s, refused as expired: 3 s learned; a second
        // refusal of the same token is ignored.
        let handed = t0 + S;
        let refusal = Bearer::new(Arc::clone(&a), handed);
        assert_eq!(
            timing.note_rejection(&refusal, Rejection::Expired),
            Change::Learned(3 * S)
        );
        assert_eq!(
            timing.note_rejection(&refusal, Rejection::Expired),
            Change::None
        );
        // The next token is reckoned with it.
        let b = held(2, handed);
        assert_eq!(b.schedule.expires_at - handed, S);
        // Handed out after our own expiry: no evidence.
        let late = Bearer::new(Arc::clone(&b), handed + 2 * S);
        assert_eq!(
            timing.note_rejection(&late, Rejection::Expired),
            Change::None
        );
        // A never-accepted token refused without a reason teaches nothing.
        let c = Bearer::new(held(3, handed), handed);
        assert_eq!(timing.note_rejection(&c, Rejection::Other), Change::None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unexplained_death_shortens_the_next_token_until_a_survivor_undoes_it() {
        let timing = Timing::new(RefreshPolicy::default(), Arc::new(FixedJitter(0.0)));
        let t0 = Instant::now();
        let wall = crate::clock::wall_now();
        let resp = |n: u32| TokenResponse {
            access_token: AccessToken::new(format!("guess-token-{n}")),
            expires_in: Some(4 * S),
            refresh_token: None,
            token_type: None,
        };
        let a = Arc::new(timing.fetched(resp(1), t0, wall).unwrap());
        let refused = Bearer::new(Arc::clone(&a), t0 + S);
        // Refused with bad.credentials after the API had accepted it: guessed at once.
        refused.mark_accepted();
        assert_eq!(
            timing.note_rejection(&refused, Rejection::Other),
            Change::Guessed(3 * S)
        );
        let b = timing.fetched(resp(2), t0 + S, wall).unwrap();
        assert_eq!(
            b.lifetime(),
            S,
            "the next token is scheduled with the guess"
        );
        // A token replaced ahead of time at 0.75 s proves nothing; one still serving at 1.2 s of
        // age (a token the guess could not shorten enough, a token from before the guess) does.
        let c = Arc::new(timing.fetched(resp(3), t0 + S, wall).unwrap());
        Bearer::new(Arc::clone(&c), t0 + S).mark_accepted();
        assert_eq!(timing.note_survivor(&c, t0 + S + 750 * MS), Change::None);
        assert_eq!(
            timing.note_survivor(&c, t0 + S + 1200 * MS),
            Change::Undone(3 * S)
        );
        let d = timing.fetched(resp(4), t0 + 3 * S, wall).unwrap();
        assert_eq!(d.lifetime(), 4 * S, "undone");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_that_cannot_be_a_header_are_refused() {
        let timing = Timing::new(RefreshPolicy::default(), Arc::new(FixedJitter(0.0)));
        let now = Instant::now();
        let wall = crate::clock::wall_now();
        for bad in ["abc\r\nX-Injected: 1", "a b", "tok\u{e9}n", "tab\t", ""] {
            let resp = TokenResponse {
                access_token: AccessToken::new(bad),
                expires_in: Some(60 * S),
                refresh_token: None,
                token_type: None,
            };
            let e = timing.fetched(resp, now, wall).unwrap_err();
            assert!(!e.to_string().contains("Injected"), "{e}");
            let e = timing
                .given(AccessToken::new(bad), None, now, wall)
                .unwrap_err();
            assert!(e.to_string().contains("access token"), "{e}");
        }
    }
}
