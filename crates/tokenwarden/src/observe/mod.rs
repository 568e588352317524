//! What happened during a run, from one stream of events: every exchange with the API (its outcome
//! class and latency), every token refresh (and why), every 401 healed and every 429 waited out.
//!
//! A [`Recorder`] receives those events from the client's send loop and the token manager, and
//! everything that reports on a run reads it: the totals ([`Recorder::totals`]), the time series
//! of a report ([`Recorder::series`]), and the Prometheus exposition ([`render_prometheus`]). No
//! output counts for itself, so they cannot disagree.
//!
//! **Cheap and bounded.** An event is a few relaxed atomic additions (no lock, no allocation, no
//! per-request record). Once a second, the first event of the new second takes a snapshot of the
//! running totals; the difference from the previous snapshot is that second's bucket. A run keeps
//! at most [`MAX_BUCKETS`] buckets: a longer run doubles the bucket width and merges neighbours,
//! so a ten-hour run's series stays as small as a one-hour run's. The token fast path
//! ([`TokenManager::bearer`](crate::TokenManager::bearer)) records nothing.
//!
//! ```
//! use tokenwarden::observe::{Recorder, render_prometheus};
//!
//! let recorder = Recorder::new();
//! // Give it to the client (ApiClientBuilder::recorder) and its token managers record into it too.
//! let text = render_prometheus(&recorder, None);
//! assert!(text.contains("tokenwarden_api_requests_total{class=\"2xx\"} 0"));
//! ```

mod histogram;
mod prometheus;
mod series;
mod trace;

pub use prometheus::{DURATION_BOUNDS, PROMETHEUS_CONTENT_TYPE, render_prometheus};
pub use series::{MAX_BUCKETS, Series};
pub(crate) use trace::next_refresh_id;
pub use trace::{Observer, Outcome, RefreshEnd, RequestEnd, route};

use crate::clock::{Instant, wall_now};
use histogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

/// The outcome class of one exchange with the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Class {
    /// 2xx.
    Success,
    /// 3xx (handed back, or followed).
    Redirect,
    /// 4xx other than 429 (a 401 included).
    ClientError,
    /// 429 Too Many Requests.
    RateLimited,
    /// 5xx.
    ServerError,
    /// No answer: connect failure, timeout, reset.
    Transport,
    /// A status outside 200-599.
    Other,
}

impl Class {
    /// Every class, in the order outputs list them.
    pub const ALL: [Class; 7] = [
        Class::Success,
        Class::Redirect,
        Class::ClientError,
        Class::RateLimited,
        Class::ServerError,
        Class::Transport,
        Class::Other,
    ];

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Class {
        match status {
            429 => Class::RateLimited,
            200..=299 => Class::Success,
            300..=399 => Class::Redirect,
            400..=499 => Class::ClientError,
            500..=599 => Class::ServerError,
            _ => Class::Other,
        }
    }

    /// Its label in every output: `2xx`, `3xx`, `4xx`, `429`, `5xx`, `transport`, `other`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::RateLimited => "429",
            Class::ServerError => "5xx",
            Class::Transport => "transport",
            Class::Other => "other",
        }
    }

    fn index(self) -> usize {
        Class::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// Why a token refresh started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefreshReason {
    /// The token entered its refresh window: it was still handed out meanwhile.
    Proactive,
    /// The API refused the token (HTTP 401): the requests carrying it waited.
    AfterUnauthorized,
    /// No valid token was at hand (the first one, or after expiry): callers waited.
    OnDemand,
}

impl RefreshReason {
    /// Every reason, in the order outputs list them.
    pub const ALL: [RefreshReason; 3] = [
        RefreshReason::Proactive,
        RefreshReason::AfterUnauthorized,
        RefreshReason::OnDemand,
    ];

    /// Its label in every output: `proactive`, `after_401`, `on_demand`.
    pub fn label(self) -> &'static str {
        match self {
            RefreshReason::Proactive => "proactive",
            RefreshReason::AfterUnauthorized => "after_401",
            RefreshReason::OnDemand => "on_demand",
        }
    }

    fn index(self) -> usize {
        RefreshReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

/// What a client's send loop counts beside the tally's exchanges, heals and waits: the
/// client metrics (`ApiClient::metrics`) that only a client shows. No bucket of the
/// series holds them, so one is a relaxed atomic addition: no clock read, no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A caller's request (one `send`).
    Request,
    /// An attempt sent: every retry and redirect hop.
    Attempt,
    /// An attempt repeating a failed one (heals included, redirects not).
    Retry,
    /// A 5xx answer retried.
    ServerErrorRetried,
    /// A transport failure retried.
    TransportRetried,
    /// A redirect followed.
    RedirectFollowed,
    /// The learned rate cut after a 429.
    RateCut,
    /// A caller's request that ended in an error.
    Failure,
}

impl Step {
    /// How many there are (the last one's index and one).
    pub(crate) const COUNT: usize = Step::Failure as usize + 1;
}

/// What a client's metrics read of a record: its steps, and the tally's heals and waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCounts {
    /// Indexed by [`Step`].
    pub(crate) steps: [u64; Step::COUNT],
    pub(crate) healed: u64,
    pub(crate) waits_429: u64,
    pub(crate) paced: u64,
    pub(crate) holds: u64,
}

impl ClientCounts {
    /// The count of `step`.
    pub(crate) fn of(&self, step: Step) -> u64 {
        self.steps[step as usize]
    }
}

/// The pace a client allows itself, read once a second for the series (a pacer).
pub(crate) trait RateSource: Send + Sync {
    /// Requests per second allowed now, if any limit applies.
    fn allowed_rate(&self) -> Option<f64>;
}

/// Receives a run's events and keeps their totals and per-second series. Cheap to clone: clones
/// share one record. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("totals", &self.totals())
            .finish_non_exhaustive()
    }
}

struct Shared {
    origin: Instant,
    started_wall: SystemTime,
    tally: Tally,
    /// The client's own steps, indexed by [`Step`].
    steps: [AtomicU64; Step::COUNT],
    /// The second (counted from `origin`) of the last snapshot: an event in a later second takes
    /// the next one.
    ticked: AtomicU64,
    /// guards the closed buckets and the last snapshot
    timeline: Mutex<series::Timeline>,
    /// guards the pacers whose allowed rate the series samples (weak: a client dropped takes its
    /// pacers with it, however many clients a long-lived recorder serves)
    rates: Mutex<Vec<Weak<dyn RateSource>>>,
    /// Told of every request and refresh as it ends, once set (a tracer).
    observer: OnceLock<Arc<dyn Observer>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            started_wall: wall_now(),
            tally: Tally::default(),
            steps: Default::default(),
            ticked: AtomicU64::new(0),
            timeline: Mutex::new(series::Timeline::default()),
            rates: Mutex::new(Vec::new()),
            observer: OnceLock::new(),
        }
    }
}

/// The running totals, as atomics.
#[derive(Default)]
struct Tally {
    classes: [AtomicU64; Class::ALL.len()],
    latency: Histogram,
    refreshes: [AtomicU64; RefreshReason::ALL.len()],
    refresh_failures: AtomicU64,
    refused: AtomicU64,
    healed: AtomicU64,
    waits_429: AtomicU64,
    wait_429_nanos: AtomicU64,
    paced: AtomicU64,
    holds: AtomicU64,
}

/// The totals as plain numbers: a snapshot, or the difference of two (one bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) classes: [u64; Class::ALL.len()],
    pub(crate) latency: histogram::Counts,
    pub(crate) refreshes: [u64; RefreshReason::ALL.len()],
    pub(crate) refresh_failures: u64,
    pub(crate) refused: u64,
    pub(crate) healed: u64,
    pub(crate) waits_429: u64,
    pub(crate) wait_429_nanos: u64,
    pub(crate) paced: u64,
    pub(crate) holds: u64,
}

impl Counts {
    /// `self - earlier`, field by field.
    pub(crate) fn minus(&self, earlier: &Counts) -> Counts {
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        Counts {
            classes: std::array::from_fn(|i| sub(self.classes[i], earlier.classes[i])),
            latency: self.latency.minus(&earlier.latency),
            refreshes: std::array::from_fn(|i| sub(self.refreshes[i], earlier.refreshes[i])),
            refresh_failures: sub(self.refresh_failures, earlier.refresh_failures),
            refused: sub(self.refused, earlier.refused),
            healed: sub(self.healed, earlier.healed),
            waits_429: sub(self.waits_429, earlier.waits_429),
            wait_429_nanos: sub(self.wait_429_nanos, earlier.wait_429_nanos),
            paced: sub(self.paced, earlier.paced),
            holds: sub(self.holds, earlier.holds),
        }
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            *a += b;
        }
        self.latency.add(&other.latency);
        for (a, b) in self.refreshes.iter_mut().zip(&other.refreshes) {
            *a += b;
        }
        self.refresh_failures += other.refresh_failures;
        self.refused += other.refused;
        self.healed += other.healed;
        self.waits_429 += other.waits_429;
        self.wait_429_nanos += other.wait_429_nanos;
        self.paced += other.paced;
        self.holds += other.holds;
    }
}

impl Tally {
    fn snapshot(&self) -> Counts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            classes: std::array::from_fn(|i| g(&self.classes[i])),
            latency: self.latency.snapshot(),
            refreshes: std::array::from_fn(|i| g(&self.refreshes[i])),
            refresh_failures: g(&self.refresh_failures),
            refused: g(&self.refused),
            healed: g(&self.healed),
            waits_429: g(&self.waits_429),
            wait_429_nanos: g(&self.wait_429_nanos),
            paced: g(&self.paced),
            holds: g(&self.holds),
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The totals of a run so far: what `--summary-json` and the report's table show.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// Exchanges with the API by outcome class (every attempt: retries, heals and redirect hops
    /// each count), keyed by [`Class::label`].
    pub api_requests: BTreeMap<&'static str, u64>,
    /// Token refreshes started, keyed by [`RefreshReason::label`].
    pub token_requests: BTreeMap<&'static str, u64>,
    /// Token refreshes that ended without a token.
    pub token_refresh_failures: u64,
    /// API 401s that started a heal: the refused token was reported to its manager (which
    /// withdraws it and refreshes once, however many requests carried it). A revocation, or a
    /// token that died before its time.
    pub tokens_refused: u64,
    /// 401s healed: the retry with a new token was answered with anything but another 401.
    pub unauthorized_healed: u64,
    /// 429s waited out (retried after a wait).
    pub rate_limited_waits: u64,
    /// Time spent waiting out 429s, in seconds (the waits of concurrent requests add up).
    pub rate_limited_wait_secs: f64,
    /// Requests that waited for their turn at the pacer.
    pub paced_waits: u64,
    /// Times every request was held until the API's window reset.
    pub rate_limit_pauses: u64,
    /// Median latency of an exchange, in seconds (none without one).
    pub latency_p50_secs: Option<f64>,
    /// 95th percentile latency, in seconds.
    pub latency_p95_secs: Option<f64>,
    /// 99th percentile latency, in seconds.
    pub latency_p99_secs: Option<f64>,
}

impl Totals {
    /// Exchanges with the API of one class.
    pub fn requests(&self, class: Class) -> u64 {
        self.api_requests.get(class.label()).copied().unwrap_or(0)
    }

    /// Exchanges with the API, every class together.
    pub fn all_requests(&self) -> u64 {
        self.api_requests.values().sum()
    }

    /// Token refreshes started for one reason.
    pub fn refreshes(&self, reason: RefreshReason) -> u64 {
        self.token_requests
            .get(reason.label())
            .copied()
            .unwrap_or(0)
    }

    fn of(c: &Counts) -> Totals {
        Totals {
            api_requests: Class::ALL
                .iter()
                .map(|k| (k.label(), c.classes[k.index()]))
                .collect(),
            token_requests: RefreshReason::ALL
                .iter()
                .map(|r| (r.label(), c.refreshes[r.index()]))
                .collect(),
            token_refresh_failures: c.refresh_failures,
            tokens_refused: c.refused,
            unauthorized_healed: c.healed,
            rate_limited_waits: c.waits_429,
            rate_limited_wait_secs: Duration::from_nanos(c.wait_429_nanos).as_secs_f64(),
            paced_waits: c.paced,
            rate_limit_pauses: c.holds,
            latency_p50_secs: c.latency.quantile(0.50),
            latency_p95_secs: c.latency.quantile(0.95),
            latency_p99_secs: c.latency.quantile(0.99),
        }
    }
}

impl Recorder {
    /// A new, empty record; its clock starts now.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        Totals::of(&self.inner.tally.snapshot())
    }

    /// The per-bucket series so far, the current (partial) second included.
    pub fn series(&self) -> Series {
        let elapsed = self.elapsed();
        let rate = self.allowed_rate();
        let cumulative = self.inner.tally.snapshot();
        let timeline = self.timeline();
        timeline.view(cumulative, elapsed, rate, self.inner.started_wall)
    }

    /// When the record started (wall clock).
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_wall
    }

    /// How long the record has run.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.inner.origin)
    }

    /// Records one exchange with an API that did not go through an
    /// [`ApiClient`](crate::ApiClient) (which records its own): a proxy, another HTTP client.
    pub fn record_exchange(&self, class: Class, latency: Duration) {
        self.exchange(class, latency, Instant::now());
    }

    /// Records a token refresh that did not go through a [`TokenManager`](crate::TokenManager)
    /// (which records its own).
    pub fn record_refresh(&self, reason: RefreshReason) {
        self.refresh_started(reason);
    }

    /// Tells `observer` of every request, refresh and exchange recorded from now on (see
    /// [`Observer`]). One observer per record: `false` if one was set already.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// The observer, if one is set.
    pub(crate) fn observer(&self) -> Option<&dyn Observer> {
        self.inner.observer.get().map(|o| &**o)
    }

    pub(crate) fn counts(&self) -> Counts {
        self.inner.tally.snapshot()
    }

    /// A client's step: counted, nothing else (no clock read, no series bucket).
    pub(crate) fn step(&self, step: Step) {
        inc(&self.inner.steps[step as usize]);
    }

    /// What a client's metrics show of this record.
    pub(crate) fn client_counts(&self) -> ClientCounts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let t = &self.inner.tally;
        ClientCounts {
            steps: std::array::from_fn(|i| g(&self.inner.steps[i])),
            healed: g(&t.healed),
            waits_429: g(&t.waits_429),
            paced: g(&t.paced),
            holds: g(&t.holds),
        }
    }

    /// Samples `source`'s allowed rate once a second from now on.
    pub(crate) fn add_rate_source(&self, source: Arc<dyn RateSource>) {
        let mut rates = self.inner.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.retain(|r| r.strong_count() > 0);
        rates.push(Arc::downgrade(&source));
    }

    /// One exchange with the API ended at `now` in `class` after `latency`.
    pub(crate) fn exchange(&self, class: Class, latency: Duration, now: Instant) {
        self.touch(now);
        let t = &self.inner.tally;
        inc(&t.classes[class.index()]);
        t.latency.record(latency);
        if let Some(o) = self.observer() {
            o.exchange(class, latency);
        }
    }

    /// A token refresh started.
    pub(crate) fn refresh_started(&self, reason: RefreshReason) {
        self.touch(Instant::now());
        inc(&self.inner.tally.refreshes[reason.index()]);
    }

    /// A token refresh ended without a token.
    pub(crate) fn refresh_failed(&self) {
        self.touch(Instant::now());
        inc(&self.inner.tally.refresh_failures);
    }

    /// The API refused a token, which is reported to its manager (a heal begins).
    pub(crate) fn token_refused(&self) {
        self.touch(Instant::now());
        inc(&self.inner.tally.refused);
    }

    /// A heal's retry was answered with anything but another 401.
    pub(crate) fn healed(&self) {
        self.touch(Instant::now());
        inc(&self.inner.tally.healed);
    }

    /// A 429 is waited out for `wait`.
    pub(crate) fn rate_limited_wait(&self, wait: Duration) {
        self.touch(Instant::now());
        let t = &self.inner.tally;
        inc(&t.waits_429);
        t.wait_429_nanos.fetch_add(nanos(wait), Ordering::Relaxed);
    }

    /// A request waited for its turn at the pacer.
    pub(crate) fn paced(&self) {
        self.touch(Instant::now());
        inc(&self.inner.tally.paced);
    }

    /// Every request is held until the API's window resets.
    pub(crate) fn held(&self) {
        self.touch(Instant::now());
        inc(&self.inner.tally.holds);
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.inner.origin).as_secs()
    }

    /// Closes the buckets before `now`'s second if this is the first event in it: one atomic load
    /// otherwise. Whoever gets the lock closes them; the others go on (their event then counts in
    /// the second being closed or the next, never twice or not at all).
    fn touch(&self, now: Instant) {
        let sec = self.second(now);
        if sec <= self.inner.ticked.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut timeline) = self.inner.timeline.try_lock() else {
            return;
        };
        if sec <= self.inner.ticked.load(Ordering::Relaxed) {
            return;
        }
        let rate = self.allowed_rate();
        timeline.tick(sec, self.inner.tally.snapshot(), rate);
        self.inner.ticked.store(sec, Ordering::Relaxed);
    }

    /// The rate every pacer together allows now, if any of them limits it.
    fn allowed_rate(&self) -> Option<f64> {
        let sources = self.inner.rates.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|s| s.allowed_rate())
            .fold(None, |sum, r| Some(sum.unwrap_or(0.0) + r))
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, series::Timeline> {
        self.inner
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
