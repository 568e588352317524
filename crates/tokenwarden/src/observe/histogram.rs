//! Latency in fixed buckets: recording is one binary search and one atomic add, memory is fixed,
//! and quantiles are read back by interpolating inside a bucket.
//!
//! The bounds follow the 1-1.25-1.5-2-2.5-3-4-5-6-8 steps of each decade from 100 µs to 100 s, so
//! a quantile is off by at most a quarter of its value (less, interpolated), and the Prometheus
//! histogram's conventional bounds (1 ms, 2.5 ms, 5 ms ... 10 s) are bounds here too: the
//! exposition is a subset of these buckets, not a second histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The steps of one decade.
const STEPS: [f64; 10] = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0];
/// Decades covered: 100 µs (1e-4 s) to 100 s.
const DECADES: usize = 6;
/// Upper bounds (inclusive), in seconds; one more bucket above the last for anything longer.
pub(crate) const BOUNDS: usize = STEPS.len() * DECADES + 1;

/// The upper bound of bucket `i` in seconds (the last, open, bucket has none).
pub(crate) fn bound(i: usize) -> Option<f64> {
    (i < BOUNDS).then(|| {
        let decade = i / STEPS.len();
        let step = STEPS.get(i % STEPS.len()).copied().unwrap_or(1.0);
        // Divided by an exact power of ten, so that 2.5 ms is the double nearest 0.0025 and
        // prints as `0.0025` (multiplying by 0.001 would not). The last bound is 100 s.
        match decade {
            d if d < 4 => step / 10f64.powi(4 - d as i32),
            d => step * 10f64.powi(d as i32 - 4),
        }
    })
}

/// Buckets in all, the open one above the last bound included.
pub(crate) const BUCKETS: usize = BOUNDS + 1;

/// The bucket a duration falls in: the first whose bound is at least `d`.
pub(crate) fn bucket_of(d: Duration) -> usize {
    let s = d.as_secs_f64();
    // `partition_point` over the bounds: the count of bounds below `s`.
    let (mut lo, mut hi) = (0usize, BOUNDS);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if bound(mid).unwrap_or(f64::INFINITY) < s {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Counts per bucket, plain (a snapshot, a difference of two, a merge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) buckets: [u64; BUCKETS],
    /// Sum of every duration, in nanoseconds.
    pub(crate) sum_nanos: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            sum_nanos: 0,
        }
    }
}

impl Counts {
    pub(crate) fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `self - earlier`, bucket by bucket (saturating: a snapshot is not one instant).
    pub(crate) fn minus(&self, earlier: &Counts) -> Counts {
        let mut out = Counts::default();
        for (o, (a, b)) in out
            .buckets
            .iter_mut()
            .zip(self.buckets.iter().zip(&earlier.buckets))
        {
            *o = a.saturating_sub(*b);
        }
        out.sum_nanos = self.sum_nanos.saturating_sub(earlier.sum_nanos);
        out
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_nanos += other.sum_nanos;
    }

    /// The `q` quantile (0..=1) in seconds, interpolated linearly inside its bucket; `None`
    /// without any count. A quantile in the open bucket is reported as its lower bound (100 s).
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // The rank of the wanted value, from 1.
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lower = if i == 0 {
                    0.0
                } else {
                    bound(i - 1).unwrap_or(0.0)
                };
                let Some(upper) = bound(i) else {
                    return Some(lower);
                };
                let into = (rank - seen as f64) / n as f64;
                return Some(lower + (upper - lower) * into);
            }
            seen += n;
        }
        None
    }
}

/// The live histogram: atomic counts, shared by every recording task.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        self.buckets[bucket_of(d)].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counts {
        Counts {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise_from_100_microseconds_to_100_seconds() {
        assert_eq!(bound(0), Some(1e-4));
        assert!((bound(BOUNDS - 1).unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(bound(BOUNDS), None);
        for i in 1..BOUNDS {
            assert!(bound(i).unwrap() > bound(i - 1).unwrap(), "{i}");
        }
    }

    #[test]
    fn a_duration_falls_in_the_first_bucket_whose_bound_holds_it() {
        let ms = Duration::from_millis;
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_micros(100)), 0);
        assert_eq!(bucket_of(Duration::from_micros(101)), 1);
        // exactly 1 ms is in the bucket bounded by 1 ms (Prometheus: le="0.001")
        let one_ms = bucket_of(ms(1));
        assert!((bound(one_ms).unwrap() - 0.001).abs() < 1e-12);
        assert_eq!(bucket_of(ms(1) + Duration::from_nanos(1)), one_ms + 1);
        assert_eq!(bucket_of(Duration::from_secs(1000)), BOUNDS);
    }

    #[test]
    fn quantiles_are_within_the_bucket_resolution() {
        let h = Histogram::default();
        // 1..=1000 ms, one each: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms.
        for i in 1..=1000 {
            h.record(Duration::from_millis(i));
        }
        let c = h.snapshot();
        assert_eq!(c.total(), 1000);
        for (q, want) in [(0.5, 0.5), (0.95, 0.95), (0.99, 0.99)] {
            let got = c.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.25, "q{q}: {got} vs {want}");
        }
        assert_eq!(Counts::default().quantile(0.5), None);
        assert_eq!(c.sum_nanos, 500_500 * 1_000_000);
    }

    #[test]
    fn differences_and_merges_are_bucket_by_bucket() {
        let h = Histogram::default();
        h.record(Duration::from_millis(3));
        let first = h.snapshot();
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(2));
        let d = h.snapshot().minus(&first);
        assert_eq!(d.total(), 2);
        let mut m = first.clone();
        m.add(&d);
        assert_eq!(m, h.snapshot());
    }
}
