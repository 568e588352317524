//! The link to Redis: a reconnecting connection, a deadline on every call, and the rule that makes
//! Redis never a single point of failure. A call that fails or times out marks Redis down: a
//! warning (once per outage), and for [`RETRY_AFTER`] no call is tried at all (callers go on
//! without the store: each process refreshes and paces on its own). Then one call tries again;
//! when it succeeds, an info line says so, and the fleet converges on one token at its next
//! refresh.

use crate::clock::Instant;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, FromRedisValue, RedisError, RedisResult, Script};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// How long Redis is left alone after a failed call, before one call tries again (by default).
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A failure this soon after Redis came back is the same outage (a restarting or overloaded
/// server answers some calls and not others): not warned about again.
pub(super) const SAME_OUTAGE: Duration = Duration::from_secs(30);

/// A connection to one Redis server, and whether it is up.
pub(super) struct Link {
    client: Client,
    /// Where, for messages: the URL without user name or password.
    pub(super) shown: String,
    /// The deadline of one call (connecting included).
    timeout: Duration,
    /// How long no call is tried after a failure.
    retry_after: Duration,
    /// guards the connection (created lazily, replaced after a failure)
    conn: Mutex<Option<ConnectionManager>>,
    /// guards whether Redis is down, and when it last came back
    health: Mutex<Health>,
    /// Outages so far (each warned about once).
    outages: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Health {
    /// The outage, if Redis is down.
    outage: Option<Outage>,
    /// When Redis last came back after an outage.
    recovered_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    since: Instant,
    retry_at: Instant,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("redis", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(super) fn new(
        client: Client,
        shown: String,
        timeout: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            client,
            shown,
            timeout,
            retry_after,
            conn: Mutex::new(None),
            health: Mutex::new(Health::default()),
            outages: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many outages were warned about so far.
    pub(super) fn outages(&self) -> u64 {
        self.outages.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether calls are being skipped (Redis is down and not due for another try).
    pub(super) fn resting(&self) -> bool {
        self.lock_health()
            .outage
            .is_some_and(|o| Instant::now() < o.retry_at)
    }

    /// Runs one call with the deadline; `None` (without trying, while Redis rests) when it
    /// cannot be made. `what` names the call in debug logs.
    pub(super) async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.resting() {
            return None;
        }
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                self.failed(what, &e.to_string());
                return None;
            }
        };
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Some(v)
            }
            Ok(Err(e)) => {
                self.failed(what, &describe(&e));
                None
            }
            Err(_) => {
                self.failed(what, &format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    /// Runs `script` with `keys` and `args` as [`call`](Self::call) does.
    pub(super) async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Option<T> {
        self.call(what, |mut c| async move {
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(*a);
            }
            inv.invoke_async(&mut c).await
        })
        .await
    }

    fn connection(&self) -> RedisResult<ConnectionManager> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        // Lazy: connecting happens in the first call, under its deadline. One attempt per call:
        // the retrying is done here, by resting after a failure.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0);
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *conn = Some(c.clone());
        Ok(c)
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn succeeded(&self) {
        let now = Instant::now();
        let outage = {
            let mut health = self.lock_health();
            let Some(outage) = health.outage.take() else {
                return;
            };
            health.recovered_at = Some(now);
            outage
        };
        tracing::info!(
            redis = %self.shown,
            down_s = now.saturating_duration_since(outage.since).as_secs_f64(),
            "the Redis token store is reachable again: the fleet shares its token and rate budget again"
        );
    }

    fn failed(&self, what: &'static str, why: &str) {
        // A connection that failed is not trusted again: the next try makes a new one.
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        let now = Instant::now();
        let why = crate::redact::terminal_safe(why, 300);
        let mut health = self.lock_health();
        match health.outage.as_mut() {
            Some(outage) => {
                outage.retry_at = now + self.retry_after;
                tracing::debug!(redis = %self.shown, call = what, error = %why, "Redis still unreachable");
            }
            None => {
                health.outage = Some(Outage {
                    since: now,
                    retry_at: now + self.retry_after,
                });
                let flapping = health
                    .recovered_at
                    .is_some_and(|at| now.saturating_duration_since(at) < SAME_OUTAGE);
                drop(health);
                if flapping {
                    tracing::info!(redis = %self.shown, call = what, error = %why, "the Redis token store is unreachable again, soon after it came back (the same outage)");
                    return;
                }
                self.outages
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    redis = %self.shown,
                    call = what,
                    error = %why,
                    "the Redis token store cannot be reached; until it is back, this process refreshes its own token and paces its own requests (one warning per outage)"
                );
            }
        }
    }
}

/// A Redis error in words: its kind and detail, without the command (which may carry a token).
fn describe(e: &RedisError) -> String {
    match e.detail() {
        Some(detail) => format!("{:?}: {detail}", e.kind()),
        None => e.to_string(),
    }
}
