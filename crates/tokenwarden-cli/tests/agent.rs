//! `tokenwarden agent` and `tokenwarden exec` as built, against an in-process simulator: the
//! address announced, sinks written and removed, a clean stop on SIGTERM and SIGHUP, secrets
//! absent from every log line at -vvv, a non-loopback address refused, `exec`'s variables (no
//! credential of the organisation's), signals (each once, none ending tokenwarden before its
//! command) and exit status, and the deployment files.

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

// A new user's finding: a typo'd --key-file made a new key, said only at -v; the programs
// reading the right file then got 401 with nothing to say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_file_is_announced_at_the_default_verbosity() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let key_file = sb.path("agnet.key");
    let start = || {
        let mut cmd = sb.tw();
        cmd.args(["agent", "--listen", "127.0.0.1:0", "--key-file"])
            .arg(&key_file);
        Running::spawn(cmd)
    };
    let (code, log) = start().stop();
    assert_eq!(code, 0, "{log}");
    let said = format!("created a new agent key in {}", key_file.display());
    assert!(log.contains(&said), "{log}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!log.contains(key.trim()), "not the key itself: {log}");
    // The next start finds it: nothing said.
    let (code, log) = start().stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("created a new agent key"), "{log}");
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

// `exec --client-secret-stdin -- CMD` read the secret's line through standard input's buffer:
// CMD's input lost its first 8-16 KiB from a pipe, more from a file, and it all exited 0.
#[tokio::test]
async fn regression_exec_leaves_the_command_all_of_standard_input_after_the_secret_line() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let lines: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    let input = format!("{}\n{lines}", tokenwarden_sim::DEFAULT_CLIENT_SECRET);
    let exec = || {
        let mut tw = sb.tw();
        tw.env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET").args([
            "exec",
            "--client-secret-stdin",
            "--",
            "cat",
        ]);
        tw
    };
    // From a pipe, then from a file.
    let path = sb.path("input.txt");
    std::fs::write(&path, &input).unwrap();
    let mut from_file = exec();
    from_file.stdin(std::fs::File::open(&path).unwrap());
    for (how, r) in [
        ("a pipe", run_with_stdin(exec(), Some(input.clone())).await),
        ("a file", run_with_stdin(from_file, None).await),
    ] {
        r.expect_code(0);
        let (got, want) = (r.stdout.len(), lines.len());
        assert!(r.stdout == lines, "from {how}: {got} bytes of {want}");
    }
}

// 1,100 slow connections under a soft limit of 1024 open files made the agent's accept fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_exec_and_agent_raise_the_open_files_soft_limit_to_the_hard_one() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    // tokenwarden started with a low soft limit; its command says the one it inherited.
    let mut tw = sb.tw();
    tw.args(["-vvv", "exec", "--", "sh", "-c", "ulimit -Sn"]);
    let line = format!("ulimit -Sn 256 && {}", shell_line(&tw));
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), hard, "{stderr}");
    assert!(
        stderr.contains("open files limit"),
        "logged at debug: {stderr}"
    );
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

/// Waits (polling what another process writes: waiting for it, not synchronising with it) until
/// `done` holds; panics with `what` after 4 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn lines_in(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn send(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap();
}

/// Waits for a child on a blocking thread (the simulator keeps serving), with its stderr.
async fn finish(child: Child) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// The command's environment as `exec` gave it, from `env` run by the command.
async fn env_seen_by_the_command(sb: &Sandbox, mut tw: std::process::Command) -> Vec<String> {
    let out = sb.path("env.txt");
    let _ = std::fs::remove_file(&out);
    tw.args([
        "exec",
        "--",
        "sh",
        "-c",
        &format!("env > {}", out.display()),
    ]);
    run(tw, &[]).await.ok();
    lines_in(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_exec_keeps_every_credential_tokenwarden_reads_from_the_command() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let parent_key = "p".repeat(64);
    let mut tw = sb.tw();
    tw.env("TOKENWARDEN_TOKEN_STORE", "memory")
        .env("TOKENWARDEN_AGENT_KEY", &parent_key)
        .env("GITHUB_TOKEN", "the-users-own-token");
    let env = env_seen_by_the_command(&sb, tw).await;
    let value = |name: &str| {
        env.iter()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    assert_eq!(value("GENESYSCLOUD_OAUTHCLIENT_SECRET"), None, "{env:?}");
    assert_eq!(value("TOKENWARDEN_TOKEN_STORE"), None, "{env:?}");
    assert!(
        !env.join("\n")
            .contains(tokenwarden_sim::DEFAULT_CLIENT_SECRET)
    );
    // The command's own key replaces the parent agent's.
    let key = value("TOKENWARDEN_AGENT_KEY").unwrap();
    assert_eq!(key.len(), 64);
    assert_ne!(key, parent_key);
    assert!(!env.join("\n").contains(&parent_key));
    // What is no credential of the organisation's is the user's, and passed on.
    assert_eq!(
        value("GITHUB_TOKEN").as_deref(),
        Some("the-users-own-token")
    );
    assert!(value("GENESYSCLOUD_OAUTHCLIENT_ID").is_some());
    assert!(value("TOKENWARDEN_AGENT_URL").is_some());

    // A token supplied directly is not passed on either.
    let token = sb
        .sim
        .issue_access_token(tokenwarden_sim::DEFAULT_CLIENT_ID);
    let mut tw = sb.bare();
    tw.args(["--api-base", &sb.sim.base_url()])
        .env("GENESYSCLOUD_ACCESS_TOKEN", &token);
    let env = env_seen_by_the_command(&sb, tw).await;
    assert!(env.iter().any(|l| l.starts_with("TOKENWARDEN_AGENT_KEY=")));
    assert!(
        !env.iter()
            .any(|l| l.starts_with("GENESYSCLOUD_ACCESS_TOKEN=")),
        "{env:?}"
    );
    assert!(!env.join("\n").contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_repeated_interrupts_reach_the_command_and_exec_waits_for_it() {
    use rustix::process::Signal;
    use std::os::unix::process::CommandExt as _;
    let sb = Sandbox::start(SimConfig::default()).await;
    let (ready, mark, go) = (sb.path("ready"), sb.path("ints"), sb.path("go"));
    let script = format!(
        "trap 'echo int >> {}' INT; touch {}; while [ ! -e {} ]; do sleep 0.01; done; exit 9",
        mark.display(),
        ready.display(),
        go.display()
    );
    let mut cmd = sb.tw();
    // A process group of its own: never the foreground of a terminal the tests run in, so its
    // SIGINTs come from `kill` (as a terminal's would not) and are passed on.
    cmd.process_group(0)
        .args(["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut tw = cmd.spawn().unwrap();
    let pid = tw.id();
    wait_until("the command starts", || ready.exists()).await;
    for n in 1..=3 {
        send(pid, Signal::INT);
        wait_until("the command sees the interrupt", || {
            lines_in(&mark).len() >= n
        })
        .await;
        assert!(
            tw.try_wait().unwrap().is_none(),
            "tokenwarden exited at interrupt {n}, before its command"
        );
    }
    std::fs::write(&go, "").unwrap();
    let (code, stderr) = finish(tw).await;
    assert_eq!(code, Some(9), "the command's status: {stderr}");
    // Each interrupt once.
    assert_eq!(lines_in(&mark), ["int", "int", "int"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_sighup_stops_the_agent_cleanly_and_sigusr_is_ignored() {
    use rustix::process::Signal;
    let sb = Sandbox::start(SimConfig::default()).await;
    let sink = sb.path("token");
    let mut cmd = sb.tw();
    cmd.args(["agent", "--listen", "127.0.0.1:0", "--key-file"])
        .arg(sb.path("agent.key"))
        .arg("--sink")
        .arg(&sink);
    let agent = Running::spawn(cmd);
    let pid = agent.child.id();
    let log = || agent.lines.lock().unwrap().join("\n");
    wait_until("the sink is written", || sink.exists()).await;
    send(pid, Signal::USR1);
    send(pid, Signal::USR2);
    wait_until("both are ignored", || {
        log().contains("SIGUSR1 ignored") && log().contains("SIGUSR2 ignored")
    })
    .await;
    // Still serving.
    let health = reqwest::get(format!("{}/healthz", agent.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    send(pid, Signal::HUP);
    let mut child = agent.child;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let log = || agent.lines.lock().unwrap().join("\n");
    // The reader thread ends with the pipe.
    wait_until("the stop is logged", || log().contains("agent stopped")).await;
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(log().contains("SIGHUP: stopping the agent"), "{}", log());
    assert!(!sink.exists(), "the sink is removed");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_killed_exec_takes_its_command_with_it() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let (seen, mark, go) = (sb.path("seen"), sb.path("got-term"), sb.path("go"));
    let script = format!(
        "trap 'echo term > {2}; exit 3' TERM; echo \"$$ $TOKENWARDEN_AGENT_URL\" > {0}.tmp; mv {0}.tmp {0}; while [ ! -e {1} ]; do sleep 0.01; done",
        seen.display(),
        go.display(),
        mark.display()
    );
    let mut cmd = sb.tw();
    cmd.args(["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut tw = cmd.spawn().unwrap();
    wait_until("the command starts", || seen.exists()).await;
    let text = std::fs::read_to_string(&seen).unwrap();
    let (_, url) = text.trim().split_once(' ').unwrap();
    // SIGKILL: tokenwarden cannot do anything about it itself.
    tw.kill().unwrap();
    let _ = finish(tw).await;
    // Its watchdog sends the command SIGTERM...
    wait_until("the command gets SIGTERM", || lines_in(&mark) == ["term"]).await;
    // ...and the agent is gone with tokenwarden: the key the command held opens nothing.
    let e = reqwest::get(format!("{url}/healthz")).await.unwrap_err();
    assert!(e.is_connect(), "{e}");
    std::fs::write(&go, "").unwrap();
}

/// `cmd` (the binary, its arguments, environment and directory) as one `sh` command line. It
/// starts with `exec`: dash (Debian's `sh`, which `script` runs when `SHELL` is unset or `/bin/sh`)
/// does not replace itself with a `-c` line's last command as bash does, and a shell left waiting
/// between the terminal and tokenwarden dies of the Ctrl-C itself, hanging the terminal up.
fn shell_line(cmd: &std::process::Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = String::from("exec env");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => line.push_str(&format!(" {}={}", k.to_string_lossy(), quote(v))),
            None => line.push_str(&format!(" -u {}", k.to_string_lossy())),
        }
    }
    line.push(' ');
    line.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_ctrl_c_typed_in_the_terminal_is_not_passed_on_a_second_time() {
    use std::io::Write as _;
    // util-linux's `script` (a terminal without `unsafe`): skipped loudly when missing.
    let Some(script) = tokenwarden_test_support::tool::installed("script") else {
        return;
    };
    let sb = Sandbox::start(SimConfig::default()).await;
    let (ready, mark, go) = (sb.path("ready"), sb.path("ints"), sb.path("go"));
    let child_script = format!(
        "trap 'echo int >> {}' INT; touch {}; while [ ! -e {} ]; do sleep 0.01; done; exit 4",
        mark.display(),
        ready.display(),
        go.display()
    );
    let mut tw = sb.tw();
    tw.env("NO_COLOR", "1")
        .args(["-vv", "exec", "--", "sh", "-c", &child_script]);
    // `script` runs it on a terminal of its own, as that terminal's foreground process group,
    // and types what it reads on its stdin there: ^C is a Ctrl-C.
    let mut terminal = std::process::Command::new(script)
        .args(["-qfec", &shell_line(&tw), "/dev/null"])
        // The same shell here as on CI, whose SHELL differs (or is unset).
        .env("SHELL", "/bin/sh")
        .current_dir(sb.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut keyboard = terminal.stdin.take().unwrap();
    wait_until("the command starts", || ready.exists()).await;
    keyboard.write_all(b"\x03").unwrap();
    keyboard.flush().unwrap();
    wait_until("the command sees the Ctrl-C", || {
        !lines_in(&mark).is_empty()
    })
    .await;
    std::fs::write(&go, "").unwrap();
    let out = tokio::task::spawn_blocking(move || terminal.wait_with_output().unwrap())
        .await
        .unwrap();
    drop(keyboard);
    // What the terminal showed: tokenwarden's -vv log says it left the Ctrl-C to the terminal.
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{shown}");
    assert!(shown.contains("not passed on"), "{shown}");
    assert!(!shown.contains("passing the signal on"), "{shown}");
    assert_eq!(lines_in(&mark), ["int"]);
}

#[test]
fn the_deployment_files_keep_the_token_in_memory_and_run_unprivileged() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let read = |name: &str| std::fs::read_to_string(deploy.join(name)).unwrap();
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let sidecar = lines(&read("agent-sidecar.yaml"));
    for want in [
        "medium: Memory",
        "runAsNonRoot: true",
        "runAsUser: 10001",
        "- { name: TOKENWARDEN_TOKEN_STORE, value: memory }",
    ] {
        assert!(sidecar.iter().any(|l| l.starts_with(want)), "{want}");
    }
    // In each container.
    for want in [
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
    ] {
        assert_eq!(sidecar.iter().filter(|l| *l == want).count(), 2, "{want}");
    }
    let unit = lines(&read("tokenwarden-agent.service"));
    for want in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ] {
        assert!(unit.iter().any(|l| l == want), "{want}");
    }
    // The memory store first: the environment file, read after it, may name a Redis store.
    let at = |l: &str| unit.iter().position(|u| u == l).unwrap();
    assert!(
        at("Environment=TOKENWARDEN_TOKEN_STORE=memory")
            < at("EnvironmentFile=/etc/tokenwarden/agent.env")
    );
}
