//! `--metrics-listen`: a real Prometheus server scrapes a running batch, and the values read back
//! through its query API are the run's; `promtool check metrics` finds nothing to say about the
//! exposition.

mod common;

use common::*;
use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokenwarden_sim::SimConfig;

/// A free loopback port (bound and released: Prometheus takes it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One instant query's value, if it has exactly one sample.
async fn query(http: &reqwest::Client, prom: &str, q: &str) -> Option<f64> {
    let v: serde_json::Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let result = v["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_running_batch_and_reads_back_its_numbers() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
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
        "127.0.0.1:0",
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
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{exposition}"
    );
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

    // A real Prometheus, scraping every second.
    let target = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tokenwarden\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let prom = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let api = format!("http://127.0.0.1:{port}");
    let ok = until(Duration::from_secs(20), async || {
        query(&http, &api, "tokenwarden_api_requests_total{class=\"2xx\"}")
            .await
            .filter(|v| *v == 120.0)
    })
    .await;
    assert_eq!(ok, 120.0);
    let refreshes = query(&http, &api, "sum(tokenwarden_token_requests_total)")
        .await
        .unwrap();
    let after_401 = query(
        &http,
        &api,
        "tokenwarden_token_requests_total{reason=\"after_401\"}",
    )
    .await
    .unwrap();
    let healed = query(&http, &api, "tokenwarden_401_healed_total")
        .await
        .unwrap();
    let count = query(
        &http,
        &api,
        "tokenwarden_api_request_duration_seconds_count",
    )
    .await
    .unwrap();
    let remaining = query(&http, &api, "tokenwarden_token_remaining_seconds")
        .await
        .unwrap();
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
