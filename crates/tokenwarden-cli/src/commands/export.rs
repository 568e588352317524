//! `tokenwarden export conversations`, and the resumable writing that it and `paginate` share:
//! flags to a library export, its events to progress lines, its outcome to a summary and an exit
//! status.

use crate::args::{ExportArgs, ExportFormat, ExportOutArgs};
use crate::exit::{self, UsageError};
use crate::text::plural;
use crate::ui;
use anyhow::Result;
use serde_json::{Value, json};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenwarden::jobs::JobError;
use tokenwarden::jobs::export::{
    self, Destination, Event, ExportOptions, Format, Mode, Report, Source,
};
use tokenwarden::{ApiClient, Class, jobs::ownership, paginate::JobOptions};

/// Analytics conversation details jobs endpoint.
const JOBS_PATH: &str = "/api/v2/analytics/conversations/details/jobs";

/// First wait between job status polls; it grows by half each poll up to [`POLL_MAX`]. A job
/// submitted ahead (while the previous slice's results are read) is usually done at the first poll.
const POLL_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between job status polls (Genesys allows 300 requests a minute per token).
const POLL_MAX: Duration = Duration::from_secs(10);

/// Seconds between two progress lines about pages.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn conversations(client: &ApiClient, a: ExportArgs) -> Result<u8> {
    let filter = match &a.filter {
        Some(f) => super::json_arg(f)?,
        None => json!({}),
    };
    let Value::Object(fields) = &filter else {
        return Err(UsageError(
            "--filter must be a JSON object of job body fields, e.g. '{\"segmentFilters\": [...]}'"
                .into(),
        )
        .into());
    };
    if fields.contains_key("interval") {
        return Err(UsageError(
            "--filter sets \"interval\": give the interval with --interval (it is cut into slices)"
                .into(),
        )
        .into());
    }
    let mut options = JobOptions::default().poll(POLL_INITIAL, POLL_MAX);
    if let Some(n) = a.page_size {
        options = options.page_size(n);
    }
    let source = Source::Conversations {
        jobs_path: JOBS_PATH.into(),
        interval: a.interval,
        slice: a.slice,
        filter,
        options,
    };
    run(client, "export conversations", source, &a.out).await
}

/// Runs `source` to the output the flags name, with progress on stderr and a summary at the end.
pub(super) async fn run(
    client: &ApiClient,
    command: &'static str,
    source: Source,
    out: &ExportOutArgs,
) -> Result<u8> {
    // `/dev/stdout`, `/dev/null`, a FIFO: written as a stream, with no position kept beside it.
    let stream_path = out
        .out
        .clone()
        .filter(|p| p != Path::new("-") && ownership::is_stream(p));
    if let Some(p) = &stream_path
        && out.resume
    {
        return Err(UsageError(format!(
            "--resume: {} is not a regular file, so it is written as a stream and there is no recorded position to continue; run without --resume",
            p.display()
        ))
        .into());
    }
    let file = out
        .out
        .clone()
        .filter(|p| p != Path::new("-") && stream_path.is_none());
    if file.is_none() && out.resume {
        return Err(UsageError(
            "--resume needs --out FILE: the position is recorded beside the file (stdout cannot be continued)"
                .into(),
        )
        .into());
    }
    let mode = match (out.resume, out.force) {
        (true, _) => Mode::Resume,
        (false, true) => Mode::Overwrite,
        (false, false) => Mode::New,
    };
    let format = match out.format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Csv => Format::Csv,
    };
    let terminal = file.is_none() && stream_path.is_none() && std::io::stdout().is_terminal();
    let destination = match (&file, &stream_path) {
        (Some(p), _) => Destination::File(p.clone()),
        (None, Some(p)) => Destination::Stream(Box::new(
            tokenwarden::fs::open_stream(p)
                .map_err(|e| UsageError(format!("--out {}: {e}", p.display())))?,
        )),
        (None, None) => Destination::Stream(Box::new(std::io::stdout())),
    };
    let observing = super::observe::start(
        &out.observe,
        command,
        client,
        file.as_deref().or(stream_path.as_deref()),
        &[],
        out.force,
    )
    .await?;
    let started = Instant::now();
    let mut progress = Progress::new(file.as_deref());
    let options = ExportOptions::new(format, mode).terminal(terminal);
    let result = export::run(client, source, destination, options, |e| progress.event(e)).await;
    let took = started.elapsed();
    match result {
        Ok(report) => {
            let fields = summary(&report, client, file.as_deref(), format);
            observing.finish(&fields, report.run.resumed)?;
            Ok(exit::OK)
        }
        // The reader of a pipe has what it wanted (`| head`): not an error.
        Err(e) if e.is_broken_pipe() => {
            observing.finish(
                &json!({"wall_time_secs": took.as_secs_f64()}),
                progress.resumed,
            )?;
            Ok(exit::OK)
        }
        Err(e) if client.recorder().totals().all_requests() == 0 => {
            failure(e, file.as_deref(), &progress)
        }
        Err(e) => {
            // The report of a run that stopped is the one most worth reading.
            let stopped = json!({
                "items": progress.items,
                "stopped": stopped_text(&e),
                "wall_time_secs": took.as_secs_f64(),
            });
            observing.finish(&stopped, progress.resumed)?;
            failure(e, file.as_deref(), &progress)
        }
    }
}

/// Why an export stopped, in one line: a local file's failure with the operating system's words.
fn stopped_text(e: &JobError) -> String {
    match e {
        JobError::Io { source, .. } => format!("{e}: {source}"),
        _ => e.to_string(),
    }
}

/// The exit status and messages for an export that stopped.
fn failure(e: JobError, file: Option<&Path>, progress: &Progress) -> Result<u8> {
    match e {
        // Credentials: the standard path, which adds which credentials were used.
        JobError::Api(e) if e.class() == Class::Credentials => Err(e.into()),
        JobError::Api(e) => match file {
            Some(path) if progress.items > 0 || progress.resumed => {
                ui::error(&e.to_string());
                ui::hint(&format!(
                    "{} safely in {}; fix the cause, then rerun the same command with --resume to continue",
                    match progress.items {
                        1 => "1 item is".to_string(),
                        n => format!("{n} items are"),
                    },
                    path.display()
                ));
                Ok(exit::library_code(&e))
            }
            _ => Err(e.into()),
        },
        // The output's refusals, a busy output, a local file: placed as a batch's are.
        other => Err(super::batch::explain(other)),
    }
}

/// Turns export events into notes and progress lines (at most one page line every few seconds).
struct Progress {
    out: Option<PathBuf>,
    last: Instant,
    items: u64,
    resumed: bool,
}

impl Progress {
    fn new(out: Option<&Path>) -> Self {
        Self {
            out: out.map(Path::to_path_buf),
            last: Instant::now(),
            items: 0,
            resumed: false,
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Resumed {
                items,
                cut_bytes,
                from,
            } => {
                self.items = items;
                self.resumed = true;
                let out = self.out.as_deref().unwrap_or(Path::new("-")).display();
                let cut = if cut_bytes > 0 {
                    format!(
                        " (cut {cut_bytes} bytes of a page that was being written when it stopped)"
                    )
                } else {
                    String::new()
                };
                ui::note(&format!(
                    "resuming {out}: {} recorded, continuing at {from}{cut}",
                    plural(items, "item")
                ));
            }
            Event::Page { items, pages } => {
                self.items = items;
                if self.last.elapsed() >= PROGRESS_EVERY {
                    self.last = Instant::now();
                    ui::progress(
                        &format!("{}, {}", plural(items, "item"), plural(pages, "page")),
                        json!({"items": items, "pages": pages}),
                    );
                }
            }
            Event::SliceStarted {
                index,
                count,
                interval,
            } => ui::progress(
                &format!("slice {}/{count}: {interval}", index + 1),
                json!({"slice": index + 1, "slices": count, "interval": interval.to_string(), "items": self.items}),
            ),
            Event::JobSubmitted { slice, job_id } => {
                tracing::debug!(slice = slice + 1, job_id, "analytics job submitted");
            }
            Event::SliceRedone { index, reason } => ui::warn(&format!(
                "slice {} runs again from its start: {reason}",
                index + 1
            )),
            Event::WritingCsv => ui::note("every item is in; writing the CSV"),
            _ => {}
        }
    }
}

/// Shows the summary; returns its fields (the report's totals).
fn summary(report: &Report, client: &ApiClient, file: Option<&Path>, format: Format) -> Value {
    let took = report.run.elapsed;
    let place = file.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let t = client.token_metrics();
    let o = client.recorder().totals();
    let fields = json!({
        "items": report.items,
        "new_items": report.run.done,
        "pages": report.pages,
        "output": place,
        "format": match format { Format::Csv => "csv", _ => "jsonl" },
        "resumed": report.run.resumed,
        "already_complete": report.already_complete,
        "cut_bytes": report.run.cut_bytes,
        "slices": report.slices,
        "slices_redone": report.slices_redone,
        "left_to_other_slices": report.left_to_other_slices,
        "tokens_fetched": t.tokens_fetched,
        "refreshes_after_401": t.rejected_refreshes,
        "unauthorized_healed": o.unauthorized_healed,
        "rate_limited_waits": o.rate_limited_waits,
        "server_errors_retried": client.metrics().server_errors_retried,
        "wall_time_secs": took.as_secs_f64(),
    });
    if report.already_complete {
        ui::summary(
            &format!(
                "{place} is already complete ({}): nothing to do",
                plural(report.items, "item")
            ),
            fields.clone(),
        );
        return fields;
    }
    let new = if report.run.resumed {
        format!(", {} new", report.run.done)
    } else {
        String::new()
    };
    let slices = match (report.slices, report.slices_redone) {
        (0, _) => String::new(),
        (n, 0) => format!(", {}", plural(n as u64, "slice")),
        (n, r) => format!(", {} ({r} run again)", plural(n as u64, "slice")),
    };
    ui::summary(
        &format!(
            "{} in {place}{new} · {}{slices} · done in {:.1} s · tokens fetched: {} ({} after a 401) · 401s healed: {} · 429s waited: {}",
            plural(report.items, "item"),
            plural(report.pages, "page"),
            took.as_secs_f64(),
            t.tokens_fetched,
            t.rejected_refreshes,
            o.unauthorized_healed,
            o.rate_limited_waits,
        ),
        fields.clone(),
    );
    fields
}
