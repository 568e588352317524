//! Helpers for running the built `tokenwarden` binary against an in-process simulator, each test
//! in a fresh temporary directory that stands in for HOME, the config dir and the cache dir.
//! The simulator runs on the test's multi-thread runtime and the binary on a blocking thread;
//! nothing sleeps to synchronise: assertions are on exit codes, output files and the simulator's
//! journal.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// stdout and stderr together, for "appears nowhere" assertions.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A simulator plus a sandbox directory; builds commands that talk to that simulator.
pub struct Sandbox {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts a simulator with `config` and makes a fresh temporary directory.
    pub async fn start(config: SimConfig) -> Sandbox {
        let sim = Simulator::start(config).await.expect("start the simulator");
        Sandbox {
            sim,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bare binary: sandboxed HOME/config/cache, no GENESYSCLOUD_* or TOKENWARDEN_* variables
    /// from the developer's environment, no connection flags, no credentials.
    pub fn bare(&self) -> Command {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("GENESYSCLOUD_") || k.starts_with("TOKENWARDEN_") || k == "RUST_LOG" {
                c.env_remove(k.as_ref());
            }
        }
        let d = self.dir.path();
        c.current_dir(d)
            .env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_DATA_HOME", d.join("data"))
            // No session bus: the OS keyring is never reached from a test (sign-ins go to the file).
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("TOKENWARDEN_CACHE_DIR", d.join("tw-cache"))
            .env("TMPDIR", d)
            .stdin(Stdio::null());
        c
    }

    /// The binary pointed at the simulator (`--api-base`, `--token-url`), without credentials.
    pub fn connected(&self) -> Command {
        let mut c = self.bare();
        c.args([
            "--api-base",
            &self.sim.base_url(),
            "--token-url",
            &self.sim.token_url(),
        ]);
        c
    }

    /// The binary pointed at the simulator with the default client credentials in the environment.
    pub fn tw(&self) -> Command {
        self.tw_with_secret(DEFAULT_CLIENT_SECRET)
    }

    /// The binary pointed at the simulator with the default client id and `secret`.
    pub fn tw_with_secret(&self, secret: &str) -> Command {
        let mut c = self.connected();
        with_client(&mut c, secret);
        c
    }

    /// Writes `text` to a file in the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

/// Gives `c` the simulator's default client id and `secret` through the environment.
pub fn with_client(c: &mut Command, secret: &str) {
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret);
}

/// Runs `cmd` with `args` to completion on a blocking thread (the simulator keeps serving).
pub async fn run(mut cmd: Command, args: &[&str]) -> Run {
    cmd.args(args);
    run_with_stdin(cmd, None).await
}

/// Runs `cmd` to completion, feeding `stdin` if given.
pub async fn run_with_stdin(mut cmd: Command, stdin: Option<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tokenwarden");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for tokenwarden");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    })
    .await
    .expect("runner thread")
}

/// Each non-empty line of `text` parsed as JSON.
#[track_caller]
pub fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A JSONL file's lines parsed as JSON.
#[track_caller]
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    jsonl(&std::fs::read_to_string(path).expect("read output"))
}

/// Counts `v[field]` as strings; panics on a missing field.
#[track_caller]
pub fn count_by(items: &[Value], field: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in items {
        let k = v[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {v}"))
            .to_string();
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Asserts that `items` hold each of `expected` exactly once by `field`, and nothing else.
#[track_caller]
pub fn assert_exactly_once(items: &[Value], field: &str, expected: &BTreeSet<String>) {
    let counts = count_by(items, field);
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicated {field}s: {dups:?}");
    let got: BTreeSet<String> = counts.into_keys().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?} ({} of {} present)",
        got.len(),
        expected.len()
    );
}

/// Number of complete lines in a file (0 if it does not exist yet).
pub fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

/// A JSONL batch input of `n` GETs of users `0..n`: ids `r-0`, `r-1`, ...
pub fn user_gets(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"id\":\"r-{i}\",\"method\":\"GET\",\"path\":\"/api/v2/users/{}\"}}\n",
            tokenwarden_sim::data::user_id(i)
        ));
    }
    s
}

/// `cmd` with `batch --ids IDS --path-template /api/v2/users/{id} --output OUT`: a GET of each
/// user named in the ids file, the batch most tests run (more arguments go after it).
pub fn user_batch(
    mut cmd: Command,
    ids: impl AsRef<std::ffi::OsStr>,
    out: impl AsRef<std::ffi::OsStr>,
) -> Command {
    cmd.args(["batch", "--ids"])
        .arg(ids)
        .args(["--path-template", "/api/v2/users/{id}", "--output"])
        .arg(out);
    cmd
}

/// The ids `r-0..r-{n-1}`.
pub fn record_ids(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("r-{i}")).collect()
}

/// Reads a `--summary-json` file.
#[track_caller]
pub fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read summary"))
        .expect("summary JSON")
}

/// Starts `tokenwarden sim --port 0` and returns the child, its stdout (kept open: the simulator
/// prints more lines) and the first line it printed.
pub fn spawn_standalone_sim(
    mut cmd: Command,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
) {
    cmd.args(["sim", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn tokenwarden sim");
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut first).expect("read the first line");
    (child, out, first)
}

/// The job file a batch keeps beside its output (`out.jsonl` → `out.jsonl.twjob`).
pub fn job_file(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".twjob");
    PathBuf::from(name)
}

/// The names in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The complete lines of a file being written by another process, parsed (a torn last line is
/// left out).
pub fn complete_jsonl(path: &Path) -> Vec<Value> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    jsonl(&String::from_utf8_lossy(&bytes[..end]))
}

// ---- exit statuses, signals and misbehaving servers (tests/exit_codes.rs, tests/json_logs.rs) ----

// Not every test file uses each of them.
#[allow(unused_imports)]
pub use tokenwarden_test_support::loopback::{BlackHole, black_hole, fixed_answer};

/// Starts `cmd` with `args`, stdout and stderr piped.
pub fn spawn(mut cmd: Command, args: &[&str]) -> std::process::Child {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn tokenwarden")
}

/// Sends SIGINT (what Ctrl-C sends) to `child` and collects what it printed.
pub fn interrupt(child: std::process::Child) -> Run {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
    finished(child.wait_with_output(), started)
}

/// Waits for a child started with stdout and stderr piped, and collects what it printed.
pub fn wait(child: std::process::Child) -> Run {
    let started = Instant::now();
    finished(child.wait_with_output(), started)
}

/// What a finished run of the binary printed.
fn finished(out: std::io::Result<std::process::Output>, started: Instant) -> Run {
    let out = out.expect("wait for tokenwarden");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Runs `cmd` with `args` to completion with stdout going to `/dev/full` (every write fails with
/// "no space left on device"): a disk failure on demand.
pub async fn run_to_full_disk(mut cmd: Command, args: &[&str]) -> Run {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    cmd.args(args).stdout(full).stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        finished(cmd.output(), started)
    })
    .await
    .expect("runner thread")
}

/// Waits (polling a file another process writes: waiting for it, not synchronising with it)
/// until `out` holds a complete line; panics after 4 s.
pub async fn until_written(out: &Path) {
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while line_count(&out) == 0 {
            assert!(Instant::now() < deadline, "the first run never wrote");
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .await
    .unwrap();
}

/// The binary with the simulator's client credentials, pointed at these endpoints (a black hole,
/// a dead port, a careless server).
pub fn endpoints(sb: &Sandbox, token_url: &str, api_base: &str) -> Command {
    let mut c = sb.bare();
    c.args(["--token-url", token_url, "--api-base", api_base])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    c
}

// ---- secrets never in the output (tests/secrets.rs, tests/static_token.rs) ------------------------

/// A 40-character run of URL-safe characters mixing cases and digits: what the simulator's opaque
/// tokens look like (ids, paths, hashes and timestamps in the output do not).
pub fn token_shaped(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| {
            w.len() == 40
                && w.chars().any(|c| c.is_ascii_uppercase())
                && w.chars().any(|c| c.is_ascii_lowercase())
                && w.chars().any(|c| c.is_ascii_digit())
        })
        .collect()
}

/// Asserts that `r` printed none of `secrets`, no token response, no colour code and nothing
/// token-shaped on stderr (`what` names the run in the message).
#[track_caller]
pub fn assert_no_secret(r: &Run, what: &str, secrets: &[&str]) {
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

/// Asserts what every command run with the wrong client secret `secret` shows: exit 3 within
/// 5 s, a message that names the client id used and the secret (never the secret itself), and a
/// journal of at most two token requests, at least one refused, and no API request sent.
#[track_caller]
pub fn assert_wrong_secret_refused(r: &Run, sb: &Sandbox, secret: &str) {
    r.expect_code(3);
    assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    let msg = r.stderr.to_lowercase();
    assert!(
        msg.contains("client id") && msg.contains("secret"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("client id \"{DEFAULT_CLIENT_ID}\"")),
        "says which credentials were used: {}",
        r.stderr
    );
    assert!(!r.stderr.contains(secret), "the secret is never printed");
    let j = sb.sim.journal_counters();
    assert!(j.token_requests <= 2, "{j:?}");
    assert!(j.token_bad_credentials >= 1, "{j:?}");
    assert_eq!(j.api_requests, 0, "{j:?}");
}
