//! What the command line tells the person running it, on the built binary: counts in words,
//! hints that point at the setting at fault, one message style at the default verbosity (routine
//! retries quiet, library warnings reading like the CLI's own), timestamps and levels with `-v`.

mod common;

use common::*;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_messages_count_in_words_and_point_at_the_setting_at_fault() {
    let sb = Sandbox::start(SimConfig {
        users: 1,
        accept_form_credentials: false,
        ..SimConfig::default()
    })
    .await;
    // One of each: no "1 items", "1 pages".
    let out = sb.path("one.jsonl");
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", out.to_str().unwrap()],
    )
    .await;
    r.ok();
    assert!(
        r.stderr.contains("1 item in ") && r.stderr.contains(" 1 page"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("1 items") && !r.stderr.contains("1 pages"),
        "{}",
        r.stderr
    );
    // A server that takes only HTTP Basic refuses form credentials: say that is the cause.
    // (--no-cache: the token the paginate above cached would be served without asking.)
    let r = run(sb.tw(), &["--client-auth", "form", "--no-cache", "check"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("try --client-auth basic"), "{}", r.stderr);
    // A web page where the token endpoint should be: check the token URL.
    let page = fixed_answer(200, "\"<html>hello</html>\"");
    let mut cmd = sb.bare();
    cmd.args([
        "--token-url",
        &format!("{page}/oauth/token"),
        "--api-base",
        &sb.sim.base_url(),
    ])
    .env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
    .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    let r = run(cmd, &["check"]).await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("hint: check --token-url"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_default_verbosity_speaks_one_style_and_routine_retries_are_quiet() {
    let sb = Sandbox::start(SimConfig {
        fail_first_token_requests: 2,
        ..SimConfig::default()
    })
    .await;
    let r = run(sb.tw(), &["check"]).await;
    r.ok();
    // Token retries are routine: not shown without -v.
    assert!(
        !r.stderr.contains("WARN") && !r.stderr.contains("retrying"),
        "{}",
        r.stderr
    );
    // A library warning reads like the CLI's own: `warning: ...`, no timestamp, no target.
    run(sb.tw(), &["token"]).await.ok();
    let cache = sb.path("tw-cache");
    let damaged: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(
        !damaged.is_empty(),
        "no cache file under {}",
        cache.display()
    );
    for p in &damaged {
        std::fs::write(p, "not json").unwrap();
    }
    let r = run(sb.tw(), &["token"]).await;
    r.ok();
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("damaged token cache"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(line.starts_with("warning: ignoring a damaged"), "{line}");
    assert!(
        !line.contains("WARN") && !line.contains("tokenwarden::"),
        "{line}"
    );
    // With -v, timestamps and levels are back.
    let r = run(sb.tw(), &["-v", "check"]).await;
    assert!(r.stderr.contains(" INFO "), "{}", r.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
