//! Buckets over a run's time: one second each, merged two by two (and the width doubled) once
//! a run would need more than [`MAX_BUCKETS`].

use super::{Class, Counts, RefreshReason};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The most buckets a series holds. An hour of 1-second buckets; a ten-hour run has 16-second
/// buckets. At about 100 bytes a bucket in JSON, a series stays under half a MiB.
pub const MAX_BUCKETS: usize = 4096;

/// One bucket while it is kept: the counts of its seconds, and the allowed rate last sampled in
/// it.
#[derive(Debug, Clone, Default)]
struct Bucket {
    counts: Counts,
    allowed_rate: Option<f64>,
}

/// The closed buckets, and the snapshot that the next bucket is the difference from.
#[derive(Debug)]
pub(crate) struct Timeline {
    /// Seconds per bucket: 1, doubled each time the buckets are merged.
    width: u64,
    buckets: Vec<Bucket>,
    /// The totals at the last snapshot.
    last: Counts,
    /// The second of the last snapshot: what happened since belongs to it.
    last_sec: u64,
    /// The allowed rate sampled at the last snapshot.
    last_rate: Option<f64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            width: 1,
            buckets: Vec::new(),
            last: Counts::default(),
            last_sec: 0,
            last_rate: None,
        }
    }
}

impl Timeline {
    /// A snapshot taken in second `sec` (the first event of that second): everything since the
    /// last one happened in the last one's second.
    pub(crate) fn tick(&mut self, sec: u64, cumulative: Counts, rate: Option<f64>) {
        if sec <= self.last_sec {
            return;
        }
        let diff = cumulative.minus(&self.last);
        let (last_sec, last_rate) = (self.last_sec, self.last_rate);
        self.put(last_sec, &diff, last_rate);
        // The seconds in between were idle: empty buckets, the rate as it was.
        self.put(sec, &Counts::default(), rate);
        self.last = cumulative;
        self.last_sec = sec;
        self.last_rate = rate;
    }

    /// Adds `counts` to the bucket of second `sec`, creating the buckets up to it.
    fn put(&mut self, sec: u64, counts: &Counts, rate: Option<f64>) {
        while sec / self.width >= MAX_BUCKETS as u64 {
            self.coarsen();
        }
        let index = (sec / self.width) as usize;
        while self.buckets.len() <= index {
            let carried = self.buckets.last().and_then(|b| b.allowed_rate);
            self.buckets.push(Bucket {
                counts: Counts::default(),
                allowed_rate: carried,
            });
        }
        let b = &mut self.buckets[index];
        b.counts.add(counts);
        if rate.is_some() {
            b.allowed_rate = rate;
        }
    }

    /// Merges neighbouring buckets: half as many, twice as wide.
    fn coarsen(&mut self) {
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut b = pair[0].clone();
                if let Some(second) = pair.get(1) {
                    b.counts.add(&second.counts);
                    b.allowed_rate = match (b.allowed_rate, second.allowed_rate) {
                        (Some(x), Some(y)) => Some((x + y) / 2.0),
                        (x, y) => x.or(y),
                    };
                }
                b
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    /// The series as it stands at second `sec`, with what happened since the last snapshot in the
    /// last snapshot's second (it is not closed yet: nothing changes).
    pub(crate) fn view(
        &self,
        cumulative: Counts,
        elapsed: Duration,
        rate: Option<f64>,
        started: SystemTime,
    ) -> Series {
        let sec = elapsed.as_secs();
        let mut t = Timeline {
            width: self.width,
            buckets: self.buckets.clone(),
            last: self.last.clone(),
            last_sec: self.last_sec,
            last_rate: self.last_rate,
        };
        let diff = cumulative.minus(&t.last);
        t.put(t.last_sec, &diff, t.last_rate);
        t.put(
            sec.max(t.last_sec),
            &Counts::default(),
            rate.or(t.last_rate),
        );
        let mut s = Series::of(&t, started);
        s.elapsed_secs = round2(elapsed.as_secs_f64());
        s
    }
}

/// A run over time, one column per measure, one row per bucket (columns, because a million
/// rows of objects would repeat every key a million times). Bucket `i` covers the seconds from
/// `i * bucket_secs` to `(i + 1) * bucket_secs` after [`started_at`](Self::started_at); counts
/// are per bucket (divide by `bucket_secs` for a rate).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Series {
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// Seconds per bucket: 1, or a power of two for runs longer than [`MAX_BUCKETS`] seconds.
    pub bucket_secs: u64,
    /// Buckets in every column.
    pub buckets: usize,
    /// Seconds the record covers: the last bucket ends here, short of its full width.
    pub elapsed_secs: f64,
    /// Exchanges with the API per bucket, by [`Class::label`].
    pub requests: BTreeMap<&'static str, Vec<u64>>,
    /// Latency quantiles of the exchanges in each bucket, in milliseconds (`null`: none).
    pub latency_ms: BTreeMap<&'static str, Vec<Option<f64>>>,
    /// Token refreshes started per bucket, by [`RefreshReason::label`].
    pub token_requests: BTreeMap<&'static str, Vec<u64>>,
    /// Token refreshes that failed, per bucket.
    pub token_refresh_failures: Vec<u64>,
    /// API 401s that started a heal, per bucket.
    pub tokens_refused: Vec<u64>,
    /// 401s healed, per bucket.
    pub unauthorized_healed: Vec<u64>,
    /// 429s waited out, per bucket.
    pub rate_limited_waits: Vec<u64>,
    /// Seconds spent waiting out 429s, per bucket (concurrent waits add up).
    pub rate_limited_wait_secs: Vec<f64>,
    /// Requests that waited for their turn at the pacer, per bucket.
    pub paced_waits: Vec<u64>,
    /// Holds of every request until the API's window reset, per bucket.
    pub rate_limit_pauses: Vec<u64>,
    /// The request rate the pacer allowed (requests per second; `null`: unpaced).
    pub allowed_rate: Vec<Option<f64>>,
}

/// `x` rounded to 2 decimals: the series is for reading, and short numbers keep it small.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Series {
    fn of(t: &Timeline, started: SystemTime) -> Series {
        let b = &t.buckets;
        let column = |f: &dyn Fn(&Counts) -> u64| b.iter().map(|x| f(&x.counts)).collect();
        let quantile = |q: f64| {
            b.iter()
                .map(|x| x.counts.latency.quantile(q).map(|s| round2(s * 1000.0)))
                .collect()
        };
        Series {
            started_at: jiff::Timestamp::try_from(started)
                .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
                .unwrap_or_default(),
            bucket_secs: t.width,
            buckets: b.len(),
            elapsed_secs: 0.0,
            requests: Class::ALL
                .iter()
                .map(|c| (c.label(), column(&|x: &Counts| x.classes[c.index()])))
                .collect(),
            latency_ms: [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)]
                .into_iter()
                .map(|(k, q)| (k, quantile(q)))
                .collect(),
            token_requests: RefreshReason::ALL
                .iter()
                .map(|r| (r.label(), column(&|x: &Counts| x.refreshes[r.index()])))
                .collect(),
            token_refresh_failures: column(&|x| x.refresh_failures),
            tokens_refused: column(&|x| x.refused),
            unauthorized_healed: column(&|x| x.healed),
            rate_limited_waits: column(&|x| x.waits_429),
            rate_limited_wait_secs: b
                .iter()
                .map(|x| round2(Duration::from_nanos(x.counts.wait_429_nanos).as_secs_f64()))
                .collect(),
            paced_waits: column(&|x| x.paced),
            rate_limit_pauses: column(&|x| x.holds),
            allowed_rate: b.iter().map(|x| x.allowed_rate.map(round2)).collect(),
        }
    }

    /// The sum of a requests column (all buckets).
    pub fn total_requests(&self, class: Class) -> u64 {
        self.requests
            .get(class.label())
            .map_or(0, |v| v.iter().sum())
    }
}
