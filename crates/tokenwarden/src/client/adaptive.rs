//! Learning a sustainable request rate from the API's answers, as pure functions of what was
//! observed and when.
//!
//! Genesys limits requests per token (300 a minute by default), and every worker of a job shares
//! the token. Waiting out each 429 alone is not enough: the other workers keep sending into the
//! exhausted window, and a 16-worker job loses about 7% of its requests to 429s (some of them
//! eight times in a row, until their retry budget runs out). The [`Controller`] learns the rate
//! the server sustains and the pacer spaces all requests of a client to it:
//!
//! - **The first 429** sets the rate to what the server let through so far, spread over that time
//!   plus the `Retry-After` (the window cannot reset before it): 200 requests accepted in 50 ms
//!   and "come back in 1 s" give 190 a second, 300 in 100 ms and "60 s" give 5 a second. A 429
//!   before any request was accepted (the allowance was spent by someone else) says nothing about
//!   the rate: every request waits for its `Retry-After`, and the count starts again.
//! - **Each later 429** starts an *episode* and cuts the rate to 90%. 429s of requests that took
//!   their turn before the cut (paced at the old rate, or in flight) belong to the same episode and
//!   change nothing. A 429 for a request that took its turn *after* the cut, before the
//!   `Retry-After` has passed, means the window is used up whatever the rate: every request then
//!   waits until it resets.
//! - **Each answer** to a request that had to wait for the pacer raises the rate by
//!   [`INCREASE_PER_ANSWER`] of itself (about 1% a second at any rate), so that a rate cut too far,
//!   or a limit that was raised, is found again. A client whose workers are slower than the rate
//!   does not raise it (its rate says nothing about the server).
//! - **`inin-ratelimit-*` headers**, when present, give the allowance and the time to its reset:
//!   the rate is kept at [`ANNOUNCED_MARGIN`] of `allowed` per window (the window being the longest
//!   reset seen), and when `count` reaches `allowed` every request waits for the reset.
//!
//! Before the first 429 or header, nothing is paced.

use crate::clock::Instant;
use http::HeaderMap;
use std::time::Duration;

/// The share of the rate kept after a 429: the rate is just above what the server sustains
/// when a 429 comes, so a small cut ends the 429s, and the rate averages about 95% of the limit.
pub(crate) const DECREASE: f64 = 0.9;
/// Each answer to a paced request raises the rate by this share of one request per second; at
/// rate `r` that is `r` answers a second, so the rate grows by 1% a second, at any scale.
pub(crate) const INCREASE_PER_ANSWER: f64 = 0.01;
/// The share of an announced allowance the client uses: a little room for the requests a
/// scheduling hiccup pushes into the next window.
pub(crate) const ANNOUNCED_MARGIN: f64 = 0.97;
/// The lowest rate ever learned, requests per second (one every 10 s): a run of 429s from a
/// limit on one endpoint must not stop the whole client.
pub(crate) const MIN_RATE: f64 = 0.1;
/// The wait assumed when a 429 carries no usable `Retry-After`.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What Genesys's `inin-ratelimit-count`, `-allowed` and `-reset` headers say (seen on responses,
/// not officially documented): `count` requests of `allowed` used in the current window, which
/// resets in `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announced {
    pub(crate) count: u64,
    pub(crate) allowed: u64,
    pub(crate) reset: Duration,
}

impl Announced {
    /// The headers of an answer, when all three are there, are numbers, the allowance is not 0
    /// and the reset is at most `max` (anything longer is an unexpected unit, e.g. a timestamp:
    /// then the headers are ignored and 429s with `Retry-After` still work). Never panics.
    pub(crate) fn parse(headers: &HeaderMap, max: Duration) -> Option<Self> {
        let num =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let a = Announced {
            count: num("inin-ratelimit-count")?,
            allowed: num("inin-ratelimit-allowed")?,
            reset: Duration::from_secs(num("inin-ratelimit-reset")?),
        };
        (a.allowed > 0 && a.reset <= max).then_some(a)
    }

    /// How long to hold every request: the reset, once the allowance is used up.
    pub(crate) fn pause(&self) -> Option<Duration> {
        (self.count >= self.allowed && !self.reset.is_zero()).then_some(self.reset)
    }
}

/// One answer from the API, as the controller sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    /// When the request took its turn (reserved its slot, before waiting for it): a request that
    /// took its turn before a cut was paced at the old rate.
    pub(crate) turn_at: Instant,
    /// When the answer arrived.
    pub(crate) now: Instant,
    /// Whether it was a 429.
    pub(crate) rate_limited: bool,
    /// `Retry-After` of a 429, capped by the caller.
    pub(crate) retry_after: Option<Duration>,
    /// The `inin-ratelimit-*` headers, if any.
    pub(crate) announced: Option<Announced>,
    /// Whether the request had to wait for the pacer (the rate, not the workers, was the limit).
    pub(crate) paced: bool,
}

/// The learned state of one client. Pure: [`Controller::observe`] is a function of the state and
/// one [`Answer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Controller {
    /// Learned from 429s, requests per second; `None` before the first 429.
    learned: Option<f64>,
    /// From the headers: `ANNOUNCED_MARGIN × allowed / window`, requests per second.
    announced: Option<f64>,
    /// The longest reset announced: the window's length, as far as the client can tell.
    window: Duration,
    /// When the rate was last cut; 429s of requests sent before belong to that episode.
    cut_at: Option<Instant>,
    /// Until when the window behind the last cut may still be used up.
    episode_until: Option<Instant>,
    /// Answers other than 429 before the first 429.
    accepted: u64,
    /// When the first of those accepted requests took its turn.
    since: Option<Instant>,
    /// Episodes so far.
    cuts: u64,
}

impl Controller {
    /// The rate to pace at, requests per second; `None`: do not pace.
    pub(crate) fn rate(&self) -> Option<f64> {
        match (self.learned, self.announced) {
            (Some(l), Some(a)) => Some(l.min(a)),
            (l, a) => l.or(a),
        }
    }

    /// How many times the rate was cut after a 429.
    pub(crate) fn cuts(&self) -> u64 {
        self.cuts
    }

    /// Takes in `accepted` answers counted without the controller, the first of whose requests
    /// took its turn at `since` (the pacer counts them lock-free until there is something to
    /// learn). The same as observing each of them, unpaced.
    pub(crate) fn absorb(&mut self, accepted: u64, since: Option<Instant>) {
        self.accepted += accepted;
        if let Some(t) = since {
            self.since = Some(self.since.map_or(t, |s| s.min(t)));
        }
    }

    /// Learns from `a`; returns until when every request must wait, if they must.
    pub(crate) fn observe(&mut self, a: Answer) -> Option<Instant> {
        let mut hold = None;
        if let Some(ann) = a.announced {
            // A window is at least 1 s: resets are announced in whole seconds.
            self.window = self.window.max(ann.reset).max(Duration::from_secs(1));
            self.announced =
                Some(ANNOUNCED_MARGIN * ann.allowed as f64 / self.window.as_secs_f64());
            hold = ann.pause().map(|p| a.now + p);
        }
        if !a.rate_limited {
            self.accepted += 1;
            self.since.get_or_insert(a.turn_at);
            if a.paced
                && let Some(l) = &mut self.learned
            {
                *l += INCREASE_PER_ANSWER;
                // No credit above an announced allowance: it would be spent as a burst of 429s.
                if let Some(cap) = self.announced {
                    *l = l.min(cap);
                }
            }
            return hold;
        }
        if self.cut_at.is_some_and(|cut| a.turn_at < cut) {
            return hold; // in flight when the rate was cut: the same episode
        }
        let retry_after = a.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
        if self.episode_until.is_some_and(|until| a.now < until) {
            // Sent after the cut and still refused: the window is used up whatever the rate.
            return Some(later(hold, a.now + retry_after));
        }
        // A new episode.
        let cut = match (self.rate(), self.since) {
            (Some(r), _) => r * DECREASE,
            (None, Some(since)) if self.accepted > 0 => {
                // The first: what the server let through, over the time until it lets more.
                let spread = a.now.saturating_duration_since(since) + retry_after;
                self.accepted as f64 / spread.as_secs_f64()
            }
            (None, _) => {
                // Nothing accepted to estimate from: wait as told, then count afresh.
                self.accepted = 0;
                self.since = None;
                return Some(later(hold, a.now + retry_after));
            }
        };
        self.learned = Some(cut.max(MIN_RATE));
        self.cut_at = Some(a.now);
        self.episode_until = Some(a.now + retry_after);
        self.cuts += 1;
        hold
    }
}

fn later(a: Option<Instant>, b: Instant) -> Instant {
    a.map_or(b, |a| a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    fn ok(t0: Instant, at: Duration, paced: bool) -> Answer {
        Answer {
            turn_at: t0 + at,
            now: t0 + at + MS,
            rate_limited: false,
            retry_after: None,
            announced: None,
            paced,
        }
    }

    fn limited(t0: Instant, sent: Duration, now: Duration) -> Answer {
        Answer {
            turn_at: t0 + sent,
            now: t0 + now,
            rate_limited: true,
            retry_after: Some(S),
            announced: None,
            paced: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_paced_before_the_server_says_anything() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        for i in 0..1000 {
            assert_eq!(c.observe(ok(t0, i * MS, false)), None);
        }
        assert_eq!(c.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_429_sets_the_rate_the_server_let_through() {
        // 200 accepted in the first 50 ms, then a 429 that says: come back in 1 s. The server
        // sustains 200 per (0.05 + 1) s, not 200 per 50 ms.
        let t0 = Instant::now();
        let mut c = Controller::default();
        for i in 0..200 {
            c.observe(ok(t0, i * MS / 4, false));
        }
        assert_eq!(c.observe(limited(t0, 49 * MS, 50 * MS)), None);
        let r = c.rate().unwrap();
        assert!((r - 200.0 / 1.05).abs() < 0.5, "{r}");
        assert_eq!(c.cuts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn absorbed_answers_count_as_observed_ones() {
        let t0 = Instant::now();
        let (mut observed, mut absorbed) = (Controller::default(), Controller::default());
        for i in 0..200 {
            observed.observe(ok(t0, i * MS / 4, false));
        }
        absorbed.absorb(200, Some(t0));
        for c in [&mut observed, &mut absorbed] {
            c.observe(limited(t0, 49 * MS, 50 * MS));
        }
        assert_eq!(observed.rate(), absorbed.rate());
        assert!(observed.rate().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_at_the_cut_are_the_same_episode() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        for i in 0..100 {
            c.observe(ok(t0, i * MS, false));
        }
        c.observe(limited(t0, 99 * MS, 100 * MS));
        let r = c.rate().unwrap();
        // Fifteen more 429s, all sent before the cut: nothing changes, nobody is held.
        for _ in 0..15 {
            assert_eq!(c.observe(limited(t0, 99 * MS, 101 * MS)), None);
        }
        assert_eq!(c.rate(), Some(r));
        assert_eq!(c.cuts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_after_the_cut_within_its_retry_after_holds_everyone() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        c.observe(ok(t0, Duration::ZERO, false));
        c.observe(limited(t0, 10 * MS, 11 * MS));
        let r = c.rate().unwrap();
        // Sent after the cut, 429 again 200 ms later: the window is used up.
        let hold = c.observe(limited(t0, 200 * MS, 201 * MS));
        assert_eq!(hold, Some(t0 + 201 * MS + S));
        assert_eq!(c.rate(), Some(r), "not cut twice for one window");
        // Once the Retry-After has passed, a 429 is a new episode: cut, nobody held.
        let later = c.observe(limited(t0, 1100 * MS, 1101 * MS));
        assert_eq!(later, None);
        assert_eq!(c.cuts(), 2);
        assert!(c.rate().unwrap() < r);
    }

    #[tokio::test(start_paused = true)]
    async fn each_later_episode_cuts_to_ninety_percent() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        for i in 0..100 {
            c.observe(ok(t0, i * MS, false));
        }
        c.observe(limited(t0, 100 * MS, 100 * MS));
        let first = c.rate().unwrap();
        // Ten seconds of paced answers later (the rate grew), a 429: 90% of the rate then.
        for i in 0..1000 {
            c.observe(ok(t0, S + i * 10 * MS, true));
        }
        let before = c.rate().unwrap();
        assert!(before > first);
        c.observe(limited(t0, 11 * S, 11 * S));
        assert!((c.rate().unwrap() - before * DECREASE).abs() < 1e-9);
        assert_eq!(c.cuts(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_that_dropped_is_followed_down_one_window_at_a_time() {
        // The rate was 200/s; the server now allows 100/s. Each window brings a 429 (a new
        // episode once the Retry-After passed) and a cut, until the rate is under the limit.
        let t0 = Instant::now();
        let mut c = Controller {
            learned: Some(200.0),
            since: Some(t0),
            ..Controller::default()
        };
        let mut windows = 0;
        while c.rate().unwrap() > 100.0 {
            windows += 1;
            let at = windows * 2 * S;
            assert_eq!(c.observe(limited(t0, at, at)), None);
        }
        assert_eq!(windows, 7, "200 × 0.9^7 = 95.7");
    }

    #[tokio::test(start_paused = true)]
    async fn paced_answers_raise_the_rate_one_percent_a_second() {
        let t0 = Instant::now();
        let mut c = Controller {
            learned: Some(100.0),
            ..Controller::default()
        };
        // One second's worth of answers at 100/s, each paced: +1 request/s.
        for i in 0..100 {
            c.observe(ok(t0, i * 10 * MS, true));
        }
        assert!((c.rate().unwrap() - 101.0).abs() < 1e-9);
        // Answers that did not wait for the pacer say nothing about the server.
        for i in 0..100 {
            c.observe(ok(t0, i * 10 * MS, false));
        }
        assert!((c.rate().unwrap() - 101.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_before_anything_was_accepted_holds_and_learns_nothing() {
        // Regression: such a 429 used to set the floor rate (one request every 10 s), which the
        // client then took minutes to climb out of.
        let t0 = Instant::now();
        let mut c = Controller::default();
        assert_eq!(
            c.observe(limited(t0, Duration::ZERO, MS)),
            Some(t0 + MS + S)
        );
        assert_eq!(c.rate(), None);
        assert_eq!(c.cuts(), 0);
        // After the wait, 100 accepted in 100 ms, then a 429: estimated from those alone.
        for i in 0..100 {
            c.observe(ok(t0, 2 * S + i * MS, false));
        }
        c.observe(limited(t0, 2 * S + 99 * MS, 2 * S + 100 * MS));
        let r = c.rate().unwrap();
        assert!((r - 100.0 / 1.1).abs() < 0.5, "{r}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_never_falls_below_the_floor() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        c.observe(ok(t0, Duration::ZERO, false));
        c.observe(limited(t0, 1000 * S, 1000 * S));
        assert!(c.rate().unwrap() < MIN_RATE * 10.0);
        for k in 1..50u32 {
            let at = 1000 * S + k * 10 * S;
            c.observe(limited(t0, at, at));
        }
        assert_eq!(c.rate(), Some(MIN_RATE));
    }

    fn announced(count: u64, allowed: u64, reset_s: u64) -> Option<Announced> {
        Some(Announced {
            count,
            allowed,
            reset: Duration::from_secs(reset_s),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn announced_allowance_paces_below_it_and_holds_when_used_up() {
        let t0 = Instant::now();
        let mut c = Controller::default();
        let mut a = ok(t0, Duration::ZERO, false);
        a.announced = announced(1, 300, 12);
        assert_eq!(c.observe(a), None);
        // A 12 s window so far: 300 per 12 s, less the margin.
        assert!((c.rate().unwrap() - ANNOUNCED_MARGIN * 25.0).abs() < 1e-9);
        // A longer reset shows the real window: 300 per 60 s.
        a.announced = announced(2, 300, 60);
        c.observe(a);
        assert!((c.rate().unwrap() - ANNOUNCED_MARGIN * 5.0).abs() < 1e-9);
        // Used up: everyone waits for the reset.
        a.announced = announced(300, 300, 7);
        assert_eq!(c.observe(a), Some(a.now + 7 * S));
        // Learned rates stay under the announced one however many paced answers come.
        let mut c = Controller {
            learned: Some(4.0),
            ..c
        };
        a.announced = announced(3, 300, 50);
        a.paced = true;
        for _ in 0..1000 {
            c.observe(a);
        }
        assert!((c.rate().unwrap() - ANNOUNCED_MARGIN * 5.0).abs() < 1e-9);
    }

    fn rl(count: &str, allowed: &str, reset: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("inin-ratelimit-count", count.parse().unwrap());
        h.insert("inin-ratelimit-allowed", allowed.parse().unwrap());
        h.insert("inin-ratelimit-reset", reset.parse().unwrap());
        h
    }

    #[test]
    fn parses_the_headers_and_pauses_when_the_allowance_is_used_up() {
        let max = Duration::from_secs(60);
        let p = |h: HeaderMap| Announced::parse(&h, max).and_then(|a| a.pause());
        assert_eq!(p(rl("299", "300", "12")), None);
        assert_eq!(p(rl("300", "300", "12")), Some(Duration::from_secs(12)));
        assert_eq!(p(rl("301", "300", "1")), Some(Duration::from_secs(1)));
        assert_eq!(p(rl("300", "300", "0")), None);
        // a reset that is no number of seconds we would wait (e.g. a timestamp) is ignored
        assert_eq!(Announced::parse(&rl("300", "300", "1700000000"), max), None);
        assert_eq!(Announced::parse(&rl("1", "0", "5"), max), None);
        assert_eq!(Announced::parse(&rl("x", "300", "5"), max), None);
        assert_eq!(Announced::parse(&rl("-1", "300", "5"), max), None);
        assert_eq!(Announced::parse(&HeaderMap::new(), max), None);
        assert_eq!(
            Announced::parse(&rl(" 7 ", "300", "5"), max),
            Some(Announced {
                count: 7,
                allowed: 300,
                reset: Duration::from_secs(5)
            })
        );
    }

    proptest! {
        /// Hostile header values (any bytes a header may hold) never panic the parser, and what it
        /// accepts is within bounds.
        #[test]
        fn header_parsing_never_panics(
            count in proptest::collection::vec(any::<u8>(), 0..40),
            allowed in proptest::collection::vec(any::<u8>(), 0..40),
            reset in proptest::collection::vec(any::<u8>(), 0..40),
            numeric in "[ 0-9]{0,25}",
            max_s in 0u64..1_000_000,
        ) {
            let mut h = HeaderMap::new();
            for (name, v) in [("inin-ratelimit-count", &count), ("inin-ratelimit-allowed", &allowed), ("inin-ratelimit-reset", &reset)] {
                if let Ok(v) = http::HeaderValue::from_bytes(v) {
                    h.insert(name, v);
                }
            }
            let max = Duration::from_secs(max_s);
            if let Some(a) = Announced::parse(&h, max) {
                prop_assert!(a.allowed > 0 && a.reset <= max);
            }
            // Numbers of any size, spaces around them.
            let mut h = HeaderMap::new();
            for name in ["inin-ratelimit-count", "inin-ratelimit-allowed", "inin-ratelimit-reset"] {
                h.insert(name, http::HeaderValue::from_str(&numeric).unwrap());
            }
            let _ = Announced::parse(&h, max).map(|a| a.pause());
        }

        /// Whatever the answers, the controller never panics and its rate is a positive number.
        #[test]
        fn the_controller_never_panics_and_keeps_a_sane_rate(
            steps in proptest::collection::vec(
                (0u64..5_000, 0u64..5_000, any::<bool>(), proptest::option::of(0u64..120_000), any::<bool>(),
                 proptest::option::of((any::<u64>(), any::<u64>(), 0u64..120))),
                1..200),
        ) {
            tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
                let t0 = Instant::now();
                let mut c = Controller::default();
                let mut clock = Duration::ZERO;
                for (gap, latency, limited, ra, paced, ann) in steps {
                    clock += Duration::from_millis(gap);
                    let a = Answer {
                        turn_at: t0 + clock,
                        now: t0 + clock + Duration::from_millis(latency),
                        rate_limited: limited,
                        retry_after: ra.map(Duration::from_millis),
                        announced: ann.and_then(|(count, allowed, reset)| (allowed > 0).then_some(Announced { count, allowed, reset: Duration::from_secs(reset) })),
                        paced,
                    };
                    let _ = c.observe(a);
                    if let Some(r) = c.rate() {
                        assert!(r.is_finite() && r > 0.0, "{r}");
                    }
                }
            });
        }
    }
}
