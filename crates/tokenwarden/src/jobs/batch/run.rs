//! [`run`]: a batch from its input to its output, in named steps: take the output and open the
//! input ([`prepare`]), stream the work, run the records, record their outcomes, finish.

use super::breaker::Streak;
use super::input::Parser;
use super::job::{JobIdentity, Mismatch};
use super::output::Output;
use super::work::{Done, Work, work_stream};
use super::{BatchOptions, BatchReport, Event, Input, Outcome, Record, StopReason};
use super::{journal, source};
use crate::error::Error;
use crate::jobs::ownership::Writer;
use crate::jobs::{JobError, Refusal, RunReport, Step};
use futures::StreamExt as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Runs a batch from `input` to `output`, calling `exec` for each valid record and `on_event` as
/// it goes (as [`export::run`](crate::jobs::export::run) does); see the [module
/// documentation](super) for what it guarantees.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::jobs::JobError> {
/// use tokenwarden::jobs::batch::{self, BatchOptions, BatchProgress, Input, Outcome};
/// let progress = BatchProgress::default();
/// let base = tokenwarden::ApiBase::parse("https://api.mypurecloud.ie").unwrap();
/// let report = batch::run(
///     &Input::from_arg("in.jsonl"),
///     "out.jsonl".as_ref(),
///     &BatchOptions { resume: true, ..BatchOptions::new(base) },
///     |event| progress.apply(&event),
///     |record| async move { Outcome::Response { status: 200, body: record.path.into() } },
/// )
/// .await?;
/// println!("{} ok, {} failed", report.ok, report.failed);
/// # Ok(()) }
/// ```
///
/// # Errors
/// Before anything is sent or written:
/// - [`JobError::Busy`] when the output is busy (another run writes it); [`JobError::Refused`]
///   when it exists (without `resume` or `overwrite`), or is not this job's journal (with
///   `resume`).
/// - [`JobError::Io`] when the input cannot be opened ([`Step::OpenInput`]), the output's
///   directory does not exist ([`Step::OutputDirectory`]) or a file cannot be created or locked.
/// - [`JobError::Api`] with [`Error::Config`] for a path template that lacks `{id}` or leaves
///   the API's origin.
///
/// During the run, [`JobError::Io`] with [`Step::WriteOutput`] when the output cannot be written (a
/// full disk): the job stops there. A credentials failure, too many failed records or an input
/// that breaks off are not errors here: they end the run with [`BatchReport::stopped`] set.
pub async fn run<F, Fut>(
    input: &Input,
    output: &Path,
    options: &BatchOptions,
    on_event: impl FnMut(Event) + Send,
    exec: F,
) -> Result<BatchReport, JobError>
where
    F: Fn(Record) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let events = Events::new(on_event);
    let started = tokio::time::Instant::now();
    let parser = Parser::new(&options.format, &options.api_base)?;
    let Prepared {
        mut out,
        mut source,
        scan,
    } = prepare(input, output, options).await?;
    let resumed = out.resuming().is_some();
    // A shard runs part of the lines: their count is not its total.
    let countable = source.countable.take().filter(|_| options.shard.is_none());
    let cancel_count = Arc::new(AtomicBool::new(false));
    let count = count_total(countable, Arc::clone(&cancel_count), &events);
    let prefix = source.lines.prefix();
    let identity = || {
        let prefix = prefix.lock().unwrap_or_else(|p| p.into_inner());
        JobIdentity::new(&input.name(), &options.format, &options.api_base, &prefix)
            .with_shard(options.shard)
    };
    let stop_reading = AtomicBool::new(false);
    let read_error: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);
    let on_skip = || events.tell(Event::Skipped);
    let work = work_stream(
        source.lines,
        &parser,
        &scan.done,
        &on_skip,
        &stop_reading,
        &read_error,
        options.max_line_bytes.max(1),
        options.shard,
    );
    let results = execute(work, &exec, options.concurrency);
    let mut recording = Recording::new(options, &events, &scan);
    let record_all = recording.record_all(results, &mut out, &identity, &stop_reading);
    // `None`: interrupted.
    let recorded = tokio::select! {
        r = record_all => Some(r),
        () = interrupted(options.interrupt.clone()) => None,
        () = count => unreachable!("the count never ends on its own"),
    };
    cancel_count.store(true, Ordering::Relaxed);
    match recorded {
        Some(r) => r?,
        None => recording.report.stopped = Some(StopReason::Interrupted),
    }
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        recording.stop(StopReason::Input(input_error(input, e)));
    }
    let mut report = recording.report;
    out.finish(report.stopped.is_none(), identity)?;
    report.output_exists = out.exists();
    report.run.resumed = resumed;
    report.run.done = report.ok + report.failed;
    report.run.done_earlier = events.skipped.load(Ordering::Relaxed);
    report.run.elapsed = started.elapsed();
    Ok(report)
}

/// Where a run's events go: the caller's `on_event`, shared by the steps that run side by side
/// (the count, the work stream, the recording), with the skipped records counted for the report.
struct Events<E> {
    on_event: std::sync::Mutex<E>,
    skipped: AtomicU64,
}

impl<E: FnMut(Event)> Events<E> {
    fn new(on_event: E) -> Self {
        Self {
            on_event: std::sync::Mutex::new(on_event),
            skipped: AtomicU64::new(0),
        }
    }

    fn tell(&self, event: Event) {
        if event == Event::Skipped {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        (self.on_event.lock().unwrap_or_else(|p| p.into_inner()))(event);
    }
}

/// Counts a regular file's lines on a handle of their own, for a percentage
/// ([`Event::Total`]); then waits for ever (the run ends it).
async fn count_total<E: FnMut(Event)>(
    path: Option<std::path::PathBuf>,
    cancel: Arc<AtomicBool>,
    events: &Events<E>,
) {
    if let Some(path) = path
        && let Some(lines) = source::count_lines(path, cancel).await
    {
        events.tell(Event::Total { lines });
    }
    std::future::pending::<()>().await
}

/// Ends when `interrupt` turns `true`; never without one, or when nobody is left to send it.
async fn interrupted(interrupt: Option<tokio::sync::watch::Receiver<bool>>) {
    let stopped = match interrupt {
        Some(mut stop) => stop.wait_for(|s| *s).await.is_ok(),
        None => false,
    };
    if !stopped {
        std::future::pending::<()>().await;
    }
}

/// Runs the records of `work` with `exec`, at most `concurrency` at once, as they complete.
fn execute<'a, F, Fut>(
    work: impl futures::Stream<Item = Work> + 'a,
    exec: &'a F,
    concurrency: usize,
) -> impl futures::Stream<Item = Done> + 'a
where
    F: Fn(Record) -> Fut,
    Fut: Future<Output = Outcome> + 'a,
{
    work.map(move |w| async move {
        let started = tokio::time::Instant::now();
        match w {
            Work::Run(r) => {
                let (id, line) = (r.id.clone(), r.line);
                Done {
                    id: Some(id),
                    line,
                    outcome: exec(r).await,
                    invalid: false,
                    started,
                }
            }
            Work::Invalid { id, line, error } => Done {
                id,
                line,
                outcome: Outcome::Failed(error),
                invalid: true,
                started,
            },
        }
    })
    .buffer_unordered(concurrency.max(1))
}

/// The recording side of a run: each outcome into the output, the counts, and the rules that
/// stop the job (an abort, the breaker, the failure limit).
struct Recording<'a, E> {
    options: &'a BatchOptions,
    events: &'a Events<E>,
    report: BatchReport,
    /// Records run (invalid lines aside) and, of those, failed: what the limit counts.
    ran: u64,
    failed_runs: u64,
    /// Records that found the API unreachable, held back while it stays so.
    streak: Streak<Done>,
    last_unreachable: Option<Error>,
    line: Vec<u8>,
}

impl<'a, E: FnMut(Event)> Recording<'a, E> {
    fn new(options: &'a BatchOptions, events: &'a Events<E>, scan: &journal::Scan) -> Self {
        Self {
            options,
            events,
            report: BatchReport {
                ok: 0,
                failed: 0,
                invalid: 0,
                earlier_failed: scan.failed,
                earlier_invalid: scan.invalid,
                output_exists: false,
                run: RunReport {
                    cut_bytes: scan.repaired_bytes,
                    ..RunReport::default()
                },
                stopped: None,
            },
            ran: 0,
            failed_runs: 0,
            streak: Streak::new(options.breaker),
            last_unreachable: None,
            line: Vec::with_capacity(1024),
        }
    }

    /// Stops the job for `why`, unless it has stopped already.
    fn stop(&mut self, why: StopReason) {
        if self.report.stopped.is_none() {
            self.report.stopped = Some(why);
        }
    }

    /// Records every outcome of `results` until they end or the job stops.
    async fn record_all(
        &mut self,
        results: impl futures::Stream<Item = Done>,
        out: &mut Output,
        identity: &impl Fn() -> JobIdentity,
        stop_reading: &AtomicBool,
    ) -> Result<(), JobError> {
        let mut results = std::pin::pin!(results);
        while let Some(d) = results.next().await {
            let d = match d.outcome {
                Outcome::Abort(e) => {
                    self.report.stopped = Some(StopReason::Aborted(e));
                    break;
                }
                Outcome::Unreachable(e) => {
                    let held = Done {
                        outcome: Outcome::Failed(e.to_string()),
                        ..d
                    };
                    match self.hold_back(held, e) {
                        Some(tripped) => {
                            self.report.stopped = Some(tripped);
                            break;
                        }
                        None => continue,
                    }
                }
                _ => d,
            };
            // The API answers (or failed otherwise): what was held back failed while it was up.
            let mut batch = self.streak.answered();
            batch.push(d);
            for d in batch {
                if self.write(d, out, identity)? {
                    // Read no more; the records in flight finish and are recorded.
                    stop_reading.store(true, Ordering::Relaxed);
                }
            }
        }
        // The input ended while the API was still unreachable: those records run on resume.
        if let Some(last) = self
            .last_unreachable
            .take()
            .filter(|_| self.streak.held() > 0)
        {
            let lasted = self.streak.lasted(tokio::time::Instant::now());
            let records = self.streak.held();
            self.stop(StopReason::Unreachable {
                records,
                lasted,
                last,
            });
        }
        if let Some(StopReason::TooManyFailures { failed, ran, .. }) = &mut self.report.stopped {
            (*failed, *ran) = (self.failed_runs, self.ran);
        }
        Ok(())
    }

    /// Holds back a record that found the API unreachable; the stop when the breaker trips.
    fn hold_back(&mut self, d: Done, e: Error) -> Option<StopReason> {
        let now = tokio::time::Instant::now();
        let started = d.started;
        if self.streak.unreachable(d, started, now) {
            return Some(StopReason::Unreachable {
                records: self.streak.held(),
                lasted: self.streak.lasted(now),
                last: e,
            });
        }
        self.last_unreachable = Some(e);
        None
    }

    /// Writes one record's line and counts it; `true` when this passes the failure limit.
    fn write(
        &mut self,
        d: Done,
        out: &mut Output,
        identity: &impl Fn() -> JobIdentity,
    ) -> Result<bool, JobError> {
        self.line.clear();
        let ok = journal::encode_line(&mut self.line, d.id, d.line, &d.outcome, d.invalid)?;
        out.write_line(&self.line, identity)?;
        let report = &mut self.report;
        if ok {
            report.ok += 1;
        } else {
            report.failed += 1;
        }
        report.invalid += u64::from(d.invalid);
        self.events.tell(Event::Recorded {
            ok,
            invalid: d.invalid,
        });
        if d.invalid {
            return Ok(false);
        }
        self.ran += 1;
        self.failed_runs += u64::from(!ok);
        let Some(limit) = self.options.max_failures else {
            return Ok(false);
        };
        if self.report.stopped.is_some() || !limit.exceeded(self.failed_runs, self.ran) {
            return Ok(false);
        }
        self.report.stopped = Some(StopReason::TooManyFailures {
            failed: self.failed_runs,
            ran: self.ran,
            limit,
        });
        Ok(true)
    }
}

/// A run ready to go: its output taken, its input open, and what an earlier run recorded.
struct Prepared {
    out: Output,
    source: source::Source,
    scan: journal::Scan,
}

/// Takes the output (locked), opens the input and, when resuming, makes sure both belong to this
/// job before anything is changed: nothing is sent or written before this returns.
async fn prepare(
    input: &Input,
    output: &Path,
    options: &BatchOptions,
) -> Result<Prepared, JobError> {
    let mut out = Output::acquire(output, options.resume, options.overwrite)?;
    // A corrected path template or method is accepted when every failure runs again.
    let mut corrected = None;
    match out
        .resuming()
        .and_then(|job| job.mismatch(&options.format, &options.api_base, options.shard))
    {
        None => {}
        Some(Mismatch::Definition(why)) if options.retry_failed => corrected = Some(why),
        Some(m) => return Err(other_job(output, m.into_detail())),
    }
    let mut source = input.open(options.max_line_bytes).await?;
    if let Some(job) = out.resuming() {
        let prefix = source
            .lines
            .peek_prefix(job.prefix_len())
            .await
            .map_err(|e| input_error(input, e))?;
        if let Some(problem) = job.same_input(&prefix) {
            return Err(other_job(output, problem));
        }
    }
    if let Some(why) = corrected {
        let succeeded =
            journal::has_success(output).map_err(|e| JobError::io(Step::ReadJournal, output, e))?;
        if succeeded {
            return Err(other_job(
                output,
                format!("{why}; some of its records succeeded, so they would not match"),
            ));
        }
        if let Some(job) = out.resuming().map(|j| j.redefined(&options.format)) {
            out.redefine(job)?;
        }
    }
    let scan = match out.resuming().cloned() {
        Some(job) => {
            if options.retry_failed {
                // The failed records' lines are about to go: the output will not be the file
                // last recorded.
                out.redefine(job.without_output())?;
            }
            scan_journal(output, options.retry_failed).await?
        }
        None => journal::Scan::default(),
    };
    Ok(Prepared { out, source, scan })
}

fn input_error(input: &Input, e: std::io::Error) -> JobError {
    JobError::io(Step::ReadInput, Path::new(&input.name()), e)
}

fn other_job(output: &Path, detail: String) -> JobError {
    JobError::refused(Writer::Batch, output, Refusal::OtherJob { detail })
}

/// Reads this job's journal (already recognised as this job's): cuts a torn last line, drops the
/// failed records when they are to run again, and collects the keys of the recorded ones.
async fn scan_journal(output: &Path, retry_failed: bool) -> Result<journal::Scan, JobError> {
    let path = output.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || {
        let scan = journal::scan_and_repair(&path)?;
        if !retry_failed || scan.foreign_line.is_some() {
            return Ok(scan);
        }
        let dropped = journal::drop_failed(&path)?;
        tracing::info!(records = dropped, "failed records will run again");
        let mut again = journal::scan_and_repair(&path)?;
        again.repaired_bytes = scan.repaired_bytes;
        Ok::<_, std::io::Error>(again)
    })
    .await
    .map_err(|e| Error::Internal(format!("resume scan: {e}")))?
    .map_err(|e| JobError::io(Step::ReadJournal, output, e))?;
    if let Some(line) = scan.foreign_line {
        return Err(JobError::refused(
            Writer::Batch,
            output,
            Refusal::Changed {
                sidecar: super::job_file_path(output),
                detail: format!("line {line} is not a line a batch writes"),
            },
        ));
    }
    // Said by whoever shows the report (`repaired_bytes`): a debug event only.
    if scan.repaired_bytes > 0 {
        tracing::debug!(
            bytes = scan.repaired_bytes,
            "cut a torn last line from the output (its record runs again)"
        );
    }
    if scan.unreadable_lines > 0 {
        tracing::warn!(
            lines = scan.unreadable_lines,
            "output lines that could not be read were ignored; their records run again"
        );
    }
    Ok(scan)
}
