//! `tokenwarden sim` and `tokenwarden demo` on the built binary: the standalone simulator serves
//! until killed and prints `export` lines that work as printed; the demo finishes with no request
//! sent with an expired token and counts revocations, not 401 answers.

mod common;

use common::{Sandbox, run, spawn, spawn_standalone_sim};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig};

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
