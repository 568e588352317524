//! The `tokenwarden` binary: parses arguments, runs one command, maps the outcome to an exit code.
//! All HTTP, token and retry logic lives in the `tokenwarden` library.

mod args;
mod commands;
mod config;
mod logging;
mod progress;

use clap::Parser as _;
use std::process::ExitCode;

/// Exit codes (documented in `--help`).
pub(crate) mod exit {
    /// Everything succeeded.
    pub(crate) const OK: u8 = 0;
    /// The request, or some records, failed.
    pub(crate) const FAILED: u8 = 1;
    /// Configuration or credentials error.
    pub(crate) const CONFIG: u8 = 3;
    /// Other runtime error.
    pub(crate) const RUNTIME: u8 = 4;
    /// Interrupted (Ctrl-C).
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// Marks an error as a configuration or credentials problem (exit code 3).
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let is_batch = matches!(cli.command, args::Command::Batch(_));
    logging::init(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            r = commands::run(cli) => match r {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit_code(&e)
                }
            },
            _ = tokio::signal::ctrl_c() => {
                if is_batch {
                    eprintln!("interrupted: every record finished so far is in the output; rerun with --resume to continue");
                } else {
                    eprintln!("interrupted");
                }
                exit::INTERRUPTED
            }
        }
    });
    // Do not wait for background tasks (a refresh in flight) at exit.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// Maps an error to the documented exit code.
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return exit::CONFIG;
        }
        if let Some(tw) = cause.downcast_ref::<tokenwarden::Error>() {
            return if tw.is_credentials()
                || matches!(
                    tw,
                    tokenwarden::Error::Config(_) | tokenwarden::Error::Forbidden { .. }
                ) {
                exit::CONFIG
            } else {
                exit::RUNTIME
            };
        }
    }
    exit::RUNTIME
}
