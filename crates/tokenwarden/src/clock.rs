//! Time and chance, injected.
//!
//! **Time is tokio's clock.** Every lifecycle rule reads [`Instant::now`] (tokio's instant) and
//! every wait is a tokio sleep, so one clock drives them all: the token manager's timers and retry
//! waits, the client's backoff and rate limiter, reqwest's timeouts. Tests pause it
//! (`#[tokio::test(start_paused = true)]`) and move it with `tokio::time::advance` or by letting it
//! auto-advance. There is deliberately no separate `Clock` trait: a hand-moved clock could drive
//! only the waits written against it, while reqwest, hyper and tokio's own timeouts kept following
//! tokio's clock, and the two would disagree.
//!
//! The wall clock is needed only to translate absolute expiries (a JWT `exp`, a token shared through
//! a file with other processes, an HTTP-date `Retry-After`); [`wall_now`] derives it from tokio's
//! clock so that it moves with the paused clock too.
//!
//! **Jitter** is injected through [`Jitter`], so that tests can ask for none.

use std::time::SystemTime;

pub(crate) use tokio::time::Instant;

/// The current wall-clock time, moving with tokio's clock: while tokio's clock is paused in a test,
/// so is this one, and `tokio::time::advance` moves both.
///
/// The one place where the real clocks are read (see `clippy.toml`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_now() -> SystemTime {
    let real_wall = SystemTime::now();
    let real = std::time::Instant::now();
    let tokio_now = Instant::now().into_std();
    // Paused, tokio's clock is ahead of (or behind) the real one by the time advanced (or not yet
    // advanced); unpaused, the two are the same and the correction is zero.
    match tokio_now.checked_duration_since(real) {
        Some(ahead) => real_wall + ahead,
        None => real_wall
            .checked_sub(real.saturating_duration_since(tokio_now))
            .unwrap_or(real_wall),
    }
}

/// The real wall-clock time, whatever tokio's clock says: for comparing with what the file system
/// records (a file's modification time), which a paused test clock does not move.
#[allow(clippy::disallowed_methods)]
pub(crate) fn file_system_now() -> SystemTime {
    SystemTime::now()
}

/// A source of jitter: a number in `[0, 1)`. Injected so that tests can ask for none.
pub trait Jitter: Send + Sync + std::fmt::Debug + 'static {
    /// A fresh sample in `[0, 1)`.
    fn sample(&self) -> f64;
}

/// Uniform random jitter from the thread-local RNG (the default). Public with feature `test-util`.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn sample(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// A fixed jitter sample; `FixedJitter(0.0)` means "no jitter". A test hook: feature `test-util`.
#[cfg(any(test, feature = "test-util"))]
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedJitter(pub f64);

#[cfg(any(test, feature = "test-util"))]
impl Jitter for FixedJitter {
    fn sample(&self) -> f64 {
        self.0.clamp(0.0, 0.999_999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_moves_with_the_paused_clock() {
        let before = wall_now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = wall_now();
        let moved = after.duration_since(before).unwrap();
        // An hour of paused time, give or take the nanoseconds between reading the two real clocks,
        // plus the little real time the test took.
        assert!(moved >= Duration::from_millis(3_599_999), "{moved:?}");
        assert!(moved < Duration::from_secs(3660), "{moved:?}");
    }

    #[tokio::test]
    async fn unpaused_the_wall_clock_is_the_real_one() {
        #[allow(clippy::disallowed_methods)]
        let real = SystemTime::now();
        let ours = wall_now();
        let diff = ours.duration_since(real).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_secs(1), "{diff:?}");
    }
}
