//! One output, several commands: `batch`, `paginate` and `export` share one ownership protocol
//! (the lock `OUT.twlock`, each other's sidecars), so that `--force` from one never overwrites an
//! output another is writing, and `--resume` never trusts another command's bookkeeping. Outputs
//! that are not regular files (`/dev/null`, `/dev/stdout`) are streams.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokenwarden_sim::SimConfig;

fn sidecar(out: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", out.display()))
}

async fn wait(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_from_one_command_never_overwrites_an_output_another_command_is_writing() {
    const N: usize = 60;
    let sb = Sandbox::start(SimConfig {
        users: N,
        // A second or so of work for the first run: the second starts well within it.
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let out = sb.path("out.jsonl");
    let o = out.to_str().unwrap();

    // A batch is writing: paginate --force (and export --force) fail at once, exit 4.
    let mut first = sb.tw();
    first
        .args(["batch", "-i", input.to_str().unwrap(), "-o", o, "-c", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let first = first.spawn().unwrap();
    until_written(&out).await;
    let before = sb.sim.journal_counters().api_requests;
    for args in [
        vec!["paginate", "/api/v2/users", "--out", o, "--force"],
        vec!["paginate", "/api/v2/users", "--out", o, "--resume"],
        vec![
            "export",
            "conversations",
            "--interval",
            "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
            "--out",
            o,
            "--force",
        ],
    ] {
        let r = run(sb.tw(), &args).await;
        r.expect_code(4);
        assert!(
            r.stderr.contains(&format!(
                "output {o}: another tokenwarden run is writing it"
            )),
            "{args:?}: {}",
            r.stderr
        );
        // The loser is not told to resume what another run holds; the lock file is not named.
        assert!(!r.stderr.contains("--resume"), "{}", r.stderr);
        assert!(!r.stderr.contains("twlock"), "{}", r.stderr);
    }
    assert!(wait(first).await.success());
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &record_ids(N));
    assert!(!sidecar(&out, ".twstate").exists());
    assert!(
        !sidecar(&out, ".twlock").exists(),
        "the lock file goes with its run"
    );
    let _ = before;

    // paginate is writing: batch --force fails at once, exit 4.
    let users = sb.path("users.jsonl");
    let u = users.to_str().unwrap();
    let mut first = sb.tw();
    first
        .args(["paginate", "/api/v2/users", "--page-size", "1", "--out", u])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let first = first.spawn().unwrap();
    until_written(&users).await;
    let r = run(
        sb.tw(),
        &["batch", "-i", input.to_str().unwrap(), "-o", u, "--force"],
    )
    .await;
    r.expect_code(4);
    assert!(
        r.stderr.contains(&format!(
            "output {u}: another tokenwarden run is writing it"
        )),
        "{}",
        r.stderr
    );
    assert!(wait(first).await.success());
    let items = read_jsonl(&users);
    assert_eq!(items.len(), N, "paginate's output is whole");
    assert!(items.iter().all(|v| v.get("status").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_never_trusts_another_commands_sidecar_or_a_changed_file() {
    const N: usize = 50;
    let sb = Sandbox::start(SimConfig {
        users: N,
        ..SimConfig::default()
    })
    .await;
    let input = sb.write("in.jsonl", &user_gets(N));
    let i = input.to_str().unwrap();
    let out = sb.path("out.jsonl");
    let o = out.to_str().unwrap();

    // paginate wrote it; batch --force replaces it and paginate's state with it.
    run(sb.tw(), &["paginate", "/api/v2/users", "--out", o])
        .await
        .ok();
    assert!(sidecar(&out, ".twstate").exists());
    run(sb.tw(), &["batch", "-i", i, "-o", o, "--force"])
        .await
        .ok();
    assert!(
        !sidecar(&out, ".twstate").exists(),
        "--force removes every sidecar"
    );
    let batch_lines = std::fs::read_to_string(&out).unwrap();
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", o, "--resume"],
    )
    .await;
    r.expect_code(2);
    assert!(!r.stderr.contains("already complete"), "{}", r.stderr);
    assert!(
        r.stderr.contains("written by tokenwarden batch"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        batch_lines,
        "not touched"
    );

    // batch wrote it; paginate --force replaces it and the job file with it.
    run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", o, "--force"],
    )
    .await
    .ok();
    assert!(
        !sidecar(&out, ".twjob").exists(),
        "--force removes every sidecar"
    );
    let users = std::fs::read_to_string(&out).unwrap();
    sb.sim.reset_journal();
    let r = run(sb.tw(), &["batch", "-i", i, "-o", o, "--resume"]).await;
    r.expect_code(2);
    assert!(!r.stderr.contains("skipped"), "{}", r.stderr);
    assert!(r.stderr.contains("paginate or export"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().api_requests, 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), users, "not touched");

    // A sidecar left beside another command's output (an older version, a copy): refused too.
    std::fs::write(sidecar(&out, ".twjob"), "{}").unwrap();
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", o, "--resume"],
    )
    .await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("written by tokenwarden batch"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(sidecar(&out, ".twjob")).unwrap();

    // The file was replaced behind the state's back (same length, other bytes): refused.
    let swapped = users.replace("user-", "USER-");
    assert_eq!(swapped.len(), users.len());
    std::fs::write(&out, &swapped).unwrap();
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", o, "--resume"],
    )
    .await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("changed outside this export") && !r.stderr.contains("already complete"),
        "{}",
        r.stderr
    );

    // A batch output edited behind its job file's back: refused, not "skipped".
    let job = sb.path("job.jsonl");
    let j = job.to_str().unwrap();
    run(sb.tw(), &["batch", "-i", i, "-o", j]).await.ok();
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replacen("\"r-", "\"x-", 1)).unwrap();
    let r = run(sb.tw(), &["batch", "-i", i, "-o", j, "--resume"]).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("changed outside this job"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_to_dev_stdout_dev_null_or_a_fifo_is_a_stream_not_refused() {
    let sb = Sandbox::start(SimConfig {
        users: 30,
        ..SimConfig::default()
    })
    .await;
    let r = run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", "/dev/stdout"],
    )
    .await;
    r.ok();
    assert_eq!(jsonl(&r.stdout).len(), 30, "{}", r.stderr);
    run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", "/dev/null"],
    )
    .await
    .ok();
    assert!(!Path::new("/dev/null.twstate").exists());
    let r = run(
        sb.tw(),
        &[
            "paginate",
            "/api/v2/users",
            "--out",
            "/dev/null",
            "--resume",
        ],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);

    let fifo = sb.path("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    run(
        sb.tw(),
        &["paginate", "/api/v2/users", "--out", fifo.to_str().unwrap()],
    )
    .await
    .ok();
    assert_eq!(jsonl(&reader.join().unwrap()).len(), 30);
    assert_eq!(
        // (The sandbox's token cache, where every command keeps its token, is not beside it.)
        dir_names(sb.dir.path())
            .into_iter()
            .filter(|n| n != "tw-cache")
            .collect::<Vec<_>>(),
        ["fifo"],
        "nothing kept beside a stream"
    );
}
