//! End-to-end tests of `tokenwarden batch` (issues #7, #8, #9): the built binary, in a fresh
//! temporary directory, against an in-process simulator it reaches over HTTP. Assertions are on
//! exit codes, output files and the simulator's journal; nothing sleeps to synchronise (the only
//! waits poll a file another process writes).

mod common;

use common::*;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokenwarden_sim::SimConfig;
use tokenwarden_sim::data::user_id;
use tokenwarden_test_support::users;
#[cfg(unix)]
use tokenwarden_test_support::{chmod, mode};

fn ids_text(n: usize) -> String {
    (0..n).map(|i| format!("{}\n", user_id(i))).collect()
}

/// Successful requests per `"GET /api/v2/users/..."`, as the simulator journaled them.
fn ok_counts(sb: &Sandbox) -> BTreeMap<String, u64> {
    sb.sim.journal_counters().per_resource_ok
}

fn user_key(i: usize) -> String {
    format!("GET /api/v2/users/{}", user_id(i))
}

/// A sandbox whose simulator knows `n` users.
async fn with_users(n: usize) -> Sandbox {
    Sandbox::start(SimConfig {
        users: n,
        ..SimConfig::default()
    })
    .await
}

/// `tokenwarden batch -i INPUT -o OUTPUT EXTRA...` against the sandbox's simulator.
async fn batch(sb: &Sandbox, input: &Path, output: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "batch",
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(sb.tw(), &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_from_input_and_from_ids_does_each_record_exactly_once() {
    let sb = with_users(600).await;
    let input = sb.write("in.jsonl", &user_gets(600));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--concurrency",
            "8",
            "--summary-json",
            sum.to_str().unwrap(),
            "--no-progress",
        ],
    )
    .await;
    r.ok();
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(600));
    assert!(
        lines.iter().all(|l| l["status"] == 200),
        "every record answered 200"
    );
    for l in &lines {
        let i: usize = l["id"].as_str().unwrap()[2..].parse().unwrap();
        assert_eq!(l["body"]["id"], user_id(i), "output matches its record");
    }
    // Exactly once of work, not only of output: each resource succeeded once on the server.
    let j = sb.sim.journal_counters();
    assert_eq!(j.api_ok, 600);
    for i in 0..600 {
        assert_eq!(
            j.ok_count("GET", &format!("/api/v2/users/{}", user_id(i))),
            1
        );
    }
    assert_eq!(j.token_requests, 1, "one token shared by every worker");

    let s = summary(&sum);
    for key in [
        "ok",
        "failed",
        "skipped",
        "tokens_fetched",
        "unauthorized_healed",
        "rate_limited_waits",
        "wall_time_secs",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
    }
    assert_eq!(s["ok"], 600);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["skipped"], 0);
    assert_eq!(s["tokens_fetched"], 1);
    assert!(s["wall_time_secs"].as_f64().unwrap() > 0.0);
    assert!(r.stderr.contains("600 ok, 0 failed"), "{}", r.stderr);

    // --ids with --path-template.
    let ids: String = (0..50).map(|i| format!("{}\n", user_id(i))).collect();
    let ids_file = sb.write("ids.txt", &ids);
    let out2 = sb.path("out2.jsonl");
    let r = run(user_batch(sb.tw(), &ids_file, &out2), &[]).await;
    r.ok();
    let lines = read_jsonl(&out2);
    assert_exactly_once(&lines, "id", &users(50));
    assert!(lines.iter().all(|l| l["body"]["id"] == l["id"]));

    // A template without {id} is refused.
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--ids",
            ids_file.to_str().unwrap(),
            "--path-template",
            "/api/v2/users",
            "--output",
            sb.path("out3.jsonl").to_str().unwrap(),
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("{id}"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_refuses_an_existing_output_unless_forced() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &user_gets(20));
    let out = sb.write(
        "out.jsonl",
        "{\"id\":\"precious\",\"status\":200,\"body\":null}\n",
    );
    let base = [
        "batch",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let r = run(sb.tw(), &base).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("exists") || r.stderr.contains("already"),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read_to_string(&out).unwrap().contains("precious"),
        "untouched"
    );
    assert_eq!(
        sb.sim.journal_counters().api_requests,
        0,
        "nothing was sent"
    );

    let mut forced = base.to_vec();
    forced.push("--force");
    run(sb.tw(), &forced).await.ok();
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(20));

    // --resume and --force together make no sense.
    let mut both = forced.clone();
    both.push("--resume");
    run(sb.tw(), &both).await.expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reports_bad_lines_with_line_numbers_and_runs_the_rest() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let good = |i: usize| {
        format!(
            "{{\"id\":\"r-{i}\",\"method\":\"GET\",\"path\":\"/api/v2/users/{}\"}}",
            user_id(i)
        )
    };
    let text = [
        good(0),
        "this is not json".to_string(),
        r#"{"id":"no-path","method":"GET"}"#.to_string(),
        good(1),
        r#"{"id":"bad-method","method":"FETCH","path":"/api/v2/users/user-000002"}"#.to_string(),
        r#"{"id":"r-0","method":"GET","path":"/api/v2/users/user-000003"}"#.to_string(),
        String::new(),
        good(2),
    ]
    .join("\n");
    let input = sb.write("in.jsonl", &format!("{text}\n"));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = batch(
        &sb,
        &input,
        &out,
        &["--summary-json", sum.to_str().unwrap()],
    )
    .await;
    r.expect_code(1);
    let lines = read_jsonl(&out);
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    let by_line = |n: u64| {
        errors
            .iter()
            .find(|e| e["line"] == n)
            .unwrap_or_else(|| panic!("no error for line {n}: {lines:?}"))
    };
    assert!(
        by_line(2)["error"]
            .as_str()
            .unwrap()
            .contains("line 2: not JSON")
    );
    assert_eq!(by_line(3)["id"], "no-path");
    assert!(by_line(3)["error"].as_str().unwrap().contains("line 3"));
    assert_eq!(by_line(5)["id"], "bad-method");
    assert!(
        by_line(5)["error"]
            .as_str()
            .unwrap()
            .contains("unknown method")
    );
    assert!(
        by_line(6)["error"]
            .as_str()
            .unwrap()
            .contains("duplicate id")
    );
    assert_eq!(errors.len(), 4, "{errors:?}");
    let ok: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["status"] == 200)
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ok, record_ids(3));
    let s = summary(&sum);
    assert_eq!(s["ok"], 3);
    assert_eq!(s["failed"], 4);
    assert_eq!(s["invalid_lines"], 4);
    assert!(
        r.stderr.contains("3 ok, 4 failed (4 invalid lines)"),
        "{}",
        r.stderr
    );
    // The duplicate's request was never sent.
    let j = sb.sim.journal_counters();
    assert_eq!(j.ok_count("GET", "/api/v2/users/user-000003"), 0);
    assert_eq!(j.api_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_survives_revocations_and_one_second_tokens() {
    const N: usize = 1500;
    let sb = Sandbox::start(SimConfig {
        users: N,
        token_ttl: Duration::from_secs(1),
        // Rare enough that tokens also live long enough to be refreshed before expiry
        // (8 workers at 10 ms each: at most 800 requests/s, so the job takes > 1.8 s).
        revoke_every: Some(1000),
        latency: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = batch(
        &sb,
        &input,
        &out,
        &[
            "-c",
            "8",
            "--summary-json",
            sum.to_str().unwrap(),
            "--no-progress",
        ],
    )
    .await;
    r.ok();
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));
    let s = summary(&sum);
    let j = sb.sim.journal_counters();
    assert_eq!(s["failed"], 0);
    assert_eq!(j.api_expired_token, 0, "never sent an expired token: {j:?}");
    assert!(j.api_revoked_token >= 1, "revocations happened: {j:?}");
    assert!(s["unauthorized_healed"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["proactive_refreshes"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["tokens_fetched"].as_u64().unwrap() >= 3, "{s}");
    eprintln!("revocations + 1 s tokens: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_waits_out_rate_limits() {
    // A limit the server does not announce (with the `inin-ratelimit-*` headers the client
    // paces under it and no 429 comes): the first window's 429s are waited out, and the rate the
    // client learns from them paces the rest.
    const N: usize = 120;
    let sb = Sandbox::start(SimConfig {
        users: N,
        api_rate_limit_per_minute: Some(40),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: false,
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = batch(
        &sb,
        &input,
        &out,
        &["-c", "32", "--summary-json", sum.to_str().unwrap()],
    )
    .await;
    r.ok();
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));
    let s = summary(&sum);
    let j = sb.sim.journal_counters();
    assert_eq!(s["failed"], 0);
    assert!(j.api_rate_limited >= 1, "the limit was hit: {j:?}");
    assert!(s["rate_limited_waits"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["rate_limit_pauses"].is_u64(), "{s}");
    assert_eq!(j.api_ok, N as u64);
    eprintln!("rate limit: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_rate_option_paces_requests_client_side() {
    // --rate 40/s: 60 records with 16 in flight still arrive about 25 ms apart (a burst of one),
    // as the simulator's journal timestamps show.
    const N: usize = 60;
    let sb = with_users(N).await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    batch(&sb, &input, &out, &["-c", "16", "--rate", "40/s"])
        .await
        .ok();
    let j = sb.sim.journal();
    let times: Vec<u64> = j
        .entries
        .iter()
        .filter(|e| e.path.starts_with("/api/v2/users/"))
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(times.len(), N);
    let span = times.iter().max().unwrap() - times.iter().min().unwrap();
    // 59 gaps of 25 ms = 1475 ms; allow scheduling slack below.
    assert!(span >= 1_300, "{N} requests spread over only {span} ms");
    let bad = run(sb.tw(), &["batch", "-i", "x", "-o", "y", "--rate", "fast"]).await;
    bad.expect_code(2);
    assert!(bad.stderr.contains("--rate"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_retry_failed_reruns_only_the_failures() {
    const N: usize = 60;
    let sb = Sandbox::start(SimConfig {
        users: N,
        // user-000010 .. user-000019 are forbidden at first: 10 records fail with 403.
        forbidden_paths: vec!["/api/v2/users/user-00001".into()],
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let o = out.to_str().unwrap();
    let i = input.to_str().unwrap();
    let first = run(sb.tw(), &["batch", "-i", i, "-o", o]).await;
    first.expect_code(1);
    // A 403 is an HTTP answer: recorded with its status and body, like a 404.
    let forbidden = read_jsonl(&out)
        .iter()
        .filter(|v| v["status"] == 403 && v.get("body").is_some() && v.get("error").is_none())
        .count();
    assert_eq!(forbidden, 10, "{}", first.stderr);
    sb.sim.update(|c| c.forbidden_paths.clear());
    sb.sim.reset_journal();
    run(
        sb.tw(),
        &["batch", "-i", i, "-o", o, "--resume", "--retry-failed"],
    )
    .await
    .ok();
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(N));
    assert!(
        lines.iter().all(|v| v["status"] == 200),
        "all succeeded now"
    );
    assert_eq!(
        sb.sim.journal_counters().api_ok,
        10,
        "only the failures ran again"
    );
    // --retry-failed needs --resume.
    run(sb.tw(), &["batch", "-i", i, "-o", o, "--retry-failed"])
        .await
        .expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_aborts_a_concurrent_batch_fast_with_exit_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &user_gets(500));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = run(
        sb.tw_with_secret("not-the-secret"),
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--concurrency",
            "16",
            "--summary-json",
            sum.to_str().unwrap(),
        ],
    )
    .await;
    assert_wrong_secret_refused(&r, &sb, "not-the-secret");
    // Nothing was recorded: the hint does not point at an output that does not exist.
    assert!(
        r.stderr.contains("rerun the same command") && !r.stderr.contains("--resume"),
        "says how to continue: {}",
        r.stderr
    );
    // Nothing was recorded, so nothing is left behind: the corrected command needs no --resume.
    assert!(!out.exists(), "no output before the first record");
    assert!(!job_file(&out).exists());
    assert!(!r.stderr.contains("done in"), "{}", r.stderr);
    let s = summary(&sum);
    assert!(s["aborted"].is_string(), "{s}");
}

// ---- one job, killed at any instant ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_20_seeded_random_points_and_resumed_each_id_is_recorded_exactly_once() {
    // At most 20 × (10 + a few written between the poll and the kill) records before the last
    // run: the job cannot end before it is killed 20 times.
    const N: usize = 300;
    const CONCURRENCY: u64 = 4;
    const KILLS: usize = 20;
    let sb = Sandbox::start(SimConfig {
        users: N,
        // Spreads the job over time, so that kills land mid-flight.
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let args: Vec<String> = [
        "batch",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--concurrency",
        &CONCURRENCY.to_string(),
        "--no-progress",
        // From the first run on: resuming a job that has no output yet starts it.
        "--resume",
    ]
    .map(String::from)
    .to_vec();

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e57_c0de);
    // For each kill: the ids recorded at that moment and the server's count for each of them.
    let mut recorded_at_kills: Vec<(BTreeSet<String>, BTreeMap<String, u64>)> = Vec::new();
    let mut kills_in_start_up = 0;
    let began = Instant::now();
    for kill in 0..KILLS {
        let before = complete_jsonl(&out).len();
        // A quarter of the kills land during start-up (lock, token, first request), the rest
        // after a few more records, wherever their writes happen to be.
        let point = if rng.random_ratio(1, 4) {
            Err(Duration::from_micros(rng.random_range(0..20_000)))
        } else {
            Ok(before + rng.random_range(1..=10))
        };
        let mut cmd = sb.tw();
        cmd.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
        let out_path = out.clone();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("spawn");
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("kill {kill}: the job ended ({status}) before it was killed");
                }
                let due = match point {
                    Err(delay) => started.elapsed() >= delay,
                    Ok(lines) => line_count(&out_path) >= lines,
                };
                if due {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(4),
                    "kill {kill}: no progress"
                );
                // Polling a file another process writes: waiting for it, not synchronising ours.
                std::thread::sleep(Duration::from_micros(300));
            }
            child.kill().expect("SIGKILL");
            assert!(!child.wait().unwrap().success());
        })
        .await
        .unwrap();
        let lines = complete_jsonl(&out);
        if lines.len() == before {
            kills_in_start_up += 1;
        }
        let ids: BTreeSet<String> = count_by(&lines, "id").into_keys().collect();
        assert_eq!(
            ids.len(),
            lines.len(),
            "kill {kill}: a duplicate line in the output"
        );
        recorded_at_kills.push((ids, ok_counts(&sb)));
    }
    let partial = complete_jsonl(&out).len();
    assert!(
        partial < N,
        "the job was still unfinished after {KILLS} kills"
    );
    let kills_took = began.elapsed();

    let sum = sb.path("summary.json");
    let mut last: Vec<&str> = args.iter().map(String::as_str).collect();
    last.extend(["--summary-json", sum.to_str().unwrap()]);
    run(sb.tw(), &last).await.ok();

    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(N));
    assert!(
        lines.iter().all(|l| l["status"] == 200),
        "every record succeeded"
    );
    let s = summary(&sum);
    assert_eq!(
        s["ok"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
        N as u64
    );

    // Only records in flight at a kill were sent twice: a record recorded by the time of a kill
    // was never sent again, and each kill repeats at most CONCURRENCY requests.
    let final_counts = ok_counts(&sb);
    let id_of = |key: &str| -> usize {
        let user = key.rsplit('/').next().unwrap();
        (0..N).find(|i| user_id(*i) == user).unwrap()
    };
    for (kill, (ids, counts_then)) in recorded_at_kills.iter().enumerate() {
        for id in ids {
            let i: usize = id[2..].parse().unwrap();
            let key = user_key(i);
            assert_eq!(
                final_counts.get(&key),
                counts_then.get(&key),
                "{id} was recorded at kill {kill} and sent again afterwards"
            );
        }
    }
    assert_eq!(final_counts.len(), N, "every record reached the server");
    let repeated: u64 = final_counts.values().map(|c| c - 1).sum();
    assert!(
        repeated <= KILLS as u64 * CONCURRENCY,
        "{repeated} requests repeated over {KILLS} kills"
    );
    let twice: Vec<usize> = final_counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, _)| id_of(k))
        .collect();
    eprintln!(
        "{KILLS} kills in {kills_took:?} ({kills_in_start_up} before the run's first line), {partial} of {N} recorded before the last run (total {:?}), {repeated} requests repeated (users {twice:?})",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_cut_on_resume_and_its_record_runs_again() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &user_gets(30));
    let out = sb.path("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    // A job interrupted after 20 records, its last write torn by the kill.
    let first = sb.write("first.jsonl", &user_gets(20));
    run(sb.tw(), &["batch", "-i", first.to_str().unwrap(), "-o", o])
        .await
        .ok();
    let torn = r#"{"id":"r-20","status":200,"body":{"id":"user-00"#;
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        f.write_all(torn.as_bytes()).unwrap();
    }
    // Without --resume (or --force) the existing output is refused, and left as it is.
    let r = run(sb.tw(), &["batch", "-i", i, "-o", o]).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("--resume"),
        "says how to go on: {}",
        r.stderr
    );
    let sum = sb.path("summary.json");
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--resume",
            "--summary-json",
            sum.to_str().unwrap(),
        ],
    )
    .await;
    r.ok();
    assert!(
        r.stderr.contains("repaired a torn last line"),
        "{}",
        r.stderr
    );
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(30));
    let s = summary(&sum);
    assert_eq!(s["repaired_bytes"].as_u64().unwrap() as usize, torn.len());
    assert_eq!(
        (s["skipped"].as_u64(), s["ok"].as_u64()),
        (Some(20), Some(10))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_batch_cleanly_writes_its_summary_and_resume_finishes_it() {
    const N: usize = 200;
    let sb = Sandbox::start(SimConfig {
        users: N,
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let (i, o, s) = (
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        sum.to_str().unwrap(),
    );
    let child = spawn(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "-c",
            "2",
            "--summary-json",
            s,
            "--no-progress",
        ],
    );
    until_written(&out).await;
    let r = tokio::task::spawn_blocking(move || interrupt(child))
        .await
        .unwrap();
    r.expect_code(130);
    let sm = summary(&sum);
    assert_eq!(sm["interrupted"], true, "{sm}");
    assert!(sm["stopped"].is_string(), "{sm}");
    assert!(
        r.stderr
            .contains(&format!("every record finished so far is in {o}"))
            && r.stderr.contains("--resume"),
        "{}",
        r.stderr
    );
    run(
        sb.tw(),
        &["batch", "-i", i, "-o", o, "--resume", "--summary-json", s],
    )
    .await
    .ok();
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));
    assert_eq!(summary(&sum)["interrupted"], false);
}

// ---- one writer per output ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_on_one_output_the_second_fails_at_once_and_each_id_is_there_once() {
    const N: usize = 80;
    let sb = Sandbox::start(SimConfig {
        users: N,
        // About a second of work at concurrency 2: the second run starts well within it.
        latency: Duration::from_millis(25),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let args = [
        "batch",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-c",
        "2",
        "--no-progress",
    ];
    let mut first = sb.tw();
    first
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut first = first.spawn().unwrap();
    let out_path = out.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while line_count(&out_path) == 0 {
            assert!(Instant::now() < deadline, "the first run never wrote");
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .await
    .unwrap();
    let requests_before = sb.sim.journal_counters().api_requests;
    let mut resume = args.to_vec();
    resume.push("--resume");
    for (what, second) in [("with --resume", resume), ("fresh", args.to_vec())] {
        let r = run(sb.tw(), &second).await;
        r.expect_code(4);
        assert!(
            r.stderr.contains("another tokenwarden run is writing it"),
            "{what}: {}",
            r.stderr
        );
    }
    assert!(
        first.try_wait().unwrap().is_none(),
        "the second runs were refused while the first was still running"
    );
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));
    let j = sb.sim.journal_counters();
    assert_eq!(j.api_ok, N as u64, "the refused runs sent nothing");
    assert!(j.api_requests >= requests_before);
}

// ---- the input: piped, or in conflict with the output ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_input_is_read_once_and_every_record_runs() {
    const N: usize = 120;
    let sb = with_users(N).await;
    // cat in.jsonl | tokenwarden batch --input - --output out.jsonl
    let out = sb.path("out.jsonl");
    let mut cmd = sb.tw();
    cmd.args(["batch", "--input", "-", "--output", out.to_str().unwrap()]);
    let r = run_with_stdin(cmd, Some(user_gets(N))).await;
    r.ok();
    assert!(r.stderr.contains(&format!("{N} ok")), "{}", r.stderr);
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));

    // head ids.txt | tokenwarden batch --ids /dev/stdin ...
    let out2 = sb.path("out2.jsonl");
    let mut cmd = sb.tw();
    cmd.args([
        "batch",
        "--ids",
        "/dev/stdin",
        "--path-template",
        "/api/v2/users/{id}",
        "-o",
        out2.to_str().unwrap(),
    ]);
    run_with_stdin(cmd, Some(ids_text(10))).await.ok();
    assert_exactly_once(&read_jsonl(&out2), "id", &users(10));

    // A FIFO (what a shell's <(...) is).
    let fifo = sb.path("ids.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, ids_text(N)).unwrap())
    };
    let out3 = sb.path("out3.jsonl");
    run(user_batch(sb.tw(), &fifo, &out3), &[]).await.ok();
    writer.join().unwrap();
    assert_exactly_once(&read_jsonl(&out3), "id", &users(N));
    assert_eq!(sb.sim.journal_counters().api_ok, (N + 10 + N) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_job_resumes_from_the_same_pipe_and_refuses_another() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let out = sb.path("out.jsonl");
    let piped = |ids: String, resume: bool| {
        let mut cmd = sb.tw();
        cmd.args([
            "batch",
            "--ids",
            "-",
            "--path-template",
            "/api/v2/users/{id}",
            "-o",
            out.to_str().unwrap(),
        ]);
        if resume {
            cmd.arg("--resume");
        }
        run_with_stdin(cmd, Some(ids))
    };
    piped(ids_text(30), false).await.ok();
    // The same generator, now producing more: the first 30 are skipped.
    let r = piped(ids_text(60), true).await;
    r.ok();
    assert!(
        r.stderr.contains("30 ok, 0 failed, 30 skipped"),
        "{}",
        r.stderr
    );
    assert_exactly_once(&read_jsonl(&out), "id", &users(60));
    // Another list is another job.
    let other: String = (500..520).map(|i| format!("{}\n", user_id(i))).collect();
    let before = std::fs::read(&out).unwrap();
    let r = piped(other, true).await;
    r.expect_code(2);
    assert!(r.stderr.contains("another job"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_inputs_are_refused_not_ignored() {
    let sb = with_users(3).await;
    let ids = sb.write("ids.txt", "user-000001\n");
    let input = sb.write("in.jsonl", &user_gets(3));
    let ids_text = std::fs::read_to_string(&ids).unwrap();
    let same = ids.to_str().unwrap();
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--ids",
            same,
            "--path-template",
            "/api/v2/users/{id}",
            "-o",
            same,
            "--force",
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("is the input"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&ids).unwrap(), ids_text);
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--path-template",
            "/api/v2/users/{id}",
            "-o",
            sb.path("o.jsonl").to_str().unwrap(),
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("--path-template"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
}

// ---- nothing left behind, nothing foreign touched -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_or_a_wrong_secret_leaves_nothing_behind_so_the_corrected_command_runs() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let work = sb.path("work");
    std::fs::create_dir(&work).unwrap();
    let input = work.join("in.jsonl");
    std::fs::write(&input, user_gets(20)).unwrap();
    let out = work.join("out.jsonl");
    let o = out.to_str().unwrap();

    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            work.join("in.jsnol").to_str().unwrap(),
            "-o",
            o,
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("in.jsnol"), "{}", r.stderr);
    assert_eq!(dir_names(&work), ["in.jsonl"]);

    let r = run(
        sb.tw_with_secret("wrong"),
        &["batch", "-i", input.to_str().unwrap(), "-o", o],
    )
    .await;
    r.expect_code(3);
    assert_eq!(dir_names(&work), ["in.jsonl"]);

    // The corrected command, as typed the first time: no --resume, no --force.
    run(sb.tw(), &["batch", "-i", input.to_str().unwrap(), "-o", o])
        .await
        .ok();
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_another_jobs_journal_and_a_file_no_batch_wrote() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let a = sb.write("a.jsonl", &user_gets(20));
    let b = sb.write("b.jsonl", &user_gets(40).replace("\"r-", "\"other-"));
    let out = sb.path("out.jsonl");
    let o = out.to_str().unwrap();
    run(sb.tw(), &["batch", "-i", a.to_str().unwrap(), "-o", o])
        .await
        .ok();
    let before = std::fs::read(&out).unwrap();
    let sent = sb.sim.journal_counters().api_requests;

    let r = run(
        sb.tw(),
        &["batch", "-i", b.to_str().unwrap(), "-o", o, "--resume"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("another job"), "{}", r.stderr);
    assert!(
        r.stderr.contains("a.jsonl"),
        "names the job's input: {}",
        r.stderr
    );
    let ids = sb.write("ids.txt", &ids_text(5));
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--ids",
            ids.to_str().unwrap(),
            "--path-template",
            "/api/v2/users/{id}",
            "-o",
            o,
            "--resume",
        ],
    )
    .await;
    r.expect_code(2);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the journal is untouched"
    );

    // A text file that happens to be named as the output.
    let notes = sb.write("notes.txt", "meeting notes\nno newline at the end");
    let r = batch(&sb, &a, &notes, &["--resume"]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("not written by a batch"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "meeting notes\nno newline at the end"
    );
    assert!(!job_file(&notes).exists());
    assert_eq!(
        sb.sim.journal_counters().api_requests,
        sent,
        "nothing was sent"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_json_never_overwrites_the_jobs_own_files_nor_follows_a_planted_symlink() {
    let sb = with_users(5).await;
    let input = sb.write("in.jsonl", &user_gets(5));
    let out = sb.path("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let records = std::fs::read_to_string(&input).unwrap();
    // The input, the output, a sidecar: refused before anything is sent (exit 2).
    for (what, target) in [
        ("the input", i.to_string()),
        ("the output", o.to_string()),
        ("a file tokenwarden keeps", format!("{o}.twjob")),
        (
            "the input",
            format!("{}/./in.jsonl", sb.dir.path().display()),
        ),
    ] {
        let r = run(
            sb.tw(),
            &["batch", "-i", i, "-o", o, "--summary-json", &target],
        )
        .await;
        r.expect_code(2);
        assert!(r.stderr.contains(what), "{target}: {}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), records);
    assert!(!out.exists());
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
    // Another existing file: only with --force.
    let notes = sb.write("notes.txt", "precious");
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--summary-json",
            notes.to_str().unwrap(),
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "precious");
    // A symlink planted at the name (another user's file as victim): replaced, never followed.
    let victim = sb.write("victim.txt", "victim's data");
    let planted = sb.path("summary.json");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let p = planted.to_str().unwrap();
    run(sb.tw(), &["batch", "-i", i, "-o", o, "--summary-json", p])
        .await
        .expect_code(2);
    run(
        sb.tw(),
        &["batch", "-i", i, "-o", o, "--force", "--summary-json", p],
    )
    .await
    .ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's data");
    let meta = std::fs::symlink_metadata(&planted).unwrap();
    assert!(meta.is_file(), "the link was replaced by the summary");
    assert_eq!(mode(&planted), 0o600);
    assert_eq!(summary(&planted)["ok"], 5);
    // A summary it wrote is replaced without --force.
    run(
        sb.tw(),
        &["batch", "-i", i, "-o", o, "--force", "--summary-json", p],
    )
    .await
    .ok();
    // A directory that takes no new file is found before the job, not after it.
    let ro = sb.path("ro");
    std::fs::create_dir(&ro).unwrap();
    chmod(&ro, 0o500);
    let in_ro = ro.join("s.json");
    sb.sim.reset_journal();
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--force",
            "--summary-json",
            in_ro.to_str().unwrap(),
        ],
    )
    .await;
    if rustix::process::geteuid().is_root() {
        // root writes anywhere: nothing to check.
        return;
    }
    r.expect_code(2);
    assert!(r.stderr.contains("cannot be created"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
}

// ---- failing en masse ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_stops_a_job_failing_en_masse_and_retry_failed_finishes_it() {
    const N: usize = 600;
    let sb = with_users(N).await;
    let ids = sb.write("ids.txt", &ids_text(N));
    let out = sb.path("out.jsonl");
    let job = |template: &str, extra: &[&str]| {
        let mut a = vec![
            "batch",
            "--ids",
            ids.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--path-template",
        ];
        a.push(template);
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    // A typo in the template: every record 404s.
    let args = job("/api/v2/user/{id}", &["--max-failures", "5%", "-c", "4"]);
    let r = run(
        sb.tw(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    r.expect_code(1);
    assert!(r.stderr.contains("stopped early"), "{}", r.stderr);
    assert!(
        r.stderr.contains("more than the limit of 5%"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--resume --retry-failed"), "{}", r.stderr);
    let recorded = read_jsonl(&out).len();
    assert!((100..=104).contains(&recorded), "{recorded}");
    let j = sb.sim.journal_counters();
    assert_eq!(
        j.api_requests as usize, recorded,
        "stopped early: nothing sent unrecorded"
    );
    assert_eq!(j.api_not_found as usize, recorded);

    // The template fixed, the failures run again, then the rest.
    let args = job("/api/v2/users/{id}", &["--resume", "--retry-failed"]);
    run(
        sb.tw(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await
    .ok();
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &users(N));
    assert!(lines.iter().all(|l| l["status"] == 200));
    assert_eq!(sb.sim.journal_counters().api_ok, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_api_stops_the_batch_with_exit_4_and_nothing_is_recorded_as_failed() {
    const N: usize = 300;
    let sb = with_users(N).await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    // A port nobody listens on: every connection is refused.
    let refused = tokenwarden_test_support::RefusedPort::new();
    let dead = refused.url();
    let cmd = endpoints(&sb, &sb.sim.token_url(), &dead);
    let r = run(
        cmd,
        &[
            "batch",
            "-i",
            i,
            "-o",
            o,
            "--summary-json",
            sum.to_str().unwrap(),
            "--no-progress",
            // Each record gives up within a second; 20 in a row trip the breaker.
            "--retry-for",
            "1s",
            "-c",
            "20",
        ],
    )
    .await;
    r.expect_code(4);
    assert!(
        r.stderr
            .contains("could not be reached for 20 records in a row"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count() == 1
            && !r.stderr.contains("WARN"),
        "one clear error: {}",
        r.stderr
    );
    // Nothing was recorded as failed: no output, so the hint is not to resume.
    assert!(!out.exists());
    assert_eq!(summary(&sum)["failed"], 0);
    assert!(r.stderr.contains("rerun the same command"), "{}", r.stderr);
    // Against the live API, the same command runs every record.
    run(sb.tw(), &["batch", "-i", i, "-o", o]).await.ok();
    assert_exactly_once(&read_jsonl(&out), "id", &record_ids(N));
}

// ---- records stay on the API's origin --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_cannot_leave_the_api_origin() {
    let sb = Sandbox::start(SimConfig::default()).await;
    // Where a hostile record would like its body to go.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let port = elsewhere.local_addr().unwrap().port();
    let hostile = |id: &str, path: &str| {
        serde_json::json!({"id": id, "method": "POST", "path": path, "body": {"ssn": "123-45-6789"}})
            .to_string()
    };
    let text = [
        hostile("backslash", &format!("/\\127.0.0.1:{port}/x")),
        hostile("tab", &format!("/\t/127.0.0.1:{port}/x")),
        hostile("newline", &format!("/\n/127.0.0.1:{port}/x")),
        hostile("cr", &format!("/\r/127.0.0.1:{port}/x")),
        r#"{"id":"good","path":"/api/v2/users/user-000001"}"#.to_string(),
    ]
    .join("\n");
    let input = sb.write("in.jsonl", &format!("{text}\n"));
    let out = sb.path("out.jsonl");
    let r = batch(&sb, &input, &out, &[]).await;
    r.expect_code(1);
    assert!(
        r.stderr.contains("1 ok, 4 failed (4 invalid lines)"),
        "{}",
        r.stderr
    );
    match elsewhere.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a record reached another host: {other:?}"),
    }
    let lines = read_jsonl(&out);
    for l in lines.iter().filter(|l| l["id"] != "good") {
        let e = l["error"].as_str().unwrap();
        assert!(e.contains("not sent"), "{e}");
    }
    assert_eq!(sb.sim.journal_counters().api_requests, 1);

    // Ids are data: encoded into one path segment; `..` and `.` cannot be one.
    let ids = sb.write("ids.txt", "../../tokens/me\n..\n.\nuser-000002\n");
    let out2 = sb.path("out2.jsonl");
    let r = run(user_batch(sb.tw(), &ids, &out2), &[]).await;
    r.expect_code(1);
    let j = sb.sim.journal();
    let paths: BTreeSet<String> = j.entries.iter().map(|e| e.path.clone()).collect();
    assert!(
        paths.contains("/api/v2/users/..%2F..%2Ftokens%2Fme"),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/api/v2/tokens")),
        "{paths:?}"
    );
    let lines = read_jsonl(&out2);
    let bad: Vec<&Value> = lines.iter().filter(|l| l.get("line").is_some()).collect();
    assert_eq!(bad.len(), 2, "{lines:?}");
    assert!(bad.iter().all(|l| {
        l["error"]
            .as_str()
            .unwrap()
            .contains("cannot be put in the path")
    }));
}

// ---- nothing secret written, files private ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_echoing_the_bearer_token_does_not_put_it_in_the_output() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write(
        "in.jsonl",
        "{\"id\":\"echo\",\"path\":\"/api/v2/sim/echo?headers=1\"}\n{\"id\":\"echo-post\",\"method\":\"POST\",\"path\":\"/api/v2/sim/echo?headers=1\",\"body\":{\"a\":1}}\n",
    );
    let out = sb.path("out.jsonl");
    batch(&sb, &input, &out, &[]).await.ok();
    let lines = read_jsonl(&out);
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let headers = &l["body"]["headers"];
        assert_eq!(headers["authorization"], "Bearer [REDACTED]", "{l}");
        assert!(headers["user-agent"].is_string(), "the echo is there: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_token_spelled_with_json_escapes_is_not_written_to_the_batch_output() {
    // The body was scrubbed as bytes: `\u0042\u0065...` (every character escaped) got the token
    // through, and a reader (jq) decoded it back. Non-2xx bodies too.
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write(
        "in.jsonl",
        "{\"id\":\"ok\",\"path\":\"/api/v2/sim/echo?headers=1&escape=unicode\"}\n\
         {\"id\":\"err\",\"path\":\"/api/v2/sim/echo?headers=1&escape=unicode&status=404\"}\n",
    );
    let out = sb.path("out.jsonl");
    batch(&sb, &input, &out, &[]).await;
    let lines = read_jsonl(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        let headers = &l["body"]["headers"];
        assert_eq!(headers["authorization"], "Bearer [REDACTED]", "{l}");
        assert!(headers["user-agent"].is_string(), "the echo is there: {l}");
    }
    let err = lines.iter().find(|l| l["id"] == "err").unwrap();
    assert_eq!(err["status"], 404, "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_job_file_and_summary_are_created_private() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &user_gets(3));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    // An existing summary file readable by others is replaced by a private one.
    std::fs::write(&sum, r#"{"kind": "tokenwarden batch summary"}"#).unwrap();
    chmod(&sum, 0o644);
    batch(
        &sb,
        &input,
        &out,
        &["--summary-json", sum.to_str().unwrap()],
    )
    .await
    .ok();
    for p in [&out, &job_file(&out), &sum] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_line_over_the_cap_is_a_bad_line_reported_by_number_not_echoed() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let huge = format!(
        "{{\"id\":\"huge\",\"path\":\"/api/v2/users/user-000001\",\"body\":\"{}\"}}",
        "A".repeat(1_100_000)
    );
    let text = format!(
        "{}{huge}\n{}",
        user_gets(1),
        &user_gets(3)[user_gets(1).len()..]
    );
    let input = sb.write("in.jsonl", &text);
    let out = sb.path("out.jsonl");
    let r = batch(&sb, &input, &out, &[]).await;
    r.expect_code(1);
    assert!(
        r.stderr.contains("3 ok, 1 failed (1 invalid line)"),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::metadata(&out).unwrap().len() < 10_000,
        "the line is not echoed"
    );
    let bad = read_jsonl(&out)
        .into_iter()
        .find(|l| l["line"] == 2)
        .unwrap();
    let e = bad["error"].as_str().unwrap();
    assert!(
        e.starts_with("line 2: ") && e.contains("over the limit of 1048576 bytes"),
        "{e}"
    );
    assert!(!r.stderr.contains("AAAA"));
}

// ---- exit statuses and summaries ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_exit_statuses_follow_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &user_gets(3));
    let ids = sb.write("ids.txt", &ids_text(3));
    let i = input.to_str().unwrap();
    let fresh = |name: &str| sb.path(name).to_str().unwrap().to_string();
    let cases: Vec<(i32, Vec<String>, &str)> = vec![
        (2, vec!["--rate".into(), "abc".into()], "--rate"),
        (2, vec!["--rate".into(), "50".into()], "N/s"),
        (
            2,
            vec!["--max-failures".into(), "lots".into()],
            "--max-failures",
        ),
        (2, vec!["--method".into(), "FETCH".into()], "--method"),
    ];
    for (code, extra, says) in cases {
        let mut a = vec![
            "batch".to_string(),
            "-i".into(),
            i.into(),
            "-o".into(),
            fresh("o.jsonl"),
        ];
        a.extend(extra);
        let r = run(sb.tw(), &a.iter().map(String::as_str).collect::<Vec<_>>()).await;
        r.expect_code(code);
        assert!(r.stderr.contains(says), "{a:?}: {}", r.stderr);
    }
    let o = fresh("o.jsonl");
    // A template without {id}.
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--ids",
            ids.to_str().unwrap(),
            "--path-template",
            "/api/v2/users",
            "-o",
            &o,
        ],
    )
    .await;
    r.expect_code(2);
    // A missing input; a missing output directory (not created).
    run(sb.tw(), &["batch", "-i", &fresh("nope.jsonl"), "-o", &o])
        .await
        .expect_code(2);
    let r = run(
        sb.tw(),
        &["batch", "-i", i, "-o", &fresh("no/such/dir/o.jsonl")],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!sb.path("no").exists());
    // The output is a file: not `-`, not a directory.
    run(sb.tw(), &["batch", "-i", i, "-o", "-"])
        .await
        .expect_code(2);
    run(sb.tw(), &["batch", "-i", i, "-o", &fresh("")])
        .await
        .expect_code(2);
    // Standard input cannot carry both the secret and the records.
    let r = run(
        sb.tw(),
        &["--client-secret-stdin", "batch", "-i", "-", "-o", &o],
    )
    .await;
    r.expect_code(2);
    // Records failed: 1. Credentials: 3. Disk: 4.
    let missing = sb.write(
        "missing.jsonl",
        "{\"id\":\"x\",\"path\":\"/api/v2/users/nobody\"}\n",
    );
    run(
        sb.tw(),
        &[
            "batch",
            "-i",
            missing.to_str().unwrap(),
            "-o",
            &fresh("f.jsonl"),
        ],
    )
    .await
    .expect_code(1);
    run(
        sb.tw_with_secret("wrong"),
        &["batch", "-i", i, "-o", &fresh("c.jsonl")],
    )
    .await
    .expect_code(3);
    if std::path::Path::new("/dev/full").exists() {
        let r = run(sb.tw(), &["batch", "-i", i, "-o", "/dev/full"]).await;
        r.expect_code(4);
        assert!(r.stderr.contains("No space left"), "{}", r.stderr);
    }
    assert_eq!(
        dir_names(sb.dir.path())
            .iter()
            .filter(|n| n.ends_with(".twjob"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_count_what_they_say() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let input = sb.write("in.jsonl", &format!("{}not json\n", user_gets(2)));
    let out = sb.path("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let r = run(sb.tw(), &["batch", "-i", i, "-o", o]).await;
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("2 ok, 1 failed (1 invalid line), 0 skipped"),
        "{}",
        r.stderr
    );
    // A resume with nothing left to run sends nothing, so it claims no rate; the invalid line
    // recorded earlier still counts (exit 1).
    let r = run(sb.tw(), &["batch", "-i", i, "-o", o, "--resume"]).await;
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("0 ok, 1 failed (1 invalid line, 0 in this run), 3 skipped"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("requests/s"), "{}", r.stderr);

    // A bad static token: nothing was fetched, and nothing claims to have been.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_ACCESS_TOKEN", "not-a-real-token-123456");
    cmd.args([
        "batch",
        "-i",
        i,
        "-o",
        &sb.path("static.jsonl").to_string_lossy(),
    ]);
    let r = run(cmd, &[]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("tokens fetched: 0 ·"), "{}", r.stderr);
    assert!(!r.stderr.contains("after a 401"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("done in"),
        "no 'done' before a fatal error: {}",
        r.stderr
    );
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("hint:"),
        "the way on comes last: {}",
        r.stderr
    );
    assert!(r.stderr.contains("stopped early"), "{}", r.stderr);

    // --log-format json: every stderr line of a batch with failures is JSON.
    let r = run(
        sb.tw(),
        &[
            "--log-format",
            "json",
            "batch",
            "-i",
            i,
            "-o",
            &sb.path("j.jsonl").to_string_lossy(),
        ],
    )
    .await;
    r.expect_code(1);
    for line in r.stderr.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["message"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_counts_the_failures_already_in_the_output_and_exits_1() {
    let sb = with_users(5).await;
    // r-5 is a user that does not exist: a 404.
    let input = sb.write(
        "in.jsonl",
        &format!(
            "{}{{\"id\":\"r-5\",\"method\":\"GET\",\"path\":\"/api/v2/users/nobody\"}}\n",
            user_gets(5)
        ),
    );
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let (i, o, s) = (
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        sum.to_str().unwrap(),
    );
    run(sb.tw(), &["batch", "-i", i, "-o", o])
        .await
        .expect_code(1);
    let r = run(
        sb.tw(),
        &["batch", "-i", i, "-o", o, "--resume", "--summary-json", s],
    )
    .await;
    r.expect_code(1);
    assert!(
        r.stderr.contains("1 failed (0 in this run)"),
        "{}",
        r.stderr
    );
    let sm = summary(&sum);
    assert_eq!(
        (sm["failed"].as_u64(), sm["failed_this_run"].as_u64()),
        (Some(1), Some(0))
    );
}
