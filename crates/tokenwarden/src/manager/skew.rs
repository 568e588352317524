//! Clock skew, learned from the API's 401s: by how much earlier than advertised the server lets
//! tokens die (its clock runs ahead, or it shortens lifetimes), so that tokens are refreshed that
//! much earlier.
//!
//! **The rule.** A *sample* is taken when the API refuses a token that this manager still believed
//! valid: the time between the refusal and the token's advertised expiry. One token gives at most
//! one sample, however many requests carrying it were refused.
//!
//! - A refusal that says the token **expired** (Genesys: `credentials.expired`) is the server's
//!   own word: the sample is learned at once.
//! - Any other refusal (`bad.credentials`, no reason) is usually a revocation, which happens at any
//!   age. Such samples teach only when [`CONSISTENT_SAMPLES`] in a row, from tokens the API had
//!   accepted before, agree within [`CONSISTENT_WITHIN`] (or 1% of the lifetime): skew kills every
//!   token at the same age, revocations do not. The smallest of them is learned.
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

/// The learned skew halves every this long without a new sample.
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(3600);

/// A learned skew never takes more than this fraction of a token's advertised lifetime.
pub(crate) const MAX_FRACTION: f64 = 0.8;

/// Refusals that do not say "expired" teach only when this many in a row agree.
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

/// The skew that the last [`CONSISTENT_SAMPLES`] of `samples` (oldest first) agree on, if they do:
/// the smallest of them.
pub(crate) fn consistent(samples: &[Duration], lifetime: Duration) -> Option<Duration> {
    let recent = samples.get(samples.len().checked_sub(CONSISTENT_SAMPLES)?..)?;
    let lo = recent.iter().min()?;
    let hi = recent.iter().max()?;
    let tolerance = CONSISTENT_WITHIN.max(lifetime.mul_f64(CONSISTENT_FRACTION));
    (*hi - *lo <= tolerance).then_some(*lo)
}

/// What the manager has learned so far.
#[derive(Debug, Default)]
pub(crate) struct SkewEstimator {
    /// The estimate when it was last learned.
    learned: Duration,
    learned_at: Option<Instant>,
    /// The latest samples from refusals that did not say "expired", oldest first.
    unexplained: VecDeque<Duration>,
}

impl SkewEstimator {
    /// The skew to apply to a token obtained at `now`.
    pub(crate) fn current(&self, now: Instant) -> Duration {
        self.learned_at.map_or(Duration::ZERO, |at| {
            decayed(self.learned, now.saturating_duration_since(at))
        })
    }

    /// Takes one sample into account; returns the new estimate if it grew.
    pub(crate) fn observe(
        &mut self,
        why: Rejection,
        sample: Duration,
        lifetime: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let candidate = match why {
            Rejection::Expired => Some(sample),
            Rejection::Other => {
                self.unexplained.push_back(sample);
                while self.unexplained.len() > CONSISTENT_SAMPLES {
                    self.unexplained.pop_front();
                }
                consistent(self.unexplained.make_contiguous(), lifetime)
            }
        }?;
        if candidate <= self.current(now) {
            return None;
        }
        self.learned = candidate;
        self.learned_at = Some(now);
        self.unexplained.clear();
        Some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

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
        let mut e = SkewEstimator::default();
        let now = Instant::now();
        let l = 4 * S;
        assert_eq!(e.current(now), Duration::ZERO);
        assert_eq!(e.observe(Rejection::Expired, 3 * S, l, now), Some(3 * S));
        assert_eq!(e.current(now), 3 * S);
        assert_eq!(e.observe(Rejection::Expired, 2 * S, l, now), None);
        assert_eq!(e.current(now), 3 * S);
        assert_eq!(
            e.observe(Rejection::Expired, 3 * S + MS, l, now),
            Some(3 * S + MS)
        );
        // An hour later it is half; a new sample restores it.
        let later = now + HALF_LIFE;
        assert!(e.current(later) <= 1501 * MS, "{:?}", e.current(later));
        assert_eq!(e.observe(Rejection::Expired, 3 * S, l, later), Some(3 * S));
    }

    #[tokio::test(start_paused = true)]
    async fn revocations_at_random_ages_teach_nothing() {
        let mut e = SkewEstimator::default();
        let now = Instant::now();
        let l = 4 * S;
        for ms in [2900, 100, 1700, 2300, 600, 3100, 1200, 2000] {
            assert_eq!(
                e.observe(Rejection::Other, Duration::from_millis(ms), l, now),
                None
            );
        }
        assert_eq!(e.current(now), Duration::ZERO);
        // An isolated odd sample among them is not enough either.
        assert_eq!(e.observe(Rejection::Other, 3 * S, l, now), None);
        assert_eq!(e.current(now), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn unexplained_refusals_at_a_consistent_age_teach_the_smallest() {
        let mut e = SkewEstimator::default();
        let now = Instant::now();
        let l = 4 * S;
        let ages = [3010, 3040, 2990];
        for ms in ages {
            assert_eq!(
                e.observe(Rejection::Other, Duration::from_millis(ms), l, now),
                None
            );
        }
        assert_eq!(
            e.observe(Rejection::Other, Duration::from_millis(3000), l, now),
            Some(Duration::from_millis(2990))
        );
    }
}
