//! The connection cap: at most [`Limits::max_connections`](crate::Limits) connections are open
//! at once, so that a flood of slow ones (a slowloris) cannot use up the process's file
//! descriptors and make `accept` fail for everyone.
//!
//! Any local user can connect without the key, so refusing new connections at the cap would hand
//! the agent to whoever opens connections fastest. Instead, at the cap a new connection takes the
//! place of the **oldest connection that has not shown the key** (no request on it has passed
//! the key check: it is idle before its first request, sending a head, or sending a token
//! request's body): that one is closed. A caller with the key sends its request as soon as it
//! connects; once the request passes the key check its connection is never evicted (it still
//! ends at its idle deadline). Only when every open connection has shown the key is a new one
//! refused: answered 503 and closed at once, never left in the backlog.
//!
//! A flood is logged once per burst (a warning when the cap is first reached, a line with the
//! counts once it has not been reached for [`BURST_QUIET`]), never once per connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A burst of connections at the cap ends once the cap has not been reached for this long.
pub(crate) const BURST_QUIET: Duration = Duration::from_secs(10);

/// What a connection refused at the cap is written before it is closed.
pub(crate) fn refused_answer() -> String {
    let body = r#"{"message":"the agent is at its connection limit: every connection holds a caller with the key; try again","code":"agent.connections.full","status":503}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The open connections, oldest first.
pub(crate) struct Connections {
    max: usize,
    /// Guards the open connections and the burst's counts.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: BTreeMap<u64, Arc<Slot>>,
    burst: Option<Burst>,
}

/// The cap reached, over and over with less than [`BURST_QUIET`] between.
struct Burst {
    last: Instant,
    evicted: u64,
    refused: u64,
}

/// One open connection, as the cap sees it.
pub(crate) struct Slot {
    id: u64,
    /// Set once a request on it passed the key check: it is then never evicted.
    keyed: AtomicBool,
    evict: Notify,
}

impl Slot {
    /// Marks the connection as one whose caller showed the key.
    pub(crate) fn keyed(&self) {
        self.keyed.store(true, Ordering::Relaxed);
    }

    /// Returns once the connection is to be closed to make room for a new one.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// A place among the open connections, given back when dropped (the connection ended).
pub(crate) struct Admission {
    pub(crate) slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.slot.id);
    }
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection: below the cap, a free one; at it, that of the oldest
    /// connection that has not shown the key (told to close); `None` when every open connection
    /// has shown the key (the new one is to be refused).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admission> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut started = false;
        if inner.open.len() >= self.max {
            let burst = inner.burst.get_or_insert_with(|| {
                started = true;
                Burst {
                    last: now,
                    evicted: 0,
                    refused: 0,
                }
            });
            burst.last = now;
            let victim = inner
                .open
                .values()
                .find(|s| !s.keyed.load(Ordering::Relaxed))
                .map(|s| s.id);
            match victim.and_then(|id| inner.open.remove(&id)) {
                Some(v) => {
                    v.evict.notify_one();
                    if let Some(b) = inner.burst.as_mut() {
                        b.evicted += 1;
                    }
                }
                None => {
                    if let Some(b) = inner.burst.as_mut() {
                        b.refused += 1;
                    }
                    drop(inner);
                    self.log_start(started);
                    return None;
                }
            }
        }
        inner.next += 1;
        let slot = Arc::new(Slot {
            id: inner.next,
            keyed: AtomicBool::new(false),
            evict: Notify::new(),
        });
        inner.open.insert(slot.id, Arc::clone(&slot));
        drop(inner);
        self.log_start(started);
        Some(Admission {
            slot,
            connections: Arc::clone(self),
        })
    }

    fn log_start(&self, started: bool) {
        if started {
            tracing::warn!(
                max_connections = self.max,
                "connections at the cap: each new one closes the oldest that has not shown the key, or is refused when all have (logged once per burst)"
            );
        }
    }

    /// When the current burst ends if the cap is not reached again; `None` outside a burst.
    pub(crate) fn burst_ends(&self) -> Option<Instant> {
        self.lock().burst.as_ref().map(|b| b.last + BURST_QUIET)
    }

    /// Ends the burst if the cap has not been reached for [`BURST_QUIET`], logging its counts.
    pub(crate) fn end_burst(&self) {
        let mut inner = self.lock();
        let Some(b) = inner
            .burst
            .take_if(|b| b.last + BURST_QUIET <= Instant::now())
        else {
            return;
        };
        drop(inner);
        tracing::info!(
            evicted = b.evicted,
            refused = b.refused,
            "connections below the cap again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_connection_without_the_key_makes_room_and_a_burst_ends_quietly()
    {
        let cap = Connections::new(3);
        let a = cap.admit().unwrap();
        let b = cap.admit().unwrap();
        let c = cap.admit().unwrap();
        assert!(cap.burst_ends().is_none(), "below the cap: no burst");
        a.slot.keyed();
        // The oldest without the key is b: told to close, its place taken.
        let d = cap.admit().unwrap();
        tokio::time::timeout(Duration::from_millis(1), b.slot.evicted())
            .await
            .expect("b is evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), a.slot.evicted())
                .await
                .is_err(),
            "a showed the key: kept"
        );
        let ends = cap.burst_ends().expect("a burst began");
        // Then c (older than d); once all have shown the key, a new one is refused.
        let e = cap.admit().unwrap();
        tokio::time::timeout(Duration::from_millis(1), c.slot.evicted())
            .await
            .expect("c is evicted");
        d.slot.keyed();
        e.slot.keyed();
        assert!(
            cap.admit().is_none(),
            "every open connection showed the key"
        );
        // A place given back (a connection ended) is free again.
        drop(a);
        let f = cap.admit().expect("a's place");
        // The burst lasts while the cap is reached less than BURST_QUIET apart.
        assert!(cap.burst_ends().unwrap() > ends);
        tokio::time::advance(BURST_QUIET - Duration::from_millis(1)).await;
        cap.end_burst();
        assert!(cap.burst_ends().is_some(), "not quiet long enough");
        tokio::time::advance(Duration::from_millis(1)).await;
        cap.end_burst();
        assert!(cap.burst_ends().is_none(), "ended");
        drop((b, c, d, e, f));
    }
}
