//! Logs go to stderr; stdout carries only command output. `RUST_LOG` wins over -v/-q.

use crate::args::{GlobalArgs, LogFormat};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

pub(crate) fn init(g: &GlobalArgs) {
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
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: not in files, pipes or CI logs.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(g.verbose >= 2);
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
