//! `--metrics-listen`: a real Prometheus server scrapes a running batch, and the values read back
//! through its query API are the run's; `promtool check metrics` finds nothing to say about the
//! exposition.

mod common;

use common::*;
use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokenwarden_sim::SimConfig;
use tokenwarden_test_support::prometheus::{Prometheus, assert_promtool_clean};
use tokenwarden_test_support::redis_server::free_port;

/// Kills the child by its PID when dropped (also when an assertion fails).
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks until `ready` says yes, at most `within`.
async fn until<T>(within: Duration, mut ready: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = ready().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_running_batch_and_reads_back_its_numbers() {
    // Prometheus first: it takes its first scrape about 5 s after it starts (its discovery
    // tick), and the batch runs meanwhile, on the port Prometheus was told of.
    let target = format!("127.0.0.1:{}", free_port());
    let Some(prom) = Prometheus::start(&[&target]) else {
        return;
    };
    let sb = Sandbox::start(SimConfig {
        revoke_every: Some(50),
        ..SimConfig::default()
    })
    .await;
    // The batch reads its records from a pipe that stays open: it runs until the test says.
    let mut cmd = sb.tw();
    cmd.args([
        "batch",
        "-i",
        "-",
        "-o",
        "out.jsonl",
        "--no-progress",
        "--metrics-listen",
        &target,
        "--summary-json",
        "s.json",
    ])
    .stdin(Stdio::piped())
    .stderr(Stdio::piped());
    let mut batch = cmd.spawn().expect("spawn the batch");
    let mut records = batch.stdin.take().unwrap();
    let mut stderr = std::io::BufReader::new(batch.stderr.take().unwrap());
    let batch = Killed(batch);
    let mut line = String::new();
    let metrics_url = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no metrics note");
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    assert_eq!(metrics_url, format!("http://{target}/metrics"));
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
    });
    records.write_all(user_gets(120).as_bytes()).unwrap();
    records.flush().unwrap();

    // The endpoint itself: all 120 answered, and promtool has nothing to say about it.
    let http = reqwest::Client::new();
    let exposition = until(Duration::from_secs(10), async || {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("tokenwarden_api_requests_total{class=\"2xx\"} 120\n")
            .then_some(text)
    })
    .await;
    assert_promtool_clean(&exposition);
    // No label holds an id, a path or a secret: only the fixed class, reason and le values.
    assert!(!exposition.contains(tokenwarden_sim::DEFAULT_CLIENT_SECRET));
    assert!(!exposition.contains("user-0") && !exposition.contains("/api/"));
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, labels)) = line.split_once('{') {
            let name = labels.split('=').next().unwrap();
            assert!(["class", "reason", "le"].contains(&name), "{line}");
        }
    }
    for path in ["/", "/metrics/x", "/api/v2/users"] {
        let url = metrics_url.replace("/metrics", path);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 404, "{path}");
    }
    let post = http.post(&metrics_url).send().await.unwrap();
    assert_eq!(post.status(), 405);

    // A real Prometheus: a scrape after all 120 were answered reads them.
    prom.scraped_since(SystemTime::now(), Duration::from_secs(10))
        .await;
    let ok = prom
        .value("tokenwarden_api_requests_total{class=\"2xx\"}")
        .await;
    assert_eq!(ok, 120.0);
    let refreshes = prom.value("sum(tokenwarden_token_requests_total)").await;
    let after_401 = prom
        .value("tokenwarden_token_requests_total{reason=\"after_401\"}")
        .await;
    let healed = prom.value("tokenwarden_401_healed_total").await;
    let count = prom
        .value("tokenwarden_api_request_duration_seconds_count")
        .await;
    let remaining = prom.value("tokenwarden_token_remaining_seconds").await;
    assert!(after_401 >= 2.0 && healed >= 2.0, "{after_401} {healed}");
    assert!(remaining > 0.0, "{remaining}");
    drop(prom);

    // Once the input ends, the summary has the numbers Prometheus read.
    drop(records);
    let mut batch = batch;
    let status = batch.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let s = summary(&sb.path("s.json"));
    let o = &s["observed"];
    assert_eq!(o["api_requests"]["2xx"], 120);
    let sent: u64 = o["api_requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(count, sent as f64);
    let started: u64 = o["token_requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(refreshes, started as f64);
    assert_eq!(healed, o["unauthorized_healed"].as_f64().unwrap());
}
