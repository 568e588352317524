//! The single-flight cell: at most one piece of work (a token refresh) runs at a time, everyone who
//! needs its outcome shares it, and the cell is free again when the work ends **however it ends**:
//! with a result, a panic, or cancellation (a runtime shutting down drops its tasks).
//!
//! The work runs on a spawned task, so a waiter that gives up never cancels it half-way (which could
//! lose a rotated refresh token). A guard owned by that task frees the cell when the task's future
//! is dropped, which happens after it returns, while it unwinds from a panic, and when the runtime
//! drops it unfinished. Waiters of a flight that panicked or was cancelled get an [`Abandoned`]
//! error; the next caller starts a new flight.

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared outcome of one flight.
pub(crate) type Flight<T> = Shared<BoxFuture<'static, T>>;

/// Why a flight ended without an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Abandoned {
    /// The work panicked; the message, as the panic gave it.
    Panicked(String),
    /// The work was dropped unfinished (its runtime shut down).
    Cancelled,
}

/// The running flight, if any, and its id.
type Running<V, E> = Option<(u64, Flight<Result<V, E>>)>;

/// A cell running at most one flight of `Result<V, E>` at a time.
pub(crate) struct SingleFlight<V, E> {
    cell: Arc<Cell<V, E>>,
}

struct Cell<V, E> {
    /// The error waiters get from a flight that panicked or was cancelled.
    abandoned_error: fn(Abandoned) -> E,
    /// guards the running flight, if any, and its id.
    slot: Mutex<Running<V, E>>,
    /// True while a flight runs: lets a fast path skip the lock.
    running: AtomicBool,
    next_id: AtomicU64,
    /// Flights that panicked or were cancelled.
    abandoned: AtomicU64,
}

/// The locked cell: look at the running flight, or start one.
pub(crate) struct Slot<'a, V, E> {
    guard: MutexGuard<'a, Running<V, E>>,
    cell: &'a Arc<Cell<V, E>>,
}

impl<V, E> SingleFlight<V, E> {
    /// An idle cell; waiters of a flight that panicked or was cancelled get
    /// `abandoned_error(why)`.
    pub(crate) fn new(abandoned_error: fn(Abandoned) -> E) -> Self {
        Self {
            cell: Arc::new(Cell {
                abandoned_error,
                slot: Mutex::new(None),
                running: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                abandoned: AtomicU64::new(0),
            }),
        }
    }
}

impl<V, E> SingleFlight<V, E>
where
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Whether a flight is running (without taking the lock; may be stale by the time it is read).
    pub(crate) fn is_running(&self) -> bool {
        self.cell.running.load(Ordering::Acquire)
    }

    /// Flights that ended by a panic or cancellation so far.
    pub(crate) fn abandoned(&self) -> u64 {
        self.cell.abandoned.load(Ordering::Relaxed)
    }

    /// Locks the cell. Decisions that must not race with a flight starting are made while it is
    /// held; hold it briefly (it is a plain mutex).
    pub(crate) fn lock(&self) -> Slot<'_, V, E> {
        Slot {
            guard: self.cell.slot.lock().unwrap_or_else(|e| e.into_inner()),
            cell: &self.cell,
        }
    }
}

impl<V, E> Slot<'_, V, E>
where
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// The running flight, to wait for.
    pub(crate) fn running(&self) -> Option<Flight<Result<V, E>>> {
        self.guard.as_ref().map(|(_, f)| f.clone())
    }

    /// Starts `work` as the cell's flight on a new tokio task and returns its shared outcome (there
    /// must be none running: check [`running`](Self::running) first). The cell is free again before
    /// any waiter sees the outcome.
    pub(crate) fn start<F>(mut self, work: F) -> Flight<Result<V, E>>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        debug_assert!(self.guard.is_none(), "a flight is already running");
        let id = self.cell.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<V, E>>();
        let abandoned_error = self.cell.abandoned_error;
        let flight = async move {
            rx.await
                .unwrap_or_else(|_| Err(abandoned_error(Abandoned::Cancelled)))
        }
        .boxed()
        .shared();
        *self.guard = Some((id, flight.clone()));
        self.cell.running.store(true, Ordering::Release);
        // Not holding the lock while spawning: a runtime that is shutting down drops the task at
        // once, on this thread, and its guard takes the lock.
        let cell = Arc::clone(self.cell);
        drop(self);
        let release = Release {
            cell,
            id,
            outcome: Some(tx),
        };
        tokio::spawn(async move {
            let release = release;
            let outcome = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    release.cell.abandoned.fetch_add(1, Ordering::Relaxed);
                    Err((release.cell.abandoned_error)(Abandoned::Panicked(
                        panic_message(&*panic),
                    )))
                }
            };
            release.finish(outcome);
        });
        flight
    }
}

/// Owned by the flight's task: frees the cell, then delivers the outcome. Dropped unfinished (the
/// task was cancelled), it frees the cell and its dropped sender tells the waiters.
struct Release<V, E> {
    cell: Arc<Cell<V, E>>,
    id: u64,
    outcome: Option<tokio::sync::oneshot::Sender<Result<V, E>>>,
}

impl<V, E> Release<V, E> {
    fn free(&self) {
        let mut slot = self.cell.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *slot = None;
            self.cell.running.store(false, Ordering::Release);
        }
    }

    fn finish(mut self, outcome: Result<V, E>) {
        // The cell is free before any waiter sees the outcome, so that a waiter acting on it (say,
        // asking again after an error) starts a new flight instead of joining this one.
        self.free();
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl<V, E> Drop for Release<V, E> {
    fn drop(&mut self) {
        if let Some(tx) = self.outcome.take() {
            self.cell.abandoned.fetch_add(1, Ordering::Relaxed);
            self.free();
            drop(tx);
        }
    }
}

/// The text of a panic payload, scrubbed of secrets (a panic message may quote anything).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    crate::redact::terminal_safe(&text, 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq)]
    struct Failed(String);

    type Cell = SingleFlight<u32, Failed>;

    fn cell() -> Cell {
        SingleFlight::new(|a| Failed(format!("{a:?}")))
    }

    fn start(
        cell: &Cell,
        work: impl Future<Output = Result<u32, Failed>> + Send + 'static,
    ) -> Flight<Result<u32, Failed>> {
        let slot = cell.lock();
        assert!(slot.running().is_none());
        slot.start(work)
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_one_outcome_and_the_cell_is_free_before_they_see_it() {
        let cell = cell();
        let flight = start(&cell, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(7)
        });
        assert!(cell.is_running());
        let joined = cell.lock().running().expect("running");
        assert_eq!(futures::join!(flight, joined), (Ok(7), Ok(7)));
        assert!(!cell.is_running());
        assert!(cell.lock().running().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_flight_frees_the_cell_and_says_so() {
        let cell = cell();
        let flight = start(&cell, async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("grant exploded");
        });
        let err = flight.await.unwrap_err();
        assert!(
            err.0.contains("Panicked") && err.0.contains("grant exploded"),
            "{err:?}"
        );
        assert!(!cell.is_running());
        assert_eq!(cell.abandoned(), 1);
        // The next flight starts and succeeds.
        assert_eq!(start(&cell, async { Ok(1) }).await, Ok(1));
    }

    #[test]
    fn a_flight_dropped_by_its_runtime_frees_the_cell() {
        let cell = cell();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let entered = rt.enter();
        let flight = start(&cell, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(1)
        });
        drop(entered);
        assert!(cell.is_running());
        drop(rt); // drops the unfinished task
        assert!(!cell.is_running());
        assert_eq!(cell.abandoned(), 1);
        let err = futures::executor::block_on(flight).unwrap_err();
        assert!(err.0.contains("Cancelled"), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_does_not_cancel_the_flight() {
        let cell = cell();
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let flight = start(&cell, async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(1)
        });
        drop(flight);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(done.load(Ordering::SeqCst));
        assert!(!cell.is_running());
    }
}
