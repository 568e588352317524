//! Counters a caller can read: how many tokens were fetched and why, and how refreshes went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters of a [`TokenManager`](crate::TokenManager). Relaxed atomics: cheap, and each value
/// is exact, though a snapshot is not one instant across fields.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) tokens_fetched: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) proactive_refreshes: AtomicU64,
    pub(crate) reactive_refreshes: AtomicU64,
    pub(crate) rejected_refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) adopted_from_store: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot, with the values kept elsewhere: the current token's time to expiry, the learned
    /// clock skew, and the refreshes that panicked or were cancelled (counted as failures).
    pub(crate) fn snapshot(
        &self,
        time_to_expiry: Option<Duration>,
        clock_skew: Duration,
        abandoned_refreshes: u64,
    ) -> Metrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            tokens_fetched: g(&self.tokens_fetched),
            token_requests: g(&self.token_requests),
            proactive_refreshes: g(&self.proactive_refreshes),
            reactive_refreshes: g(&self.reactive_refreshes),
            rejected_refreshes: g(&self.rejected_refreshes),
            refresh_failures: g(&self.refresh_failures) + abandoned_refreshes,
            adopted_from_store: g(&self.adopted_from_store),
            time_to_expiry,
            clock_skew,
        }
    }
}

/// A snapshot of a [`TokenManager`](crate::TokenManager)'s counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Tokens obtained from the token endpoint.
    pub tokens_fetched: u64,
    /// HTTP requests made to the token endpoint (including failed ones and retries).
    pub token_requests: u64,
    /// Refreshes started in the background because the token entered its refresh window.
    pub proactive_refreshes: u64,
    /// Refreshes started because a caller found no valid token (first token, or expired).
    pub reactive_refreshes: u64,
    /// Refreshes started because the API rejected the current token (HTTP 401).
    pub rejected_refreshes: u64,
    /// Refreshes that ended without a token (including any that panicked or were cancelled).
    pub refresh_failures: u64,
    /// Tokens adopted from the shared store instead of being fetched.
    pub adopted_from_store: u64,
    /// Time left before the current token expires, if there is one.
    pub time_to_expiry: Option<Duration>,
    /// How much earlier than advertised the API has been seen to let tokens die (learned from its
    /// 401s; see [`TokenManager::rejected_with`](crate::TokenManager::rejected_with)). Tokens are
    /// refreshed this much earlier.
    pub clock_skew: Duration,
}

impl Metrics {
    /// The counters of two managers together (a token pool): sums, the earliest expiry and the
    /// largest skew.
    pub(crate) fn plus(self, other: Metrics) -> Metrics {
        Metrics {
            tokens_fetched: self.tokens_fetched + other.tokens_fetched,
            token_requests: self.token_requests + other.token_requests,
            proactive_refreshes: self.proactive_refreshes + other.proactive_refreshes,
            reactive_refreshes: self.reactive_refreshes + other.reactive_refreshes,
            rejected_refreshes: self.rejected_refreshes + other.rejected_refreshes,
            refresh_failures: self.refresh_failures + other.refresh_failures,
            adopted_from_store: self.adopted_from_store + other.adopted_from_store,
            time_to_expiry: match (self.time_to_expiry, other.time_to_expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            clock_skew: self.clock_skew.max(other.clock_skew),
        }
    }
}
