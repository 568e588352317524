//! `--log-format json`: every line on stderr is one JSON object (errors, hints, warnings, notes,
//! progress, summaries, log events, argument errors), and stdout carries only data.

mod common;

use common::*;
use serde_json::Value;
use tokenwarden_sim::{DEFAULT_CLIENT_SECRET, SimConfig};

/// Every stderr line parsed; panics on a line that is not a JSON object with a level and a
/// message.
#[track_caller]
fn json_lines(r: &Run) -> Vec<Value> {
    r.stderr
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nall of stderr:\n{}", r.stderr));
            assert!(v.is_object(), "not an object: {l}");
            assert!(v["level"].is_string(), "no level: {l}");
            assert!(v["message"].is_string(), "no message: {l}");
            assert!(v["timestamp"].is_string(), "no timestamp: {l}");
            v
        })
        .collect()
}

fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|v| v["kind"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_with_logs_and_a_warning_is_all_json() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.tw();
    // -vv: the library's debug events too; --client-secret: a warning.
    cmd.args([
        "--log-format",
        "json",
        "-vv",
        "--client-secret",
        DEFAULT_CLIENT_SECRET,
    ]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    let lines = json_lines(&r);
    assert!(
        lines.iter().any(|v| v["kind"].is_null()),
        "log events too:\n{}",
        r.stderr
    );
    assert!(kinds(&lines).contains(&"warning"), "{}", r.stderr);
    assert!(!r.stderr.contains(DEFAULT_CLIENT_SECRET), "{}", r.stderr);
    // stdout is the report, not messages.
    assert!(r.stdout.starts_with("organization:"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_failure_is_an_error_and_a_hint_in_json() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.tw_with_secret("wrong-secret-value");
    cmd.args(["--log-format", "json"]);
    let r = run(cmd, &["check"]).await;
    r.expect_code(3);
    let lines = json_lines(&r);
    let k = kinds(&lines);
    assert!(k.contains(&"error") && k.contains(&"hint"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong-secret-value"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_failed_records_is_all_json() {
    let sb = Sandbox::start(SimConfig {
        users: 5,
        ..SimConfig::default()
    })
    .await;
    let mut input = user_gets(5);
    input.push_str("{\"id\":\"missing\",\"path\":\"/api/v2/users/nobody\"}\nnot json\n");
    let input = sb.write("in.jsonl", &input);
    let out = sb.path("out.jsonl");
    let mut cmd = sb.tw();
    cmd.args(["--log-format", "json"]);
    let r = run(
        cmd,
        &[
            "batch",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--preflight",
        ],
    )
    .await;
    r.expect_code(1);
    let lines = json_lines(&r);
    let k = kinds(&lines);
    assert!(k.contains(&"summary"), "{}", r.stderr);
    assert!(k.contains(&"note"), "the preflight note: {}", r.stderr);
    let numbers = lines
        .iter()
        .find(|v| v["kind"] == "summary" && v["failed"].is_number())
        .unwrap_or_else(|| panic!("a summary with its numbers as fields: {}", r.stderr));
    assert_eq!(numbers["ok"], 5);
    assert_eq!(numbers["failed"], 2, "{numbers}");
    assert_eq!(r.stdout, "", "the records went to the output file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_errors_and_configuration_warnings_are_json_too() {
    let sb = Sandbox::start(SimConfig::default()).await;
    // clap's own error, found before anything is parsed.
    let r = run(sb.bare(), &["--log-format", "json", "batch", "--bogus"]).await;
    r.expect_code(2);
    let lines = json_lines(&r);
    assert_eq!(lines[0]["kind"], "error");
    assert!(
        lines[0]["message"].as_str().unwrap().contains("--bogus"),
        "{}",
        r.stderr
    );
    assert!(
        lines[0]["usage"]
            .as_str()
            .unwrap()
            .starts_with("tokenwarden batch")
    );
    // A missing command, and a value clap refuses.
    let r = run(sb.bare(), &["--log-format=json"]).await;
    r.expect_code(2);
    json_lines(&r);
    let r = run(
        sb.bare(),
        &[
            "--log-format",
            "json",
            "batch",
            "-c",
            "0",
            "-i",
            "x",
            "-o",
            "y",
        ],
    )
    .await;
    r.expect_code(2);
    json_lines(&r);

    // A typo in a profile: a warning with the key meant; then the `config` table on stdout.
    let cfg = sb.write(
        "tw.toml",
        &format!(
            "[default]\nregoin = \"eu-west-1\"\ntoken_url = \"{}\"\n",
            sb.sim.token_url()
        ),
    );
    let mut cmd = sb.tw();
    cmd.args(["--log-format", "json", "--config", cfg.to_str().unwrap()]);
    let r = run(cmd, &["config"]).await;
    r.ok();
    let lines = json_lines(&r);
    assert!(
        lines.iter().any(|v| v["kind"] == "warning"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("did you mean 'region'")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("token_url"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_is_json() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let hole = black_hole();
    let mut cmd = sb.bare();
    cmd.args([
        "--log-format",
        "json",
        "--token-url",
        &format!("{}/oauth/token", hole.base),
    ])
    .env("GENESYSCLOUD_OAUTHCLIENT_ID", "a")
    .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "b");
    let child = spawn(cmd, &["token", "--no-cache"]);
    let r = tokio::task::spawn_blocking(move || {
        hole.accepted
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reached the token endpoint");
        interrupt(child)
    })
    .await
    .unwrap();
    r.expect_code(130);
    let lines = json_lines(&r);
    assert_eq!(lines.last().unwrap()["message"], "interrupted");
}
