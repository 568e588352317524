//! `tokenwarden check` on the built binary against an in-process simulator: what it prints about
//! the organization, the client and its scopes, and `--require-scope` for a scope the client lacks.

mod common;

use common::{Sandbox, run};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimConfig};

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
