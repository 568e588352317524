//! `tokenwarden request` on the built binary: the body on stdout, data sent inline or from a file,
//! and paths (of `request` and `paginate`) that must stay below the API base.

mod common;

use common::{Sandbox, fixed_answer, run};
use serde_json::Value;
use tokenwarden_sim::SimConfig;

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
