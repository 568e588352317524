//! Batch progress on stderr: a live bar on a terminal, plain periodic lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokenwarden::batch::BatchProgress;

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
    let m = c.metrics();
    let t = c.tokens().metrics();
    format!(
        "failed {} · tokens {} · 401s healed {} · 429s waited {}",
        p.failed.load(Ordering::Relaxed),
        t.tokens_fetched,
        m.unauthorized_healed,
        m.rate_limited_waits
    )
}

impl Reporter {
    pub(crate) fn start(progress: Arc<BatchProgress>, client: ApiClient, mode: Mode) -> Reporter {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let total = progress.total_lines.load(Ordering::Relaxed);
            let bar = (mode == Mode::Bar).then(|| {
                let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(
                        "{bar:30.cyan/blue} {pos}/{len} ETA {eta} · {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
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
                let total = progress.total_lines.load(Ordering::Relaxed);
                let n = progress.done();
                match (&bar, mode) {
                    (Some(b), _) => {
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        b.set_length(total);
                        b.set_position(n);
                        b.set_message(format!(
                            "{:.0}/s · {}",
                            n as f64 / secs,
                            status(&progress, &client)
                        ));
                    }
                    (None, Mode::Lines) if !done => {
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        crate::ui::progress(
                            &format!(
                                "progress: {n}/{total} ({:.0}/s) · {}",
                                n as f64 / secs,
                                status(&progress, &client)
                            ),
                            serde_json::json!({
                                "done": n,
                                "total": total,
                                "failed": progress.failed.load(Ordering::Relaxed),
                                "per_second": (n as f64 / secs).round(),
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
