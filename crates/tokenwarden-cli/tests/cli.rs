//! End-to-end tests of the `tokenwarden` binary (issue #4): the built binary, run in a fresh
//! temporary directory, against an in-process simulator it reaches over HTTP. Nothing sleeps to
//! synchronise: assertions are on exit codes, output files and the simulator's journal.
//! Each test runs the simulator on a multi-thread runtime and the binary on a blocking thread.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokenwarden_sim::data::{contact_id, conversation_id, user_id};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimClient, SimConfig};

fn users(n: usize) -> BTreeSet<String> {
    (0..n).map(user_id).collect()
}

// ---- token ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_token_invocations_share_one_token_request() {
    // A shell loop run in parallel: the cache's file lock lets one process fetch while the others
    // wait and then adopt its token.
    let sb = Sandbox::start(SimConfig {
        token_latency: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let runs = futures::future::join_all((0..8).map(|_| run(sb.tw(), &["token"]))).await;
    let tokens: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|r| {
            r.ok();
            r.stdout.trim().to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every process printed the same token");
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_token_and_the_second_run_reuses_the_cache() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let first = run(sb.tw(), &["token"]).await;
    first.ok();
    let token = first.stdout.trim().to_string();
    assert!(token.len() >= 20 && !token.contains(' '), "{token:?}");
    assert!(!first.stderr.contains(&token), "token leaked to stderr");

    let second = run(sb.tw(), &["token"]).await;
    second.ok();
    assert_eq!(second.stdout.trim(), token, "the cached token is reused");
    assert_eq!(sb.sim.journal_counters().token_requests, 1);

    // The cache holds a secret: only its owner may read it.
    let dir = sb.path("tw-cache").join("tokens");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "cache file mode {mode:o}");
    }

    let json = run(sb.tw(), &["token", "--json"]).await;
    json.ok();
    let v: Value = serde_json::from_str(json.stdout.trim()).expect("--json prints JSON");
    assert_eq!(v["access_token"], token.as_str());
    assert_eq!(v["token_type"], "bearer");
    assert!(v["expires_in"].as_u64().unwrap() > 80_000, "{v}");
    assert!(
        v["expires_at_unix"].as_u64().unwrap() > 1_700_000_000,
        "{v}"
    );
    assert_eq!(sb.sim.journal_counters().token_requests, 1);

    // --no-cache fetches a fresh one.
    let fresh = run(sb.tw(), &["token", "--no-cache"]).await;
    fresh.ok();
    assert_ne!(fresh.stdout.trim(), token);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
}

// ---- check ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_organization_client_and_scopes() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw(), &["check"]).await;
    r.ok();
    assert!(r.stdout.contains("organization:"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("({DEFAULT_CLIENT_ID})")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("analytics:conversationDetail:view"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("grant: client_credentials"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.trim_end().ends_with("ok"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_require_scope_the_client_lacks_exits_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    sb.sim
        .update(|c| c.scopes = vec!["users:readonly".into(), "analytics".into()]);
    let r = run(
        sb.tw(),
        &[
            "check",
            "--require-scope",
            "users:readonly",
            "--require-scope",
            "analytics:readonly",
        ],
    )
    .await;
    r.ok();
    assert!(
        r.stdout.contains("required scopes:  all present"),
        "{}",
        r.stdout
    );

    let r = run(
        sb.tw(),
        &[
            "check",
            "--require-scope",
            "users:readonly",
            "--require-scope",
            "routing:readonly",
        ],
    )
    .await;
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("lacks required scope(s) routing:readonly"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("users:readonly analytics"),
        "lists what it has: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

// ---- request ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_get_prints_the_body_and_a_404_exits_1() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw(), &["request", "GET", "/api/v2/users/user-000001"]).await;
    r.ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON body on stdout");
    assert_eq!(v["id"], "user-000001");

    let r = run(sb.tw(), &["request", "get", "/api/v2/users/user-999999"]).await;
    r.expect_code(1);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("error body on stdout");
    assert_eq!(v["status"], 404);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_post_sends_the_data() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(
        sb.tw(),
        &[
            "request",
            "POST",
            "/api/v2/sim/echo?x=1",
            "--data",
            r#"{"a":1,"b":["c"]}"#,
        ],
    )
    .await;
    r.ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["json"], serde_json::json!({"a": 1, "b": ["c"]}));
    assert_eq!(v["contentType"], "application/json");
    assert_eq!(v["query"]["x"], "1");

    // @FILE, and a header.
    let f = sb.write("body.json", r#"{"from":"file"}"#);
    let r = run(
        sb.tw(),
        &[
            "request",
            "PUT",
            "/api/v2/sim/echo",
            "--data",
            &format!("@{}", f.display()),
            "-H",
            "X-Test: yes",
        ],
    )
    .await;
    r.ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["json"]["from"], "file");

    // Bad JSON is a usage problem (exit 2), and nothing is sent.
    let before = sb.sim.journal_counters().api_requests;
    let r = run(
        sb.tw(),
        &["request", "POST", "/api/v2/sim/echo", "--data", "{nope"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().api_requests, before);
}

// ---- paginate and export ------------------------------------------------------------------------

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

// ---- batch --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_from_input_and_from_ids_does_each_record_exactly_once() {
    let sb = Sandbox::start(SimConfig {
        users: 600,
        ..SimConfig::default()
    })
    .await;
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
    let r = run(
        sb.tw(),
        &[
            "batch",
            "--ids",
            ids_file.to_str().unwrap(),
            "--path-template",
            "/api/v2/users/{id}",
            "--output",
            out2.to_str().unwrap(),
        ],
    )
    .await;
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
    r.expect_code(3);
    assert!(r.stderr.contains("{id}"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_killed_with_sigkill_resumes_to_exactly_once() {
    const N: usize = 3000;
    const CONCURRENCY: usize = 8;
    let sb = Sandbox::start(SimConfig {
        users: N,
        latency: Duration::from_millis(4),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let args = [
        "batch",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--concurrency",
        "8",
        "--no-progress",
    ]
    .map(String::from);

    // Start the job; once a few hundred records are recorded, kill -9 it.
    let mut cmd = sb.tw();
    cmd.args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let out_path = out.clone();
    let killed_at = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Polling a file written by another process: waiting for it, not synchronising ours.
        while line_count(&out_path) < 400 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the batch finished ({status}) before it could be killed");
            }
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success());
        line_count(&out_path)
    })
    .await
    .unwrap();
    assert!(
        killed_at < N,
        "killed mid-run ({killed_at} of {N} recorded)"
    );
    let partial = read_jsonl(&out);
    assert_eq!(partial.len(), killed_at);
    let done: BTreeSet<String> = count_by(&partial, "id").into_keys().collect();
    assert_eq!(
        done.len(),
        killed_at,
        "no duplicates before the kill either"
    );

    // A torn last line, as a crash in the middle of a write would leave.
    let torn = r#"{"id":"r-2999","status":200,"body":{"id":"user-00"#;
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        f.write_all(torn.as_bytes()).unwrap();
    }

    // Without --resume (or --force) the existing output is refused.
    let r = run(sb.tw(), &args.each_ref().map(String::as_str)).await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("--resume"),
        "says how to go on: {}",
        r.stderr
    );

    let sum = sb.path("summary.json");
    let started = Instant::now();
    let mut resume_args: Vec<&str> = args.iter().map(String::as_str).collect();
    resume_args.extend(["--resume", "--summary-json", sum.to_str().unwrap()]);
    let r = run(sb.tw(), &resume_args).await;
    let resume_time = started.elapsed();
    r.ok();
    eprintln!("killed after {killed_at} records; resume took {resume_time:?}");

    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(N));
    assert!(lines.iter().all(|l| l["status"] == 200));
    let s = summary(&sum);
    assert_eq!(s["skipped"].as_u64().unwrap() as usize, killed_at);
    assert_eq!(s["ok"].as_u64().unwrap() as usize, N - killed_at);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["repaired_bytes"].as_u64().unwrap() as usize, torn.len());
    assert!(
        r.stderr.contains("repaired a torn last line"),
        "{}",
        r.stderr
    );

    // Work repeated by the kill: at most the records that were in flight.
    let j = sb.sim.journal_counters();
    let total_ok: u64 = j.per_resource_ok.values().sum();
    assert!(
        (N as u64..=(N + CONCURRENCY) as u64).contains(&total_ok),
        "{total_ok} successful requests for {N} records"
    );
    assert_eq!(j.per_resource_ok.len(), N);
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
    r.expect_code(3);
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
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--summary-json",
            sum.to_str().unwrap(),
        ],
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
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
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
    // The client pauses when the `inin-ratelimit-*` headers say the allowance is used up, so
    // 429s come from the requests already in flight at that moment: with 32 in flight and
    // 20 ms per request, the 41st request is sent long before the 40th answer arrives.
    const N: usize = 120;
    let sb = Sandbox::start(SimConfig {
        users: N,
        api_rate_limit_per_minute: Some(40),
        rate_limit_window: Duration::from_secs(1),
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let r = run(
        sb.tw(),
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-c",
            "32",
            "--summary-json",
            sum.to_str().unwrap(),
        ],
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
    let sb = Sandbox::start(SimConfig {
        users: N,
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    run(
        sb.tw(),
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-c",
            "16",
            "--rate",
            "40/s",
        ],
    )
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
    bad.expect_code(3);
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
    let errors = read_jsonl(&out)
        .iter()
        .filter(|v| v.get("error").is_some())
        .count();
    assert_eq!(errors, 10, "{}", first.stderr);
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

// ---- bad credentials ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_stops_check_fast_with_exit_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw_with_secret("not-the-secret"), &["check"]).await;
    r.expect_code(3);
    assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    let msg = r.stderr.to_lowercase();
    assert!(
        msg.contains("client id") && msg.contains("secret"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "client id \"{DEFAULT_CLIENT_ID}\" (from GENESYSCLOUD_OAUTHCLIENT_ID) and the client secret from GENESYSCLOUD_OAUTHCLIENT_SECRET"
        )),
        "says which credentials were used: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("not-the-secret"),
        "the secret is never printed"
    );
    let j = sb.sim.journal_counters();
    assert!(j.token_requests <= 2, "{j:?}");
    assert!(j.token_bad_credentials >= 1);
    assert_eq!(j.api_requests, 0);
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
    r.expect_code(3);
    assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    let msg = r.stderr.to_lowercase();
    assert!(
        msg.contains("client id") && msg.contains("secret"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--resume"),
        "says how to continue: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("client id \"{DEFAULT_CLIENT_ID}\"")),
        "{}",
        r.stderr
    );
    let j = sb.sim.journal_counters();
    assert!(j.token_requests <= 2, "{j:?}");
    assert_eq!(j.api_requests, 0);
    // Nothing unfinished was recorded: a resume will run every record.
    let lines = read_jsonl(&out);
    assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
    assert!(lines.is_empty());
    let s = summary(&sum);
    assert!(s["aborted"].is_string(), "{s}");
}

// ---- secrets never in the output ------------------------------------------------------------------

/// A 40-character run of URL-safe characters mixing cases and digits: what the simulator's opaque
/// tokens look like (ids, paths, hashes and timestamps in the output do not).
fn token_shaped(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| {
            w.len() == 40
                && w.chars().any(|c| c.is_ascii_uppercase())
                && w.chars().any(|c| c.is_ascii_lowercase())
                && w.chars().any(|c| c.is_ascii_digit())
        })
        .collect()
}

#[track_caller]
fn assert_no_secret(r: &Run, what: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !r.stderr.contains(s),
            "{what}: a secret in stderr:\n{}",
            r.stderr
        );
        assert!(
            !r.stdout.contains(s),
            "{what}: a secret in stdout:\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stderr.contains("access_token"),
        "{what}: token response logged:\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "{what}: colour codes in logs sent to a pipe"
    );
    assert!(
        token_shaped(&r.stderr).is_empty(),
        "{what}: token-shaped strings in stderr: {:?}",
        token_shaped(&r.stderr)
    );
}

const SECRET: &str = "Sekr1t-tokenwarden-test-NEVER-LOG-3f9a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_in_any_output_at_trace_level() {
    let sb = Sandbox::start(SimConfig {
        clients: vec![SimClient::new(DEFAULT_CLIENT_ID, SECRET, "secret keeper")],
        // Revocations exercise the 401-refresh-retry path (and its logs). Kept far apart: a
        // request retries once after a 401, and a second revocation hitting that retry stops
        // the job as "a fresh token was rejected" (seen with revoke_every 12 at concurrency 8).
        revoke_every: Some(25),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(30));
    let out = sb.path("out.jsonl");

    let r = run(sb.tw_with_secret(SECRET), &["-vvv", "token"]).await;
    r.ok();
    let token = r.stdout.trim().to_string();
    assert!(
        r.stderr.contains("TRACE") || r.stderr.contains("DEBUG"),
        "-vvv logs"
    );
    assert!(!r.stderr.contains(&token), "token in stderr:\n{}", r.stderr);
    assert!(!r.stderr.contains(SECRET) && !r.stdout.contains(SECRET));

    let runs = [
        (vec!["-vvv", "check"], "check"),
        (
            vec!["-vvv", "request", "GET", "/api/v2/tokens/me"],
            "request",
        ),
        (
            vec![
                "-vvv",
                "--log-format",
                "json",
                "request",
                "GET",
                "/api/v2/users/user-000001",
            ],
            "request json",
        ),
        (
            vec![
                "-vvv",
                "batch",
                "-i",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--force",
            ],
            "batch",
        ),
        (
            vec![
                "-vvv",
                "--log-format",
                "json",
                "batch",
                "-i",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--force",
            ],
            "batch json",
        ),
    ];
    for (args, what) in &runs {
        let r = run(sb.tw_with_secret(SECRET), args).await;
        r.ok();
        assert_no_secret(&r, what, &[SECRET, &token]);
    }
    let out = std::fs::read_to_string(&out).unwrap();
    assert!(!out.contains(SECRET) && !out.contains(&token));

    // A wrong secret is not echoed either.
    let wrong = "Wr0ng-secret-tokenwarden-test-NEVER-LOG";
    let r = run(sb.tw_with_secret(wrong), &["-vvv", "check"]).await;
    r.expect_code(3);
    assert_no_secret(&r, "wrong secret", &[wrong, SECRET]);
    let r = run(
        sb.tw_with_secret(wrong),
        &["-vvv", "--log-format", "json", "check"],
    )
    .await;
    r.expect_code(3);
    assert_no_secret(&r, "wrong secret json", &[wrong, SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_is_never_logged() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let token = sb.sim.issue_access_token(DEFAULT_CLIENT_ID);
    let input = sb.write("in.jsonl", &user_gets(10));
    let tw = || {
        let mut c = sb.connected();
        c.env("GENESYSCLOUD_ACCESS_TOKEN", &token);
        c
    };
    let r = run(tw(), &["-vvv", "token"]).await;
    r.ok();
    assert_eq!(r.stdout.trim(), token, "token prints the static token");
    assert!(!r.stderr.contains(&token), "{}", r.stderr);

    let out = sb.path("out.jsonl");
    let runs: [Vec<&str>; 4] = [
        vec!["-vvv", "check"],
        vec!["-vvv", "request", "GET", "/api/v2/users/user-000001"],
        vec!["-vvv", "--log-format", "json", "check"],
        vec![
            "-vvv",
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    ];
    for args in &runs {
        let r = run(tw(), args).await;
        r.ok();
        assert_no_secret(&r, &args.join(" "), &[&token]);
    }
    let j = sb.sim.journal_counters();
    assert_eq!(
        j.token_requests, 0,
        "a static token needs no token endpoint"
    );
    assert_eq!(j.api_ok, 1 + 1 + 1 + 10);

    // Once revoked, a static token cannot be refreshed: a credentials error, token unprinted.
    sb.sim.revoke_all_tokens();
    let r = run(tw(), &["-vvv", "check"]).await;
    r.expect_code(3);
    assert!(!r.stderr.contains(&token), "{}", r.stderr);
    assert!(r.stderr.contains("cannot be refreshed"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: used the access token from GENESYSCLOUD_ACCESS_TOKEN"),
        "{}",
        r.stderr
    );
}

// ---- configuration precedence ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_in_a_config_file_reaches_the_simulator() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let profile = format!(
        "[default]\nregion = \"eu-west-1\"\n\n[sim]\ntoken_url = \"{}\"\napi_base = \"{}\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n",
        sb.sim.token_url(),
        sb.sim.base_url()
    );
    let cfg = sb.write("tw.toml", &profile);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "--profile", "sim"]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(r.stdout.contains(DEFAULT_CLIENT_ID), "{}", r.stdout);

    // The default location (<XDG_CONFIG_HOME>/tokenwarden/config.toml) and -p.
    let dir = sb.path("config").join("tokenwarden");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), &profile).unwrap();
    run(sb.bare(), &["-p", "sim", "check"]).await.ok();

    // Flags beat the profile: --token-url to the simulator over a dead profile URL.
    let dead = profile.replace(&sb.sim.token_url(), "http://127.0.0.1:9/oauth/token");
    let cfg = sb.write("dead.toml", &dead);
    let mut cmd = sb.bare();
    cmd.args([
        "--config",
        cfg.to_str().unwrap(),
        "-p",
        "sim",
        "--token-url",
        &sb.sim.token_url(),
    ]);
    run(cmd, &["check"]).await.ok();

    // The environment beats the profile: a wrong secret in the profile, the right one in env.
    let wrong = profile.replace(
        &format!("client_secret = \"{DEFAULT_CLIENT_SECRET}\""),
        "client_secret = \"stale\"",
    );
    let cfg = sb.write("wrong.toml", &wrong);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "sim"]);
    run(cmd, &["check"]).await.expect_code(3);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "sim"])
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    run(cmd, &["check"]).await.ok();

    // An unknown profile is a configuration error that names it.
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "nope"]);
    let r = run(cmd, &["check"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("\"nope\""), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_the_environment_and_every_secret_source_works() {
    let sb = Sandbox::start(SimConfig::default()).await;

    // --client-id beats GENESYSCLOUD_OAUTHCLIENT_ID.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", "someone-else")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    let r = run(cmd, &["--client-id", DEFAULT_CLIENT_ID, "check"]).await;
    r.ok();
    assert!(!r.stderr.contains("process list"), "{}", r.stderr);

    // --client-secret beats the environment, with a warning about the process list.
    let mut cmd = sb.tw_with_secret("stale");
    cmd.args(["--client-secret", DEFAULT_CLIENT_SECRET]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(r.stderr.contains("process list"), "{}", r.stderr);
    assert!(!r.stderr.contains(DEFAULT_CLIENT_SECRET), "{}", r.stderr);

    // --client-secret-file.
    let f = sb.write("secret.txt", &format!("{DEFAULT_CLIENT_SECRET}\n"));
    let mut cmd = sb.tw_with_secret("stale");
    cmd.args(["--client-secret-file", f.to_str().unwrap()]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(!r.stderr.contains("process list"), "{}", r.stderr);

    // --client-secret-stdin.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-stdin", "check"]);
    let r = run_with_stdin(cmd, Some(format!("{DEFAULT_CLIENT_SECRET}\n"))).await;
    r.ok();

    // Empty sources are configuration errors.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-stdin", "check"]);
    run_with_stdin(cmd, Some(String::new()))
        .await
        .expect_code(3);
    let empty = sb.write("empty.txt", "");
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-file", empty.to_str().unwrap()]);
    run(cmd, &["check"]).await.expect_code(3);

    // No credentials at all: a configuration error that says what to set.
    let r = run(sb.connected(), &["check"]).await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
        "{}",
        r.stderr
    );

    let j = sb.sim.journal_counters();
    assert_eq!(j.token_bad_credentials, 0, "{j:?}");
    assert_eq!(j.tokens_issued, 4);
}

// ---- sim, demo, completions, help -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_command_serves_until_killed() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let (mut child, stdout, first) = tokio::task::spawn_blocking({
        let cmd = sb.bare();
        move || spawn_standalone_sim(cmd)
    })
    .await
    .unwrap();
    let base = first
        .trim()
        .strip_prefix("tokenwarden simulator listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let mut cmd = sb.bare();
    cmd.args([
        "--api-base",
        &base,
        "--token-url",
        &format!("{base}/oauth/token"),
    ])
    .env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
    .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    let r = run(cmd, &["check"]).await;
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    r.ok();
    assert_eq!(
        sb.sim.journal_counters().token_requests,
        0,
        "it used its own simulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_finishes_with_no_expired_token_requests() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.bare(), &["demo", "--requests", "2000", "--no-progress"]).await;
    r.ok();
    eprintln!("demo took {:?}:\n{}", r.elapsed, r.stdout);
    let expired = r
        .stdout
        .lines()
        .find_map(|l| l.split_once("requests sent with an expired token:"))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no expired-token line:\n{}", r.stdout));
    assert_eq!(expired, "0");
    assert!(
        r.stdout.contains("requests ok / failed:          2000 / 0"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_bash() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.bare(), &["completions", "bash"]).await;
    r.ok();
    assert!(
        r.stdout.contains("_tokenwarden()"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    assert!(r.stdout.contains("complete -F"));
    assert!(r.stdout.contains("--client-secret-file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_help_shows_examples() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let commands: [&[&str]; 9] = [
        &["token"],
        &["check"],
        &["request"],
        &["paginate"],
        &["export", "conversations"],
        &["batch"],
        &["sim"],
        &["demo"],
        &["completions"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let r = run(sb.bare(), &args).await;
        r.ok();
        assert!(
            r.stdout.contains("Examples:"),
            "`{}` has no examples:\n{}",
            args.join(" "),
            r.stdout
        );
        assert!(r.stdout.contains("tokenwarden "), "{}", r.stdout);
    }
    let r = run(sb.bare(), &["--help"]).await;
    r.ok();
    assert!(r.stdout.contains("Exit status:"), "{}", r.stdout);
}
