//! Clock skew, learned from the API's 401s: by how much earlier than advertised the server lets
//! tokens die (its clock runs ahead, or it shortens lifetimes), so that tokens are refreshed that
//! much earlier.
//!
//! **The rule.** A *sample* is taken when the API refuses a token that this manager still believed
//! valid: the time between the refusal and the token's advertised expiry. One token gives at most
//! one sample, however many requests carrying it were refused.
//!
//! The asymmetry behind it: a wrong guess of skew costs one earlier refresh per token (cheap),
//! while a missed skew costs a wave of 401s (one per worker) for every token. And the 401's code
//! cannot be relied on (Genesys answers `bad.credentials` as readily as `credentials.expired`):
//! the status is what counts.
//!
//! - A refusal that says the token **expired** (Genesys: `credentials.expired`) is the server's
//!   own word: the sample is learned at once.
//! - Any other refusal of a token the API had accepted before (`bad.credentials`, no reason) is
//!   taken as a **provisional guess** at once: the next tokens are scheduled with it. The guess is
//!   *confirmed* (learned) when the next such refusal comes at the same age (within
//!   [`CONSISTENT_WITHIN`], or 1% of the lifetime); it is *undone* when that refusal comes at
//!   another age, or when a token outlives the age the guess gave it: revocations strike at random
//!   ages, skew at a fixed one. A guess neither confirmed nor undone decays like a learned skew.
//! - After a guess was undone, the server is taken to revoke tokens: for [`HALF_LIFE`], single
//!   refusals make no new guess (no refresh storm from false guesses), and only
//!   [`CONSISTENT_SAMPLES`] refusals in a row at the same age teach (the smallest of them).
//! - The estimate only grows with new samples; it halves every [`HALF_LIFE`] without one, so a
//!   server whose clock was fixed, or one odd sample, is forgotten. While the skew is real, a token
//!   dying early again brings it back at once.
//! - Applied to a token, the skew is capped at [`MAX_FRACTION`] of its advertised lifetime: a
//!   server claiming that every token expired at birth cannot make the manager refresh more than
//!   five times as often as the advertised lifetime says (and never below the policy's
//!   `min_lifetime`).
//!
//! Pure functions, tested at their boundaries; [`SkewEstimator`] holds the state between samples.

use crate::clock::Instant;
use crate::manager::Rejection;
use std::collections::VecDeque;
use std::time::Duration;

/// The learned skew halves every this long without a new sample; a guess that was undone keeps
/// single refusals from guessing again for this long.
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(3600);

/// A learned skew never takes more than this fraction of a token's advertised lifetime.
pub(crate) const MAX_FRACTION: f64 = 0.8;

/// Once a guess was undone, refusals that do not say "expired" teach only when this many in a row
/// agree.
pub(crate) const CONSISTENT_SAMPLES: usize = 4;

/// ... agree when they lie within this much of each other (or within 1% of the token's lifetime,
/// if that is more).
pub(crate) const CONSISTENT_WITHIN: Duration = Duration::from_millis(100);

/// The tolerance of [`CONSISTENT_WITHIN`] as a fraction of the lifetime.
const CONSISTENT_FRACTION: f64 = 0.01;

/// One sample: a token believed valid until `believed_expires_at`, advertised to expire at
/// `advertised_expires_at`, was refused at `refused_at`. `None` when the manager did not believe it
/// valid any more (a request that outlived the token proves nothing about the server's clock).
pub(crate) fn sample(
    advertised_expires_at: Instant,
    believed_expires_at: Instant,
    refused_at: Instant,
) -> Option<Duration> {
    (refused_at < believed_expires_at)
        .then(|| advertised_expires_at.saturating_duration_since(refused_at))
}

/// `estimate` after `elapsed` without a new sample (halved every [`HALF_LIFE`]).
pub(crate) fn decayed(estimate: Duration, elapsed: Duration) -> Duration {
    let halvings = elapsed.as_secs_f64() / HALF_LIFE.as_secs_f64();
    estimate.mul_f64(0.5_f64.powf(halvings))
}

/// `skew` as applied to a token advertised to live `advertised_lifetime`.
pub(crate) fn capped(skew: Duration, advertised_lifetime: Duration) -> Duration {
    skew.min(advertised_lifetime.mul_f64(MAX_FRACTION))
}

/// How far apart two samples may lie and still tell of the same age, for tokens of `lifetime`.
fn tolerance(lifetime: Duration) -> Duration {
    CONSISTENT_WITHIN.max(lifetime.mul_f64(CONSISTENT_FRACTION))
}

/// Whether samples `a` and `b` tell of the same age.
pub(crate) fn agree(a: Duration, b: Duration, lifetime: Duration) -> bool {
    a.abs_diff(b) <= tolerance(lifetime)
}

/// The skew that the last [`CONSISTENT_SAMPLES`] of `samples` (oldest first) agree on, if they do:
/// the smallest of them.
pub(crate) fn consistent(samples: &[Duration], lifetime: Duration) -> Option<Duration> {
    let recent = samples.get(samples.len().checked_sub(CONSISTENT_SAMPLES)?..)?;
    let lo = recent.iter().min()?;
    let hi = recent.iter().max()?;
    (*hi - *lo <= tolerance(lifetime)).then_some(*lo)
}

/// What one observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing.
    None,
    /// A skew was learned (the server said "expired", or a guess was confirmed): the new estimate.
    Learned(Duration),
    /// A provisional guess, applied to the next tokens until confirmed or undone.
    Guessed(Duration),
    /// The guess was wrong (the deaths look like revocations): it no longer applies.
    Undone(Duration),
}

/// A provisional guess from one unexplained early death.
#[derive(Debug, Clone, Copy)]
struct Guess {
    skew: Duration,
    at: Instant,
}

/// What the manager has learned so far.
#[derive(Debug, Default)]
pub(crate) struct SkewEstimator {
    /// The estimate when it was last learned.
    learned: Duration,
    learned_at: Option<Instant>,
    /// The provisional guess, if one stands.
    guess: Option<Guess>,
    /// When a guess was last undone: single refusals make no new guess for [`HALF_LIFE`].
    doubted_at: Option<Instant>,
    /// The latest samples from refusals that did not say "expired", oldest first.
    unexplained: VecDeque<Duration>,
}

impl SkewEstimator {
    /// The skew to apply to a token obtained at `now`: the learned one or the guess, whichever is
    /// larger, each decayed.
    pub(crate) fn current(&self, now: Instant) -> Duration {
        let guess = self.guess.map_or(Duration::ZERO, |g| {
            decayed(g.skew, now.saturating_duration_since(g.at))
        });
        self.learned_now(now).max(guess)
    }

    fn learned_now(&self, now: Instant) -> Duration {
        self.learned_at.map_or(Duration::ZERO, |at| {
            decayed(self.learned, now.saturating_duration_since(at))
        })
    }

    fn doubting(&self, now: Instant) -> bool {
        self.doubted_at
            .is_some_and(|at| now.saturating_duration_since(at) < HALF_LIFE)
    }

    fn learn(&mut self, skew: Duration, now: Instant) -> Change {
        self.guess = None;
        self.unexplained.clear();
        if skew <= self.learned_now(now) {
            return Change::None;
        }
        self.learned = skew;
        self.learned_at = Some(now);
        Change::Learned(skew)
    }

    fn undo(&mut self, now: Instant) -> Change {
        let Some(g) = self.guess.take() else {
            return Change::None;
        };
        self.doubted_at = Some(now);
        Change::Undone(g.skew)
    }

    /// Takes one sample, from a token advertised to live `lifetime`, into account.
    pub(crate) fn observe(
        &mut self,
        why: Rejection,
        sample: Duration,
        lifetime: Duration,
        now: Instant,
    ) -> Change {
        if why == Rejection::Expired {
            return self.learn(sample, now);
        }
        self.unexplained.push_back(sample);
        while self.unexplained.len() > CONSISTENT_SAMPLES {
            self.unexplained.pop_front();
        }
        if let Some(g) = self.guess {
            return if agree(sample, g.skew, lifetime) {
                self.learn(sample.min(g.skew), now)
            } else {
                self.undo(now)
            };
        }
        if !self.doubting(now) {
            if sample <= self.current(now) {
                return Change::None;
            }
            self.guess = Some(Guess {
                skew: sample,
                at: now,
            });
            return Change::Guessed(sample);
        }
        match consistent(self.unexplained.make_contiguous(), lifetime) {
            Some(skew) => self.learn(skew, now),
            None => Change::None,
        }
    }

    /// Notes that a token advertised to live `lifetime` was still in service (accepted, never
    /// refused) at age `age`: a guess that gave it a shorter life is undone.
    pub(crate) fn outlived(&mut self, age: Duration, lifetime: Duration, now: Instant) -> Change {
        match self.guess {
            Some(g) if age > lifetime.saturating_sub(g.skew) + tolerance(lifetime) => {
                self.undo(now)
            }
            _ => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    /// A fresh estimator, the paused clock's now, and the lifetime of the tests' tokens (4 s).
    fn fresh() -> (SkewEstimator, Instant, Duration) {
        (SkewEstimator::default(), Instant::now(), 4 * S)
    }

    #[tokio::test(start_paused = true)]
    async fn a_sample_needs_a_token_still_believed_valid() {
        let t0 = Instant::now();
        let advertised = t0 + 4 * S;
        let believed = t0 + 3 * S;
        assert_eq!(sample(advertised, believed, t0 + S), Some(3 * S));
        assert_eq!(sample(advertised, believed, believed - MS), Some(S + MS));
        assert_eq!(sample(advertised, believed, believed), None);
        assert_eq!(sample(advertised, believed, t0 + 10 * S), None);
        // Refused at birth: the whole lifetime (capped when applied).
        assert_eq!(sample(advertised, believed, t0), Some(4 * S));
    }

    #[test]
    fn the_estimate_halves_every_half_life() {
        let e = Duration::from_secs(8);
        assert_eq!(decayed(e, Duration::ZERO), e);
        assert_eq!(decayed(e, HALF_LIFE), Duration::from_secs(4));
        assert_eq!(decayed(e, 3 * HALF_LIFE), S);
        assert!(decayed(e, 100 * HALF_LIFE) < MS);
    }

    #[test]
    fn applied_skew_leaves_a_fifth_of_the_lifetime() {
        let l = Duration::from_secs(10);
        assert_eq!(capped(3 * S, l), 3 * S);
        assert_eq!(capped(8 * S, l), 8 * S);
        assert_eq!(capped(8 * S + MS, l), 8 * S);
        assert_eq!(capped(100 * S, l), 8 * S);
    }

    #[test]
    fn unexplained_samples_teach_only_when_enough_agree() {
        let l = Duration::from_secs(4); // 1% is 40 ms: the 100 ms floor applies
        let three = [3 * S, 3 * S, 3 * S];
        assert_eq!(consistent(&three, l), None, "too few");
        let four = [3 * S, 3 * S + 100 * MS, 3 * S + 50 * MS, 3 * S];
        assert_eq!(consistent(&four, l), Some(3 * S), "within 100 ms exactly");
        let spread = [3 * S, 3 * S + 101 * MS, 3 * S, 3 * S];
        assert_eq!(consistent(&spread, l), None, "1 ms too spread");
        // Only the latest four count.
        let later = [S, 3 * S, 3 * S, 3 * S, 3 * S];
        assert_eq!(consistent(&later, l), Some(3 * S));
        // For long lifetimes, 1% of the lifetime.
        let day = Duration::from_secs(86_400); // 864 s
        let wide = [600 * S, 600 * S + 864 * S, 700 * S, 650 * S];
        assert_eq!(consistent(&wide, day), Some(600 * S));
        let too_wide = [600 * S, 600 * S + 865 * S, 700 * S, 650 * S];
        assert_eq!(consistent(&too_wide, day), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_refusal_is_learned_at_once_and_only_grows_the_estimate() {
        let (mut e, now, l) = fresh();
        assert_eq!(e.current(now), Duration::ZERO);
        assert_eq!(
            e.observe(Rejection::Expired, 3 * S, l, now),
            Change::Learned(3 * S)
        );
        assert_eq!(e.current(now), 3 * S);
        assert_eq!(e.observe(Rejection::Expired, 2 * S, l, now), Change::None);
        assert_eq!(e.current(now), 3 * S);
        assert_eq!(
            e.observe(Rejection::Expired, 3 * S + MS, l, now),
            Change::Learned(3 * S + MS)
        );
        // An hour later it is half; a new sample restores it.
        let later = now + HALF_LIFE;
        assert!(e.current(later) <= 1501 * MS, "{:?}", e.current(later));
        assert_eq!(
            e.observe(Rejection::Expired, 3 * S, l, later),
            Change::Learned(3 * S)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_unexplained_death_is_guessed_at_once_and_confirmed_by_the_next() {
        let (mut e, now, l) = fresh();
        // bad.credentials for a token the API had accepted, 3 s before its advertised expiry:
        // applied to the next token at once.
        assert_eq!(
            e.observe(Rejection::Other, 3010 * MS, l, now),
            Change::Guessed(3010 * MS)
        );
        assert_eq!(e.current(now), 3010 * MS);
        // The next death at the same age (100 ms apart at most) confirms it: the smaller is kept.
        let later = now + 10 * S;
        assert_eq!(
            e.observe(Rejection::Other, 2910 * MS, l, later),
            Change::Learned(2910 * MS)
        );
        assert_eq!(e.current(later), 2910 * MS);
        // Once learned, a later unexplained death that says less changes nothing...
        assert_eq!(e.observe(Rejection::Other, S, l, later), Change::None);
        assert_eq!(e.current(later), 2910 * MS);
        // ... and a guess decays like a learned skew.
        let mut g = SkewEstimator::default();
        assert_eq!(
            g.observe(Rejection::Other, 2 * S, l, now),
            Change::Guessed(2 * S)
        );
        assert_eq!(g.current(now + HALF_LIFE), S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_death_at_another_age_undoes_the_guess() {
        let (mut e, now, l) = fresh();
        assert_eq!(
            e.observe(Rejection::Other, 3 * S, l, now),
            Change::Guessed(3 * S)
        );
        // 101 ms apart: another age.
        assert_eq!(
            e.observe(Rejection::Other, 3 * S + 101 * MS, l, now),
            Change::Undone(3 * S)
        );
        assert_eq!(e.current(now), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_that_outlives_the_guess_undoes_it() {
        let (mut e, now, l) = fresh();
        // Guessed: tokens die at 1 s.
        assert_eq!(
            e.observe(Rejection::Other, 3 * S, l, now),
            Change::Guessed(3 * S)
        );
        // Alive at 1.1 s (the tolerance): not yet evidence.
        assert_eq!(e.outlived(1100 * MS, l, now), Change::None);
        assert_eq!(e.current(now), 3 * S);
        assert_eq!(e.outlived(1101 * MS, l, now), Change::Undone(3 * S));
        assert_eq!(e.current(now), Duration::ZERO);
        // A learned skew is not undone by a survivor (only a guess is).
        let mut x = SkewEstimator::default();
        x.observe(Rejection::Expired, 3 * S, l, now);
        assert_eq!(x.outlived(3 * S, l, now), Change::None);
        assert_eq!(x.current(now), 3 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn revocations_at_random_ages_make_one_guess_then_teach_nothing() {
        let (mut e, now, l) = fresh();
        let ages = [2900, 100, 1700, 2300, 600, 3100, 1200, 2000, 2950, 2900];
        let changes: Vec<_> = ages
            .iter()
            .map(|ms| e.observe(Rejection::Other, Duration::from_millis(*ms), l, now))
            .collect();
        assert_eq!(changes[0], Change::Guessed(2900 * MS));
        assert_eq!(changes[1], Change::Undone(2900 * MS));
        assert!(
            changes[2..].iter().all(|c| *c == Change::None),
            "no new guess while doubting: {changes:?}"
        );
        assert_eq!(e.current(now), Duration::ZERO);
        // Doubt lasts an hour: then a single death is guessed from again.
        let later = now + HALF_LIFE;
        assert_eq!(
            e.observe(Rejection::Other, 3 * S, l, later),
            Change::Guessed(3 * S)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_doubting_unexplained_refusals_at_a_consistent_age_teach_the_smallest() {
        let (mut e, now, l) = fresh();
        e.observe(Rejection::Other, 500 * MS, l, now);
        assert_eq!(
            e.observe(Rejection::Other, 2 * S, l, now),
            Change::Undone(500 * MS)
        );
        for ms in [3010, 3040, 2990] {
            assert_eq!(
                e.observe(Rejection::Other, Duration::from_millis(ms), l, now),
                Change::None
            );
        }
        assert_eq!(
            e.observe(Rejection::Other, Duration::from_millis(3000), l, now),
            Change::Learned(Duration::from_millis(2990))
        );
    }
}
