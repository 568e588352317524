//! A real Prometheus server (Debian's `prometheus`) that scrapes the targets a test gives it, in a
//! temporary directory on a free loopback port, killed by its PID when dropped; and `promtool
//! check metrics` on an exposition.
//!
//! Prometheus hands a new target to its scrape loop only on a 5-second tick of its discovery
//! manager (fixed in the binary, no flag changes it): the first scrape comes about 5 s after the
//! start. [`Prometheus::start`] therefore returns at once, so that a test starts it first and does
//! its work meanwhile; [`Prometheus::scraped_since`] then waits for a scrape that began after
//! the work ended (scrapes come every 100 ms from then on).

// A real server process: waiting for it is real time, not the test's clock.
#![allow(clippy::disallowed_methods)]

use crate::redis_server::free_port;
use crate::tool::installed;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How often Prometheus scrapes (and evaluates): short, so a test waits little past the first
/// scrape.
const INTERVAL: &str = "100ms";

/// A running Prometheus server.
pub struct Prometheus {
    /// guards the process, asked whether it exited while a test waits
    child: Mutex<Child>,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `GET /metrics` of each of `targets` (`host:port`) every 100 ms,
    /// and returns without waiting for it; `None` (after saying so loudly) when it is not
    /// installed and this is not CI.
    ///
    /// # Panics
    /// Under CI without `prometheus`, or when it cannot be started.
    pub fn start(targets: &[&str]) -> Option<Prometheus> {
        let binary = installed("prometheus")?;
        let dir = tempfile::tempdir().expect("a temp dir for prometheus");
        let config = dir.path().join("prometheus.yml");
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: {INTERVAL}\n  scrape_timeout: {INTERVAL}\n  evaluation_interval: {INTERVAL}\nscrape_configs:\n  - job_name: tokenwarden\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Some(Prometheus {
            child: Mutex::new(child),
            port,
            dir,
            http: reqwest::Client::new(),
        })
    }

    /// `http://127.0.0.1:PORT`: its web UI and HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The value of the instant query `q`, if Prometheus answers with exactly one sample.
    pub async fn query(&self, q: &str) -> Option<f64> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        match v["data"]["result"].as_array()?.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The value of the instant query `q`.
    ///
    /// # Panics
    /// When it has no value (no sample, or several), with Prometheus's log.
    pub async fn value(&self, q: &str) -> f64 {
        match self.query(q).await {
            Some(v) => v,
            None => panic!("Prometheus has no single value for {q}\n{}", self.log()),
        }
    }

    /// Waits until every target has been scraped by a scrape that began after `after` (wall
    /// clock): every value read next includes all that happened before it.
    ///
    /// # Panics
    /// When that has not happened within `within`, with Prometheus's log.
    pub async fn scraped_since(&self, after: SystemTime, within: Duration) {
        let after = after
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        let deadline = Instant::now() + within;
        loop {
            // `up` is 1 for a target scraped; its timestamp is when that scrape began.
            let began = self.query("min(timestamp(up))").await;
            if began.is_some_and(|t| t > after) && self.query("min(up)").await == Some(1.0) {
                return;
            }
            let exited = self.child().try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "prometheus exited: {exited:?}\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no scrape of every target after the work within {within:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What Prometheus has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Prometheus {
    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `promtool check metrics` on `exposition` and asserts it has nothing to say (skipped
/// loudly without `promtool`, except under CI).
///
/// # Panics
/// When promtool finds anything, or is missing under CI.
#[track_caller]
pub fn assert_promtool_clean(exposition: &str) {
    let Some(promtool) = installed("promtool") else {
        return;
    };
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    check
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let checked = check.wait_with_output().expect("promtool's answer");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{exposition}"
    );
}
