//! The API's latency ([`SimConfig::latency`](crate::SimConfig::latency)), kept by the operating
//! system's high-resolution timer instead of tokio's.
//!
//! tokio's timer wheel counts whole milliseconds: a deadline is rounded up to the next one, and
//! the driver sleeps in `epoll_wait` with a timeout in milliseconds, rounded up again. A 20-ms
//! `tokio::time::sleep` lasts 20 to 22 ms (21.7 ms at the median in the agent's benchmark), and
//! the requests that arrived within the same millisecond are answered together. An API's latency
//! does neither, and the rounding made what stands between a client and the simulator look
//! costlier than it is: a bare proxy that adds 0.2 ms in front of a server whose 20 ms are 20 ms
//! was measured adding 0.75 ms in front of the rounded one (docs/BENCHMARKS.md, "The agent's
//! overhead").
//!
//! One thread per simulator, started on the first delay, keeps the deadlines in a heap and waits
//! on a condition variable until the earliest (a futex wait with an absolute deadline: the
//! kernel's high-resolution timer, late by at most the thread's timer slack, 50 µs by default),
//! then wakes each request whose time has come. The delay is real time: a paused tokio clock does
//! not skip it (tests on a paused clock use `token_latency`, which is tokio's).

use crate::sync::lock;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The simulator's delays: the thread is started on the first one and ends when this is dropped
/// (with the simulator).
#[derive(Default)]
pub(crate) struct Delays {
    /// None when the thread could not be started.
    shared: OnceLock<Option<Arc<Shared>>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a deadline earlier than every other is added, or at the end.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    due: BinaryHeap<Reverse<Due>>,
    /// Ties between equal deadlines are broken by arrival.
    added: u64,
    ended: bool,
}

struct Due {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Delays {
    /// Returns once `d` has passed (at once if the simulator is being dropped meanwhile).
    pub(crate) async fn sleep(&self, d: Duration) {
        let at = Instant::now() + d;
        let (wake, woken) = oneshot::channel();
        let Some(shared) = self.shared() else {
            // The thread could not be started: tokio's timer, rounded, rather than no latency.
            return tokio::time::sleep(d).await;
        };
        {
            let mut s = lock(&shared.state);
            let earliest = s.due.peek().is_none_or(|Reverse(first)| at < first.at);
            s.added += 1;
            let seq = s.added;
            s.due.push(Reverse(Due { at, seq, wake }));
            if earliest {
                shared.changed.notify_one();
            }
        }
        let _ = woken.await;
    }

    /// The thread's state, the thread started on the first call (once, whoever calls).
    fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared
            .get_or_init(|| {
                let shared = Arc::<Shared>::default();
                let theirs = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("sim-delays".into())
                    .spawn(move || run(&theirs))
                    .ok()
                    .map(|_| shared)
            })
            .as_ref()
    }
}

impl Drop for Delays {
    fn drop(&mut self) {
        if let Some(Some(shared)) = self.shared.get() {
            lock(&shared.state).ended = true;
            shared.changed.notify_one();
        }
    }
}

/// The thread: wakes each delay whose deadline has passed, then waits for the next deadline (or
/// for an earlier one to be added).
fn run(shared: &Shared) {
    let mut s = lock(&shared.state);
    let mut woken = Vec::new();
    loop {
        if s.ended {
            // The waiting requests' senders are dropped: they return at once.
            s.due.clear();
            return;
        }
        let now = Instant::now();
        while s.due.peek().is_some_and(|Reverse(first)| first.at <= now) {
            if let Some(Reverse(due)) = s.due.pop() {
                woken.push(due.wake);
            }
        }
        if !woken.is_empty() {
            // Woken outside the lock: a wake-up may call into the runtime's scheduler.
            drop(s);
            for wake in woken.drain(..) {
                let _ = wake.send(());
            }
            s = lock(&shared.state);
            continue;
        }
        s = match s.due.peek().map(|Reverse(first)| first.at) {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
            None => shared
                .changed
                .wait(s)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delay_is_never_short_and_delays_end_in_the_order_of_their_deadlines() {
        let delays = Arc::new(Delays::default());
        let ended = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        // Added latest first: the thread must wake for each new earliest deadline.
        let tasks: Vec<_> = [30u64, 20, 10, 1, 25, 5]
            .into_iter()
            .map(|ms| {
                let (delays, ended) = (Arc::clone(&delays), Arc::clone(&ended));
                tokio::spawn(async move {
                    let asked = Instant::now();
                    delays.sleep(Duration::from_millis(ms)).await;
                    assert!(
                        asked.elapsed() >= Duration::from_millis(ms),
                        "{ms} ms cut short"
                    );
                    ended.lock().unwrap().push(ms);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*ended.lock().unwrap(), [1, 5, 10, 20, 25, 30]);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn the_thread_ends_with_its_simulator_even_with_a_delay_given_up_on() {
        let delays = Arc::new(Delays::default());
        let waiting = {
            let delays = Arc::clone(&delays);
            tokio::spawn(async move { delays.sleep(Duration::from_secs(3600)).await })
        };
        // The hour-long delay is in the heap; its request gives up (a client that went away).
        while lock(&delays.shared().unwrap().state).due.is_empty() {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        let _ = waiting.await;
        let shared = Arc::clone(delays.shared().unwrap());
        drop(delays);
        // The thread saw the end, emptied the heap and let go of its handle.
        let thread_gone = tokio::task::spawn_blocking(move || {
            while Arc::strong_count(&shared) > 1 {
                std::thread::yield_now();
            }
            lock(&shared.state).due.len()
        });
        assert_eq!(thread_gone.await.unwrap(), 0);
    }
}
