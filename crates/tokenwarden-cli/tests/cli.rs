//! End-to-end tests of the `tokenwarden` binary (issue #4): the built binary, run in a fresh
//! temporary directory, against an in-process simulator it reaches over HTTP. Nothing sleeps to
//! synchronise: assertions are on exit codes, output files and the simulator's journal.
//! Each test runs the simulator on a multi-thread runtime and the binary on a blocking thread.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimClient, SimConfig};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_static_token_needs_only_the_api_base_and_its_unknown_expiry_is_said() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let token = sb.sim.issue_access_token(DEFAULT_CLIENT_ID);
    let tw = || {
        let mut c = sb.bare();
        c.args(["--api-base", &sb.sim.base_url()])
            .env("GENESYSCLOUD_ACCESS_TOKEN", &token);
        c
    };
    let r = run(tw(), &["request", "GET", "/api/v2/users/user-000001"]).await;
    r.ok();
    let r = run(tw(), &["check"]).await;
    r.ok();
    assert!(
        r.stdout
            .contains("token expires in: unknown (opaque static token)"),
        "{}",
        r.stdout
    );
    // Without an API base either: say what is missing for a static token.
    let mut c = sb.bare();
    c.env("GENESYSCLOUD_ACCESS_TOKEN", &token);
    let r = run(c, &["request", "GET", "/api/v2/users/me"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("no region or API base"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().token_requests, 0);
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
    // The second command takes the first one's token from the user's cache (every command
    // shares it since issue 17).
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_request_and_paginate_do_not_show_a_token_spelled_with_json_escapes() {
    // stdout carried the escaped form (jq decodes it back to the token), and so did the excerpt
    // of a JSON error body in messages.
    let sb = Sandbox::start(SimConfig::default()).await;
    for (status, code) in [("200", 0), ("404", 1)] {
        let path = format!("/api/v2/sim/echo?headers=1&escape=unicode&status={status}");
        let r = run(sb.tw(), &["request", "GET", &path]).await;
        r.expect_code(code);
        let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
        assert_eq!(v["headers"]["authorization"], "Bearer [REDACTED]", "{v}");
        assert!(!r.stdout.contains("\\u0042\\u0065"), "{}", r.stdout);
    }
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/sim/echo?headers=1&escape=unicode&status=400",
        ],
    )
    .await;
    r.expect_code(1);
    assert!(r.stderr.contains("[REDACTED]"), "{}", r.stderr);
    assert!(!r.stderr.contains("\\u0042\\u0065"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_credential_headers_given_with_h_are_scrubbed_from_what_is_shown() {
    // `-H 'X-Api-Key: ...'` was echoed on stdout as it was.
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(
        sb.tw(),
        &[
            "request",
            "GET",
            "/api/v2/sim/echo?headers=1",
            "-H",
            "X-Api-Key: key-4f9a7c1e2b",
            "-H",
            "X-Trace: plain-value-1234",
        ],
    )
    .await;
    r.ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["headers"]["x-api-key"], "[REDACTED]", "{v}");
    assert_eq!(v["headers"]["x-trace"], "plain-value-1234", "{v}");
    assert!(!r.all_output().contains("key-4f9a7c1e2b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_request_and_paginate_refuse_paths_that_leave_the_api_origin() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let elsewhere = fixed_answer(200, "{\"entities\":[]}");
    for path in [
        format!("{elsewhere}/api/v2/users"),
        "//127.0.0.2/x".to_string(),
        "/\\127.0.0.2/x".to_string(),
        "api/v2/users".to_string(),
    ] {
        let r = run(sb.tw(), &["request", "GET", &path]).await;
        r.expect_code(2);
        assert!(
            r.stderr.contains("hint: give a path below the API base"),
            "{}",
            r.stderr
        );
        let r = run(sb.tw(), &["paginate", &path]).await;
        r.expect_code(2);
    }
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
    // The page size is given once: in the path or with the flag, not both.
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users?pageSize=10", "--page-size", "50"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("give one"), "{}", r.stderr);
    // The managed token always wins: a header of one's own is refused, not silently replaced.
    let r = run(
        sb.tw(),
        &[
            "request",
            "GET",
            "/api/v2/users/me",
            "-H",
            "Authorization: Bearer mine",
        ],
    )
    .await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("GENESYSCLOUD_ACCESS_TOKEN"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
    // A URL on the API's own origin is fine.
    let r = run(
        sb.tw(),
        &[
            "request",
            "GET",
            &format!("{}/api/v2/users/user-000001", sb.sim.base_url()),
        ],
    )
    .await;
    r.ok();
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
async fn regression_a_client_secret_too_short_to_scrub_is_said_so() {
    // Secrets under MIN_SECRET_LEN were silently never scrubbed.
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw_with_secret("s3c"), &["check"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("cannot be scrubbed"), "{}", r.stderr);
    let r = run(sb.tw(), &["check"]).await;
    r.ok();
    assert!(!r.stderr.contains("cannot be scrubbed"), "{}", r.stderr);
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

/// The summary said "server revoked N tokens" and counted 401 answers: one revocation answers 401
/// to every request in flight with that token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_the_demo_counts_revocations_not_401_answers() {
    let sb = Sandbox::start(SimConfig::default()).await;
    // No 429s or 5xx: the server counts exactly 2000 + k calls with a valid token, and revokes at
    // every 500th, so k = 4 revocations.
    let r = run(
        sb.bare(),
        &[
            "demo",
            "--requests",
            "2000",
            "--revoke-every",
            "500",
            "--rate-limit-per-second",
            "0",
            "--error-rate",
            "0",
            "--concurrency",
            "32",
            "--no-progress",
        ],
    )
    .await;
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("tokens revoked by the server:"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers[0], 4, "{line}");
    assert!(numbers[1] >= 4, "{line}");
    assert!(
        line.contains("requests refused with a revoked token"),
        "{line}"
    );
}

/// `sim --sim-client me:pw` printed `export` lines with tw-client / tw-secret, which that
/// simulator rejects. Each printed line, run as printed, now works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_the_sim_prints_exports_with_the_credentials_it_accepts() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut child = spawn(sb.bare(), &["sim", "--port", "0", "--sim-client", "me:pw"]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let banner = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut text = String::new();
        // The banner ends with the command to run.
        while !text.ends_with("tokenwarden check\n") {
            let mut l = String::new();
            if stdout.read_line(&mut l).unwrap() == 0 {
                break;
            }
            text.push_str(&l);
        }
        text
    })
    .await
    .unwrap();
    let mut cmd = sb.bare();
    for line in banner
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
    {
        for assignment in line.split_whitespace() {
            let (k, v) = assignment.split_once('=').unwrap();
            cmd.env(k, v);
        }
    }
    let r = run(cmd, &["check"]).await;
    child.kill().unwrap();
    child.wait().unwrap();
    r.ok();
    assert!(
        banner.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET=pw"),
        "{banner}"
    );
    assert!(!banner.contains(DEFAULT_CLIENT_SECRET), "{banner}");
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
async fn every_command_help_is_one_screen_ending_with_examples() {
    let sb = Sandbox::start(SimConfig::default()).await;
    // (command, takes connection options)
    let commands: [(&[&str], bool); 14] = [
        (&[], true),
        (&["token"], true),
        (&["check"], true),
        (&["request"], true),
        (&["paginate"], true),
        (&["export", "conversations"], true),
        (&["batch"], true),
        (&["config"], true),
        (&["login"], true),
        (&["logout"], true),
        (&["whoami"], true),
        (&["sim"], false),
        (&["demo"], false),
        (&["completions"], false),
    ];
    for (c, connected) in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let what = args.join(" ");
        let r = run(sb.bare(), &args).await;
        r.ok();
        let help = &r.stdout;
        let lines = help.lines().count();
        assert!(lines <= 60, "`{what}`: {lines} lines\n{help}");
        // Compact: -h and --help are the same page, one line per option.
        let short = run(sb.bare(), &[c, &["-h"]].concat()).await;
        assert_eq!(&short.stdout, help, "`{what}` differs from -h");
        let examples = help
            .find("\nExamples:\n")
            .unwrap_or_else(|| panic!("`{what}` has no examples:\n{help}"));
        let n_examples = help[examples..]
            .lines()
            .filter(|l| l.starts_with("  tokenwarden ") || l.contains(" tokenwarden "))
            .count();
        assert!(n_examples >= 1, "`{what}`:\n{help}");
        let options = help.find("\nOptions:\n").expect("Options heading");
        let output = help.find("\nOutput:\n").expect("Output heading");
        if connected {
            // The command's own options, then the shared connection options, then examples.
            let connection = help
                .find("\nConnection:\n")
                .unwrap_or_else(|| panic!("`{what}` has no Connection heading:\n{help}"));
            assert!(
                options < connection && connection < output && output < examples,
                "{help}"
            );
            let own = &help[options..connection];
            assert!(!own.contains("--client-id"), "`{what}`: {own}");
            assert!(help[connection..output].contains("--client-id"), "{help}");
        } else {
            assert!(!help.contains("Connection:"), "`{what}`:\n{help}");
            assert!(!help.contains("--client-id"), "`{what}`:\n{help}");
            assert!(options < output && output < examples, "{help}");
        }
        // Examples are copied and pasted: never wrapped, even on a wide terminal.
        let mut wide = sb.bare();
        wide.env("COLUMNS", "300");
        let wide = run(wide, &args).await;
        let at = wide.stdout.find("\nExamples:\n").unwrap();
        for line in wide.stdout[at..]
            .lines()
            .skip(2)
            .take_while(|l| !l.ends_with(':'))
        {
            assert!(
                line.len() <= 100,
                "`{what}`: an example over 100 columns: {line}"
            );
        }
    }
    let r = run(sb.bare(), &["--help"]).await;
    // The table is the README's.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for phrase in [
        "a bad value in the environment or a profile",
        "interrupted (Ctrl-C, SIGTERM)",
        "failed (an HTTP error after retries; the rest completed)",
    ] {
        assert!(readme.contains(phrase), "README: {phrase}");
        let flat = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(phrase), "--help: {phrase}\n{}", r.stdout);
    }
    assert!(
        r.stdout
            .contains("Exit status:\n  0    everything succeeded"),
        "{}",
        r.stdout
    );
    // Connection options go before or after the command name, except for the commands that
    // call no API.
    let mut cmd = sb.tw();
    cmd.args(["--client-id", DEFAULT_CLIENT_ID]);
    run(cmd, &["check"]).await.ok();
    run(sb.tw(), &["check", "--client-id", DEFAULT_CLIENT_ID])
        .await
        .ok();
    let r = run(sb.bare(), &["sim", "--client-id", "x"]).await;
    r.expect_code(2);
    let r = run(sb.bare(), &["--client-id", "x", "sim"]).await;
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("takes no connection options: drop --client-id"),
        "{}",
        r.stderr
    );
}
