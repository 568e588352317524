//! A static access token (`GENESYSCLOUD_ACCESS_TOKEN`) on the built binary: it needs only the API
//! base, its unknown expiry is said, it is never logged, and once revoked it is a credentials
//! error that names where it came from.

mod common;

use common::{Sandbox, assert_no_secret, run, user_gets};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimConfig};

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
