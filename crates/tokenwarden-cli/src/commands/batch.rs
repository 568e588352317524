//! `tokenwarden batch`: one request per input record, resumable, exactly-once output.

use crate::args::{BatchArgs, GlobalArgs};
use crate::exit::UsageError;
use crate::progress::{Mode, Reporter};
use crate::text::plural;
use anyhow::{Context as _, Result};
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use tokenwarden::jobs::batch::{
    self, BatchOptions, BatchProgress, BatchReport, Input, InputFormat, Outcome, Record, StopReason,
};
use tokenwarden::jobs::{JobError, Refusal, Step, ownership::Writer};
use tokenwarden::{ApiClient, Class, Error};

/// What can be refused before any credentials are read or any request is sent.
pub(crate) fn check_args(a: &BatchArgs, g: &GlobalArgs) -> Result<()> {
    let input = a.input.as_ref().or(a.ids.as_ref());
    if g.connection.client_secret_stdin && input.is_some_and(|p| p.as_os_str() == "-") {
        return Err(UsageError(
            "--client-secret-stdin and an input of - would both read standard input: give the secret with --client-secret-file or GENESYSCLOUD_OAUTHCLIENT_SECRET".into(),
        )
        .into());
    }
    if a.output.as_os_str() == "-" {
        return Err(UsageError(
            "--output -: the output is the job's journal, so it is a file; to stream the lines instead (without resume), use --output /dev/stdout".into(),
        )
        .into());
    }
    if let Some(i) = input.filter(|i| i.as_os_str() != "-")
        && super::summary::same_file(i, &a.output)
    {
        return Err(UsageError(format!(
            "--output {} is the input: the results would replace the records; choose another output file",
            a.output.display()
        ))
        .into());
    }
    if let Some(p) = &a.summary_json {
        let input = a.input.as_deref().or(a.ids.as_deref());
        super::summary::check(p, &a.output, input, a.force)?;
    }
    Ok(())
}

/// Connects and runs the job. `hint` is set to which credentials were used, for a job stopped by
/// rejected credentials.
///
/// With `--summary-json`, a summary is written however the run ends: its counts and token
/// figures when the job ran to its end or stopped, or, when it ended on an error (a file that
/// cannot be written, an output another run holds, credentials that cannot be resolved), what was
/// done until then and the error's kind (`error.kind`): a scheduler reading the summary always
/// finds one.
pub(crate) async fn run(g: &GlobalArgs, a: BatchArgs, hint: &mut Option<String>) -> Result<u8> {
    let started = std::time::Instant::now();
    let progress = Arc::new(BatchProgress::default());
    let mut client = None;
    let mut kind = None;
    let summary_path = a.summary_json.clone();
    let output = a.output.clone();
    let result = run_job(g, &a, hint, &progress, &mut client, &mut kind).await;
    let (report, observing) = match result {
        Ok(done) => done,
        Err(e) => {
            if let Some(p) = &summary_path {
                let kind = kind.unwrap_or_else(|| error_kind(&e));
                let summary = error_summary(&e, kind, &progress, client.as_ref(), started);
                if let Err(w) = super::summary::write(p, &summary) {
                    crate::ui::warn(&format!(
                        "could not write the summary to {}: {w}",
                        p.display()
                    ));
                }
            }
            return Err(e);
        }
    };
    let Some(client) = client else {
        return Err(anyhow::anyhow!(
            "internal error: the job ran without a client"
        ));
    };
    let summary = summary_json(&report, &client);
    if let Some(p) = &summary_path {
        super::summary::write(p, &super::observe::with_series(&summary, &client))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    observing.finish(&summary, a.resume)?;
    let credentials_stop =
        matches!(&report.stopped, Some(StopReason::Aborted(e)) if e.is_credentials());
    print_summary(
        &report,
        &client,
        hint.as_deref().filter(|_| credentials_stop),
        &output,
    );
    Ok(outcome_code(&report))
}

/// The job itself: connect, the preflight, the engine. Leaves the client in `client` once made,
/// and the engine's error kind in `kind` when it refused (before its error becomes an exit
/// status and loses its type).
async fn run_job(
    g: &GlobalArgs,
    a: &BatchArgs,
    hint: &mut Option<String>,
    progress: &Arc<BatchProgress>,
    client: &mut Option<ApiClient>,
    kind: &mut Option<serde_json::Value>,
) -> Result<(BatchReport, super::observe::Observing)> {
    let c = super::connect(g, a.rate, &a.pool, a.retry_for, hint).await?;
    let client = &*client.insert(c);
    // Before the preflight: its requests are the run's too (exported as spans).
    let observing = super::observe::start(
        &a.observe,
        "batch",
        client,
        Some(&a.output),
        &[
            (a.input.as_deref().or(a.ids.as_deref()), "the input"),
            (a.summary_json.as_deref(), "the --summary-json file"),
        ],
        a.force,
    )
    .await?;
    if a.preflight || !a.require_scope.is_empty() {
        let r = super::check::preflight(client, &a.require_scope).await?;
        tracing::info!(organization = %r.organization, client = %r.client, "preflight ok");
        crate::ui::note(&format!(
            "preflight ok: {} via {}",
            r.organization, r.client
        ));
    }
    let (input, format) = match (&a.input, &a.ids) {
        (Some(i), _) => (Input::from_arg(i), InputFormat::Jsonl),
        (None, Some(ids)) => (
            Input::from_arg(ids),
            InputFormat::Ids {
                // clap requires it with --ids, and checked its shape.
                path_template: a.path_template.clone().unwrap_or_default(),
                method: a.method.clone(),
            },
        ),
        (None, None) => return Err(UsageError("give --input or --ids".into()).into()),
    };
    let options = BatchOptions {
        format,
        concurrency: a.concurrency as usize,
        resume: a.resume,
        overwrite: a.force,
        retry_failed: a.retry_failed,
        max_failures: a.max_failures,
        shard: a.shard,
        // Ctrl-C stops the job cleanly: what finished is recorded, the summary written, exit 130.
        interrupt: Some(crate::interrupt::subscribe()),
        ..BatchOptions::new(client.api_base())
    };
    if input == Input::Stdin && std::io::stdin().is_terminal() {
        crate::ui::note("reading records from the terminal: end with Ctrl-D");
    }
    let mode = Mode::pick(a.no_progress, g.quiet);
    let run = execute(
        client,
        &input,
        &a.output,
        &options,
        a.replay_safe,
        mode,
        progress,
    );
    let report = run.await.map_err(|e| {
        *kind = Some(engine_error_kind(&e));
        explain(e)
    })?;
    Ok((report, observing))
}

/// Runs the engine with the client as executor, counting its events into `progress`, with
/// progress on stderr; the engine's own error ([`explain`] places it in the exit-status table).
pub(crate) async fn execute(
    client: &ApiClient,
    input: &Input,
    output: &Path,
    options: &BatchOptions,
    replay_safe: bool,
    mode: Mode,
    progress: &Arc<BatchProgress>,
) -> Result<BatchReport, JobError> {
    let reporter = Reporter::start(Arc::clone(progress), client.clone(), mode);
    let exec = |r: Record| {
        let client = client.clone();
        async move { execute_one(&client, r, replay_safe).await }
    };
    let count = |e| progress.apply(&e);
    let result = batch::run(input, output, options, count, exec).await;
    reporter.finish().await;
    result
}

/// The kind of an engine refusal, for the summary: `io` (with the step and the operating
/// system's error kind), `ownership` (another run holds the output), `journal` (the output is not
/// this job's), `config`, or another name.
fn engine_error_kind(e: &JobError) -> serde_json::Value {
    match e {
        JobError::Io { step, source, .. } => serde_json::json!({
            "kind": "io",
            "op": step_name(*step),
            "os_error": format!("{:?}", source.kind()),
        }),
        JobError::Busy(_) => serde_json::json!({"kind": "ownership", "problem": "busy"}),
        JobError::Refused { reason, .. } => serde_json::json!({
            "kind": "journal",
            "problem": refusal_name(reason),
        }),
        JobError::Api(other) => library_error_kind(other),
        _ => serde_json::json!({"kind": "other"}),
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::OpenInput => "open_input",
        Step::ReadInput => "read_input",
        Step::OutputDirectory => "output_directory",
        Step::CreateOutput => "create_output",
        Step::LockOutput => "lock_output",
        Step::ReadJournal => "read_journal",
        Step::WriteOutput => "write_output",
        _ => "other",
    }
}

fn refusal_name(p: &Refusal) -> &'static str {
    match p {
        Refusal::Exists => "exists",
        Refusal::NotAJournal { .. } => "not_a_journal",
        Refusal::OtherCommand { .. } => "other_command",
        Refusal::OtherJob { .. } => "other_job",
        Refusal::Changed { .. } => "changed",
        Refusal::NotResumable => "not_resumable",
        _ => "other",
    }
}

/// The kind of a library error met before the engine ran (connecting, the preflight).
fn library_error_kind(e: &Error) -> serde_json::Value {
    let kind = if e.is_credentials() {
        "credentials"
    } else {
        match e {
            Error::Store { .. } => "token_store",
            Error::Config(_) => "config",
            Error::TokenEndpointUnavailable { .. } => "token_endpoint_unavailable",
            Error::Forbidden { .. } => "forbidden",
            Error::Transport { .. } | Error::RetriesExhausted { .. } => "transport",
            Error::Internal(_) => "internal",
            _ => "api",
        }
    };
    serde_json::json!({ "kind": kind })
}

/// The kind of an error met outside the engine.
fn error_kind(e: &anyhow::Error) -> serde_json::Value {
    if let Some(tw) = e.chain().find_map(|c| c.downcast_ref::<Error>()) {
        return library_error_kind(tw);
    }
    let kind = if e.downcast_ref::<UsageError>().is_some() {
        "usage"
    } else if e.downcast_ref::<crate::ConfigError>().is_some() {
        "config"
    } else {
        "other"
    };
    serde_json::json!({ "kind": kind })
}

/// The summary of a run that ended on an error: what was done until then, and the error.
fn error_summary(
    e: &anyhow::Error,
    kind: serde_json::Value,
    progress: &BatchProgress,
    client: Option<&ApiClient>,
    started: std::time::Instant,
) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let mut error = kind;
    if let Some(o) = error.as_object_mut() {
        o.insert("message".into(), format!("{e:#}").into());
    }
    let mut summary = serde_json::json!({
        "ok": progress.ok.load(Relaxed),
        "failed_this_run": progress.failed.load(Relaxed),
        "invalid_lines_this_run": progress.invalid.load(Relaxed),
        "skipped": progress.skipped.load(Relaxed),
        "wall_time_secs": started.elapsed().as_secs_f64(),
        "stopped": "error",
        "interrupted": false,
        "aborted": null,
        "error": error,
    });
    if let (Some(c), Some(o)) = (client, summary.as_object_mut()) {
        let t = c.token_metrics();
        o.insert("tokens_fetched".into(), t.tokens_fetched.into());
        o.insert("tokens_adopted".into(), t.adopted_from_store.into());
    }
    summary
}

/// Places a job's error (a batch's, an export's) in the exit-status table and says how to go on;
/// the API's errors are each command's to place ([`JobError::Api`] here is a batch's).
pub(crate) fn explain(e: JobError) -> anyhow::Error {
    // The message with its causes (an I/O error's own words), on one line.
    let message = format!("{:#}", anyhow::Error::new(e.clone()));
    let usage = |hint: &str| {
        let text = match hint {
            "" => message.clone(),
            h => format!("{message}\nhint: {h}"),
        };
        anyhow::Error::new(UsageError(text))
    };
    match &e {
        // A path template the API base cannot take.
        JobError::Api(Error::Config(_)) => usage(""),
        JobError::Api(_) => e.into(),
        // Another run writes the output now: nothing typed is wrong; wait and try again (exit 4).
        _ if e.class() == Class::Transient => {
            anyhow::Error::msg(format!("{message}\nhint: {}", super::BUSY_HINT))
        }
        // Refused, and nothing changed: what was asked must change first (exit 2). An export's
        // refusal says in its message how to go on; a batch's hint names the flags.
        JobError::Refused {
            by: Writer::Batch,
            reason,
            ..
        } => usage(refusal_hint(reason)),
        JobError::Refused { .. } | JobError::NoDirectory(_) => usage(""),
        JobError::Io { step, source, .. } => match step {
            Step::OpenInput | Step::OutputDirectory => usage(""),
            Step::CreateOutput
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::AlreadyExists
                        | std::io::ErrorKind::InvalidInput
                ) =>
            {
                usage("")
            }
            _ => e.into(),
        },
        _ => e.into(),
    }
}

/// How to go on after the engine refused its output, by the flags that change the outcome.
fn refusal_hint(p: &Refusal) -> &'static str {
    match p {
        Refusal::Exists => "rerun with --resume to continue it, or with --force to overwrite it",
        Refusal::NotAJournal { .. } => {
            "choose another --output, or --force to replace the file (its contents are lost)"
        }
        Refusal::OtherJob { .. } => {
            "check --input/--ids and --output; to start this job afresh in this file, use --force instead of --resume"
        }
        Refusal::NotResumable => "run without --resume",
        Refusal::OtherCommand { .. } => {
            "rerun the paginate or export that wrote it with --resume, choose another --output, or use --force to replace it (its contents are lost)"
        }
        Refusal::Changed { .. } => {
            "choose another --output, or use --force to start the job over in it (its contents are lost)"
        }
        _ => "",
    }
}

async fn execute_one(client: &ApiClient, r: Record, replay_safe: bool) -> Outcome {
    // The URL the engine checked is on the API's origin; send exactly that.
    let mut req = client.request(r.method.clone(), r.url.as_str());
    if let Some(body) = &r.body {
        req = req.json(body);
    }
    if replay_safe {
        req = req.replay_safe();
    }
    // Every HTTP answer is recorded with its status and body (a 403 and a 5xx that outlasted the
    // retries too); `error` only when there was none.
    match req.hand_back_answers().send().await {
        Ok(resp) => Outcome::Response {
            status: resp.status().as_u16(),
            body: resp.into_body(),
        },
        // No token can be had: the job stops (a resume continues exactly here); an API that
        // cannot be reached holds the record back; anything else fails this record alone.
        Err(e) => Outcome::from_error(e),
    }
}

pub(crate) fn outcome_code(r: &BatchReport) -> u8 {
    match &r.stopped {
        Some(StopReason::Aborted(e)) if e.is_credentials() => crate::exit::CONFIG,
        Some(StopReason::TooManyFailures { .. }) => crate::exit::FAILED,
        Some(StopReason::Interrupted) => crate::exit::INTERRUPTED,
        Some(_) => crate::exit::RUNTIME,
        // The whole output counts: records an earlier run recorded as failed are failed still.
        None if r.failed_in_output() > 0 => crate::exit::FAILED,
        None => crate::exit::OK,
    }
}

pub(crate) fn summary_json(r: &BatchReport, client: &ApiClient) -> serde_json::Value {
    let c = client.metrics();
    let t = client.token_metrics();
    // The counts of the run's events: the report and the metrics endpoint show the same.
    let o = client.recorder().totals();
    let aborted = match &r.stopped {
        Some(StopReason::Aborted(e)) => Some(e.to_string()),
        _ => None,
    };
    serde_json::json!({
        "ok": r.ok,
        "failed": r.failed_in_output(),
        "failed_this_run": r.failed,
        "invalid_lines": r.invalid + r.earlier_invalid,
        "invalid_lines_this_run": r.invalid,
        "skipped": r.run.done_earlier,
        "requests": r.requests(),
        "repaired_bytes": r.run.cut_bytes,
        "tokens_fetched": t.tokens_fetched,
        "tokens_adopted": t.adopted_from_store,
        "proactive_refreshes": t.proactive_refreshes,
        "refreshes_after_401": t.rejected_refreshes,
        "unauthorized_healed": o.unauthorized_healed,
        "rate_limited_waits": o.rate_limited_waits,
        "rate_limit_pauses": o.rate_limit_pauses,
        "server_errors_retried": c.server_errors_retried,
        "transport_retries": c.transport_retries,
        "wall_time_secs": r.run.elapsed.as_secs_f64(),
        "observed": o,
        "stopped": r.stopped.as_ref().map(|s| s.to_string()),
        "interrupted": matches!(r.stopped, Some(StopReason::Interrupted)),
        "aborted": aborted,
    })
}

/// The counts of this run, in words: what was done, then (if the run stopped early) why and how
/// to go on, last.
pub(crate) fn print_summary(
    r: &BatchReport,
    client: &ApiClient,
    hint: Option<&str>,
    output: &Path,
) {
    let c = client.metrics();
    let t = client.token_metrics();
    let secs = r.run.elapsed.as_secs_f64();
    let anything = r.ok + r.failed + r.run.done_earlier > 0;
    if r.stopped.is_none() || anything {
        // A resume's output holds the failures of earlier runs too: they count.
        let mut details = Vec::new();
        if r.invalid + r.earlier_invalid > 0 {
            details.push(plural(r.invalid + r.earlier_invalid, "invalid line"));
        }
        if r.earlier_failed > 0 {
            details.push(format!("{} in this run", r.failed));
        }
        let failed = match details.is_empty() {
            true => format!("{} failed", r.failed_in_output()),
            false => format!("{} failed ({})", r.failed_in_output(), details.join(", ")),
        };
        // Only what this run sent: skipped records cost nothing.
        let rate = match r.requests() {
            n if n > 0 && secs > 0.0 => format!(" · {:.0} requests/s", n as f64 / secs),
            _ => String::new(),
        };
        let verb = if r.stopped.is_some() {
            "stopped after"
        } else {
            "done in"
        };
        crate::ui::summary(
            &format!(
                "{verb} {secs:.1} s: {} ok, {failed}, {} skipped{rate}",
                r.ok, r.run.done_earlier
            ),
            summary_json(r, client),
        );
    }
    // The refresh counters count refreshes started; they are shown only when a token was
    // fetched at all, so a rejected static token does not read as a fetch after a 401.
    let refreshes = if t.tokens_fetched > 0 {
        format!(
            " ({} proactive, {} after a 401)",
            t.proactive_refreshes, t.rejected_refreshes
        )
    } else {
        String::new()
    };
    // Tokens another process of the fleet fetched (a shared store). A refresh then ends in an
    // adoption as often as in a fetch, so the refreshes are not shown as a breakdown of the fetches.
    let refreshes = match t.adopted_from_store {
        0 => refreshes,
        n => format!(
            " · adopted from the store: {n} · refreshes: {} proactive, {} after a 401",
            t.proactive_refreshes, t.rejected_refreshes
        ),
    };
    crate::ui::summary(
        &format!(
            "tokens fetched: {}{refreshes} · 401s healed: {} · 429s waited: {} · rate-limit pauses: {} · 5xx retried: {} · transport retries: {}",
            t.tokens_fetched,
            c.unauthorized_healed,
            c.rate_limited_waits,
            c.rate_limit_pauses,
            c.server_errors_retried,
            c.transport_retries
        ),
        serde_json::Value::Null,
    );
    if r.run.cut_bytes > 0 {
        crate::ui::note(&format!(
            "repaired a torn last line ({} bytes) left by the interrupted run",
            r.run.cut_bytes
        ));
    }
    if let Some(reason) = &r.stopped {
        crate::ui::error(&format!("stopped early: {reason}"));
        if let Some(h) = hint {
            crate::ui::hint(h);
        }
        crate::ui::hint(&stop_hint(r, reason, output, client));
    }
}

/// How to go on after a stop: resume only when there is an output to resume.
fn stop_hint(r: &BatchReport, reason: &StopReason, output: &Path, client: &ApiClient) -> String {
    let out = output.display();
    let then = if r.output_exists {
        "rerun with --resume to continue"
    } else {
        "rerun the same command (nothing was recorded, so there is nothing to resume)"
    };
    match reason {
        StopReason::Unreachable { .. } => format!(
            "check that {} is the right API and can be reached from here; once it answers, {then}",
            client.api_base()
        ),
        StopReason::Interrupted if !r.output_exists => then.to_string(),
        StopReason::Interrupted => format!("every record finished so far is in {out}; {then}"),
        _ if !r.output_exists => format!("{out} was not created: fix the cause, then {then}"),
        StopReason::TooManyFailures { .. } => format!(
            "look at the failed records' lines in {out}; once the cause is fixed, rerun with --resume --retry-failed"
        ),
        _ => format!("fix the cause, then {then}"),
    }
}
