//! The `tokenwarden` binary: parses arguments, runs one command, maps the outcome to an exit code.
//! All HTTP, token and retry logic lives in the `tokenwarden` library.

mod args;
mod commands;
mod config;
mod exit;
mod logging;
mod progress;
mod ui;

use clap::Parser as _;
use std::process::ExitCode;

pub(crate) use exit::ConfigError;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let is_batch = matches!(cli.command, args::Command::Batch(_));
    logging::init(&cli.global);
    ui::init(cli.global.log_format, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            r = commands::run(cli) => match r {
                Ok(code) => code,
                Err(e) => {
                    let code = exit::code(&e);
                    // The first line is the error; a "hint:" part becomes its own message.
                    let text = format!("{e:#}");
                    let mut parts = text.split("\nhint: ");
                    ui::error(parts.next().unwrap_or_default());
                    for h in parts {
                        ui::hint(h);
                    }
                    code
                }
            },
            _ = tokio::signal::ctrl_c() => {
                if is_batch {
                    ui::error("interrupted: every record finished so far is in the output; rerun with --resume to continue");
                } else {
                    ui::error("interrupted");
                }
                exit::INTERRUPTED
            }
        }
    });
    // Do not wait for background tasks (a refresh in flight) at exit.
    runtime.shutdown_background();
    ExitCode::from(code)
}
