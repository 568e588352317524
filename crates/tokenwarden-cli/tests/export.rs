//! `paginate` and `export` on the built binary: killed with SIGKILL mid-way and resumed with
//! 1-second tokens and revocations, every id of the simulator's data is in the output exactly once;
//! CSV that Python reads back; safe outputs (0600, no overwrite without --force, scrubbed items);
//! exit statuses.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokenwarden_sim::SimConfig;
use tokenwarden_sim::data::{contact_id, conversation_id};
use tokenwarden_test_support::{chmod, mode, users};

const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
const WEEK: &str = "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z";

fn state_path(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.twstate", out.display()))
}

/// The recorded state, if it can be read now.
fn recorded(out: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(state_path(out)).ok()?).ok()
}

/// Runs `cmd` and kills it with SIGKILL once its recorded state says `enough`; returns the state
/// at the kill. Panics if it finishes first.
async fn kill_when(
    mut cmd: std::process::Command,
    out: &Path,
    enough: impl Fn(&Value) -> bool + Send + 'static,
) -> Value {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn tokenwarden");
        let deadline = Instant::now() + Duration::from_secs(20);
        // Polling a file another process writes: waiting for it, not synchronising with it.
        loop {
            if let Some(st) = recorded(&out).filter(|s| enough(s)) {
                child.kill().expect("SIGKILL");
                assert!(!child.wait().unwrap().success());
                return st;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the export finished ({status}) before it could be killed");
            }
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .await
    .unwrap()
}

fn items(st: &Value) -> u64 {
    st["items"].as_u64().unwrap_or(0)
}

/// Appends a torn line to `out`, as a kill in the middle of a write leaves.
fn tear(out: &Path) -> usize {
    use std::io::Write as _;
    let torn = br#"{"id":"torn-by-a-kill","conversationId":"to"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .unwrap()
        .write_all(torn)
        .unwrap();
    torn.len()
}

/// Short tokens and revocations under a slow-enough API to be killed mid-way.
fn hostile() -> SimConfig {
    SimConfig {
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(9),
        latency: Duration::from_millis(8),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_killed_mid_way_resumes_with_no_conversation_missing_and_none_twice() {
    const N: usize = 1400;
    let sb = Sandbox::start(SimConfig {
        conversations: N,
        job_duration: Duration::from_millis(60),
        ..hostile()
    })
    .await;
    let out = sb.path("convs.jsonl");
    let args = [
        "export",
        "conversations",
        "--interval",
        WEEK,
        "--slice",
        "1d",
        "--page-size",
        "40",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut cmd = sb.tw();
    cmd.args(args);
    // Killed inside the fourth of seven slices, part-way through its results.
    let at_kill = kill_when(cmd, &out, |s| {
        s["slice"]["index"] == 3 && s["position"]["cursor"].is_string()
    })
    .await;
    let killed_at = items(&at_kill);
    assert!(killed_at > 0 && (killed_at as usize) < N, "{at_kill}");
    let torn = tear(&out);

    // Without --resume or --force the unfinished export is not touched.
    let r = run(sb.tw(), &args).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("--resume") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );

    let jobs_before = sb.sim.journal_counters().ok_count("POST", JOBS);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let r = run(sb.tw(), &resume).await;
    r.ok();
    assert!(
        r.stderr.contains(&format!("{killed_at} items recorded")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("cut {torn} bytes")),
        "{}",
        r.stderr
    );
    let expected = (0..N).map(conversation_id).collect();
    assert_exactly_once(&read_jsonl(&out), "conversationId", &expected);

    // The resume attached to the recorded jobs (slice 4's, and slice 5's submitted ahead): it
    // submitted only slices 6 and 7, and read again at most the results page in flight.
    let j = sb.sim.journal_counters();
    assert_eq!(j.ok_count("POST", JOBS) - jobs_before, 2);
    let results_pages: u64 = j
        .per_resource_ok
        .iter()
        .filter(|(k, _)| k.ends_with("/results"))
        .map(|(_, n)| n)
        .sum();
    let pages_needed = job_results_pages(N, 7, 40);
    assert!(
        (pages_needed..=pages_needed + 1).contains(&results_pages),
        "{results_pages} results pages for {pages_needed}"
    );
    assert_eq!(
        j.api_expired_token, 0,
        "no request carried an expired token"
    );
    assert!(j.api_revoked_token > 0 && j.tokens_issued >= 3, "{j:?}");
}

/// Results pages the jobs of `slices` daily slices of the simulator's week return with `page`
/// conversations a page: each job holds the conversations that started in its day and those still
/// going at its start (Genesys jobs match on lifetime overlap).
fn job_results_pages(n: usize, slices: u64, page: usize) -> u64 {
    use tokenwarden_sim::data::{conversation_end_ms, conversation_start_ms};
    let (start, end) = (1_704_067_200_000, 1_704_672_000_000);
    (0..slices)
        .map(|d| {
            let (from, to) = (start + d * 86_400_000, start + (d + 1) * 86_400_000);
            let in_job = (0..n)
                .filter(|i| {
                    let s = conversation_start_ms(*i, n, start, end);
                    s < to && conversation_end_ms(*i, s) > from
                })
                .count();
            in_job.div_ceil(page) as u64
        })
        .sum()
}

/// Kills a `paginate` of `path` mid-way, resumes it, and checks the ids against `expected`.
async fn paginate_killed_and_resumed(
    sb: &Sandbox,
    path: &str,
    page_size: usize,
    expected: BTreeSet<String>,
) {
    let out = sb.path("listing.jsonl");
    let page = page_size.to_string();
    let args = [
        "paginate",
        path,
        "--page-size",
        &page,
        "--out",
        out.to_str().unwrap(),
    ];
    let mut cmd = sb.tw();
    cmd.args(args);
    let n = expected.len() as u64;
    let at_kill = kill_when(cmd, &out, move |s| items(s) >= n / 3).await;
    assert!(items(&at_kill) < n, "{at_kill}");
    tear(&out);
    let mut resume = args.to_vec();
    resume.push("--resume");
    run(sb.tw(), &resume).await.ok();
    assert_exactly_once(&read_jsonl(&out), "id", &expected);
    let pages = sb.sim.journal_counters().api_ok;
    let needed = expected.len().div_ceil(page_size) as u64;
    assert!(
        (needed..=needed + 1).contains(&pages),
        "{pages} pages fetched for {needed}: at most the page in flight twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_page_numbers_killed_mid_way_resumes_exactly_once() {
    let sb = Sandbox::start(SimConfig {
        users: 1500,
        ..hostile()
    })
    .await;
    paginate_killed_and_resumed(&sb, "/api/v2/users", 25, users(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_cursors_killed_mid_way_resumes_exactly_once() {
    let sb = Sandbox::start(SimConfig {
        contacts: 1300,
        ..hostile()
    })
    .await;
    let contacts = (0..1300).map(contact_id).collect();
    paginate_killed_and_resumed(&sb, "/api/v2/externalcontacts/scan/contacts", 25, contacts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_of_users_reads_back_one_row_per_user() {
    let sb = Sandbox::start(SimConfig {
        users: 321,
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("users.csv");
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/users",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    r.ok();
    assert!(r.stdout.is_empty());
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import csv, json, sys\n\
             rows = list(csv.DictReader(open(sys.argv[1], newline='')))\n\
             print(json.dumps({'ids': [r['id'] for r in rows], 'division': rows[0]['division.id']}))",
        )
        .arg(&out)
        .output();
    let (ids, division): (Vec<String>, String) = match python {
        Ok(o) if o.status.success() => {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let ids = v["ids"].as_array().unwrap();
            (
                ids.iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect(),
                v["division"].as_str().unwrap().to_string(),
            )
        }
        // No CPython here: the csv crate reads it instead.
        _ => {
            let mut rd = csv::Reader::from_path(&out).unwrap();
            let h = rd.headers().unwrap().clone();
            let (id, div) = (
                h.iter().position(|c| c == "id").unwrap(),
                h.iter().position(|c| c == "division.id").unwrap(),
            );
            let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
            (
                rows.iter().map(|r| r[id].to_string()).collect(),
                rows[0][div].to_string(),
            )
        }
    };
    assert_eq!(ids.len(), 321, "one row per user");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), users(321));
    assert_eq!(
        division, "division-home",
        "nested fields flattened with dots"
    );

    // To stdout as well, with `--out -`.
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--format", "csv", "--out", "-"],
    )
    .await;
    r.ok();
    let mut rd = csv::Reader::from_reader(r.stdout.as_bytes());
    assert_eq!(rd.records().count(), 321);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_private_and_never_overwritten_by_accident() {
    let sb = Sandbox::start(SimConfig {
        users: 30,
        ..SimConfig::default()
    })
    .await;
    for (name, format) in [("u.jsonl", "jsonl"), ("u.csv", "csv")] {
        let out = sb.path(name);
        let args = [
            "paginate",
            "/api/v2/users",
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ];
        run(sb.tw(), &args).await.ok();
        for f in [out.clone(), state_path(&out)] {
            let mode = mode(&f);
            assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
        }
        let before = std::fs::read(&out).unwrap();
        let r = run(sb.tw(), &args).await;
        r.expect_code(2);
        assert!(
            r.stderr.contains("--force") && r.stderr.contains("--resume"),
            "{}",
            r.stderr
        );
        assert_eq!(std::fs::read(&out).unwrap(), before, "untouched");
        // A resume of a complete export does nothing; --force starts over.
        let r = run(sb.tw(), &[&args[..], &["--resume"]].concat()).await;
        r.ok();
        assert!(r.stderr.contains("already complete"), "{}", r.stderr);
        run(sb.tw(), &[&args[..], &["--force"]].concat()).await.ok();
    }
    // A file planted by someone else as a link is not written through.
    let victim = sb.write("victim.txt", "precious");
    let link = sb.path("planted.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/users",
            "--out",
            link.to_str().unwrap(),
            "--force",
        ],
    )
    .await;
    r.expect_code(2);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_force_over_an_existing_output_readable_by_others_leaves_it_private() {
    // --force kept the mode of the file it overwrote (0644 stayed 0644).
    let sb = Sandbox::start(SimConfig::default()).await;
    for (name, format) in [("u.jsonl", "jsonl"), ("u.csv", "csv")] {
        let out = sb.write(name, "old\n");
        chmod(&out, 0o644);
        let args = ["paginate", "/api/v2/users", "--format", format, "--out"];
        run(
            sb.tw(),
            &[&args[..], &[out.to_str().unwrap(), "--force"]].concat(),
        )
        .await
        .ok();
        let mode = mode(&out);
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_echoed_in_items_is_not_written() {
    let sb = Sandbox::start(SimConfig {
        users: 40,
        echo_token_in_items: true,
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("users.jsonl");
    run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", out.to_str().unwrap()],
    )
    .await
    .ok();
    let lines = read_jsonl(&out);
    assert_eq!(lines.len(), 40);
    for l in &lines {
        assert_eq!(l["echoedAuthorization"], "Bearer [REDACTED]", "{l}");
    }
    let r = run(sb.tw(), &["paginate", "/api/v2/users", "--format", "csv"]).await;
    r.ok();
    assert_eq!(r.stdout.matches("Bearer [REDACTED]").count(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_statuses_follow_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let out = sb.path("x.jsonl");
    let o = out.to_str().unwrap();
    // A 404 is a failed request: 1, and nothing is left behind to block the corrected command.
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/no-such-listing", "--out", o],
    )
    .await;
    r.expect_code(1);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    assert!(!out.exists() && !state_path(&out).exists());
    // What was typed is wrong: 2, before any request.
    let before = sb.sim.journal_counters().api_requests;
    let typed: [&[&str]; 7] = [
        &["export", "conversations", "--interval", "garbage"],
        &[
            "export",
            "conversations",
            "--interval",
            "2024-01-08/2024-01-01",
        ],
        &[
            "export",
            "conversations",
            "--interval",
            WEEK,
            "--slice",
            "32d",
        ],
        &[
            "export",
            "conversations",
            "--interval",
            WEEK,
            "--filter",
            "{not json",
        ],
        &[
            "paginate",
            "/api/v2/analytics/conversations/details/query",
            "--body",
            "{bad",
        ],
        &[
            "paginate",
            "/api/v2/users",
            "--out",
            "no-such-dir/users.jsonl",
        ],
        &["paginate", "/api/v2/users", "--resume"],
    ];
    for args in typed {
        let r = run(sb.tw(), args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    assert!(
        !sb.path("no-such-dir").exists(),
        "the directory is not created"
    );
    assert_eq!(sb.sim.journal_counters().api_requests, before);
    // An output that is a directory: 2.
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", ".", "--force"],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A full disk is not the user's typing: 4.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let mut cmd = sb.tw();
        cmd.args(["paginate", "/api/v2/users"])
            .stdout(full)
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("No space left"), "{stderr}");
    }
    // Credentials refused: 3.
    let r = run(
        sb.tw_with_secret("wrong"),
        &["paginate", "/api/v2/users", "--out", o],
    )
    .await;
    r.expect_code(3);
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_busy_output_is_refused() {
    let sb = Sandbox::start(SimConfig {
        users: 600,
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("users.jsonl");
    let args = [
        "paginate",
        "/api/v2/users",
        "--page-size",
        "20",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut first = sb.tw();
    first.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    let mut first = first.spawn().unwrap();
    let state = state_path(&out);
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded(&out).is_none_or(|s| items(&s) == 0) {
        assert!(Instant::now() < deadline && state.parent().is_some());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut resume = args.to_vec();
    resume.push("--resume");
    let second = run(sb.tw(), &resume).await;
    // Nothing typed is wrong: the same status as a batch on a busy output.
    second.expect_code(4);
    assert!(
        second.stderr.contains("another tokenwarden run"),
        "{}",
        second.stderr
    );
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    assert_exactly_once(&read_jsonl(&out), "id", &users(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_analytics_job_creation_is_retried_and_a_5xx_that_is_not_exits_4() {
    // With this seed, the first two API requests (job creations) answer 5xx, the next 38 do not.
    let sb = Sandbox::start(SimConfig {
        error_rate: 0.05,
        seed: 2398,
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("conversations.jsonl");
    let r = run(
        sb.tw(),
        &[
            "export",
            "conversations",
            "--interval",
            "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    r.ok();
    let j = sb.sim.journal();
    let failed_posts = j
        .entries
        .iter()
        .filter(|e| e.method == "POST" && e.path == JOBS && e.status >= 500)
        .count();
    assert!(
        failed_posts > 0,
        "no job creation met a 5xx: the test proves nothing"
    );
    // A 5xx answer that is not retried (a POST not marked replay-safe) is the server's failure:
    // 4, not 1.
    sb.sim.update(|c| c.error_rate = 1.0);
    let r = run(
        sb.tw(),
        &["request", "POST", "/api/v2/sim/echo", "-d", "{}"],
    )
    .await;
    r.expect_code(4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_ctrl_c_hints_at_resume_only_when_there_is_an_output_to_resume() {
    let sb = Sandbox::start(SimConfig {
        users: 400,
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("users.jsonl");
    let o = out.to_str().unwrap().to_string();
    let child = spawn(
        sb.tw(),
        &["paginate", "/api/v2/users", "--page-size", "5", "--out", &o],
    );
    let watched = out.clone();
    let r = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while recorded(&watched).is_none_or(|s| items(&s) == 0) {
            assert!(Instant::now() < deadline, "no page recorded");
            std::thread::sleep(Duration::from_millis(2));
        }
        interrupt(child)
    })
    .await
    .unwrap();
    r.expect_code(130);
    assert!(
        r.stderr.contains(&format!("every complete page is in {o}"))
            && r.stderr.contains("--resume"),
        "{}",
        r.stderr
    );
    run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/users",
            "--page-size",
            "5",
            "--out",
            &o,
            "--resume",
        ],
    )
    .await
    .ok();
    assert_exactly_once(&read_jsonl(&out), "id", &users(400));

    // Interrupted while the token is still being fetched: nothing to resume, and no such hint.
    let hole = black_hole();
    let cmd = endpoints(
        &sb,
        &format!("{}/oauth/token", hole.base),
        &sb.sim.base_url(),
    );
    let fresh = sb.path("fresh.jsonl");
    let child = spawn(
        cmd,
        &[
            "paginate",
            "/api/v2/users",
            "--out",
            fresh.to_str().unwrap(),
        ],
    );
    let r = tokio::task::spawn_blocking(move || {
        hole.accepted.recv_timeout(Duration::from_secs(5)).unwrap();
        interrupt(child)
    })
    .await
    .unwrap();
    r.expect_code(130);
    assert!(!r.stderr.contains("--resume"), "{}", r.stderr);
    // Nothing is left to block the same command ("already exists").
    assert!(!fresh.exists() && !state_path(&fresh).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_conversations_outlives_one_second_tokens() {
    let sb = Sandbox::start(SimConfig {
        conversations: 400,
        token_ttl: Duration::from_secs(1),
        job_duration: Duration::from_millis(2500),
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("convs.jsonl");
    let r = run(
        sb.tw(),
        &[
            "export",
            "conversations",
            "--interval",
            "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z",
            "--page-size",
            "100",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    r.ok();
    let expected = (0..400).map(conversation_id).collect();
    assert_exactly_once(&read_jsonl(&out), "conversationId", &expected);
    assert!(r.stderr.contains("400 items"), "{}", r.stderr);
    let j = sb.sim.journal_counters();
    assert_eq!(
        j.api_expired_token, 0,
        "no request carried an expired token"
    );
    assert!(
        j.tokens_issued >= 2,
        "the job outlived its first token: {j:?}"
    );

    // A malformed interval is refused before anything is sent: what was typed is wrong (2).
    let r = run(
        sb.tw(),
        &["export", "conversations", "--interval", "yesterday"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("START/END"), "{}", r.stderr);
}

// ---- paginate: each paging style ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_users_streams_every_user_once() {
    let sb = Sandbox::start(SimConfig {
        users: 237,
        ..SimConfig::default()
    })
    .await;
    let r = run(sb.tw(), &["paginate", "/api/v2/users", "--page-size", "25"]).await;
    r.ok();
    assert_exactly_once(&jsonl(&r.stdout), "id", &users(237));
    let j = sb.sim.journal_counters();
    assert_eq!(j.api_ok, 10, "ten pages of 25");

    // --out writes the same to a file.
    let out = sb.path("users.jsonl");
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", out.to_str().unwrap()],
    )
    .await;
    r.ok();
    assert!(r.stdout.is_empty());
    assert_exactly_once(&read_jsonl(&out), "id", &users(237));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_follows_cursors_on_the_scan_endpoint() {
    let sb = Sandbox::start(SimConfig {
        contacts: 123,
        ..SimConfig::default()
    })
    .await;
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/externalcontacts/scan/contacts",
            "--page-size",
            "10",
        ],
    )
    .await;
    r.ok();
    let expected = (0..123).map(contact_id).collect();
    assert_exactly_once(&jsonl(&r.stdout), "id", &expected);
    assert_eq!(sb.sim.journal_counters().api_ok, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_analytics_query_with_a_body() {
    let sb = Sandbox::start(SimConfig {
        conversations: 260,
        ..SimConfig::default()
    })
    .await;
    let body = r#"{"interval":"2024-01-01T00:00:00Z/2024-01-08T00:00:00Z","order":"asc"}"#;
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/analytics/conversations/details/query",
            "--body",
            body,
            "--page-size",
            "50",
        ],
    )
    .await;
    r.ok();
    let expected = (0..260).map(conversation_id).collect();
    assert_exactly_once(&jsonl(&r.stdout), "conversationId", &expected);
    let j = sb.sim.journal_counters();
    assert_eq!(
        j.ok_count("POST", "/api/v2/analytics/conversations/details/query"),
        6,
        "six pages (the last one short): {:?}",
        j.per_resource_ok
    );
}
