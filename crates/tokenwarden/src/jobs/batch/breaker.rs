//! The circuit breaker: a batch whose API cannot be reached at all stops, instead of recording a
//! failure for every record for hours. The records it could not reach are held back, not
//! recorded, so that a resume runs them once the API is back.

use std::time::Duration;
use tokio::time::Instant;

/// When a batch gives up on an API it cannot reach: after `records` records in a row found it
/// unreachable (connection refused, DNS, no answer within the retries), or once it has been
/// unreachable for every record for `window`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Records in a row.
    pub records: u64,
    /// How long, from the start of the first of them.
    pub window: Duration,
}

impl Default for Breaker {
    /// 20 records in a row, or 30 seconds.
    fn default() -> Self {
        Breaker {
            records: 20,
            window: Duration::from_secs(30),
        }
    }
}

/// The records in a row that could not reach the API, held back until it answers again.
#[derive(Debug)]
pub(crate) struct Streak<T> {
    limit: Breaker,
    held: Vec<T>,
    /// When the first of them was started.
    since: Option<Instant>,
}

impl<T> Streak<T> {
    pub(crate) fn new(limit: Breaker) -> Self {
        Streak {
            limit,
            held: Vec::new(),
            since: None,
        }
    }

    /// A record, started at `started`, that could not reach the API. True when the breaker trips.
    pub(crate) fn unreachable(&mut self, item: T, started: Instant, now: Instant) -> bool {
        let since = self.since.map_or(started, |s| s.min(started));
        self.since = Some(since);
        self.held.push(item);
        self.held.len() as u64 >= self.limit.records.max(1)
            || now.saturating_duration_since(since) >= self.limit.window
    }

    /// The API answered: the streak is over, and the records held back are handed back (they
    /// failed while the API was up for others: they are recorded as failed).
    pub(crate) fn answered(&mut self) -> Vec<T> {
        self.since = None;
        std::mem::take(&mut self.held)
    }

    /// Records held back.
    pub(crate) fn held(&self) -> u64 {
        self.held.len() as u64
    }

    /// How long the API has been unreachable, as of `now`.
    pub(crate) fn lasted(&self, now: Instant) -> Duration {
        self.since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn trips_after_n_in_a_row_or_after_the_window() {
        let limit = Breaker {
            records: 3,
            window: Duration::from_secs(30),
        };
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut streak = Streak::new(limit);
        assert!(!streak.unreachable(1, s(0), s(20)));
        assert!(!streak.unreachable(2, s(5), s(21)));
        // An answer ends the streak: what was held is handed back.
        assert_eq!(streak.answered(), vec![1, 2]);
        assert_eq!(streak.held(), 0);
        assert!(!streak.unreachable(3, s(22), s(40)));
        assert!(!streak.unreachable(4, s(23), s(41)));
        assert!(streak.unreachable(5, s(24), s(42)), "three in a row");
        let mut streak = Streak::new(limit);
        assert!(!streak.unreachable(1, s(10), s(39)));
        assert!(
            streak.unreachable(2, s(12), s(40)),
            "30 s since the first began"
        );
        assert_eq!(streak.lasted(s(40)), Duration::from_secs(30));
        // A record started earlier than the first one moves the start back.
        let mut streak = Streak::new(limit);
        assert!(!streak.unreachable(1, s(20), s(21)));
        assert!(streak.unreachable(2, s(0), s(31)));
    }
}
