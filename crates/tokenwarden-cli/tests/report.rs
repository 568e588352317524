//! `--report FILE.html`: the page a run leaves, opened in a real browser (headless Chromium) from
//! disk with every network request caught, and compared with the run's `--summary-json`.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tokenwarden_sim::{DEFAULT_CLIENT_SECRET, SimConfig};
use tokenwarden_test_support::chromium::Chromium;

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
    let Some(browser) = Chromium::find() else {
        return;
    };
    let sb = Sandbox::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(250),
        // 200 requests a second per token (each serves at most 250: revoke_every), unannounced:
        // 429s, then the learned pace.
        api_rate_limit_per_minute: Some(200),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: false,
        error_rate: 0.03,
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await;
    let input = sb.path("in.jsonl");
    // 300 records: a revocation (the 250th request), 429s and 5xx answers, in about 2 s.
    std::fs::write(&input, user_gets(300)).unwrap();
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

    // One launch: the DOM its script left, and a screenshot at a laptop's width.
    let shot = sb.path("report.png");
    let dom = browser.open(&report, &shot, (1280, 2000));
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
    assert!(summary["ok"].as_u64().unwrap() == 300);
    assert!(!dom.contains("id=\"resumed\""), "not a resumed run");

    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", shot.display());
    if let Some(keep) = std::env::var_os("TOKENWARDEN_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    // Whatever Chromium's own background services called, the page fetched nothing.
    let page = browser.page_requests();
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
