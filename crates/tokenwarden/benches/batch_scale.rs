//! Batch engine at scale: how long a resume of a 1,000,000-record job that is 90% done takes to
//! reach its first new request, and how memory grows with input size. The journal is made by the
//! engine itself (a first run stopped after 90% of the records), job file included.
//!
//! Run with `cargo bench -p tokenwarden --bench batch_scale` (add `-- 200000` for a smaller run).
//! The executor answers at once, so the numbers are the engine's own cost.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokenwarden::jobs::batch::{self, BatchOptions, Input, Outcome};
use tokio::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn write_input(path: &std::path::Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            "{{\"id\":\"rec-{i:07}\",\"method\":\"GET\",\"path\":\"/api/v2/users/user-{:06}\"}}",
            i % 1_000_000
        )
        .unwrap();
    }
}

/// What a real run records per user: a status and a body of a few hundred bytes.
fn user_body(path: &str) -> bytes::Bytes {
    let user = path.rsplit('/').next().unwrap_or_default();
    let i: usize = user.trim_start_matches("user-").parse().unwrap_or(0);
    format!(
        "{{\"id\":\"{user}\",\"name\":\"User {i}\",\"email\":\"user{i}@example.com\",\"state\":\"active\",\"version\":1,\"selfUri\":\"/api/v2/users/{user}\"}}"
    )
    .into()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn base() -> tokenwarden::ApiBase {
    tokenwarden::ApiBase::parse("http://127.0.0.1:9").unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The measured resume runs in a process of its own, so that its memory is its own.
    if let [flag, dir, n] = &args[..]
        && flag == "--resume-in"
    {
        return resume(std::path::Path::new(dir), n.parse().unwrap());
    }
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("tw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jsonl");
    let output = dir.join("out.jsonl");
    write_input(&input, n);

    // The job so far: a run of the engine stopped (as by rejected credentials) after 90% of the
    // records, then a torn last line, as a kill -9 leaves.
    let done = n * 9 / 10;
    let answered = AtomicUsize::new(0);
    let first = runtime()
        .block_on(batch::run(
            &Input::Path(input),
            &output,
            &BatchOptions {
                concurrency: 32,
                ..BatchOptions::new(base())
            },
            |_| {},
            |r| {
                let answered = &answered;
                async move {
                    if answered.fetch_add(1, Ordering::Relaxed) >= done {
                        return Outcome::Abort(tokenwarden::Error::Internal("stop".into()));
                    }
                    Outcome::Response {
                        status: 200,
                        body: user_body(&r.path),
                    }
                }
            },
        ))
        .unwrap();
    assert_eq!(first.ok as usize, done);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap()
        .write_all(b"{\"id\":\"rec-09")
        .unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--resume-in", dir.to_str().unwrap(), &n.to_string()])
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success());
}

/// Resumes the job in `dir` and reports how long it took to get going and what memory it used.
fn resume(dir: &std::path::Path, n: usize) {
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let rss_before = peak_rss_kib();
    let start = Instant::now();
    let first_request: Mutex<Option<Duration>> = Mutex::new(None);
    let report = runtime()
        .block_on(batch::run(
            &Input::Path(input),
            &output,
            &BatchOptions {
                resume: true,
                concurrency: 32,
                ..BatchOptions::new(base())
            },
            |_| {},
            |r| {
                let first_request = &first_request;
                async move {
                    first_request
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| start.elapsed());
                    Outcome::Response {
                        status: 200,
                        body: user_body(&r.path),
                    }
                }
            },
        ))
        .unwrap();
    let total = start.elapsed();
    let first = first_request.lock().unwrap().unwrap_or_default();
    let recorded = report.run.done_earlier as usize;
    println!(
        "batch resume, {n} records, {recorded} already done (output {} MB):",
        std::fs::metadata(&output)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );
    println!("  time to first new request: {:.2} s", first.as_secs_f64());
    println!(
        "  whole resume: {:.2} s ({} skipped, {} run, {:.0} records/s for the new ones)",
        total.as_secs_f64(),
        report.run.done_earlier,
        report.ok,
        report.ok as f64 / (total - first).as_secs_f64().max(1e-9)
    );
    println!(
        "  peak RSS: {} MiB (before the run: {} MiB)",
        peak_rss_kib() / 1024,
        rss_before / 1024
    );
    assert_eq!(report.run.done_earlier as usize, n * 9 / 10);
    assert_eq!(report.ok as usize, n - n * 9 / 10);
}
