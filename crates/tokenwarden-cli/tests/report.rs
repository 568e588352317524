//! `--report FILE.html`: the page a run leaves, opened in a real browser (headless Chromium) from
//! disk with every network request caught, and compared with the run's `--summary-json`.

mod common;

use common::*;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenwarden_sim::{DEFAULT_CLIENT_SECRET, SimConfig};

/// A proxy that answers nothing and notes the first line of every request sent to it: the
/// browser is pointed at it, so any request the page makes shows up here.
fn request_catcher() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut line = String::new();
            let _ = std::io::BufReader::new(&conn).read_line(&mut line);
            log.lock().unwrap().push(line.trim().to_string());
            let _ = (&conn).write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (addr, seen)
}

/// Runs headless Chromium on `page` with `args`, its own fresh profile, and every request sent
/// to `proxy` (loopback included); returns its stdout.
fn chromium(chrome: &Path, profile: &Path, proxy: &str, args: &[&str], page: &Path) -> String {
    let out = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
            "--disable-default-apps",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--proxy-server=http://{proxy}"),
            "--proxy-bypass-list=<-loopback>",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value shown in the report's table row `key`.
fn row_value<'a>(dom: &'a str, key: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr data-key=\"{key}\">"))
        .unwrap_or_else(|| panic!("no row {key} in the rendered page"));
    let row = &dom[start..];
    let value = row.find("data-value=\"").expect("a value cell") + "data-value=\"".len();
    let end = row[value..].find('"').unwrap();
    &row[value..value + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_opens_offline_in_a_browser_and_shows_the_summarys_totals() {
    let Some(chrome) = tool("chromium") else {
        return;
    };
    let sb = Sandbox::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(250),
        // 200 requests a second per token, unannounced: 429s, then the learned pace.
        api_rate_limit_per_minute: Some(200),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: false,
        error_rate: 0.02,
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await;
    let input = sb.path("in.jsonl");
    std::fs::write(&input, user_gets(500)).unwrap();
    let (out, report, sum) = (sb.path("out.jsonl"), sb.path("run.html"), sb.path("s.json"));
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run(
        sb.tw(),
        &[
            "batch",
            "-i",
            &p(&input),
            "-o",
            &p(&out),
            "-c",
            "8",
            "--no-progress",
            "--report",
            &p(&report),
            "--summary-json",
            &p(&sum),
        ],
    )
    .await
    .ok();
    #[cfg(unix)]
    {
        let mode = tokenwarden_test_support::mode(&report);
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(!html.contains(DEFAULT_CLIENT_SECRET));
    assert!(!html.to_ascii_lowercase().contains("bearer "));
    let summary = summary(&sum);
    assert!(summary["series"]["buckets"].as_u64().unwrap() >= 1);

    let (proxy, requests) = request_catcher();
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(&chrome, profile.path(), &proxy, &["--dump-dom"], &report);
    assert!(dom.contains("data-rendered=\"true\""), "the script ran");
    for chart in [
        "chart-requests",
        "chart-latency",
        "chart-rate",
        "chart-waits",
        "chart-tokens",
    ] {
        assert!(
            dom.contains(&format!("data-chart=\"{chart}\"")),
            "{chart} is drawn"
        );
    }
    // The series drawn: the outcomes, the quantiles, the token marks.
    for drawn in [
        "data-series=\"2xx\"",
        "data-series=\"429\"",
        "data-series=\"5xx\"",
        "data-series=\"p99\"",
        "data-mark=\"after_401\"",
        "data-mark=\"on_demand\"",
    ] {
        assert!(dom.contains(drawn), "{drawn} is drawn");
    }
    // The totals are the summary's numbers.
    for key in [
        "ok",
        "failed",
        "requests",
        "tokens_fetched",
        "refreshes_after_401",
        "unauthorized_healed",
        "rate_limited_waits",
    ] {
        assert_eq!(
            row_value(&dom, key),
            summary[key].to_string(),
            "{key} in the report"
        );
    }
    for class in ["2xx", "429", "5xx"] {
        assert_eq!(
            row_value(&dom, &format!("api_requests.{class}")),
            summary["observed"]["api_requests"][class].to_string()
        );
    }
    assert!(summary["ok"].as_u64().unwrap() == 500);
    assert!(!dom.contains("id=\"resumed\""), "not a resumed run");

    let shot = sb.path("report.png");
    chromium(
        &chrome,
        profile.path(),
        &proxy,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        &report,
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", shot.display());
    if let Some(keep) = std::env::var_os("TOKENWARDEN_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    // Chromium's own background services (component updates, sign-in) may still call Google's
    // service hosts; anything else came from the page.
    let seen = requests.lock().unwrap().clone();
    let (browser, page): (Vec<_>, Vec<_>) = seen.into_iter().partition(|line| {
        let host = line.split_whitespace().nth(1).unwrap_or_default();
        let host = host
            .trim_start_matches("http://")
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        // (Hosts a page could load from, fonts and libraries, are never the browser's.)
        let cdn = [
            "fonts.googleapis.com",
            "ajax.googleapis.com",
            "storage.googleapis.com",
        ];
        [".google.com", ".googleapis.com", ".gvt1.com"]
            .iter()
            .any(|d| host.ends_with(d))
            && !cdn.contains(&host)
    });
    if !browser.is_empty() {
        eprintln!("Chromium's own requests, not the page's: {browser:?}");
    }
    assert!(page.is_empty(), "the page made network requests: {page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_says_so_and_covers_only_that_run() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.path("in.jsonl");
    std::fs::write(&input, user_gets(30)).unwrap();
    let (out, report) = (sb.path("out.jsonl"), sb.path("r.html"));
    let (i, o, r) = (
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        report.to_str().unwrap(),
    );
    run(sb.tw(), &["batch", "-i", i, "-o", o, "--no-progress"])
        .await
        .ok();
    run(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--resume",
            "--no-progress",
            "--report",
            r,
        ],
    )
    .await
    .ok();
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("\"resumed\":true"), "the data says resumed");
    // Everything was done by the first run: this run's report shows no request.
    assert!(html.contains("\"skipped\":30"), "{html}");
    assert!(html.contains("\"2xx\":0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_never_replaces_the_jobs_files_or_another_file() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.path("in.jsonl");
    std::fs::write(&input, user_gets(3)).unwrap();
    let out = sb.path("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    for target in [i, o] {
        let r = run(sb.tw(), &["batch", "-i", i, "-o", o, "--report", target]).await;
        r.expect_code(2);
        assert!(r.stderr.contains("--report"), "{}", r.stderr);
    }
    let other = sb.path("notes.html");
    std::fs::write(&other, "my notes").unwrap();
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--report",
            other.to_str().unwrap(),
        ],
    )
    .await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("not a tokenwarden report"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "my notes");
    assert!(!out.exists(), "refused before the job started");
    // A report is replaced by the next one without --force.
    let report = sb.path("r.html");
    let r = report.to_str().unwrap();
    for o in ["a.jsonl", "b.jsonl"] {
        run(
            sb.tw(),
            &["batch", "-i", i, "-o", o, "--no-progress", "--report", r],
        )
        .await
        .ok();
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), user_gets(3));
}
