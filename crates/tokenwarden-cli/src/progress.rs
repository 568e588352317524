//! Batch progress on stderr: a live bar on a terminal, plain periodic lines otherwise. When the
//! input's total is not known (a pipe), counts and rate without a percentage. The rate counts the
//! records run in this run, not the ones a resume skipped.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokenwarden::jobs::batch::BatchProgress;

/// Draws progress until stopped.
pub(crate) struct Reporter {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Bar,
    Lines,
    Silent,
}

impl Mode {
    pub(crate) fn pick(no_progress: bool, quiet: bool) -> Mode {
        if quiet || crate::ui::is_quiet() {
            Mode::Silent
        } else if !no_progress && !crate::ui::is_json() && std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

fn status(p: &BatchProgress, c: &ApiClient) -> String {
    // The run's events, as the summary, the report and the metrics endpoint count them.
    let o = c.recorder().totals();
    let t = c.token_metrics();
    format!(
        "failed {} · tokens {} · 401s healed {} · 429s waited {}",
        p.failed.load(Ordering::Relaxed),
        t.tokens_fetched,
        o.unauthorized_healed,
        o.rate_limited_waits
    )
}

/// Records run per second in this run (skipped ones cost nothing and are not counted).
fn rate(p: &BatchProgress, secs: f64) -> f64 {
    p.ran() as f64 / secs.max(0.001)
}

/// `n/total (p%)`, or `n records` when the total is not known.
fn position(n: u64, total: Option<u64>) -> String {
    match total {
        Some(t) => format!("{n}/{t} ({:.0}%)", n as f64 * 100.0 / t.max(1) as f64),
        None => format!("{n} records"),
    }
}

fn bar_style(with_length: bool) -> ProgressStyle {
    // Without a known total (a pipe): counts and rate, no percentage.
    let template = if with_length {
        "{bar:30.cyan/blue} {pos}/{len} ({percent}%) ETA {eta} · {msg}"
    } else {
        "{spinner} {pos} records · {msg}"
    };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Reporter {
    pub(crate) fn start(progress: Arc<BatchProgress>, client: ApiClient, mode: Mode) -> Reporter {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let bar = (mode == Mode::Bar).then(|| {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(bar_style(false));
                b
            });
            let period = if bar.is_some() {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(2)
            };
            let started = tokio::time::Instant::now();
            loop {
                let done = tokio::select! {
                    _ = stopped.notified() => true,
                    _ = tokio::time::sleep(period) => false,
                };
                let total = progress.total_lines.get().copied();
                let n = progress.done();
                let rate = rate(&progress, started.elapsed().as_secs_f64());
                match (&bar, mode) {
                    (Some(b), _) => {
                        if let Some(t) = total
                            && b.length() != Some(t)
                        {
                            b.set_length(t);
                            b.set_style(bar_style(true));
                        }
                        b.set_position(n);
                        b.set_message(format!("{rate:.0}/s · {}", status(&progress, &client)));
                    }
                    (None, Mode::Lines) if !done => {
                        crate::ui::progress(
                            &format!(
                                "progress: {} ({rate:.0}/s) · {}",
                                position(n, total),
                                status(&progress, &client)
                            ),
                            serde_json::json!({
                                "done": n,
                                "total": total,
                                "failed": progress.failed.load(Ordering::Relaxed),
                                "per_second": rate.round(),
                            }),
                        );
                    }
                    _ => {}
                }
                if done {
                    if let Some(b) = bar {
                        b.finish_and_clear();
                    }
                    return;
                }
            }
        });
        Reporter { stop, task }
    }

    pub(crate) async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_total_there_is_no_percentage() {
        assert_eq!(position(120, None), "120 records");
        assert_eq!(position(50, Some(200)), "50/200 (25%)");
    }

    #[test]
    fn the_rate_counts_only_records_run_in_this_run() {
        let p = BatchProgress::default();
        p.skipped.store(9_000, Ordering::Relaxed);
        p.ok.store(90, Ordering::Relaxed);
        p.failed.store(10, Ordering::Relaxed);
        assert_eq!(rate(&p, 10.0), 10.0);
    }
}
