//! `--summary-json` is written however a batch ends: also when it ends on an I/O error or on an
//! output it may not take, with the error's kind, so that a scheduler reading the summary always
//! finds one.

mod common;

use common::{Sandbox, run, summary, user_batch};
use tokenwarden_sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_is_written_when_the_output_cannot_be_created() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let ids = sb.write("ids.txt", "user-000001\n");
    let sum = sb.path("summary.json");
    // The output's directory does not exist (it is not created): an I/O error.
    let out = sb.path("missing-dir").join("out.jsonl");
    let r = run(
        user_batch(sb.tw(), &ids, &out),
        &["--summary-json", sum.to_str().unwrap(), "--no-progress"],
    )
    .await;
    assert_ne!(r.code, 0, "{r:?}");
    let v = summary(&sum);
    assert_eq!(v["kind"], "tokenwarden batch summary", "{v}");
    assert_eq!(v["stopped"], "error", "{v}");
    assert_eq!(v["error"]["kind"], "io", "{v}");
    assert_eq!(v["error"]["op"], "output_directory", "{v}");
    assert_eq!(v["error"]["os_error"], "NotFound", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing-dir")),
        "{v}"
    );
    assert_eq!(v["ok"], 0, "{v}");
    // The secret is nowhere in it.
    assert!(
        !v.to_string()
            .contains(tokenwarden_sim::DEFAULT_CLIENT_SECRET)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_is_written_when_the_output_belongs_to_another_job() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let ids = sb.write("ids.txt", "user-000001\nuser-000002\n");
    let out = sb.path("out.jsonl");
    let sum = sb.path("summary.json");
    let job = |cmd, out: &std::path::Path| {
        let mut c = user_batch(cmd, &ids, out);
        c.args(["--summary-json", sum.to_str().unwrap(), "--no-progress"]);
        c
    };
    run(job(sb.tw(), &out), &[]).await.ok();
    assert_eq!(summary(&sum)["ok"], 2);
    // The same output again, without --resume or --force: refused, and the summary says why.
    let again = run(job(sb.tw(), &out), &[]).await;
    again.expect_code(2);
    let v = summary(&sum);
    assert_eq!(v["stopped"], "error", "{v}");
    assert_eq!(v["error"]["kind"], "journal", "{v}");
    assert_eq!(v["error"]["problem"], "exists", "{v}");
    // Credentials that fail the preflight end the run before the engine starts: a summary all
    // the same.
    let out2 = sb.path("out2.jsonl");
    let wrong = run(
        job(sb.tw_with_secret("not-the-secret"), &out2),
        &["--preflight"],
    )
    .await;
    wrong.expect_code(3);
    let v = summary(&sum);
    assert_eq!(v["error"]["kind"], "credentials", "{v}");
    assert!(!v.to_string().contains("not-the-secret"), "{v}");
}
