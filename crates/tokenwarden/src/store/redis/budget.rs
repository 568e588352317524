//! [`RedisBudget`]: a GCRA schedule kept in Redis, shared by every process of a fleet.

use super::link::Link;
use super::scripts;
use crate::rate::SharedBudget;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A request schedule (GCRA) in Redis: one atomic script per request reserves its slot on the
/// Redis server's clock, so every process that uses the same budget keeps one pace together. Made
/// by [`RedisStore::rate_budget`](crate::store::RedisStore::rate_budget) (one per token) and
/// [`RedisStore::mint_budget`](crate::store::RedisStore::mint_budget) (one per OAuth client, for token
/// requests). While Redis cannot be reached it answers `None` at once and the caller paces on its
/// own.
#[derive(Debug, Clone)]
pub struct RedisBudget {
    pub(super) link: Arc<Link>,
    pub(super) key: String,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[async_trait]
impl SharedBudget for RedisBudget {
    async fn reserve(&self, interval: Duration, tolerance: Duration) -> Option<Duration> {
        let (interval, tolerance) = (
            micros(interval).max(1).to_string(),
            micros(tolerance).to_string(),
        );
        let wait: u64 = self
            .link
            .script(
                "reserve",
                &scripts::RESERVE,
                &[&self.key],
                &[&interval, &tolerance],
            )
            .await?;
        Some(Duration::from_micros(wait))
    }

    async fn hold(&self, wait: Duration) {
        let wait = micros(wait).to_string();
        let _: Option<i64> = self
            .link
            .script("hold", &scripts::HOLD, &[&self.key], &[&wait])
            .await;
    }
}
