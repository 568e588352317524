//! Logs go to stderr; stdout carries only command output. `RUST_LOG` wins over -v/-q. Every line
//! passes through [`tokenwarden::redact`] on its way out, so a secret that reached a log field as
//! ordinary text (a server echoing it) is scrubbed there too.

use crate::args::{LogFormat, OutputArgs};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

pub(crate) fn init(g: &OutputArgs) {
    // Dependencies stay at info even at -vvv: tokenwarden's own events never carry secrets, and
    // this keeps lower-level HTTP tracing (which we do not control) out of the output.
    let ours = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let default = if g.quiet {
        "error".to_string()
    } else {
        let deps = if g.verbose >= 2 { "info" } else { "warn" };
        format!("{deps},tokenwarden={ours},tokenwarden_cli={ours},tokenwarden_sim={ours}")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        // Colour codes only for a person at a terminal: not in files, pipes or CI logs.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(g.verbose >= 2);
    match g.log_format {
        // Flat objects (`timestamp`, `level`, `message`, fields...), the shape of `ui`'s messages.
        LogFormat::Json => builder.json().flatten_event(true).init(),
        // At default verbosity the few events shown read like `ui`'s messages (`warning: ...`):
        // one style on stderr. With -v, timestamps and levels help follow a long job.
        LogFormat::Text if g.verbose == 0 => builder.event_format(Plain).init(),
        LogFormat::Text => builder.init(),
    }
}

/// `warning: message field=value ...`, as `ui` writes its messages: no timestamp, no target.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "note",
            _ => "debug",
        };
        write!(writer, "{prefix}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// stderr, with registered secrets scrubbed from each write (the formatter writes one event per
/// call).
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clean = tokenwarden::redact_bytes(buf);
        std::io::stderr().lock().write_all(&clean)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
