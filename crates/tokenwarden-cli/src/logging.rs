//! Logs go to stderr; stdout carries only command output. `RUST_LOG` wins over -v/-q. Every line
//! passes through [`tokenwarden::redact::redact`] on its way out, so a secret that reached a log field as
//! ordinary text (a server echoing it) is scrubbed there too.

use crate::args::{LogFormat, OutputArgs};
use std::borrow::Cow;
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
        format!(
            "{deps},tokenwarden={ours},tokenwarden_cli={ours},tokenwarden_sim={ours},tokenwarden_otel={ours}"
        )
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a person at a terminal: not in files, pipes or CI logs.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let writer = RedactingStderr {
        text: g.log_format == LogFormat::Text,
        colours: ansi,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer)
        .with_ansi(ansi)
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
/// call). A text line also gets its control characters escaped: a field that carries server text
/// cannot forge a second line or drive the terminal (JSON escapes them itself).
#[derive(Clone, Copy)]
struct RedactingStderr {
    text: bool,
    /// The formatter writes colour codes: those are kept.
    colours: bool,
}

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clean = tokenwarden::redact::redact_bytes(buf);
        let line = if self.text {
            Cow::Owned(escape_controls(&String::from_utf8_lossy(&clean), self.colours).into_bytes())
        } else {
            clean
        };
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `line` with its control characters shown escaped (`\u{1b}`, `\r`, `\n`), except the newline
/// that ends it and, with `colours`, the colour codes (`ESC [ digits ; m`) the formatter writes.
fn escape_controls(line: &str, colours: bool) -> String {
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let mut out = String::with_capacity(line.len());
    let mut rest = body;
    while !rest.is_empty() {
        // The next colour code the formatter may have written, as (start, length).
        let sgr = colours
            .then(|| {
                rest.match_indices("\u{1b}[").find_map(|(at, _)| {
                    let params = &rest[at + 2..];
                    let n = params.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
                    params[n..].starts_with('m').then_some((at, 2 + n + 1))
                })
            })
            .flatten();
        let (text, code, next) = match sgr {
            Some((at, len)) => (&rest[..at], &rest[at..at + len], &rest[at + len..]),
            None => (rest, "", ""),
        };
        out.push_str(&tokenwarden::redact::terminal_safe(text, usize::MAX));
        out.push_str(code);
        rest = next;
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_log_field_cannot_forge_a_line_or_drive_the_terminal() {
        let forged =
            "WARN token request failed reason=HTTP 503 x \u{1b}]0;TITLE\u{7}\nERROR forged\r\n";
        let shown = escape_controls(forged, false);
        assert_eq!(
            shown,
            "WARN token request failed reason=HTTP 503 x \\u{1b}]0;TITLE\\u{7}\\nERROR forged\\r\n"
        );
        // The formatter's own colours stay when it writes them; other sequences do not.
        let coloured = "\u{1b}[33mWARN\u{1b}[0m x \u{1b}[2J\u{1b}[31;1m\n";
        assert_eq!(
            escape_controls(coloured, true),
            "\u{1b}[33mWARN\u{1b}[0m x \\u{1b}[2J\u{1b}[31;1m\n"
        );
        assert_eq!(escape_controls("plain\n", true), "plain\n");
    }
}
