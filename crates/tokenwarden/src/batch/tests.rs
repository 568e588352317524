use super::*;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("tw-batch-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids_count(out: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for v in out {
        if let Some(k) = input::id_key(&v["id"]) {
            *m.entry(k).or_default() += 1;
        }
    }
    m
}

fn jsonl(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":\"r{i}\",\"path\":\"/api/v2/users/u{i}\"}}\n"))
        .collect()
}

async fn ok(r: Record) -> Outcome {
    Outcome::Response {
        status: 200,
        body: format!("{{\"path\":\"{}\"}}", r.path).into(),
    }
}

#[tokio::test]
async fn every_record_once_with_bounded_concurrency() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(500));
    let output = d.0.join("out.jsonl");
    let in_flight = AtomicUsize::new(0);
    let max = AtomicUsize::new(0);
    let progress = BatchProgress::default();
    let report = run(
        &input,
        &output,
        &BatchOptions {
            concurrency: 7,
            ..BatchOptions::default()
        },
        &progress,
        |r| {
            let (in_flight, max) = (&in_flight, &max);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                ok(r).await
            }
        },
    )
    .await
    .unwrap();
    assert_eq!((report.ok, report.failed, report.skipped), (500, 0, 0));
    let out = lines(&output);
    assert_eq!(out.len(), 500);
    let counts = ids_count(&out);
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|c| *c == 1));
    assert_eq!(out[0]["status"], 200);
    assert!(
        out[0]["body"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/api/v2/users/u")
    );
    assert!(max.load(Ordering::SeqCst) <= 7);
    assert_eq!(progress.total_lines.load(Ordering::Relaxed), 500);
}

#[tokio::test]
async fn bad_lines_are_reported_and_the_rest_runs() {
    let d = Dir::new();
    let input = d.file(
        "in.jsonl",
        concat!(
            "{\"id\":\"a\",\"path\":\"/x/a\"}\n",
            "not json\n",
            "\n",
            "{\"id\":\"b\"}\n",
            "{\"id\":\"a\",\"path\":\"/x/a-again\"}\n",
            "{\"id\":\"c\",\"path\":\"/x/c\",\"method\":\"YEET\"}\n",
            "{\"id\":\"d\",\"path\":\"/x/d\"}"
        ),
    );
    let output = d.0.join("out.jsonl");
    let p = BatchProgress::default();
    let r = run(&input, &output, &BatchOptions::default(), &p, ok)
        .await
        .unwrap();
    assert_eq!((r.ok, r.failed, r.invalid), (2, 4, 4));
    let out = lines(&output);
    assert_eq!(out.len(), 6);
    let errors: Vec<(u64, String)> = out
        .iter()
        .filter(|v| v.get("error").is_some())
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let find = |n: u64| errors.iter().find(|(l, _)| *l == n).unwrap().1.clone();
    assert!(find(2).contains("not JSON"));
    assert!(find(4).contains("no path"));
    assert!(find(5).contains("duplicate id"));
    assert!(find(6).contains("unknown method"));
    // Each id appears once: the duplicate is recorded by line, without its id.
    let counts = ids_count(&out);
    assert_eq!(counts.get("a"), Some(&1));
}

#[tokio::test]
async fn abort_stops_at_once_and_resume_completes_exactly_once() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(300));
    let output = d.0.join("out.jsonl");
    let calls = AtomicUsize::new(0);
    let p = BatchProgress::default();
    let opts = BatchOptions {
        concurrency: 4,
        ..BatchOptions::default()
    };
    let r = run(&input, &output, &opts, &p, |rec| {
        let calls = &calls;
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 120 {
                Outcome::Abort(Error::Credentials {
                    status: 401,
                    code: None,
                    description: None,
                    hint: "check".into(),
                })
            } else {
                ok(rec).await
            }
        }
    })
    .await
    .unwrap();
    assert!(r.aborted.unwrap().is_credentials());
    let first = lines(&output).len();
    assert!((100..=124).contains(&first), "{first}");
    // A torn write at the kill point.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    f.write_all(b"{\"id\":\"r299\",\"stat").unwrap();
    drop(f);
    // Without resume, the journal is protected.
    let e = run(&input, &output, &opts, &p, ok).await.unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let p2 = BatchProgress::default();
    let resume = BatchOptions {
        resume: true,
        ..opts.clone()
    };
    let r2 = run(&input, &output, &resume, &p2, ok).await.unwrap();
    assert!(r2.repaired_bytes > 0);
    assert_eq!(r2.skipped as usize, first);
    assert_eq!(r2.ok as usize, 300 - first);
    let counts = ids_count(&lines(&output));
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|c| *c == 1));
    // Resuming a finished job does nothing.
    let r3 = run(&input, &output, &resume, &BatchProgress::default(), ok)
        .await
        .unwrap();
    assert_eq!((r3.ok, r3.skipped), (0, 300));
}

#[tokio::test]
async fn resume_keeps_invalid_lines_recorded_once() {
    let d = Dir::new();
    let input = d.file(
        "in.jsonl",
        "garbage\n{\"id\":1,\"path\":\"/a\"}\n{\"id\":1,\"path\":\"/a\"}\n",
    );
    let output = d.0.join("out.jsonl");
    let opts = BatchOptions {
        resume: true,
        ..BatchOptions::default()
    };
    run(&input, &output, &opts, &BatchProgress::default(), ok)
        .await
        .unwrap();
    let r = run(&input, &output, &opts, &BatchProgress::default(), ok)
        .await
        .unwrap();
    assert_eq!((r.ok, r.failed, r.skipped), (0, 0, 3));
    assert_eq!(lines(&output).len(), 3);
}

#[tokio::test]
async fn ids_input_fills_the_template() {
    let d = Dir::new();
    let input = d.file("ids.txt", "u1\n\nu 2\n");
    let output = d.0.join("out.jsonl");
    let opts = BatchOptions {
        format: InputFormat::Ids {
            path_template: "/api/v2/users/{id}".into(),
            method: http::Method::GET,
        },
        ..BatchOptions::default()
    };
    run(&input, &output, &opts, &BatchProgress::default(), ok)
        .await
        .unwrap();
    let mut paths: Vec<String> = lines(&output)
        .iter()
        .map(|v| v["body"]["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/api/v2/users/u%202", "/api/v2/users/u1"]);
}

#[tokio::test]
async fn retry_failed_runs_only_the_failures_again() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &format!("{}not json\n", jsonl(100)));
    let output = d.0.join("out.jsonl");
    // First run: every 10th record gets a 503, every 25th an error.
    let flaky = |r: Record| async move {
        let n: usize = r.key[1..].parse().unwrap();
        if n.is_multiple_of(25) {
            Outcome::Failed("retries exhausted".into())
        } else if n.is_multiple_of(10) {
            Outcome::Response {
                status: 503,
                body: bytes::Bytes::new(),
            }
        } else {
            ok(r).await
        }
    };
    let r = run(
        &input,
        &output,
        &BatchOptions::default(),
        &BatchProgress::default(),
        flaky,
    )
    .await
    .unwrap();
    assert_eq!((r.ok, r.failed, r.invalid), (88, 13, 1));
    let retried = std::sync::Mutex::new(Vec::new());
    let opts = BatchOptions {
        resume: true,
        retry_failed: true,
        ..BatchOptions::default()
    };
    let r2 = run(&input, &output, &opts, &BatchProgress::default(), |rec| {
        retried.lock().unwrap().push(rec.key.clone());
        ok(rec)
    })
    .await
    .unwrap();
    assert_eq!((r2.ok, r2.failed, r2.skipped), (12, 0, 89));
    assert_eq!(retried.lock().unwrap().len(), 12);
    let out = lines(&output);
    assert_eq!(out.len(), 101);
    let counts = ids_count(&out);
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|c| *c == 1));
    assert_eq!(
        out.iter()
            .filter(|v| v.get("status") == Some(&200.into()))
            .count(),
        100
    );
}
