//! The pacer every request to the API passes through, shared by all tasks and clones of a client:
//! a hold ("nobody sends before ..."), then a GCRA slot at the pace of the fixed [`RateLimit`] or
//! the [`adaptive`](super::adaptive) rate, whichever is slower. With a [`SharedBudget`] (a fleet
//! sharing the token through Redis) the slot is reserved in the shared schedule, so that every
//! process together keeps the pace, and holds are shared too; while the budget cannot be reached
//! the pacer keeps the schedule in memory, as without one.

use super::adaptive::{Announced, Answer, Controller};
use crate::clock::Instant;
use crate::rate::SharedBudget;
use crate::rate::ratelimit::{RateLimit, reserve};
use http::HeaderMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a client paces its requests.
#[derive(Debug)]
pub(crate) struct Pacer {
    fixed: Option<RateLimit>,
    adaptive: bool,
    /// Whether the `inin-ratelimit-*` headers are read at all.
    honor_headers: bool,
    /// Whether pacing needs the lock at all: a fixed limit, or something learned. Until the API
    /// says anything about its limits, a turn is one atomic load and an answer three atomic
    /// operations.
    engaged: AtomicBool,
    /// No request is sent before `origin` + this many nanoseconds (0: no hold). An atomic,
    /// because every request reads it.
    held_until_nanos: AtomicU64,
    /// While nothing is learned yet: answers accepted, counted without the lock (the first 429
    /// turns them into a rate), and when the first of their requests took its turn, in
    /// nanoseconds from `origin` (`u64::MAX`: none yet).
    quiet_accepted: AtomicU64,
    quiet_since_nanos: AtomicU64,
    origin: Instant,
    /// guards the GCRA's theoretical arrival time and the learned rate
    state: Mutex<State>,
    /// The fleet's schedule, when the token is shared beyond this process.
    shared: Option<Arc<dyn SharedBudget>>,
}

#[derive(Debug, Default)]
struct State {
    tat: Option<Instant>,
    controller: Controller,
}

/// A request's turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Turn {
    /// When it took its turn (reserved its slot).
    pub(crate) at: Instant,
    /// Whether it had to wait for its slot: the rate, not the caller, was the limit.
    pub(crate) paced: bool,
}

/// What [`Pacer::observe`] reports, for the client's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Every request now waits for a hold, and none was in force before.
    pub(crate) new_hold: bool,
    /// The adaptive rate was cut.
    pub(crate) cut: bool,
}

impl Pacer {
    pub(crate) fn new(
        fixed: Option<RateLimit>,
        adaptive: bool,
        honor_headers: bool,
        origin: Instant,
    ) -> Self {
        Self {
            fixed,
            adaptive,
            honor_headers,
            engaged: AtomicBool::new(fixed.is_some()),
            held_until_nanos: AtomicU64::new(0),
            quiet_accepted: AtomicU64::new(0),
            quiet_since_nanos: AtomicU64::new(u64::MAX),
            origin,
            state: Mutex::new(State::default()),
            shared: None,
        }
    }

    /// Reserves slots in `budget` (shared with the fleet) instead of in memory.
    pub(crate) fn with_shared(mut self, budget: Option<Arc<dyn SharedBudget>>) -> Self {
        self.shared = budget;
        self
    }

    /// Waits for this request's turn; returns when it took its turn (reserved its slot, after any
    /// hold) and whether it then had to wait for the slot.
    pub(crate) async fn turn(&self) -> Turn {
        self.wait_for_hold().await;
        let at = Instant::now();
        let unpaced = Turn { at, paced: false };
        if !self.engaged.load(Ordering::Relaxed) {
            return unpaced;
        }
        let (interval, tolerance) = {
            let s = self.lock();
            let adaptive = s.controller.rate().map(interval_of);
            let fixed = self.fixed.map(|f| f.interval());
            let Some(interval) = adaptive.max(fixed) else {
                return unpaced;
            };
            (
                interval,
                self.fixed.map(|f| f.tolerance()).unwrap_or_default(),
            )
        };
        let shared = match &self.shared {
            Some(budget) => budget.reserve(interval, tolerance).await,
            None => None,
        };
        let wait = shared.unwrap_or_else(|| {
            let mut s = self.lock();
            let (tat, wait) = reserve(s.tat, at, interval, tolerance);
            s.tat = Some(tat);
            wait
        });
        if wait.is_zero() {
            return unpaced;
        }
        tokio::time::sleep(wait).await;
        // A hold that began while this request waited for its slot holds it too: the window it
        // was going into is used up.
        self.wait_for_hold().await;
        Turn { at, paced: true }
    }

    async fn wait_for_hold(&self) {
        let held = self.held_until_nanos.load(Ordering::Relaxed);
        if held != 0 {
            let until = self.origin + Duration::from_nanos(held);
            if until > Instant::now() {
                tokio::time::sleep_until(until).await;
            }
        }
    }

    /// Learns from an answer of the API, at `now`, to the request that took `turn`.
    /// `retry_after` is that of a 429; longer waits than `max_wait` are not believed.
    pub(crate) fn observe(
        &self,
        turn: Turn,
        now: Instant,
        status: u16,
        headers: &HeaderMap,
        retry_after: Option<Duration>,
        max_wait: Duration,
    ) -> Observed {
        let announced = self
            .honor_headers
            .then(|| Announced::parse(headers, max_wait))
            .flatten();
        let rate_limited = status == 429;
        if !self.adaptive {
            // Only the announced "used up" hold, as without learning.
            let hold = announced.and_then(|a| a.pause()).map(|p| now + p);
            return Observed {
                new_hold: hold.is_some_and(|h| self.hold(h, now)),
                cut: false,
            };
        }
        if announced.is_none() && !rate_limited && !self.engaged.load(Ordering::Relaxed) {
            // Nothing to learn yet: count it without the lock, as every answer pays this.
            self.quiet_accepted.fetch_add(1, Ordering::Relaxed);
            self.quiet_since_nanos
                .fetch_min(self.nanos(turn.at), Ordering::Relaxed);
            return Observed::default();
        }
        let (hold, cut) = {
            let mut s = self.lock();
            let quiet = self.quiet_accepted.swap(0, Ordering::Relaxed);
            if quiet > 0 {
                let since = self.quiet_since_nanos.load(Ordering::Relaxed);
                let since = (since != u64::MAX).then(|| self.origin + Duration::from_nanos(since));
                s.controller.absorb(quiet, since);
            }
            let cuts = s.controller.cuts();
            let hold = s.controller.observe(Answer {
                turn_at: turn.at,
                now,
                rate_limited,
                retry_after: retry_after.map(|r| r.min(max_wait)),
                announced,
                paced: turn.paced,
            });
            let cut = s.controller.cuts() != cuts;
            if s.controller.rate().is_some() {
                self.engaged.store(true, Ordering::Relaxed);
            }
            (hold, cut)
        };
        if cut {
            tracing::debug!(
                rate_per_s = self.rate().unwrap_or_default(),
                "429: pacing requests at a lower rate"
            );
        }
        Observed {
            new_hold: hold.is_some_and(|h| self.hold(h, now)),
            cut,
        }
    }

    /// The adaptive rate in requests per second, if one was learned.
    pub(crate) fn rate(&self) -> Option<f64> {
        self.lock().controller.rate()
    }

    /// Holds every request until `until` (or longer, if already held longer), the fleet's too;
    /// true if no hold was in force at `now`.
    fn hold(&self, until: Instant, now: Instant) -> bool {
        let before = self
            .held_until_nanos
            .fetch_max(self.nanos(until), Ordering::Relaxed);
        let new = before < self.nanos(now);
        if new && let Some(budget) = &self.shared {
            let (budget, wait) = (Arc::clone(budget), until.saturating_duration_since(now));
            tokio::spawn(async move { budget.hold(wait).await });
        }
        if new {
            tracing::debug!(
                hold_ms = until.saturating_duration_since(now).as_millis() as u64,
                "API allowance used up; holding requests until it resets"
            );
        }
        new
    }

    /// `t` as nanoseconds from `origin`, at least 1 (0 means "none" in the atomics).
    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin)
            .as_nanos()
            .clamp(1, u64::MAX as u128 - 1) as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl crate::observe::RateSource for Pacer {
    /// The slower of the fixed and the learned rate, if either applies.
    fn allowed_rate(&self) -> Option<f64> {
        let fixed = self.fixed.map(|f| 1.0 / f.interval().as_secs_f64());
        let learned = self.adaptive.then(|| self.rate()).flatten();
        match (fixed, learned) {
            (Some(f), Some(l)) => Some(f.min(l)),
            (f, l) => f.or(l),
        }
    }
}

/// The time between two requests at `rate` per second (a rate of at least the floor, so finite).
fn interval_of(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(super::adaptive::MIN_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const MAX: Duration = Duration::from_secs(60);

    fn unpaced(at: Instant) -> Turn {
        Turn { at, paced: false }
    }

    #[tokio::test(start_paused = true)]
    async fn unengaged_pacer_never_waits() {
        let p = Pacer::new(None, true, true, Instant::now());
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!p.turn().await.paced);
            let now = Instant::now();
            p.observe(unpaced(now), now, 200, &HeaderMap::new(), None, MAX);
        }
        assert_eq!(Instant::now(), t0);
        assert_eq!(p.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_429_every_task_is_spaced_at_the_learned_rate() {
        let p = std::sync::Arc::new(Pacer::new(None, true, true, Instant::now()));
        let t0 = Instant::now();
        // 10 accepted at once, then a 429 with Retry-After 1: about 10 per second.
        for _ in 0..10 {
            p.observe(unpaced(t0), t0, 200, &HeaderMap::new(), None, MAX);
        }
        let o = p.observe(
            unpaced(t0),
            t0,
            429,
            &HeaderMap::new(),
            Some(Duration::from_secs(1)),
            MAX,
        );
        assert_eq!(
            o,
            Observed {
                new_hold: false,
                cut: true
            }
        );
        assert!((p.rate().unwrap() - 10.0).abs() < 1e-9);
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            turns_of_tasks(&p, 5).await,
            vec![ms(0), ms(100), ms(200), ms(300), ms(400)]
        );
    }

    /// When each of `n` tasks, started together, got its turn (from the start, in order).
    async fn turns_of_tasks(p: &std::sync::Arc<Pacer>, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move {
                    p.turn().await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = vec![];
        for t in tasks {
            at.push(t.await.unwrap() - t0);
        }
        at.sort();
        at
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_rate_paces_concurrent_tasks() {
        let p = std::sync::Arc::new(Pacer::new(
            Some(RateLimit::per_second(10)),
            false,
            true,
            Instant::now(),
        ));
        let at = turns_of_tasks(&p, 10).await;
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[9], Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn the_slower_of_fixed_and_learned_rate_wins() {
        let p = Pacer::new(Some(RateLimit::per_second(100)), true, true, Instant::now());
        let t0 = Instant::now();
        // Announced 30 per 1 s window: the learned rate (29.1/s) is slower than the fixed 100/s.
        let h = headers(&[
            ("inin-ratelimit-count", "1"),
            ("inin-ratelimit-allowed", "30"),
            ("inin-ratelimit-reset", "1"),
        ]);
        p.observe(unpaced(t0), t0, 200, &h, None, MAX);
        p.turn().await;
        p.turn().await;
        // (tokio's timer rounds a sleep up to the millisecond)
        let gap = Instant::now() - t0;
        let interval = Duration::from_secs_f64(1.0 / (30.0 * 0.97));
        assert!(
            gap >= interval && gap <= interval + Duration::from_millis(1),
            "{gap:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn used_up_allowance_holds_every_request_until_the_reset() {
        for adaptive in [true, false] {
            let p = Pacer::new(None, adaptive, true, Instant::now());
            let t0 = Instant::now();
            let h = headers(&[
                ("inin-ratelimit-count", "300"),
                ("inin-ratelimit-allowed", "300"),
                ("inin-ratelimit-reset", "7"),
            ]);
            assert!(p.observe(unpaced(t0), t0, 200, &h, None, MAX).new_hold);
            // the same hold again is not a new one
            assert!(!p.observe(unpaced(t0), t0, 200, &h, None, MAX).new_hold);
            p.turn().await;
            assert!(Instant::now() - t0 >= Duration::from_secs(7), "{adaptive}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_adaptive_pacing_429s_teach_nothing() {
        let p = Pacer::new(None, false, true, Instant::now());
        let t0 = Instant::now();
        for _ in 0..10 {
            p.observe(unpaced(t0), t0, 200, &HeaderMap::new(), None, MAX);
        }
        let o = p.observe(unpaced(t0), t0, 429, &HeaderMap::new(), None, MAX);
        assert_eq!(o, Observed::default());
        assert_eq!(p.rate(), None);
        assert!(!p.turn().await.paced);
    }
}
