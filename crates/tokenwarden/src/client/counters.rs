//! [`ClientMetrics`]: the client's counters, read from its recorder.

/// A snapshot of an [`ApiClient`](super::ApiClient)'s counters (shared by its clones), read from
/// its [`Recorder`](crate::observe::Recorder): the same events the summary, the report, the
/// progress line and `/metrics` count, so they cannot disagree. Relaxed atomics: each value is
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

impl ClientMetrics {
    /// The counters of `recorder`'s events.
    pub(crate) fn of(recorder: &crate::observe::Recorder) -> ClientMetrics {
        use crate::observe::Step;
        let c = recorder.client_counts();
        ClientMetrics {
            requests: c.of(Step::Request),
            attempts: c.of(Step::Attempt),
            retries: c.of(Step::Retry),
            unauthorized_healed: c.healed,
            rate_limited_waits: c.waits_429,
            server_errors_retried: c.of(Step::ServerErrorRetried),
            transport_retries: c.of(Step::TransportRetried),
            redirects_followed: c.of(Step::RedirectFollowed),
            throttle_waits: c.paced,
            rate_limit_pauses: c.holds,
            rate_cuts: c.of(Step::RateCut),
            failures: c.of(Step::Failure),
        }
    }
}
