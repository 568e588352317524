//! A fixed client-side request rate and the GCRA (generic cell rate algorithm) step that spaces
//! requests to a rate; the client's pacer applies it to every task of a client, so
//! a job stays under the API's own limit (Genesys: 300 requests per minute per token).

use crate::clock::Instant;
use std::time::Duration;

/// At most `requests` requests per `per`, with bursts of up to `burst` requests.
///
/// ```
/// use tokenwarden::RateLimit;
/// // Genesys's default per-token limit, spread evenly (one request every 200 ms):
/// let limit = RateLimit::per_minute(300);
/// // the same rate, but 10 requests may go at once after a pause:
/// let bursty = RateLimit::per_minute(300).with_burst(10);
/// # let _ = (limit, bursty);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    requests: u32,
    per: Duration,
    burst: u32,
}

impl RateLimit {
    /// `requests` per second (at least 1), no burst.
    pub fn per_second(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(1))
    }

    /// `requests` per minute (at least 1), no burst.
    pub fn per_minute(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(60))
    }

    /// `requests` per `per` (at least 1 request, at least 1 ns), no burst.
    pub fn new(requests: u32, per: Duration) -> Self {
        Self {
            requests: requests.max(1),
            per: per.max(Duration::from_nanos(1)),
            burst: 1,
        }
    }

    /// Lets up to `burst` requests (at least 1) go at once after an idle period.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// Time between two requests at the steady rate.
    pub fn interval(&self) -> Duration {
        self.per / self.requests
    }

    /// How far ahead of the steady rate a burst may run.
    pub(crate) fn tolerance(&self) -> Duration {
        self.interval() * (self.burst - 1)
    }
}

/// The GCRA step, pure: given the theoretical arrival time `tat` of the next request (`None` before
/// the first) and `now`, returns the new `tat` and how long this request must wait. The caller
/// reserves its slot at once and then waits, so waiting tasks are served in order.
pub(crate) fn reserve(
    tat: Option<Instant>,
    now: Instant,
    interval: Duration,
    tolerance: Duration,
) -> (Instant, Duration) {
    let tat = tat.map_or(now, |t| t.max(now));
    let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
    (tat + interval, allowed_at.saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn steady_rate_spaces_requests() {
        let t0 = Instant::now();
        let i = 200 * MS;
        let (tat, w) = reserve(None, t0, i, Duration::ZERO);
        assert_eq!(w, Duration::ZERO);
        assert_eq!(tat, t0 + i);
        // the second request at once waits one interval, the third two
        let (tat, w) = reserve(Some(tat), t0, i, Duration::ZERO);
        assert_eq!(w, i);
        let (tat, w) = reserve(Some(tat), t0, i, Duration::ZERO);
        assert_eq!(w, 2 * i);
        // after a long pause the debt is gone, and no credit is saved up without a burst
        let later = t0 + Duration::from_secs(10);
        let (tat, w) = reserve(Some(tat), later, i, Duration::ZERO);
        assert_eq!(w, Duration::ZERO);
        let (_, w) = reserve(Some(tat), later, i, Duration::ZERO);
        assert_eq!(w, i);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_goes_at_once_then_steady() {
        let limit = RateLimit::per_second(10).with_burst(3);
        let (i, tol) = (limit.interval(), limit.tolerance());
        assert_eq!(i, 100 * MS);
        assert_eq!(tol, 200 * MS);
        let t0 = Instant::now();
        let mut tat = None;
        let mut waits = vec![];
        for _ in 0..5 {
            let (next, w) = reserve(tat, t0, i, tol);
            tat = Some(next);
            waits.push(w);
        }
        assert_eq!(
            waits,
            vec![Duration::ZERO, Duration::ZERO, Duration::ZERO, i, 2 * i]
        );
    }

    #[test]
    fn constructors_clamp() {
        assert_eq!(RateLimit::per_minute(300).interval(), 200 * MS);
        assert_eq!(RateLimit::per_second(0).interval(), Duration::from_secs(1));
        assert_eq!(
            RateLimit::per_second(5).with_burst(0).tolerance(),
            Duration::ZERO
        );
    }
}
