//! The resumable export engine against the simulator: stopped at any point and resumed, every
//! item is in the output exactly once; sliced conversation exports hold exactly the interval's
//! conversations although jobs return the ones crossing a slice boundary twice.

mod common;

use common::{client, sim};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenwarden::jobs::export::{
    self, Destination, Event, ExportOptions, Format, Mode, Report, Source,
};
use tokenwarden::jobs::{JobError, Refusal};
use tokenwarden::{ApiClient, paginate::Interval, paginate::JobOptions};
use tokenwarden_sim::SimConfig;
use tokenwarden_sim::data::{conversation_end_ms, conversation_id, conversation_start_ms, user_id};

const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
/// The simulator's default conversation week, in Unix ms.
const WEEK_MS: (u64, u64) = (1_704_067_200_000, 1_704_672_000_000);

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts the `key`s of `items` are exactly `expected`, each once.
#[track_caller]
fn assert_exactly(items: &[Value], key: &str, expected: &BTreeSet<String>) {
    let got: Vec<String> = items
        .iter()
        .map(|i| i[key].as_str().unwrap().to_string())
        .collect();
    let set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), set.len(), "an item twice");
    let missing: Vec<_> = expected.difference(&set).take(3).collect();
    let extra: Vec<_> = set.difference(expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?} ({} of {})",
        set.len(),
        expected.len()
    );
}

/// Conversations whose lifetime overlaps `[from, to)` (Unix ms), as Genesys jobs select them.
fn overlapping(n: usize, from: u64, to: u64, start_of_day: bool) -> BTreeSet<String> {
    let day = from - from % 86_400_000;
    (0..n)
        .filter(|i| {
            let s = conversation_start_ms(*i, n, WEEK_MS.0, WEEK_MS.1);
            s < to && conversation_end_ms(*i, s) > from && (!start_of_day || s >= day)
        })
        .map(conversation_id)
        .collect()
}

fn job_options() -> JobOptions {
    JobOptions::default()
        .poll(Duration::from_millis(20), Duration::from_millis(50))
        .page_size(40)
}

fn conversations(interval: &str, slice_hours: u64, filter: Value) -> Source {
    Source::Conversations {
        jobs_path: JOBS.into(),
        interval: interval.parse().unwrap(),
        slice: Duration::from_secs(slice_hours * 3600),
        filter,
        options: job_options(),
    }
}

/// Runs an export; with `stop_after_pages`, drops it (as Ctrl-C would) once that many pages were
/// written.
async fn export_to(
    client: &ApiClient,
    source: Source,
    out: &Path,
    format: Format,
    mode: Mode,
    stop_after_pages: Option<u64>,
) -> Option<Result<Report, JobError>> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let trigger = Arc::clone(&stop);
    let on_event = move |e: Event| {
        if let Event::Page { pages, .. } = e
            && Some(pages) == stop_after_pages
        {
            trigger.notify_one();
        }
    };
    let run = export::run(
        client,
        source,
        Destination::File(out.to_path_buf()),
        ExportOptions::new(format, mode),
        on_event,
    );
    tokio::select! {
        r = run => Some(r),
        () = stop.notified() => None,
    }
}

fn state(out: &Path) -> Value {
    let p = format!("{}.twstate", out.display());
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A simulator with `n` conversations and quick jobs, its client, and a directory for outputs.
async fn conversations_sim(n: usize) -> (tokenwarden_sim::Simulator, ApiClient, tempfile::TempDir) {
    let sim = sim(SimConfig {
        conversations: n,
        job_duration: Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    (sim, client, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn sliced_export_holds_each_conversation_of_the_interval_once() {
    let n = 2000;
    let (sim, client, dir) = conversations_sim(n).await;
    // Not aligned on days: slices are 12:00-00:00, then whole days, then 00:00-06:00.
    let (from, to) = (WEEK_MS.0 + 36 * 3_600_000, WEEK_MS.0 + 150 * 3_600_000);
    let interval = "2024-01-02T12:00:00Z/2024-01-07T06:00:00Z";
    let out = dir.path().join("convs.jsonl");
    let report = export_to(
        &client,
        conversations(interval, 24, json!({"order": "asc"})),
        &out,
        Format::Jsonl,
        Mode::New,
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_exactly(
        &jsonl(&out),
        "conversationId",
        &overlapping(n, from, to, false),
    );
    assert_eq!(report.slices, 6);
    assert!(
        report.left_to_other_slices > 0,
        "jobs returned boundary-crossing conversations twice, and the copies were left out"
    );
    assert_eq!(
        sim.journal_counters().ok_count("POST", JOBS),
        6,
        "one job per slice"
    );
    assert_eq!(state(&out)["phase"], "complete");
    // Jobs whose results were read are deleted.
    let deleted: u64 = sim
        .journal_counters()
        .per_resource_ok
        .iter()
        .filter(|(k, _)| k.starts_with("DELETE "))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(deleted, 6);

    // With startOfDayIntervalMatching the job leaves out what began before the first day.
    let out = dir.path().join("sod.jsonl");
    export_to(
        &client,
        conversations(interval, 24, json!({"startOfDayIntervalMatching": true})),
        &out,
        Format::Jsonl,
        Mode::New,
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_exactly(
        &jsonl(&out),
        "conversationId",
        &overlapping(n, from, to, true),
    );
}

#[tokio::test]
async fn a_stopped_listing_export_resumes_with_no_item_missing_and_none_twice() {
    let sim = sim(SimConfig {
        users: 137,
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(5),
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("users.jsonl");
    let source = || Source::Pages {
        path: "/api/v2/users?pageSize=10".into(),
    };
    let stopped = export_to(&client, source(), &out, Format::Jsonl, Mode::New, Some(4)).await;
    assert!(stopped.is_none(), "stopped mid-way");
    let recorded = state(&out);
    assert_eq!(recorded["items"], 40);
    assert_eq!(
        recorded["position"]["url"]
            .as_str()
            .map(|u| u.contains("pageNumber=5")),
        Some(true),
        "{recorded}"
    );
    // A kill in the middle of writing a page leaves part of it behind the recorded position.
    let torn = br#"{"id":"user-000040","name":"Ada"}
{"id":"user-0000"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(torn)
        .unwrap();

    // Without resume or overwrite the output is refused, and kept.
    let e = export_to(&client, source(), &out, Format::Jsonl, Mode::New, None)
        .await
        .unwrap()
        .unwrap_err();
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
    let report = export_to(&client, source(), &out, Format::Jsonl, Mode::Resume, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.run.cut_bytes, torn.len() as u64);
    assert_eq!((report.items, report.run.done), (137, 97));
    assert!(report.run.resumed);
    assert_eq!(report.run.done_earlier, 40);
    let users: BTreeSet<String> = (0..137).map(user_id).collect();
    assert_exactly(&jsonl(&out), "id", &users);
    assert_eq!(
        sim.journal_counters().ok_count("GET", "/api/v2/users"),
        14,
        "no page fetched twice"
    );
    // A resume of a finished export does nothing.
    let before = sim.journal_counters().api_requests;
    let again = export_to(&client, source(), &out, Format::Jsonl, Mode::Resume, None)
        .await
        .unwrap()
        .unwrap();
    assert!(again.already_complete);
    assert_eq!(sim.journal_counters().api_requests, before);
    // Resuming with another source is refused.
    let other = Source::Pages {
        path: "/api/v2/users?pageSize=20".into(),
    };
    let e = export_to(&client, other, &out, Format::Jsonl, Mode::Resume, None)
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("records another export"), "{e}");
}

#[tokio::test]
async fn a_slice_whose_job_vanished_is_run_again_and_only_that_one() {
    let n = 700;
    let (sim, client, dir) = conversations_sim(n).await;
    let out = dir.path().join("convs.jsonl");
    let week = "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z";
    // 7 daily slices of ~100 conversations, 40 per page: stop inside the third slice.
    let stopped = export_to(
        &client,
        conversations(week, 24, json!({})),
        &out,
        Format::Jsonl,
        Mode::New,
        Some(7),
    )
    .await;
    assert!(stopped.is_none());
    let recorded = state(&out);
    assert_eq!(recorded["slice"]["index"], 2, "{recorded}");
    let job = recorded["position"]["job_id"].as_str().unwrap().to_string();
    // The job expires on the server meanwhile.
    let resp = client
        .request(http::Method::DELETE, &format!("{JOBS}/{job}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let submitted = sim.journal_counters().ok_count("POST", JOBS);

    let mut events = vec![];
    let report = export::run(
        &client,
        conversations(week, 24, json!({})),
        Destination::File(out.clone()),
        ExportOptions::new(Format::Jsonl, Mode::Resume),
        |e| events.push(e),
    )
    .await
    .unwrap();
    assert_exactly(
        &jsonl(&out),
        "conversationId",
        &overlapping(n, WEEK_MS.0, WEEK_MS.1, false),
    );
    assert_eq!(report.slices_redone, 1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::SliceRedone { index: 2, .. })),
        "{events:?}"
    );
    // The resume submitted the redone slice's job and those of the slices not submitted yet (4, 5
    // and 6; slice 3's was submitted ahead before the stop, and was used): nothing else.
    let resubmitted = sim.journal_counters().ok_count("POST", JOBS) - submitted;
    assert_eq!(resubmitted, 1 + 3);
}

#[tokio::test]
async fn csv_export_has_one_row_per_item_under_the_union_of_keys() {
    let sim = sim(SimConfig {
        users: 55,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("users.csv");
    let source = || Source::Pages {
        path: "/api/v2/users?pageSize=20".into(),
    };
    let stopped = export_to(&client, source(), &out, Format::Csv, Mode::New, Some(2)).await;
    assert!(stopped.is_none());
    assert!(!out.exists(), "the CSV appears only once complete");
    export_to(&client, source(), &out, Format::Csv, Mode::Resume, None)
        .await
        .unwrap()
        .unwrap();
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header = reader.headers().unwrap().clone();
    assert!(header.iter().any(|h| h == "division.id"), "{header:?}");
    let id = header.iter().position(|h| h == "id").unwrap();
    let ids: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[id].to_string())
        .collect();
    let users: BTreeSet<String> = (0..55).map(user_id).collect();
    assert_eq!(ids.len(), 55);
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), users);
    assert!(!Path::new(&format!("{}.twspool", out.display())).exists());
    assert_eq!(state(&out)["phase"], "complete");
}

/// A `Write` into shared memory, for stream destinations.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn items_echoing_the_token_are_scrubbed_in_every_format() {
    let sim = sim(SimConfig {
        users: 12,
        echo_token_in_items: true,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let token = client.tokens().bearer().await.unwrap();
    let token = token.access_token().expose_secret().to_string();
    for format in [Format::Jsonl, Format::Csv] {
        let buf = Shared::default();
        export::run(
            &client,
            Source::Pages {
                path: "/api/v2/users".into(),
            },
            Destination::Stream(Box::new(buf.clone())),
            ExportOptions::new(format, Mode::New),
            |_| {},
        )
        .await
        .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("Bearer [REDACTED]"), "{format:?}: {text}");
        assert!(!text.contains(&token), "{format:?}: the token was written");
    }
}

#[tokio::test]
async fn an_interval_is_checked_against_the_api_limit() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let source = Source::Conversations {
        jobs_path: JOBS.into(),
        interval: Interval::new(
            std::time::UNIX_EPOCH + Duration::from_secs(1_704_067_200),
            std::time::UNIX_EPOCH + Duration::from_secs(1_706_745_600),
        )
        .unwrap(),
        slice: tokenwarden::paginate::MAX_SLICE + Duration::from_secs(1),
        filter: json!({}),
        options: job_options(),
    };
    let e = export_to(
        &client,
        source,
        &dir.path().join("x.jsonl"),
        Format::Jsonl,
        Mode::New,
        None,
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("31 days"), "{e}");
    assert_eq!(sim.journal_counters().api_requests, 0);
}
