//! Time, injected: every lifecycle rule asks a [`Clock`] for "now" instead of reading the system clock,
//! so tests can run on tokio's paused clock or on a [`ManualClock`].

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub use tokio::time::Instant;

/// A source of the current time.
///
/// `now` is monotonic and drives every expiry decision; `wall` is only used to translate an absolute
/// expiry (a JWT `exp` claim, a token shared through a file or Redis) into a monotonic instant.
///
/// Implementations must be cheap: `now` is called on every request.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current monotonic instant.
    fn now(&self) -> Instant;
    /// The current wall-clock time.
    fn wall(&self) -> SystemTime;
}

/// The real clock, via tokio's time driver: `now` follows tokio's paused clock in tests
/// (`#[tokio::test(start_paused = true)]`), and the wall clock moves along with it.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: Instant,
    origin_wall: SystemTime,
}

impl TokioClock {
    /// A clock anchored at the current instant and wall time.
    #[allow(clippy::disallowed_methods)] // the one place the real wall clock is read
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            // The one place, with `Instant::now` above, where the real clocks are read.
            origin_wall: SystemTime::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        self.origin_wall + Instant::now().saturating_duration_since(self.origin)
    }
}

/// A clock that moves only when told to; for deterministic tests of time rules.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<(Instant, SystemTime)>>,
}

impl ManualClock {
    /// A manual clock starting at tokio's current instant and the Unix epoch plus `wall_secs`.
    pub fn new(wall_secs: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new((
                Instant::now(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(wall_secs),
            ))),
        }
    }

    /// Moves both the monotonic and the wall clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += by;
        g.1 += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn wall(&self) -> SystemTime {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// A source of jitter: a number in `[0, 1)`. Injected so that tests can ask for none.
pub trait Jitter: Send + Sync + std::fmt::Debug + 'static {
    /// A fresh sample in `[0, 1)`.
    fn sample(&self) -> f64;
}

/// Uniform random jitter from the thread-local RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn sample(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// A fixed jitter sample; `FixedJitter(0.0)` means "no jitter".
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn sample(&self) -> f64 {
        self.0.clamp(0.0, 0.999_999)
    }
}
