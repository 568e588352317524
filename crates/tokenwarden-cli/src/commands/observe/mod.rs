//! `--report FILE.html`, `--metrics-listen ADDR` and `--otlp-endpoint URL`: what a long command
//! shows of its run. All read the client's [`Recorder`](tokenwarden::observe::Recorder), the
//! library's one stream of events, as the summary does: no number is counted twice.

pub(crate) mod otel;
mod report;
mod serve;

use crate::args::ObserveArgs;
use anyhow::Result;
use std::path::{Path, PathBuf};
use tokenwarden::ApiClient;

/// What a command observes while it runs: the metrics endpoint is served until [`finish`]
/// (or until dropped), the report is written by [`finish`].
///
/// [`finish`]: Observing::finish
pub(crate) struct Observing {
    command: &'static str,
    client: ApiClient,
    report: Option<PathBuf>,
    server: Option<serve::MetricsServer>,
}

/// Checks the report's path (refusing the job's own files and files that are not reports),
/// starts the metrics endpoint and the OpenTelemetry export, before the job sends anything. The
/// export is flushed by [`otel::flush`] when the process ends, however the command ended.
///
/// # Errors
/// A usage error for a report path that would destroy something or cannot be written, an
/// address that cannot be listened on, or OpenTelemetry settings that cannot be used.
pub(crate) async fn start(
    a: &ObserveArgs,
    command: &'static str,
    client: &ApiClient,
    output: Option<&Path>,
    others: &[(Option<&Path>, &str)],
    force: bool,
) -> Result<Observing> {
    if let Some(p) = &a.report {
        let mut own: Vec<(PathBuf, &str)> = Vec::new();
        if let Some(out) = output {
            own.push((out.to_path_buf(), "the output"));
            own.extend(
                tokenwarden::jobs::ownership::sidecars(out)
                    .into_iter()
                    .map(|p| (p, "a file tokenwarden keeps beside the output")),
            );
        }
        own.extend(others.iter().filter_map(|(p, what)| {
            p.filter(|p| p.as_os_str() != "-")
                .map(|p| (p.to_path_buf(), *what))
        }));
        report::check(p, &own, force)?;
    }
    otel::start(&a.otlp, client)?;
    let server = match a.metrics_listen {
        Some(addr) => Some(serve::MetricsServer::start(addr, client.clone()).await?),
        None => None,
    };
    Ok(Observing {
        command,
        client: client.clone(),
        report: a.report.clone(),
        server,
    })
}

impl Observing {
    /// Stops the endpoint and writes the report of the run, with `summary` (the numbers
    /// `--summary-json` has) as its totals. `resumed`: the run continued an earlier one.
    ///
    /// # Errors
    /// The report cannot be written.
    pub(crate) fn finish(mut self, summary: &serde_json::Value, resumed: bool) -> Result<()> {
        self.server.take();
        if let Some(path) = &self.report {
            let page = report::render(self.command, self.client.recorder(), summary, resumed);
            report::write(path, page.as_bytes())?;
            crate::ui::note(&format!("report: {}", path.display()));
        }
        Ok(())
    }
}

/// `summary` with the recorder's totals and series added: what `--summary-json` writes.
pub(crate) fn with_series(summary: &serde_json::Value, client: &ApiClient) -> serde_json::Value {
    let mut s = summary.clone();
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "series".into(),
            serde_json::to_value(client.recorder().series()).unwrap_or_default(),
        );
    }
    s
}
