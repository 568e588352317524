//! [`MintPacing`]: token requests spaced in time, never in a burst. Genesys throttles token
//! creation per OAuth client (a 400 "rate limit exceeded"), so the managers of a token pool, and
//! every process of a fleet, take turns at the token endpoint.

use crate::clock::Instant;
use crate::rate::SharedBudget;
use crate::rate::ratelimit::reserve;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// At least `interval` between two token requests of every manager that shares this pacing (the
/// managers of a token pool: [`TokenManagerBuilder::mint_pacing`](crate::TokenManagerBuilder::mint_pacing)),
/// and of every process, when a [`SharedBudget`] is given (a fleet: see
/// [`RedisStore::mint_budget`](crate::store::RedisStore::mint_budget)).
///
/// Each token request (retries included) takes the next turn; the turns of waiting requests are
/// reserved in order, so four tokens wanted at once are requested at 0, 1, 2 and 3 intervals.
///
/// ```
/// use std::time::Duration;
/// use tokenwarden::manager::MintPacing;
/// let pacing = MintPacing::new(Duration::from_secs(1)); // clone it into each pool manager
/// assert_eq!(pacing.interval(), Duration::from_secs(1));
/// ```
#[derive(Clone, Debug)]
pub struct MintPacing {
    interval: Duration,
    /// guards the theoretical time of the next token request (while the shared budget, if any,
    /// cannot be reached)
    tat: Arc<Mutex<Option<Instant>>>,
    shared: Option<Arc<dyn SharedBudget>>,
}

impl MintPacing {
    /// Token requests at least `interval` apart.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            tat: Arc::default(),
            shared: None,
        }
    }

    /// Keeps the turns in `budget`, shared with other processes (falling back to this process's
    /// own turns while it cannot be reached).
    pub fn shared(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        self.shared = Some(budget);
        self
    }

    /// The least time between two token requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for the next token request's turn.
    pub(crate) async fn turn(&self) {
        let shared = match &self.shared {
            Some(budget) => budget.reserve(self.interval, Duration::ZERO).await,
            None => None,
        };
        let wait = shared.unwrap_or_else(|| {
            let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
            let (next, wait) = reserve(*tat, Instant::now(), self.interval, Duration::ZERO);
            *tat = Some(next);
            wait
        });
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "waiting for this token request's turn"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_wanted_at_once_are_spaced() {
        let pacing = MintPacing::new(Duration::from_millis(500));
        let t0 = Instant::now();
        let turns: Vec<_> = (0..4)
            .map(|_| {
                let p = pacing.clone();
                tokio::spawn(async move {
                    p.turn().await;
                    Instant::now() - t0
                })
            })
            .collect();
        let mut at = vec![];
        for t in turns {
            at.push(t.await.unwrap());
        }
        at.sort();
        let ms = Duration::from_millis;
        assert_eq!(at, [ms(0), ms(500), ms(1000), ms(1500)]);
    }
}
