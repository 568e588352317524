//! When to retry and how long to wait: exponential backoff with jitter, `Retry-After` honoured.
//! Pure functions of their inputs, so tests call them at the boundaries.

pub use crate::clock::Jitter;

use std::time::{Duration, SystemTime};

/// An exponential backoff policy with a retry budget.
///
/// The delay before retry `n` (1-based) is `initial × multiplier^(n-1)`, capped at `max_delay`, then
/// spread by "equal jitter" (half fixed, half random) so a fleet of clients does not retry in step.
/// A server's `Retry-After` replaces the computed delay (plus a little jitter), capped at
/// `max_retry_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Growth factor per retry.
    pub multiplier: f64,
    /// Largest computed delay.
    pub max_delay: Duration,
    /// Largest wait accepted from a `Retry-After` header.
    pub max_retry_after: Duration,
    /// Most attempts in total (first try included).
    pub max_attempts: u32,
    /// Longest time to keep retrying, from the first attempt.
    pub max_elapsed: Duration,
}

impl Default for Backoff {
    /// 200 ms doubling to 10 s, at most 8 attempts within 60 s (the Terraform provider retries token
    /// minting for up to a minute; Genesys's `Retry-After` for 429 is usually under a minute).
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_attempts: 8,
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry), given a `jitter` sample in
    /// `[0, 1)` and the server's `Retry-After`, if any.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        if let Some(ra) = retry_after {
            // Up to 10% (max 1 s) extra so that clients told the same second do not return in step.
            let extra = (ra.as_secs_f64() * 0.1).min(1.0) * jitter;
            return ra.min(self.max_retry_after) + Duration::from_secs_f64(extra);
        }
        let exp = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(base / 2.0 + base / 2.0 * jitter)
    }

    /// The wait before retry number `retry`, if the budget allows another attempt after `attempts`
    /// attempts taking `elapsed`; `None` when the budget is spent.
    pub fn next_delay(
        &self,
        retry: u32,
        attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        let delay = self.delay(retry, retry_after, jitter);
        self.allows(attempts, elapsed, delay).then_some(delay)
    }

    /// Whether another attempt is allowed after `attempts` attempts taking `elapsed`, if the next one
    /// would start after waiting `next_delay`.
    pub fn allows(&self, attempts: u32, elapsed: Duration, next_delay: Duration) -> bool {
        attempts < self.max_attempts && elapsed + next_delay <= self.max_elapsed
    }
}

/// Parses a `Retry-After` value: delta-seconds (what Genesys sends) or an HTTP-date, relative to `now`.
/// A date in the past means "now" (zero). Garbage gives `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(1e9)));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads `Retry-After` from a header map.
pub(crate) fn retry_after_header(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_and_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, None, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(1, None, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(2, None, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(3, None, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(20, None, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX, None, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3)), 0.0),
            Duration::from_secs(3)
        );
        let j = b.delay(1, Some(Duration::from_secs(3)), 1.0);
        assert!(j > Duration::from_secs(3) && j <= Duration::from_millis(3300));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn budget_boundaries() {
        let b = Backoff {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            ..Backoff::default()
        };
        assert!(b.allows(2, Duration::ZERO, Duration::ZERO));
        assert!(!b.allows(3, Duration::ZERO, Duration::ZERO));
        assert!(b.allows(1, Duration::from_secs(9), Duration::from_secs(1)));
        assert!(!b.allows(1, Duration::from_secs(9), Duration::from_millis(1001)));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("42", now), Some(Duration::from_secs(42)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = now + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("1e400", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(
            parse_retry_after("1e300", now),
            Some(Duration::from_secs(1_000_000_000))
        );
    }

    proptest::proptest! {
        /// Whatever a server puts in `Retry-After`, parsing never panics, and neither does the
        /// wait computed from it; the wait is capped.
        #[test]
        fn parse_retry_after_never_panics(
            value in proptest::prelude::any::<String>(),
            number in "[-+ ]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,4})?",
            now_secs in proptest::prelude::any::<u32>(),
        ) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now_secs));
            let b = Backoff::default();
            for v in [value.as_str(), number.as_str()] {
                let ra = parse_retry_after(v, now);
                let wait = b.delay(1, ra, 0.5);
                proptest::prop_assert!(ra.is_none() || wait <= b.max_retry_after + Duration::from_secs(1));
            }
        }

        /// Valid HTTP dates anywhere in time, and garbage around them.
        #[test]
        fn http_dates_never_panic(
            when in proptest::prelude::any::<u32>(),
            now in proptest::prelude::any::<u32>(),
            junk in "[ -~]{0,3}",
        ) {
            let date = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(when)));
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now));
            let _ = parse_retry_after(&date, now);
            let _ = parse_retry_after(&format!("{junk}{date}{junk}"), now);
        }
    }
}
