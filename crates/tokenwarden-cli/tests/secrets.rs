//! Secrets never in what the built binary shows: no client secret or token in any output at trace
//! level (text or JSON logs), none spelled with JSON escapes in a body or an error excerpt, and
//! credential headers given with `-H` scrubbed from what is shown.

mod common;

use common::{Sandbox, assert_no_secret, run, user_gets};
use serde_json::Value;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimClient, SimConfig};

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
