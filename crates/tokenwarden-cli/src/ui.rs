//! Messages for the person (or script) running a command: errors, hints, warnings, notes, progress
//! and summaries, on stderr. Text lines by default; with `--log-format json`, one JSON object per
//! line in the same flat shape as the log events (`timestamp`, `level`, `message`, plus `kind` and
//! any fields), so stderr holds nothing else. stdout carries only data.
//!
//! Every message is scrubbed of registered secrets and control characters before it is shown
//! ([`tokenwarden::redact::terminal_safe`]).

use crate::args::LogFormat;
use serde_json::{Map, Value};
use std::io::Write as _;
use std::sync::OnceLock;

/// Longest message shown, in characters.
const MAX_MESSAGE: usize = 4000;

#[derive(Debug, Clone, Copy)]
struct Style {
    json: bool,
    quiet: bool,
}

static STYLE: OnceLock<Style> = OnceLock::new();

fn style() -> Style {
    *STYLE.get_or_init(|| Style {
        json: false,
        quiet: false,
    })
}

/// Sets the output style once, at start.
pub(crate) fn init(format: LogFormat, quiet: bool) {
    let _ = STYLE.set(Style {
        json: format == LogFormat::Json,
        quiet,
    });
}

/// Whether messages go out as JSON.
pub(crate) fn is_json() -> bool {
    style().json
}

/// Whether `-q` was given.
pub(crate) fn is_quiet() -> bool {
    style().quiet
}

/// What a message is, for the `kind` field and the text prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Hint,
    Warning,
    Note,
    Progress,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Hint => "hint",
            Kind::Warning => "warning",
            Kind::Note => "note",
            Kind::Progress => "progress",
            Kind::Summary => "summary",
        }
    }

    fn level(self) -> &'static str {
        match self {
            Kind::Error => "ERROR",
            Kind::Hint | Kind::Warning => "WARN",
            _ => "INFO",
        }
    }
}

/// Shows `message` (and, in JSON, `fields`) unless `-q` hides its kind. Errors and hints always
/// show; so do warnings given with `always`.
pub(crate) fn emit(kind: Kind, message: &str, fields: Value, always: bool) {
    let s = style();
    let shown_when_quiet = always || matches!(kind, Kind::Error | Kind::Hint);
    if s.quiet && !shown_when_quiet {
        return;
    }
    let message = tokenwarden::redact::terminal_safe(message, MAX_MESSAGE);
    let line = if s.json {
        let mut obj = Map::new();
        obj.insert("timestamp".into(), Value::String(now_rfc3339()));
        obj.insert("level".into(), Value::String(kind.level().into()));
        obj.insert("kind".into(), Value::String(kind.name().into()));
        obj.insert("message".into(), Value::String(message));
        if let Value::Object(extra) = fields {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        tokenwarden::redact::redact(&Value::Object(obj).to_string()).into_owned()
    } else {
        match kind {
            Kind::Error | Kind::Hint | Kind::Warning => format!("{}: {message}", kind.name()),
            _ => message,
        }
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// An error (always shown).
pub(crate) fn error(message: &str) {
    emit(Kind::Error, message, Value::Null, true);
}

/// An error with its details as fields in JSON (always shown).
pub(crate) fn error_with(message: &str, fields: Value) {
    emit(Kind::Error, message, fields, true);
}

/// A hint on how to fix what just failed (always shown).
pub(crate) fn hint(message: &str) {
    emit(Kind::Hint, message, Value::Null, true);
}

/// A warning (hidden by `-q`).
pub(crate) fn warn(message: &str) {
    emit(Kind::Warning, message, Value::Null, false);
}

/// A warning that `-q` does not hide (a secret on the command line).
pub(crate) fn warn_always(message: &str) {
    emit(Kind::Warning, message, Value::Null, true);
}

/// A note about what happened (hidden by `-q`).
pub(crate) fn note(message: &str) {
    emit(Kind::Note, message, Value::Null, false);
}

/// A progress line with its numbers as fields (hidden by `-q`).
pub(crate) fn progress(message: &str, fields: Value) {
    emit(Kind::Progress, message, fields, false);
}

/// The final summary: its text and, in JSON, its numbers (hidden by `-q`).
pub(crate) fn summary(message: &str, fields: Value) {
    emit(Kind::Summary, message, fields, false);
}

/// Now, as RFC 3339 UTC with milliseconds.
fn now_rfc3339() -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    crate::text::rfc3339(now)
}
