//! `tokenwarden agent` and `tokenwarden exec` as built, against an in-process simulator: the
//! address announced, sinks written and removed, a clean stop on SIGTERM, secrets absent from
//! every log line at -vvv, a non-loopback address refused, `exec`'s variables and exit status.

mod common;

use common::*;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;
use tokenwarden_sim::SimConfig;
use tokenwarden_test_support::{chmod, mode};

/// A started agent process: its URL, and its stderr lines so far.
struct Running {
    child: Child,
    url: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command) -> Running {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the agent");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("agent listening on ").nth(1) {
                    let url = url.split(['"', ' ']).next().unwrap_or_default().to_string();
                    let _ = tx.send(url);
                }
                keep.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no address announced: {:?}", lines.lock().unwrap()));
        Running { child, url, lines }
    }

    /// SIGTERM, then the exit code and every stderr line.
    fn stop(mut self) -> (i32, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        // The reader thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(50));
        (
            status.code().unwrap_or(-1),
            self.lines.lock().unwrap().join("\n"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_writes_sinks_removes_them_and_logs_no_secret_at_vvv() {
    let sb = Sandbox::start(SimConfig {
        token_ttl: Duration::from_secs(2),
        echo_token_in_items: true,
        ..SimConfig::default()
    })
    .await;
    let key_file = sb.path("agent.key");
    let raw_sink = sb.path("token");
    let json_sink = sb.path("token.json");
    let mut cmd = sb.tw();
    cmd.args(["-vvv", "agent", "--listen", "127.0.0.1:0", "--key-file"])
        .arg(&key_file)
        .arg("--sink")
        .arg(&raw_sink)
        .arg("--sink")
        .arg(&json_sink)
        .args(["--sink-format", "json"]);
    let agent = Running::spawn(cmd);
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", agent.url))
            .bearer_auth(&key)
            .send()
    };
    let me = get("/api/v2/tokens/me").await.unwrap();
    assert_eq!(me.status(), 200);
    // An answer that echoes the token, and a listing that carries it in every item.
    let echo = get("/api/v2/sim/echo?headers=1")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let users = get("/api/v2/users?pageSize=3")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let real: serde_json::Value = get("/token").await.unwrap().json().await.unwrap();
    let real = real["access_token"].as_str().unwrap().to_string();
    for answer in [&echo, &users] {
        assert!(!answer.contains(&real), "{answer}");
        assert!(answer.contains("[REDACTED]"), "{answer}");
    }
    let local: serde_json::Value = http
        .post(format!("{}/oauth/token", agent.url))
        .basic_auth("x", Some(&key))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let local = local["access_token"].as_str().unwrap().to_string();
    // Refusals log too: they must not quote what was sent.
    let _ = http
        .get(format!("{}/api/v2/users/me", agent.url))
        .bearer_auth(format!("{key}x"))
        .send()
        .await
        .unwrap();

    // The sinks hold the current token, 0600.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !json_sink.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // --sink-format applies to every sink.
    let raw = std::fs::read_to_string(&raw_sink).unwrap();
    assert_eq!(raw, std::fs::read_to_string(&json_sink).unwrap());
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let token = json["access_token"].as_str().unwrap().to_string();
    assert!(token.len() > 10);
    assert_eq!(json["token_type"], "bearer");
    assert!(json["expires_in"].as_u64().unwrap() <= 2);
    for p in [&raw_sink, &json_sink] {
        assert_eq!(mode(p), 0o600);
    }
    // Rewritten when the token is refreshed (2-s tokens: at 1.5 s at the latest).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut rewritten = false;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if std::fs::read_to_string(&raw_sink).is_ok_and(|t| t != raw) {
            rewritten = true;
            break;
        }
    }
    assert!(rewritten, "the sink was not rewritten after a refresh");
    let latest = std::fs::read_to_string(&raw_sink).unwrap();

    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        !raw_sink.exists() && !json_sink.exists(),
        "sinks removed on stop"
    );
    assert!(
        log.contains("forwarded") && log.contains("request refused"),
        "-vvv shows requests: {log}"
    );
    for secret in [
        key.as_str(),
        local.as_str(),
        real.as_str(),
        latest.as_str(),
        "tw-secret",
    ] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    // Nothing of what the agent refused reached the API.
    let j = sb.sim.journal();
    assert_eq!(j.api_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listen_address_is_refused_before_anything_is_asked() {
    let sb = Sandbox::start(SimConfig::default()).await;
    for addr in ["0.0.0.0:0", "192.0.2.1:8181", "[::]:0"] {
        let r = run(sb.tw(), &["agent", "--listen", addr, "--key-file", "k"]).await;
        r.expect_code(2);
        assert!(r.stderr.contains("loopback only"), "{}", r.stderr);
    }
    // Without a key, with the variable empty: refused too.
    let r = run(sb.tw(), &["agent", "--listen", "127.0.0.1:0"]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("--key-file"), "{}", r.stderr);
    assert_eq!(sb.sim.journal().token_requests, 0);
    assert!(!sb.path("k").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_can_read_is_refused() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let key = sb.write("agent.key", &"k".repeat(64));
    chmod(&key, 0o644);
    let r = run(
        sb.tw(),
        &[
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--key-file",
            "agent.key",
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    assert!(!r.all_output().contains(&"k".repeat(64)));
    std::os::unix::fs::symlink(&key, sb.path("link.key")).unwrap();
    let r = run(
        sb.tw(),
        &["agent", "--listen", "127.0.0.1:0", "--key-file", "link.key"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_stop_the_agent_with_exit_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(
        sb.tw_with_secret("not-the-secret"),
        &[
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--key-file",
            "agent.key",
        ],
    )
    .await;
    r.expect_code(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gives_the_command_its_agent_and_exits_with_its_status() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let out = sb.path("seen.txt");
    let script = format!(
        "echo \"$TOKENWARDEN_AGENT_URL ${{#TOKENWARDEN_AGENT_KEY}} ${{GENESYSCLOUD_OAUTHCLIENT_SECRET:-unset}}\" > {}; exit 7",
        out.display()
    );
    let r = run(sb.tw(), &["exec", "--", "sh", "-c", &script]).await;
    r.expect_code(7);
    let seen = std::fs::read_to_string(&out).unwrap();
    let parts: Vec<&str> = seen.split_whitespace().collect();
    assert!(parts[0].starts_with("http://127.0.0.1:"), "{seen}");
    assert_eq!(parts[1], "64", "a 32-byte key in hex: {seen}");
    assert_eq!(
        parts[2], "unset",
        "the client secret is not passed on: {seen}"
    );
    // A command killed by a signal: 128 + N.
    let r = run(sb.tw(), &["exec", "--", "sh", "-c", "kill -TERM $$"]).await;
    r.expect_code(128 + 15);
    // A command that does not exist: 127.
    let r = run(sb.tw(), &["exec", "--", "no-such-command-tw"]).await;
    r.expect_code(127);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_passes_signals_on_to_the_command() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mark = sb.path("got-term");
    let ready = sb.path("ready");
    let script = format!(
        "trap 'echo term > {}; exit 5' TERM; touch {}; while :; do sleep 0.05; done",
        mark.display(),
        ready.display()
    );
    let mut cmd = sb.tw();
    cmd.args(["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready.exists(), "the command did not start");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(5));
    assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "term");
}
