//! The refresh timer: one armed timer per manager, never more. Arming a new one (for a new token)
//! aborts the previous one, and dropping the manager aborts the last, so a long job that replaces
//! its token thousands of times keeps one sleeping task, not thousands.

use crate::clock::Instant;
use std::sync::Mutex;
use tokio::task::AbortHandle;

/// At most one pending timer.
#[derive(Debug, Default)]
pub(crate) struct RefreshTimer {
    /// guards the pending timer task, to abort it when it is replaced or the manager goes away.
    armed: Mutex<Option<AbortHandle>>,
}

impl RefreshTimer {
    /// Calls `fire` at `at`, unless [`arm`](Self::arm) is called again first or the timer is
    /// dropped. `fire` must not hold the manager alive (pass it a `Weak`).
    pub(crate) fn arm(&self, at: Instant, fire: impl FnOnce() + Send + 'static) {
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            fire();
        });
        let previous = self
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Aborts the pending timer, if any.
    pub(crate) fn disarm(&self) {
        if let Some(t) = self.armed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl Drop for RefreshTimer {
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn alive() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    async fn settle() {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rearming_aborts_the_previous_timer() {
        let timer = RefreshTimer::default();
        let fired = Arc::new(AtomicU32::new(0));
        let t0 = Instant::now();
        for i in 1..=100u32 {
            let f = Arc::clone(&fired);
            timer.arm(t0 + Duration::from_secs(10 + u64::from(i)), move || {
                f.fetch_add(i, Ordering::SeqCst);
            });
        }
        settle().await;
        assert_eq!(alive(), 1, "one pending timer, not a hundred");
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 100, "only the last one fired");
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_timer_aborts_it() {
        let timer = RefreshTimer::default();
        let fired = Arc::new(AtomicU32::new(0));
        let f = Arc::clone(&fired);
        timer.arm(Instant::now() + Duration::from_secs(1), move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        settle().await;
        assert_eq!(alive(), 1);
        drop(timer);
        settle().await;
        assert_eq!(alive(), 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 0);
    }
}
