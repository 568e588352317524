//! [`SharedBudget`]: a request schedule shared beyond this process, so that a fleet of processes
//! (on one machine or many) sharing one token stays under that token's limit together.

use async_trait::async_trait;
use std::time::Duration;

/// A rate budget shared by every process that uses it: one GCRA schedule (theoretical arrival
/// time) kept outside the process, such as `store::RedisBudget` in Redis.
///
/// The [`ApiClient`](crate::ApiClient)'s pacer reserves each request's slot here instead of in its
/// own memory once it paces at all (a fixed [`RateLimit`](crate::RateLimit), or a rate learned
/// from the API), and shares its holds (an exhausted window) the same way; the
/// `manager::MintPacing` of a token pool spaces token requests through one too.
///
/// Implementations must answer in bounded time: a budget that cannot be reached answers `None`
/// at once, and the caller paces on its own until it can be reached again.
#[async_trait]
pub trait SharedBudget: Send + Sync + std::fmt::Debug + 'static {
    /// Reserves the next slot of a schedule whose slots are `interval` apart (a burst may run up
    /// to `tolerance` ahead of it) and says how long to wait for it, or `None` when the budget
    /// cannot be reached now.
    async fn reserve(&self, interval: Duration, tolerance: Duration) -> Option<Duration>;

    /// Moves the schedule so that nobody starts before `wait` from now (the API said its window
    /// is used up). Best effort: nothing happens when the budget cannot be reached.
    async fn hold(&self, wait: Duration);
}
