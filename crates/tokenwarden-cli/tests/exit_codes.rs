//! The exit-status table (`exit.rs`, the README, `--help`), walked for every command: at least one
//! case for each status the command can produce, on the built binary.
//!
//! | 0 | everything succeeded |
//! | 1 | the request, or some records, failed (an HTTP error after retries) |
//! | 2 | what was typed is wrong: a flag or its value, a file named on the command line that is missing or unreadable, an output directory that does not exist, bad inline JSON |
//! | 3 | credentials or configuration files |
//! | 4 | network, server or disk failure that outlasted the retries |
//! | 130 | interrupted |
//!
//! Each test runs every case of one command and then reports every mismatch at once.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::Command;
use std::time::Duration;
use tokenwarden_sim::{JobOutcome, SimConfig};

/// The cases of one command: the statuses walked and the mismatches found.
struct Walk {
    command: &'static str,
    walked: BTreeSet<i32>,
    mismatches: Vec<String>,
}

impl Walk {
    fn new(command: &'static str) -> Walk {
        Walk {
            command,
            walked: BTreeSet::new(),
            mismatches: Vec::new(),
        }
    }

    /// Records that `case` should exit `want` and what it did.
    fn case(&mut self, case: &str, want: i32, r: &Run) {
        self.walked.insert(want);
        if r.code != want {
            let stderr: String = r.stderr.lines().take(4).collect::<Vec<_>>().join("\n    ");
            self.mismatches.push(format!(
                "`{} {case}` exited {} where the table says {want}\n    {stderr}",
                self.command, r.code
            ));
        }
    }

    /// Asserts that every status in `statuses` was walked and every case matched.
    #[track_caller]
    fn done(self, statuses: &[i32]) {
        let want: BTreeSet<i32> = statuses.iter().copied().collect();
        assert_eq!(self.walked, want, "statuses walked for `{}`", self.command);
        assert!(
            self.mismatches.is_empty(),
            "{} case(s) off the table:\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }
}

/// Runs `cmd args` until it has connected to `hole` (so it is mid-request), then Ctrl-C.
async fn interrupted_mid_request(cmd: Command, args: &[&str], hole: BlackHole) -> Run {
    let child = spawn(cmd, args);
    tokio::task::spawn_blocking(move || {
        let connected = hole.accepted.recv_timeout(Duration::from_secs(5));
        assert!(connected.is_ok(), "the command never reached the server");
        interrupt(child)
    })
    .await
    .unwrap()
}

/// Tokens from the simulator; an API that never answers.
fn api_never_answers(sb: &Sandbox, hole: &BlackHole) -> Command {
    endpoints(sb, &sb.sim.token_url(), &hole.base)
}

/// A token endpoint that answers 200 with something that is not a token (a server fault).
fn token_endpoint_answers_garbage(sb: &Sandbox) -> Command {
    let garbage = fixed_answer(200, r#"{"not":"a token"}"#);
    endpoints(sb, &format!("{garbage}/oauth/token"), &sb.sim.base_url())
}

/// The wrong client secret: the token endpoint refuses the client.
fn wrong_secret(sb: &Sandbox) -> Command {
    sb.tw_with_secret("wrong-secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("token");
    w.case("", 0, &run(sb.tw(), &["token", "--no-cache"]).await);
    w.case("--bogus", 2, &run(sb.tw(), &["token", "--bogus"]).await);
    w.case(
        "--token-url not-a-url",
        2,
        &run(
            endpoints(&sb, "not-a-url", &sb.sim.base_url()),
            &["token", "--no-cache"],
        )
        .await,
    );
    w.case(
        "(wrong secret)",
        3,
        &run(wrong_secret(&sb), &["token", "--no-cache"]).await,
    );
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(
            token_endpoint_answers_garbage(&sb),
            &["token", "--no-cache"],
        )
        .await,
    );
    let hole = black_hole();
    let cmd = endpoints(
        &sb,
        &format!("{}/oauth/token", hole.base),
        &sb.sim.base_url(),
    );
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &["token", "--no-cache"], hole).await,
    );
    w.done(&[0, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_keeps_the_table() {
    let sb = Sandbox::start(SimConfig {
        forbidden_paths: vec!["/api/v2/tokens/me".into()],
        ..SimConfig::default()
    })
    .await;
    let ok = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("check");
    w.case("", 0, &run(ok.tw(), &["check"]).await);
    w.case("(403)", 1, &run(sb.tw(), &["check"]).await);
    w.case(
        "--require-scope",
        2,
        &run(ok.tw(), &["check", "--require-scope"]).await,
    );
    w.case(
        "--region eu-west-9",
        2,
        &run(ok.bare(), &["--region", "eu-west-9", "check"]).await,
    );
    w.case(
        "(wrong secret)",
        3,
        &run(wrong_secret(&ok), &["check"]).await,
    );
    w.case(
        "--require-scope missing:scope",
        3,
        &run(ok.tw(), &["check", "--require-scope", "missing:scope"]).await,
    );
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(token_endpoint_answers_garbage(&ok), &["check"]).await,
    );
    w.case(
        "(stdout on a full disk)",
        4,
        &run_to_full_disk(ok.tw(), &["check"]).await,
    );
    let hole = black_hole();
    let cmd = api_never_answers(&ok, &hole);
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &["check"], hole).await,
    );
    w.done(&[0, 1, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("request");
    let user = "/api/v2/users/user-000001";
    w.case(
        "GET user",
        0,
        &run(sb.tw(), &["request", "GET", user]).await,
    );
    w.case(
        "GET (404)",
        1,
        &run(sb.tw(), &["request", "GET", "/api/v2/users/nobody"]).await,
    );
    w.case("FETCH", 2, &run(sb.tw(), &["request", "FETCH", user]).await);
    w.case(
        "--data '{nope'",
        2,
        &run(sb.tw(), &["request", "POST", user, "--data", "{nope"]).await,
    );
    w.case(
        "--data @missing.json",
        2,
        &run(
            sb.tw(),
            &["request", "POST", user, "--data", "@missing.json"],
        )
        .await,
    );
    w.case(
        "-H no-colon",
        2,
        &run(sb.tw(), &["request", "GET", user, "-H", "no-colon"]).await,
    );
    w.case(
        "--client-secret-stdin --data @-",
        2,
        &run_with_stdin(
            {
                let mut c = sb.connected();
                c.env("GENESYSCLOUD_OAUTHCLIENT_ID", "tw-client").args([
                    "request",
                    "POST",
                    user,
                    "--client-secret-stdin",
                    "--data",
                    "@-",
                ]);
                c
            },
            Some("tw-secret\n{}\n".into()),
        )
        .await,
    );
    w.case(
        "(wrong secret)",
        3,
        &run(wrong_secret(&sb), &["request", "GET", user]).await,
    );
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(
            token_endpoint_answers_garbage(&sb),
            &["request", "GET", user],
        )
        .await,
    );
    w.case(
        "(stdout on a full disk)",
        4,
        &run_to_full_disk(sb.tw(), &["request", "GET", user]).await,
    );
    let hole = black_hole();
    let cmd = api_never_answers(&sb, &hole);
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &["request", "GET", user], hole).await,
    );
    w.done(&[0, 1, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_keeps_the_table() {
    let sb = Sandbox::start(SimConfig {
        users: 30,
        ..SimConfig::default()
    })
    .await;
    let mut w = Walk::new("paginate");
    w.case(
        "/api/v2/users",
        0,
        &run(sb.tw(), &["paginate", "/api/v2/users"]).await,
    );
    w.case(
        "/api/v2/nowhere (404)",
        1,
        &run(sb.tw(), &["paginate", "/api/v2/nowhere"]).await,
    );
    w.case(
        "--style sideways",
        2,
        &run(
            sb.tw(),
            &["paginate", "/api/v2/users", "--style", "sideways"],
        )
        .await,
    );
    w.case(
        "--body '{bad'",
        2,
        &run(
            sb.tw(),
            &[
                "paginate",
                "/api/v2/analytics/conversations/details/query",
                "--body",
                "{bad",
            ],
        )
        .await,
    );
    w.case(
        "--out no/such/dir/users.jsonl",
        2,
        &run(
            sb.tw(),
            &[
                "paginate",
                "/api/v2/users",
                "--out",
                "no/such/dir/users.jsonl",
            ],
        )
        .await,
    );
    w.case(
        "(wrong secret)",
        3,
        &run(wrong_secret(&sb), &["paginate", "/api/v2/users"]).await,
    );
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(
            token_endpoint_answers_garbage(&sb),
            &["paginate", "/api/v2/users"],
        )
        .await,
    );
    let hole = black_hole();
    let cmd = api_never_answers(&sb, &hole);
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &["paginate", "/api/v2/users"], hole).await,
    );
    w.done(&[0, 1, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_keeps_the_table() {
    let config = SimConfig {
        conversations: 20,
        job_duration: Duration::from_millis(50),
        ..SimConfig::default()
    };
    let sb = Sandbox::start(config.clone()).await;
    let failing = Sandbox::start(SimConfig {
        job_outcome: JobOutcome::Failed,
        ..config
    })
    .await;
    let interval = "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z";
    let export = ["export", "conversations", "--interval", interval];
    let mut w = Walk::new("export conversations");
    w.case("--interval ...", 0, &run(sb.tw(), &export).await);
    w.case("(job FAILED)", 1, &run(failing.tw(), &export).await);
    w.case(
        "--interval yesterday",
        2,
        &run(
            sb.tw(),
            &["export", "conversations", "--interval", "yesterday"],
        )
        .await,
    );
    w.case(
        "--filter '{bad'",
        2,
        &run(
            sb.tw(),
            &[
                "export",
                "conversations",
                "--interval",
                interval,
                "--filter",
                "{bad",
            ],
        )
        .await,
    );
    w.case("(wrong secret)", 3, &run(wrong_secret(&sb), &export).await);
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(token_endpoint_answers_garbage(&sb), &export).await,
    );
    let hole = black_hole();
    let cmd = api_never_answers(&sb, &hole);
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &export, hole).await,
    );
    w.done(&[0, 1, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_keeps_the_table() {
    let sb = Sandbox::start(SimConfig {
        users: 10,
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(5));
    let with_404 = sb.write(
        "404.jsonl",
        "{\"id\":\"a\",\"path\":\"/api/v2/users/user-000001\"}\n{\"id\":\"b\",\"path\":\"/api/v2/users/nobody\"}\n",
    );
    let ids = sb.write("ids.txt", "user-000001\n");
    let input = input.to_str().unwrap();
    let mut out_n = 0;
    let mut out = || {
        out_n += 1;
        sb.path(&format!("out-{out_n}.jsonl"))
            .to_string_lossy()
            .into_owned()
    };
    let mut w = Walk::new("batch");
    w.case(
        "-i in.jsonl",
        0,
        &run(sb.tw(), &["batch", "-i", input, "-o", &out()]).await,
    );
    w.case(
        "(a record answered 404)",
        1,
        &run(
            sb.tw(),
            &["batch", "-i", with_404.to_str().unwrap(), "-o", &out()],
        )
        .await,
    );
    w.case(
        "--rate 50",
        2,
        &run(
            sb.tw(),
            &["batch", "-i", input, "-o", &out(), "--rate", "50"],
        )
        .await,
    );
    w.case(
        "--path-template /api/v2/users",
        2,
        &run(
            sb.tw(),
            &[
                "batch",
                "--ids",
                ids.to_str().unwrap(),
                "--path-template",
                "/api/v2/users",
                "-o",
                &out(),
            ],
        )
        .await,
    );
    w.case(
        "-i missing.jsonl",
        2,
        &run(sb.tw(), &["batch", "-i", "missing.jsonl", "-o", &out()]).await,
    );
    w.case(
        "-o no/such/dir/out.jsonl",
        2,
        &run(
            sb.tw(),
            &["batch", "-i", input, "-o", "no/such/dir/out.jsonl"],
        )
        .await,
    );
    w.case(
        "(wrong secret)",
        3,
        &run(wrong_secret(&sb), &["batch", "-i", input, "-o", &out()]).await,
    );
    w.case(
        "(token endpoint answers garbage)",
        4,
        &run(
            token_endpoint_answers_garbage(&sb),
            &["batch", "-i", input, "-o", &out()],
        )
        .await,
    );
    let hole = black_hole();
    let cmd = api_never_answers(&sb, &hole);
    let o = out();
    w.case(
        "(Ctrl-C)",
        130,
        &interrupted_mid_request(cmd, &["batch", "-i", input, "-o", &o], hole).await,
    );
    w.done(&[0, 1, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let broken = sb.write("broken.toml", "[default\nregion = \"eu-west-1\"\n");
    let mut w = Walk::new("config");
    w.case("", 0, &run(sb.tw(), &["config"]).await);
    w.case("--json", 0, &run(sb.tw(), &["config", "--json"]).await);
    w.case(
        "--config missing.toml",
        2,
        &run(sb.tw(), &["config", "--config", "missing.toml"]).await,
    );
    w.case(
        "--region eu-west-9",
        2,
        &run(sb.bare(), &["config", "--region", "eu-west-9"]).await,
    );
    w.case(
        "(broken config file)",
        3,
        &run(sb.tw(), &["config", "--config", broken.to_str().unwrap()]).await,
    );
    let mut bad_env = sb.bare();
    bad_env.env("GENESYSCLOUD_REGION", "eu-west-9");
    w.case(
        "(GENESYSCLOUD_REGION=eu-west-9)",
        3,
        &run(bad_env, &["config"]).await,
    );
    w.case(
        "(stdout on a full disk)",
        4,
        &run_to_full_disk(sb.tw(), &["config"]).await,
    );
    w.done(&[0, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("sim");
    w.case("--help", 0, &run(sb.bare(), &["sim", "--help"]).await);
    w.case(
        "--sim-client no-colon",
        2,
        &run(sb.bare(), &["sim", "--sim-client", "no-colon"]).await,
    );
    w.case(
        "--token-ttl forever",
        2,
        &run(sb.bare(), &["sim", "--token-ttl", "forever"]).await,
    );
    w.case(
        "--client-id x",
        2,
        &run(sb.bare(), &["sim", "--client-id", "x"]).await,
    );
    // The port is taken (by this test).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    w.case(
        "--port (in use)",
        4,
        &run(sb.bare(), &["sim", "--port", &port]).await,
    );
    let r = tokio::task::spawn_blocking({
        let cmd = sb.bare();
        move || {
            let (child, _stdout, first) = spawn_standalone_sim(cmd);
            assert!(
                first.starts_with("tokenwarden simulator listening on"),
                "{first}"
            );
            let mut child = child;
            let _ = child.stderr.take();
            interrupt(child)
        }
    })
    .await
    .unwrap();
    // Ctrl-C is how a server is stopped (its banner says so): a clean stop, not an interruption.
    w.case("(Ctrl-C)", 0, &r);
    w.done(&[0, 2, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("demo");
    w.case(
        "--requests 200",
        0,
        &run(sb.bare(), &["demo", "--requests", "200", "--no-progress"]).await,
    );
    w.case(
        "--output no/such/dir/out.jsonl",
        2,
        &run(sb.bare(), &["demo", "--output", "no/such/dir/out.jsonl"]).await,
    );
    w.case(
        "--region eu-west-1 (before the command)",
        2,
        &run(sb.bare(), &["--region", "eu-west-1", "demo"]).await,
    );
    // The server revokes every token at its first use: even fresh tokens are refused.
    w.case(
        "--revoke-every 1",
        3,
        &run(
            sb.bare(),
            &[
                "demo",
                "--requests",
                "20",
                "--revoke-every",
                "1",
                "--no-progress",
            ],
        )
        .await,
    );
    w.case(
        "--output /dev/full",
        4,
        &run(
            sb.bare(),
            &[
                "demo",
                "--requests",
                "200",
                "--output",
                "/dev/full",
                "--no-progress",
            ],
        )
        .await,
    );
    let r = tokio::task::spawn_blocking({
        let cmd = sb.bare();
        move || {
            // Long enough to be interrupted (the demo paces at the simulator's 1,500 requests/s), small
            // enough that the simulator's users are made at once.
            let mut child = spawn(cmd, &["demo", "--requests", "100000", "--no-progress"]);
            // The first note says the demo is running.
            let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
            let mut line = String::new();
            err.read_line(&mut line).unwrap();
            assert!(line.contains("tokenwarden demo"), "{line}");
            interrupt(child)
        }
    })
    .await
    .unwrap();
    w.case("(Ctrl-C)", 130, &r);
    w.done(&[0, 2, 3, 4, 130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_keeps_the_table() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut w = Walk::new("completions");
    w.case("bash", 0, &run(sb.bare(), &["completions", "bash"]).await);
    w.case("tcsh", 2, &run(sb.bare(), &["completions", "tcsh"]).await);
    w.case(
        "--scope x bash",
        2,
        &run(sb.bare(), &["--scope", "x", "completions", "bash"]).await,
    );
    w.case(
        "zsh (stdout on a full disk)",
        4,
        &run_to_full_disk(sb.bare(), &["completions", "zsh"]).await,
    );
    w.done(&[0, 2, 4]);
}
