//! `tokenwarden batch`: one request per input record, resumable, exactly-once output.

use crate::ConfigError;
use crate::args::{BatchArgs, GlobalArgs};
use crate::progress::{Mode, Reporter};
use anyhow::{Context as _, Result};
use std::path::Path;
use std::sync::Arc;
use tokenwarden::batch::{
    self, BatchOptions, BatchProgress, BatchReport, InputFormat, Outcome, Record,
};
use tokenwarden::{ApiClient, Error};

/// `hint` says which credentials were used, for a job stopped by rejected credentials.
pub(crate) async fn run(
    client: &ApiClient,
    a: BatchArgs,
    g: &GlobalArgs,
    hint: Option<&str>,
) -> Result<u8> {
    // The library refuses too; this says which flag to use.
    if !a.resume && !a.force && a.output.exists() {
        return Err(ConfigError(format!(
            "output {} already exists: it may hold the results of an unfinished run; rerun with --resume to continue it, or --force to overwrite it",
            a.output.display()
        ))
        .into());
    }
    if a.preflight || !a.require_scope.is_empty() {
        let r = super::check::preflight(client, &a.require_scope).await?;
        tracing::info!(organization = %r.organization, client = %r.client, "preflight ok");
        let _ = g;
        crate::ui::note(&format!(
            "preflight ok: {} via {}",
            r.organization, r.client
        ));
    }
    let (input, format) = match (&a.input, &a.ids) {
        (Some(i), _) => (i.clone(), InputFormat::Jsonl),
        (None, Some(ids)) => {
            let template = a.path_template.clone().unwrap_or_default();
            if !template.contains("{id}") || !template.starts_with('/') {
                return Err(ConfigError(format!(
                    "--path-template {template:?} must start with / and contain {{id}}"
                ))
                .into());
            }
            let method = http::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| ConfigError(format!("unknown method {:?}", a.method)))?;
            (
                ids.clone(),
                InputFormat::Ids {
                    path_template: template,
                    method,
                },
            )
        }
        (None, None) => return Err(ConfigError("give --input or --ids".into()).into()),
    };
    let options = BatchOptions {
        format,
        concurrency: a.concurrency as usize,
        resume: a.resume,
        overwrite: a.force,
        retry_failed: a.retry_failed,
    };
    let mode = Mode::pick(a.no_progress, g.quiet);
    let report = execute(client, &input, &a.output, &options, a.replay_safe, mode).await?;
    let summary = summary_json(&report, client);
    if let Some(p) = &a.summary_json {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let hint = hint.filter(|_| report.aborted.as_ref().is_some_and(Error::is_credentials));
    print_summary(&report, client, hint);
    Ok(outcome_code(&report))
}

/// Runs the engine with the client as executor, with progress on stderr.
pub(crate) async fn execute(
    client: &ApiClient,
    input: &Path,
    output: &Path,
    options: &BatchOptions,
    replay_safe: bool,
    mode: Mode,
) -> Result<BatchReport> {
    let progress = Arc::new(BatchProgress::default());
    let reporter = Reporter::start(Arc::clone(&progress), client.clone(), mode);
    let exec = |r: Record| {
        let client = client.clone();
        async move { execute_one(&client, r, replay_safe).await }
    };
    let result = batch::run(input, output, options, &progress, exec).await;
    reporter.finish().await;
    result.map_err(|e| match e {
        Error::Config(m) => anyhow::Error::new(ConfigError(m)),
        other => other.into(),
    })
}

async fn execute_one(client: &ApiClient, r: Record, replay_safe: bool) -> Outcome {
    let mut req = client.request(r.method.clone(), &r.path);
    if let Some(body) = &r.body {
        req = req.json(body);
    }
    if replay_safe {
        req = req.replay_safe();
    }
    match req.send().await {
        Ok(resp) => Outcome::Response {
            status: resp.status().as_u16(),
            body: resp.into_body(),
        },
        // No token can be had: stop the job; nothing unfinished is recorded, so a resume
        // continues exactly here.
        Err(
            e @ (Error::Credentials { .. }
            | Error::StaticTokenExpired { .. }
            | Error::Unauthorized { .. }
            | Error::TokenEndpointUnavailable { .. }
            | Error::TokenDecode { .. }),
        ) => Outcome::Abort(e),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

pub(crate) fn outcome_code(r: &BatchReport) -> u8 {
    match &r.aborted {
        Some(e) if e.is_credentials() => crate::exit::CONFIG,
        Some(_) => crate::exit::RUNTIME,
        None if r.failed > 0 => crate::exit::FAILED,
        None => crate::exit::OK,
    }
}

pub(crate) fn summary_json(r: &BatchReport, client: &ApiClient) -> serde_json::Value {
    let c = client.metrics();
    let t = client.tokens().metrics();
    serde_json::json!({
        "ok": r.ok,
        "failed": r.failed,
        "invalid_lines": r.invalid,
        "skipped": r.skipped,
        "repaired_bytes": r.repaired_bytes,
        "tokens_fetched": t.tokens_fetched,
        "proactive_refreshes": t.proactive_refreshes,
        "refreshes_after_401": t.rejected_refreshes,
        "unauthorized_healed": c.unauthorized_healed,
        "rate_limited_waits": c.rate_limited_waits,
        "rate_limit_pauses": c.rate_limit_pauses,
        "server_errors_retried": c.server_errors_retried,
        "transport_retries": c.transport_retries,
        "wall_time_secs": r.elapsed.as_secs_f64(),
        "aborted": r.aborted.as_ref().map(|e| e.to_string()),
    })
}

pub(crate) fn print_summary(r: &BatchReport, client: &ApiClient, hint: Option<&str>) {
    let c = client.metrics();
    let t = client.tokens().metrics();
    let secs = r.elapsed.as_secs_f64();
    let fields = summary_json(r, client);
    crate::ui::summary(
        &format!(
            "done in {secs:.1} s: {} ok, {} failed ({} invalid lines), {} skipped{}",
            r.ok,
            r.failed,
            r.invalid,
            r.skipped,
            if secs > 0.0 {
                format!(" · {:.0} requests/s", (r.ok + r.failed) as f64 / secs)
            } else {
                String::new()
            }
        ),
        fields,
    );
    crate::ui::summary(
        &format!(
            "tokens fetched: {} ({} proactive, {} after a 401) · 401s healed: {} · 429s waited: {} · rate-limit pauses: {} · 5xx retried: {} · transport retries: {}",
            t.tokens_fetched,
            t.proactive_refreshes,
            t.rejected_refreshes,
            c.unauthorized_healed,
            c.rate_limited_waits,
            c.rate_limit_pauses,
            c.server_errors_retried,
            c.transport_retries
        ),
        serde_json::Value::Null,
    );
    if r.repaired_bytes > 0 {
        crate::ui::note(&format!(
            "repaired a torn last line ({} bytes) left by the interrupted run",
            r.repaired_bytes
        ));
    }
    if let Some(e) = &r.aborted {
        crate::ui::error(&format!("stopped early: {e}"));
        if let Some(h) = hint {
            crate::ui::hint(h);
        }
        crate::ui::hint("fix the cause, then rerun with --resume to continue where it stopped");
    }
}
