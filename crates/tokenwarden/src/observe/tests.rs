use super::*;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn events_land_in_the_second_they_happened() {
    let r = Recorder::new();
    // second 0: two 2xx; second 1: nothing; second 2: a 429 and a proactive refresh.
    r.exchange(Class::Success, ms(5), Instant::now());
    r.exchange(Class::Success, ms(7), Instant::now());
    tokio::time::advance(ms(2_100)).await;
    r.exchange(Class::RateLimited, ms(1), Instant::now());
    r.refresh_started(RefreshReason::Proactive);
    tokio::time::advance(ms(500)).await;
    r.rate_limited_wait(Duration::from_secs(3));
    let s = r.series();
    assert_eq!(s.bucket_secs, 1);
    assert_eq!(s.buckets, 3);
    assert_eq!(s.requests["2xx"], vec![2, 0, 0]);
    assert_eq!(s.requests["429"], vec![0, 0, 1]);
    assert_eq!(s.token_requests["proactive"], vec![0, 0, 1]);
    assert_eq!(s.rate_limited_waits, vec![0, 0, 1]);
    assert_eq!(s.rate_limited_wait_secs, vec![0.0, 0.0, 3.0]);
    assert_eq!(s.latency_ms["p50"][1], None);
    let p50 = s.latency_ms["p50"][0].unwrap();
    assert!((4.0..=8.0).contains(&p50), "{p50}");
    // Reading the series changes nothing: the next event of second 2 still counts there.
    r.exchange(Class::ServerError, ms(1), Instant::now());
    assert_eq!(r.series().requests["5xx"], vec![0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn the_series_adds_up_to_the_totals() {
    let r = Recorder::new();
    let classes = [Class::Success, Class::ClientError, Class::Transport];
    for i in 0..500u64 {
        r.exchange(classes[(i % 3) as usize], ms(i % 50), Instant::now());
        if i % 100 == 0 {
            r.refresh_started(RefreshReason::OnDemand);
            r.token_refused();
            r.healed();
        }
        tokio::time::advance(ms(37)).await;
    }
    let (s, t) = (r.series(), r.totals());
    for c in Class::ALL {
        assert_eq!(s.total_requests(c), t.requests(c), "{c:?}");
    }
    assert_eq!(t.all_requests(), 500);
    assert_eq!(t.refreshes(RefreshReason::OnDemand), 5);
    assert_eq!(s.token_requests["on_demand"].iter().sum::<u64>(), 5);
    assert_eq!(s.unauthorized_healed.iter().sum::<u64>(), 5);
    assert_eq!(s.tokens_refused.iter().sum::<u64>(), 5);
    assert_eq!(s.buckets as u64, 500 * 37 / 1000 + 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_run_keeps_at_most_max_buckets() {
    let r = Recorder::new();
    // Three hours at one request every 1.3 s: 8,307 requests in 10,800 seconds.
    let mut n = 0u64;
    while r.elapsed() < Duration::from_secs(3 * 3600) {
        r.exchange(Class::Success, ms(2), Instant::now());
        n += 1;
        tokio::time::advance(ms(1_300)).await;
    }
    let s = r.series();
    assert!(s.buckets <= MAX_BUCKETS, "{}", s.buckets);
    assert_eq!(s.bucket_secs, 4);
    // The seconds up to the current one, the 10,800th, four to a bucket.
    assert_eq!(s.buckets as u64, 3 * 3600 / 4 + 1);
    assert_eq!(s.total_requests(Class::Success), n);
    for column in s.requests.values() {
        assert_eq!(column.len(), s.buckets);
    }
}

struct Fixed(f64);
impl RateSource for Fixed {
    fn allowed_rate(&self) -> Option<f64> {
        Some(self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn the_allowed_rate_is_every_pacer_together() {
    let r = Recorder::new();
    assert_eq!(r.series().allowed_rate, vec![None]);
    let (a, b): (Arc<dyn RateSource>, Arc<dyn RateSource>) =
        (Arc::new(Fixed(5.0)), Arc::new(Fixed(2.5)));
    r.add_rate_source(Arc::clone(&a));
    r.add_rate_source(Arc::clone(&b));
    tokio::time::advance(ms(1_000)).await;
    r.exchange(Class::Success, ms(1), Instant::now());
    assert_eq!(r.series().allowed_rate, vec![None, Some(7.5)]);
    // A pacer whose client is gone no longer counts, and is not kept.
    drop(b);
    tokio::time::advance(ms(1_000)).await;
    r.exchange(Class::Success, ms(1), Instant::now());
    assert_eq!(r.series().allowed_rate, vec![None, Some(7.5), Some(5.0)]);
    r.add_rate_source(Arc::new(Fixed(1.0)));
    assert_eq!(r.inner.rates.lock().unwrap().len(), 2);
    drop(a);
}

#[test]
fn classes_and_reasons_have_fixed_labels() {
    assert_eq!(Class::of_status(200), Class::Success);
    assert_eq!(Class::of_status(204), Class::Success);
    assert_eq!(Class::of_status(302), Class::Redirect);
    assert_eq!(Class::of_status(401), Class::ClientError);
    assert_eq!(Class::of_status(429), Class::RateLimited);
    assert_eq!(Class::of_status(503), Class::ServerError);
    assert_eq!(Class::of_status(999), Class::Other);
    let labels: Vec<_> = Class::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        ["2xx", "3xx", "4xx", "429", "5xx", "transport", "other"]
    );
    let reasons: Vec<_> = RefreshReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(reasons, ["proactive", "after_401", "on_demand"]);
}

#[test]
fn totals_serialise_with_labels_as_keys() {
    let r = Recorder::new();
    r.exchange(Class::Success, ms(10), Instant::now());
    let v = serde_json::to_value(r.totals()).unwrap();
    assert_eq!(v["api_requests"]["2xx"], 1);
    assert_eq!(v["token_requests"]["after_401"], 0);
    assert!(v["latency_p99_secs"].as_f64().unwrap() > 0.0);
}
