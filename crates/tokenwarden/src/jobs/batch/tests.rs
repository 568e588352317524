use super::*;
use crate::jobs::{JobError, Refusal, Step};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, text: &str) -> Input {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        Input::Path(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn base() -> ApiBase {
    ApiBase::parse("http://127.0.0.1:9").unwrap()
}

/// A directory with an input of `n` records (`in.jsonl`), and the output's path in it.
fn job(n: usize) -> (Dir, Input, PathBuf) {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(n));
    let output = d.path("out.jsonl");
    (d, input, output)
}

fn opts() -> BatchOptions {
    BatchOptions::new(base())
}

/// A batch's API base is the typed one, normalised once: the client's, by reference, or one of
/// its own.
#[test]
fn the_options_take_the_typed_api_base() {
    let client_base = ApiBase::parse("HTTPS://API.example.com:443").unwrap();
    let options = BatchOptions::new(&client_base);
    assert_eq!(options.api_base, client_base);
    assert_eq!(options.api_base.as_str(), "https://api.example.com/");
    assert_eq!(
        BatchOptions::new(base()).api_base.as_str(),
        "http://127.0.0.1:9/"
    );
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

/// [`run`] with a progress nobody reads.
async fn go<F, Fut>(
    input: &Input,
    output: &Path,
    options: &BatchOptions,
    exec: F,
) -> Result<BatchReport, JobError>
where
    F: Fn(Record) -> Fut,
    Fut: Future<Output = Outcome>,
{
    run(input, output, options, |_| {}, exec).await
}

/// An executor that answers `answer(n)` (`n`: how many records were sent before this one, counted
/// in `sent`), or 200 where that is `None`.
fn nth<'a>(
    sent: &'a AtomicUsize,
    answer: impl Fn(usize) -> Option<Outcome> + 'a,
) -> impl Fn(Record) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + 'a>> {
    move |rec| {
        let answer = answer(sent.fetch_add(1, Ordering::SeqCst));
        Box::pin(async move {
            match answer {
                Some(outcome) => outcome,
                None => ok(rec).await,
            }
        })
    }
}

fn credentials() -> Error {
    Error::Credentials {
        status: 401,
        code: None,
        description: None,
        hint: "check".into(),
    }
}

#[tokio::test]
async fn every_record_once_with_bounded_concurrency() {
    let (_dir, input, output) = job(500);
    let in_flight = AtomicUsize::new(0);
    let max = AtomicUsize::new(0);
    let report = run(
        &input,
        &output,
        &BatchOptions {
            concurrency: 7,
            ..opts()
        },
        |_| {},
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
    assert_eq!(
        (report.ok, report.failed, report.run.done_earlier),
        (500, 0, 0)
    );
    assert!(report.stopped.is_none());
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
}

#[tokio::test]
async fn a_regular_files_lines_are_counted_for_the_percentage() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &format!("\n{}  \n", jsonl(40)));
    let progress = BatchProgress::default();
    // The last record waits until the count is in, so the count is seen during the run.
    run(
        &input,
        &d.path("out.jsonl"),
        &opts(),
        |e| progress.apply(&e),
        |r| {
            let progress = &progress;
            async move {
                if r.key == "r39" {
                    while progress.total_lines.get().is_none() {
                        tokio::task::yield_now().await;
                    }
                }
                ok(r).await
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        progress.total_lines.get(),
        Some(&40),
        "blank lines are not counted"
    );
    assert_eq!(progress.done(), 40);
}

#[tokio::test]
async fn the_events_add_up_to_the_report() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &format!("{}not json\n", jsonl(30)));
    let output = d.path("out.jsonl");
    // A first run stops after 10 records; the resume skips what it recorded.
    let calls = AtomicUsize::new(0);
    go(
        &input,
        &output,
        &opts(),
        nth(&calls, |n| (n >= 10).then(|| Outcome::Abort(credentials()))),
    )
    .await
    .unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let resume = BatchOptions {
        resume: true,
        ..opts()
    };
    let told = |e| events.lock().unwrap().push(e);
    let r = run(&input, &output, &resume, told, |r| {
        let events = &events;
        async move {
            // The last record waits for the count, so it is told during the run.
            while r.key == "r29" && !events.lock().unwrap().contains(&Event::Total { lines: 31 }) {
                tokio::task::yield_now().await;
            }
            match r.key.ends_with('7') {
                true => Outcome::Response {
                    status: 404,
                    body: "{}".into(),
                },
                false => ok(r).await,
            }
        }
    })
    .await
    .unwrap();
    let events = events.into_inner().unwrap();
    let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    assert!(r.run.done_earlier > 0 && r.failed >= 2, "{r:?}");
    assert_eq!((r.invalid, r.ok + r.failed + r.run.done_earlier), (1, 31));
    assert_eq!(count(&|e| *e == Event::Skipped), r.run.done_earlier);
    assert_eq!(
        count(&|e| matches!(e, Event::Recorded { ok: true, .. })),
        r.ok
    );
    assert_eq!(
        count(&|e| matches!(e, Event::Recorded { ok: false, .. })),
        r.failed
    );
    let invalid = |e: &Event| matches!(e, Event::Recorded { invalid: true, .. });
    assert_eq!(count(&invalid), r.invalid);
    assert_eq!(count(&|e| matches!(e, Event::Total { .. })), 1);
    // Added up, they are the live counters.
    let progress = BatchProgress::default();
    events.iter().for_each(|e| progress.apply(e));
    assert_eq!(progress.total_lines.get(), Some(&31));
    assert_eq!((progress.done(), progress.ran()), (31, r.ok + r.failed));
    assert_eq!(progress.invalid.load(Ordering::Relaxed), 1);
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
    let output = d.path("out.jsonl");
    let r = go(&input, &output, &opts(), ok).await.unwrap();
    assert_eq!((r.ok, r.failed, r.invalid), (2, 4, 4));
    assert_eq!(r.requests(), 2);
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
async fn hostile_paths_are_bad_lines_and_never_reach_the_executor() {
    let d = Dir::new();
    let input = d.file(
        "in.jsonl",
        concat!(
            "{\"id\":\"back\",\"method\":\"POST\",\"path\":\"/\\\\evil.example:9/x\",\"body\":{\"s\":1}}\n",
            "{\"id\":\"tab\",\"path\":\"/\\t/evil.example/x\"}\n",
            "{\"id\":\"nl\",\"path\":\"/\\n/evil.example/x\"}\n",
            "{\"id\":\"good\",\"path\":\"/api/v2/users/u1\"}\n",
        ),
    );
    let output = d.path("out.jsonl");
    let sent = std::sync::Mutex::new(Vec::new());
    let r = go(&input, &output, &opts(), |rec| {
        sent.lock().unwrap().push(rec.url.clone());
        ok(rec)
    })
    .await
    .unwrap();
    assert_eq!((r.ok, r.invalid), (1, 3));
    let sent = sent.into_inner().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].as_str(), "http://127.0.0.1:9/api/v2/users/u1");
    for v in lines(&output).iter().filter(|v| v.get("error").is_some()) {
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("not sent"), "{e}");
    }
}

#[tokio::test]
async fn a_line_over_the_cap_is_a_bad_line_reported_by_number_not_echoed() {
    let d = Dir::new();
    let huge = format!(
        "{{\"id\":\"huge\",\"path\":\"/x\",\"body\":\"{}\"}}",
        "S".repeat(5000)
    );
    let input = d.file(
        "in.jsonl",
        &format!(
            "{{\"id\":\"a\",\"path\":\"/x/a\"}}\n{huge}\n{{\"id\":\"b\",\"path\":\"/x/b\"}}\n"
        ),
    );
    let output = d.path("out.jsonl");
    let r = go(
        &input,
        &output,
        &BatchOptions {
            max_line_bytes: 1000,
            ..opts()
        },
        ok,
    )
    .await
    .unwrap();
    assert_eq!((r.ok, r.invalid), (2, 1));
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(!text.contains("SSSS"), "the long line is not echoed");
    let bad = lines(&output).into_iter().find(|v| v["line"] == 2).unwrap();
    let e = bad["error"].as_str().unwrap();
    let expected = format!(
        "line 2: {} bytes long, over the limit of 1000 bytes",
        huge.len()
    );
    assert!(e.starts_with(&expected), "{e}");
}

#[tokio::test]
async fn recorded_bodies_and_errors_are_scrubbed_of_secrets() {
    let secret = "batch-test-secret-Zq81x";
    crate::redact::register_secret(secret);
    let (_dir, input, output) = job(2);
    go(&input, &output, &opts(), |r| async move {
        if r.key == "r0" {
            Outcome::Response {
                status: 200,
                body: format!("{{\"headers\":{{\"authorization\":\"Bearer {secret}\"}}}}").into(),
            }
        } else {
            Outcome::Failed(format!("server said: {secret}"))
        }
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(!text.contains(secret), "{text}");
    let out = lines(&output);
    let r0 = out.iter().find(|v| v["id"] == "r0").unwrap();
    assert_eq!(r0["body"]["headers"]["authorization"], "Bearer [REDACTED]");
    let r1 = out.iter().find(|v| v["id"] == "r1").unwrap();
    assert_eq!(r1["error"], "server said: [REDACTED]");
}

#[tokio::test]
async fn abort_stops_at_once_and_resume_completes_exactly_once() {
    let (_dir, input, output) = job(300);
    let calls = AtomicUsize::new(0);
    let opts = BatchOptions {
        concurrency: 4,
        ..opts()
    };
    let r = go(
        &input,
        &output,
        &opts,
        nth(&calls, |n| {
            (n == 120).then(|| Outcome::Abort(credentials()))
        }),
    )
    .await
    .unwrap();
    assert!(matches!(r.stopped, Some(StopReason::Aborted(ref e)) if e.is_credentials()));
    assert!(!r.run.resumed);
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
    let e = go(&input, &output, &opts, ok).await.unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Refused {
                reason: Refusal::Exists,
                ..
            }
        ),
        "{e}"
    );
    let resume = BatchOptions {
        resume: true,
        ..opts.clone()
    };
    let r2 = go(&input, &output, &resume, ok).await.unwrap();
    assert!(r2.run.cut_bytes > 0);
    assert_eq!(r2.run.done_earlier as usize, first);
    assert_eq!(r2.ok as usize, 300 - first);
    assert!(r2.run.resumed);
    assert_eq!(r2.run.done, r2.ok + r2.failed);
    let counts = ids_count(&lines(&output));
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|c| *c == 1));
    // Resuming a finished job does nothing.
    let r3 = go(&input, &output, &resume, ok).await.unwrap();
    assert_eq!((r3.ok, r3.run.done_earlier), (0, 300));
}

#[tokio::test]
async fn resume_keeps_invalid_lines_recorded_once() {
    let d = Dir::new();
    let input = d.file(
        "in.jsonl",
        "garbage\n{\"id\":1,\"path\":\"/a\"}\n{\"id\":1,\"path\":\"/a\"}\n",
    );
    let output = d.path("out.jsonl");
    let opts = BatchOptions {
        resume: true,
        ..opts()
    };
    go(&input, &output, &opts, ok).await.unwrap();
    let r = go(&input, &output, &opts, ok).await.unwrap();
    assert_eq!((r.ok, r.failed, r.run.done_earlier), (0, 0, 3));
    assert_eq!(lines(&output).len(), 3);
}

#[tokio::test]
async fn ids_input_fills_the_template() {
    let d = Dir::new();
    let input = d.file("ids.txt", "u1\n\nu 2\n..\n");
    let output = d.path("out.jsonl");
    let opts = BatchOptions {
        format: InputFormat::Ids {
            path_template: "/api/v2/users/{id}".into(),
            method: http::Method::GET,
        },
        ..opts()
    };
    let r = go(&input, &output, &opts, ok).await.unwrap();
    assert_eq!(r.invalid, 1, "'..' cannot be a path segment");
    let mut paths: Vec<String> = lines(&output)
        .iter()
        .filter_map(|v| v["body"]["path"].as_str().map(String::from))
        .collect();
    paths.sort();
    assert_eq!(paths, ["/api/v2/users/u%202", "/api/v2/users/u1"]);
}

#[tokio::test]
async fn retry_failed_runs_only_the_failures_again() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &format!("{}not json\n", jsonl(100)));
    let output = d.path("out.jsonl");
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
    let r = go(&input, &output, &opts(), flaky).await.unwrap();
    assert_eq!((r.ok, r.failed, r.invalid), (88, 13, 1));
    let retried = std::sync::Mutex::new(Vec::new());
    let opts = BatchOptions {
        resume: true,
        retry_failed: true,
        ..opts()
    };
    let r2 = go(&input, &output, &opts, |rec| {
        retried.lock().unwrap().push(rec.key.clone());
        ok(rec)
    })
    .await
    .unwrap();
    assert_eq!((r2.ok, r2.failed, r2.run.done_earlier), (12, 0, 89));
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&output).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the rewritten journal stays private");
    }
    assert_eq!(d.names(), ["in.jsonl", "out.jsonl", "out.jsonl.twjob"]);
}

#[tokio::test]
async fn max_failures_stops_a_job_failing_en_masse_and_it_resumes() {
    let (_dir, input, output) = job(1000);
    let not_found = |_r: Record| async move {
        Outcome::Response {
            status: 404,
            body: bytes::Bytes::from_static(b"{\"code\":\"not.found\"}"),
        }
    };
    let limited = |limit: &str| BatchOptions {
        concurrency: 4,
        max_failures: Some(limit.parse().unwrap()),
        ..opts()
    };
    let sent = AtomicUsize::new(0);
    let r = go(&input, &output, &limited("20"), |rec| {
        sent.fetch_add(1, Ordering::SeqCst);
        not_found(rec)
    })
    .await
    .unwrap();
    let Some(StopReason::TooManyFailures { failed, ran, .. }) = r.stopped else {
        panic!("{:?}", r.stopped)
    };
    // The 21st failure trips it; the records in flight then finish and are recorded.
    assert!((21..=24).contains(&failed), "{failed}");
    assert_eq!(ran, failed);
    assert_eq!(
        sent.load(Ordering::SeqCst) as u64,
        failed,
        "nothing sent unrecorded"
    );
    assert_eq!(lines(&output).len() as u64, failed);

    // A percentage waits for its minimum sample.
    std::fs::remove_file(&output).unwrap();
    let r = go(&input, &output, &limited("50%"), not_found)
        .await
        .unwrap();
    let Some(StopReason::TooManyFailures { ran, .. }) = r.stopped else {
        panic!("{:?}", r.stopped)
    };
    assert!(
        (MIN_FAILURE_SAMPLE..MIN_FAILURE_SAMPLE + 4).contains(&ran),
        "{ran}"
    );

    // Fixed, the job resumes and runs the failures again: each id once, all ok.
    let resume = BatchOptions {
        resume: true,
        retry_failed: true,
        ..limited("50%")
    };
    let r = go(&input, &output, &resume, ok).await.unwrap();
    assert!(r.stopped.is_none());
    assert_eq!(r.ok, 1000);
    let out = lines(&output);
    assert_eq!(ids_count(&out).len(), 1000);
    assert!(out.iter().all(|v| v["status"] == 200));
}

#[tokio::test]
async fn invalid_lines_do_not_count_against_the_failure_limit() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &format!("{}{}", "oops\n".repeat(50), jsonl(10)));
    let r = go(
        &input,
        &d.path("out.jsonl"),
        &BatchOptions {
            max_failures: Some(FailureLimit::Count(0)),
            ..opts()
        },
        ok,
    )
    .await
    .unwrap();
    assert!(r.stopped.is_none());
    assert_eq!((r.ok, r.invalid), (10, 50));
}

#[tokio::test]
async fn a_run_that_fails_before_its_first_record_leaves_nothing_behind() {
    let d = Dir::new();
    let output = d.path("out.jsonl");
    // A typo'd input.
    let e = go(&Input::Path(d.path("nosuch.jsonl")), &output, &opts(), ok)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Io {
                step: Step::OpenInput,
                ..
            }
        ),
        "{e}"
    );
    assert!(d.names().is_empty(), "{:?}", d.names());
    // Rejected credentials on the first request.
    let input = d.file("in.jsonl", &jsonl(50));
    let r = go(&input, &output, &opts(), |_| async {
        Outcome::Abort(credentials())
    })
    .await
    .unwrap();
    assert!(r.stopped.is_some());
    assert_eq!(d.names(), ["in.jsonl"]);
    // So the corrected command runs, without --resume or --force.
    let r = go(&input, &output, &opts(), ok).await.unwrap();
    assert_eq!(r.ok, 50);
}

#[tokio::test]
async fn an_output_directory_that_does_not_exist_is_not_created() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(1));
    let e = go(&input, &d.path("missing/out.jsonl"), &opts(), ok)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Io {
                step: Step::OutputDirectory,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(d.names(), ["in.jsonl"]);
}

#[tokio::test]
async fn resume_refuses_another_jobs_journal_and_touches_nothing() {
    let d = Dir::new();
    let a = d.file("a.jsonl", &jsonl(30));
    let b = d.file(
        "b.jsonl",
        &jsonl(30).replace("\"r", "\"other-").replace("/u", "/v"),
    );
    let output = d.path("out.jsonl");
    let resume = BatchOptions {
        resume: true,
        ..opts()
    };
    go(&a, &output, &opts(), ok).await.unwrap();
    let before = std::fs::read(&output).unwrap();
    let job_before = std::fs::read(job_file_path(&output)).unwrap();
    let refused = |e: JobError| match e {
        JobError::Refused {
            reason: Refusal::OtherJob { detail },
            ..
        } => detail,
        other => panic!("{other}"),
    };
    let never = |_r: Record| async { panic!("nothing may be sent") };
    // Another input.
    let e = go(&b, &output, &resume, never).await.unwrap_err();
    assert!(refused(e).contains("a.jsonl"));
    // Another format, another API.
    let ids = BatchOptions {
        format: InputFormat::Ids {
            path_template: "/api/v2/users/{id}".into(),
            method: http::Method::GET,
        },
        ..resume.clone()
    };
    let e = go(&a, &output, &ids, never).await.unwrap_err();
    assert!(refused(e).contains("JSON Lines"));
    let elsewhere = BatchOptions {
        api_base: ApiBase::parse("http://127.0.0.1:10").unwrap(),
        ..resume.clone()
    };
    let e = go(&a, &output, &elsewhere, never).await.unwrap_err();
    assert!(refused(e).contains("http://127.0.0.1:9"));
    assert_eq!(std::fs::read(&output).unwrap(), before);
    assert_eq!(std::fs::read(job_file_path(&output)).unwrap(), job_before);
    // The same job, from a copy of its input elsewhere, with records appended: resumed.
    let grown = d.file("a-grown.jsonl", &jsonl(40));
    let r = go(&grown, &output, &resume, ok).await.unwrap();
    assert_eq!((r.run.done_earlier, r.ok), (30, 10));
}

#[tokio::test]
async fn resume_never_touches_a_file_no_batch_wrote() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(3));
    let notes = d.path("notes.txt");
    std::fs::write(&notes, "my notes\nno newline at the end").unwrap();
    let e = go(
        &input,
        &notes,
        &BatchOptions {
            resume: true,
            ..opts()
        },
        |_r| async { panic!("nothing may be sent") },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Refused {
                reason: Refusal::NotAJournal { .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "my notes\nno newline at the end"
    );
    assert_eq!(d.names(), ["in.jsonl", "notes.txt"]);
}

#[tokio::test]
async fn a_second_run_on_a_busy_output_is_refused_at_once() {
    let (_dir, input, output) = job(20);
    let (started_tx, mut started_rx) = tokio::sync::watch::channel(false);
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let first_opts = opts();
    let first = go(&input, &output, &first_opts, |r| {
        let (started_tx, mut release_rx) = (&started_tx, release_rx.clone());
        async move {
            let _ = started_tx.send(true);
            let _ = release_rx.wait_for(|v| *v).await;
            ok(r).await
        }
    });
    let second = async {
        let _ = started_rx.wait_for(|v| *v).await;
        let e = go(
            &input,
            &output,
            &BatchOptions {
                resume: true,
                ..opts()
            },
            |_r| async { panic!("the second run sends nothing") },
        )
        .await
        .unwrap_err();
        let _ = release_tx.send(true);
        e
    };
    let (first, e) = tokio::join!(first, second);
    assert!(matches!(&e, JobError::Busy(_)), "{e}");
    assert!(
        e.to_string()
            .contains("another tokenwarden run is writing it"),
        "{e}"
    );
    assert_eq!(first.unwrap().ok, 20);
    let counts = ids_count(&lines(&output));
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|c| *c == 1));
}

#[cfg(unix)]
#[tokio::test]
async fn a_non_regular_output_is_a_stream_and_a_full_disk_is_an_io_error() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(5));
    let r = go(&input, Path::new("/dev/null"), &opts(), ok)
        .await
        .unwrap();
    assert_eq!(r.ok, 5);
    if Path::new("/dev/full").exists() {
        let e = go(&input, Path::new("/dev/full"), &opts(), ok)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                JobError::Io {
                    step: Step::WriteOutput,
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = go(
        &input,
        Path::new("/dev/null"),
        &BatchOptions {
            resume: true,
            ..opts()
        },
        ok,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Refused {
                reason: Refusal::NotResumable,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_corrected_template_resumes_with_retry_failed_only_when_nothing_succeeded() {
    let d = Dir::new();
    let ids: String = (0..300).map(|i| format!("u{i}\n")).collect();
    let input = d.file("ids.txt", &ids);
    let output = d.path("out.jsonl");
    let template = |t: &str| InputFormat::Ids {
        path_template: t.into(),
        method: http::Method::GET,
    };
    // A typo in the template: every record 404s, and the job stops early.
    let typo = BatchOptions {
        format: template("/api/v2/user/{id}"),
        max_failures: Some("10%".parse().unwrap()),
        ..opts()
    };
    let answer = |r: Record| async move {
        let status = if r.path.starts_with("/api/v2/users/") {
            200
        } else {
            404
        };
        Outcome::Response {
            status,
            body: bytes::Bytes::new(),
        }
    };
    let r = go(&input, &output, &typo, answer).await.unwrap();
    assert!(matches!(
        r.stopped,
        Some(StopReason::TooManyFailures { .. })
    ));
    let fixed = BatchOptions {
        format: template("/api/v2/users/{id}"),
        resume: true,
        ..opts()
    };
    // Without retrying the failures, the corrected job is another job.
    let e = go(&input, &output, &fixed, answer).await.unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Refused {
                reason: Refusal::OtherJob { .. },
                ..
            }
        ),
        "{e}"
    );
    let retry = BatchOptions {
        retry_failed: true,
        ..fixed.clone()
    };
    let r = go(&input, &output, &retry, answer).await.unwrap();
    assert_eq!((r.ok, r.failed, r.run.done_earlier), (300, 0, 0));
    assert_eq!(ids_count(&lines(&output)).len(), 300);
    // Now records succeeded under the new template: another change is refused.
    let again = BatchOptions {
        format: template("/api/v2/people/{id}"),
        ..retry
    };
    let before = std::fs::read(&output).unwrap();
    let e = go(&input, &output, &again, answer).await.unwrap_err();
    assert!(e.to_string().contains("succeeded"), "{e}");
    assert_eq!(std::fs::read(&output).unwrap(), before);
}

#[tokio::test]
async fn an_input_without_records_still_leaves_its_empty_output() {
    let d = Dir::new();
    let input = d.file("in.jsonl", "\n  \n");
    let output = d.path("out.jsonl");
    let r = go(&input, &output, &opts(), ok).await.unwrap();
    assert_eq!((r.ok, r.failed), (0, 0));
    assert_eq!(std::fs::read(&output).unwrap(), b"");
    assert_eq!(d.names(), ["in.jsonl", "out.jsonl", "out.jsonl.twjob"]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_output_is_never_created_or_resumed_through() {
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(2));
    let link = d.path("out.jsonl");
    std::os::unix::fs::symlink(d.path("elsewhere.jsonl"), &link).unwrap();
    let e = go(&input, &link, &opts(), |_r| async {
        panic!("nothing is sent")
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot create output"), "{e}");
    assert_eq!(d.names(), ["in.jsonl", "out.jsonl"]);
    // Nor is a journal resumed through a link (it may point anywhere).
    let real = d.path("real.jsonl");
    go(&input, &real, &opts(), ok).await.unwrap();
    std::fs::rename(job_file_path(&real), job_file_path(&link)).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = std::fs::read(&real).unwrap();
    let resume = BatchOptions {
        resume: true,
        ..opts()
    };
    let e = go(&input, &link, &resume, |_r| async {
        panic!("nothing is sent")
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot create output"), "{e}");
    assert_eq!(std::fs::read(&real).unwrap(), before);
}

/// A run with one record in flight at a time, answered by `answer` as [`nth`] does: its report
/// and how many records were sent.
async fn one_at_a_time(
    input: &Input,
    output: &Path,
    answer: impl Fn(usize) -> Option<Outcome>,
) -> (BatchReport, usize) {
    let sent = AtomicUsize::new(0);
    let options = BatchOptions {
        concurrency: 1,
        ..opts()
    };
    let r = go(input, output, &options, nth(&sent, answer))
        .await
        .unwrap();
    (r, sent.load(Ordering::SeqCst))
}

fn unreachable_error() -> Error {
    Error::RetriesExhausted {
        method: "GET".into(),
        path: "/x".into(),
        attempts: 3,
        last: "connection refused".into(),
        no_answer: true,
    }
}

#[tokio::test]
async fn an_api_that_went_down_stops_the_job_and_its_records_run_on_resume() {
    let (_dir, input, output) = job(100);
    // The API answers the first 10 records, then is gone (killed mid-run).
    let (r, sent) = one_at_a_time(&input, &output, |n| {
        (n >= 10).then(|| Outcome::Unreachable(unreachable_error()))
    })
    .await;
    assert!(
        matches!(r.stopped, Some(StopReason::Unreachable { records: 20, .. })),
        "{:?}",
        r.stopped
    );
    assert_eq!((r.ok, r.failed), (10, 0), "nothing recorded as failed");
    assert_eq!(lines(&output).len(), 10);
    assert_eq!(sent, 30, "stopped after 20 in a row");
    // Back up: a resume runs the other 90, each once.
    let r = go(
        &input,
        &output,
        &BatchOptions {
            resume: true,
            ..opts()
        },
        ok,
    )
    .await
    .unwrap();
    assert_eq!((r.ok, r.run.done_earlier, r.failed), (90, 10, 0));
    let counts = ids_count(&lines(&output));
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|c| *c == 1));
}

#[tokio::test]
async fn records_that_found_the_api_down_are_failed_once_it_answers_again() {
    let (_dir, input, output) = job(10);
    // A blip: records 3..6 find it down, then it answers again.
    let (r, _) = one_at_a_time(&input, &output, |n| {
        (3..6)
            .contains(&n)
            .then(|| Outcome::Unreachable(unreachable_error()))
    })
    .await;
    assert!(r.stopped.is_none(), "{:?}", r.stopped);
    assert_eq!((r.ok, r.failed), (7, 3));
    let errors = lines(&output)
        .iter()
        .filter(|v| v["error"].as_str().is_some_and(|e| e.contains("refused")))
        .count();
    assert_eq!(errors, 3);
}

#[cfg(unix)]
#[tokio::test]
async fn regression_files_and_streams_of_another_user_are_refused_not_written_or_waited_on() {
    // A FIFO planted at the output was written to; a job file of another user, held locked, read
    // as "busy" for ever; a journal was appended to without an owner check on its descriptor.
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: changing a file's owner needs root (CI runs as root)");
        return;
    }
    let d = Dir::new();
    let input = d.file("in.jsonl", &jsonl(2));
    let refused = |e: &JobError, what: &str| {
        let shown = match e {
            JobError::Io { source, .. } => format!("{e}: {source}"),
            e => e.to_string(),
        };
        assert!(shown.contains("belongs to another user"), "{what}: {shown}");
    };
    // A FIFO of another user: refused before the open (which would wait for its reader).
    let fifo = d.path("fifo.jsonl");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    std::os::unix::fs::chown(&fifo, Some(4242), None).unwrap();
    let e = go(&input, &fifo, &opts(), |_r| async {
        panic!("nothing is sent")
    })
    .await
    .unwrap_err();
    refused(&e, "fifo");
    // A job file of another user, at a new output.
    let out = d.path("out.jsonl");
    std::fs::write(job_file_path(&out), "").unwrap();
    std::os::unix::fs::chown(job_file_path(&out), Some(4242), None).unwrap();
    let e = go(&input, &out, &opts(), |_r| async {
        panic!("nothing is sent")
    })
    .await
    .unwrap_err();
    refused(&e, "job file");
    std::fs::remove_file(job_file_path(&out)).unwrap();
    // A journal of ours, stopped half-way, then given to another user: not resumed into.
    let calls = AtomicUsize::new(0);
    let r = go(
        &input,
        &out,
        &opts(),
        nth(&calls, |n| (n == 1).then(|| Outcome::Abort(credentials()))),
    )
    .await
    .unwrap();
    assert!(r.stopped.is_some());
    std::os::unix::fs::chown(&out, Some(4242), None).unwrap();
    let before = std::fs::read(&out).unwrap();
    let resume = BatchOptions {
        resume: true,
        ..opts()
    };
    let e = go(&input, &out, &resume, |_r| async {
        panic!("nothing is sent")
    })
    .await
    .unwrap_err();
    refused(&e, "journal");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

/// `Outcome::from_error` follows `Class`: every credentials failure (a sign-in callback's too)
/// and every failure of the token's source stops the job; a 403 or a 404 fails one record; an
/// API that cannot be reached holds the record back.
#[test]
fn from_error_aborts_on_every_credentials_class_and_token_source_failure() {
    use crate::error::{CallbackProblem, SignInFailure};
    let aborts = [
        credentials(),
        Error::SignIn(SignInFailure::Callback(CallbackProblem::NoCode)),
        Error::SignInRequired { reason: "r".into() },
        Error::store("refused"),
        Error::TokenDecode { detail: "d".into() },
    ];
    for e in aborts {
        assert!(e.is_token_failure(), "{e}: class {:?}", e.class());
        assert!(matches!(Outcome::from_error(e), Outcome::Abort(_)));
    }
    let forbidden = Error::Forbidden {
        method: "GET".into(),
        path: "/p".into(),
        code: None,
        message: "m".into(),
    };
    assert!(matches!(Outcome::from_error(forbidden), Outcome::Failed(_)));
    let gone = Error::Status {
        method: "GET".into(),
        path: "/p".into(),
        status: 404,
        body: String::new(),
    };
    assert!(matches!(Outcome::from_error(gone), Outcome::Failed(_)));
    let unreachable = Error::RetriesExhausted {
        method: "GET".into(),
        path: "/p".into(),
        attempts: 3,
        last: "l".into(),
        no_answer: true,
    };
    assert!(matches!(
        Outcome::from_error(unreachable),
        Outcome::Unreachable(_)
    ));
}
