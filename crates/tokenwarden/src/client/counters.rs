//! The client's live counters and their snapshot, [`ClientMetrics`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of an [`ApiClient`](super::ApiClient).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) unauthorized_healed: AtomicU64,
    pub(crate) rate_limited_waits: AtomicU64,
    pub(crate) server_errors_retried: AtomicU64,
    pub(crate) transport_retries: AtomicU64,
    pub(crate) redirects_followed: AtomicU64,
    pub(crate) throttle_waits: AtomicU64,
    pub(crate) rate_limit_pauses: AtomicU64,
    pub(crate) rate_cuts: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientMetrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientMetrics {
            requests: g(&self.requests),
            attempts: g(&self.attempts),
            retries: g(&self.retries),
            unauthorized_healed: g(&self.unauthorized_healed),
            rate_limited_waits: g(&self.rate_limited_waits),
            server_errors_retried: g(&self.server_errors_retried),
            transport_retries: g(&self.transport_retries),
            redirects_followed: g(&self.redirects_followed),
            throttle_waits: g(&self.throttle_waits),
            rate_limit_pauses: g(&self.rate_limit_pauses),
            rate_cuts: g(&self.rate_cuts),
            failures: g(&self.failures),
        }
    }
}

/// A snapshot of an [`ApiClient`](super::ApiClient)'s counters (shared by its clones). Relaxed atomics: each value is
/// exact, a snapshot is not one instant across fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClientMetrics {
    /// Requests sent by callers ([`RequestBuilder::send`](super::RequestBuilder::send) calls).
    pub requests: u64,
    /// HTTP exchanges, counting every retry and redirect hop.
    pub attempts: u64,
    /// Attempts that repeated a failed one (heals included, redirects not).
    pub retries: u64,
    /// 401s healed by a new token: counted once the retry with the new token was answered with
    /// anything but another 401.
    pub unauthorized_healed: u64,
    /// 429s waited out.
    pub rate_limited_waits: u64,
    /// 5xx answers retried.
    pub server_errors_retried: u64,
    /// Transport failures (connect errors, timeouts, resets) retried.
    pub transport_retries: u64,
    /// Redirects followed.
    pub redirects_followed: u64,
    /// Attempts that waited for their turn (fixed or learned rate).
    pub throttle_waits: u64,
    /// Times every request was held: the `inin-ratelimit-*` headers said the allowance was used
    /// up, or a 429 came after the rate had been cut in the same window.
    pub rate_limit_pauses: u64,
    /// Times the learned rate was cut after a 429.
    pub rate_cuts: u64,
    /// Requests that ended in an error.
    pub failures: u64,
}
