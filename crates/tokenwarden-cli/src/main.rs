//! The `tokenwarden` binary: parses arguments, runs one command, maps the outcome to an exit code.
//! All HTTP, token and retry logic lives in the `tokenwarden` library.

mod args;
mod commands;
// Settings resolution lives in its own crate (shared with the Python package); `crate::config`
// keeps naming it.
use tokenwarden_config as config;
mod exit;
mod interrupt;
mod logging;
mod progress;
mod text;
mod ui;
#[cfg(target_os = "linux")]
mod watchdog;

use args::LogFormat;
use clap::Parser as _;
use std::ffi::OsString;
use std::process::ExitCode;

pub(crate) use exit::ConfigError;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // `exec`'s watchdog process: nothing else of tokenwarden runs in it.
    #[cfg(target_os = "linux")]
    if argv.len() == 2 && argv[1] == watchdog::ARG {
        return watchdog::run();
    }
    let parsed = args::Cli::try_parse_from(&argv);
    let json = json_requested(&argv);
    wipe(argv);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e, json)),
    };
    logging::init(&cli.output);
    ui::init(cli.output.log_format, cli.output.quiet);
    install_panic_hook();
    let interrupted_message = interrupted_message(&cli.command);
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
        // Listen before the command starts, so that a Ctrl-C at any moment from here exits 130.
        let interrupted = self::interrupted();
        // The command runs as its own task: when it blocks a thread (reading a secret from a
        // pipe that never ends), this one still sees the Ctrl-C.
        let mut command = tokio::spawn(commands::run(cli));
        let code = tokio::select! {
            r = &mut command => finished(r),
            () = interrupted => {
                if interrupt::passed_on() {
                    // `exec`: signals are its command's (passed on to it), this one and any
                    // later one: tokenwarden exits with the command's status once it ends.
                    finished(command.await)
                } else if interrupt::handled_by_command() {
                    // The command stops cleanly and reports; a second signal does not wait.
                    let again = self::interrupted();
                    tokio::select! {
                        r = command => finished(r),
                        () = again => {
                            ui::error("interrupted again: stopped at once");
                            return exit::INTERRUPTED;
                        }
                    }
                } else {
                    let (message, hint) = interrupted_message();
                    ui::error(message);
                    if let Some(h) = hint {
                        ui::hint(&h);
                    }
                    exit::INTERRUPTED
                }
            }
        };
        // However the command ended (done, failed, interrupted): the OpenTelemetry export sends
        // what is left, within its timeout (a second signal does not wait for it).
        tokio::select! {
            () = commands::observe::otel::flush() => {}
            () = self::interrupted() => ui::error("interrupted again: the OpenTelemetry export is dropped"),
        }
        code
    });
    // Do not wait for background tasks (a refresh in flight) at exit.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// What to say when a command that does not handle Ctrl-C itself is interrupted, decided when it
/// happens: a resumable output gets the resume hint only once its state exists.
fn interrupted_message(
    command: &args::Command,
) -> impl FnOnce() -> (&'static str, Option<String>) + use<> {
    let out = match command {
        args::Command::Paginate(c) => c.args.out.out.clone(),
        args::Command::Export(args::ExportCommand::Conversations(c)) => c.args.out.out.clone(),
        _ => None,
    };
    let batch = matches!(command, args::Command::Batch(_));
    move || {
        if batch {
            // A batch handles Ctrl-C itself once its job started: this is before.
            return (
                "interrupted before the job started: nothing was written",
                None,
            );
        }
        let resumable = out.filter(|o| tokenwarden::jobs::export::resumable_after_stop(o));
        let hint = resumable.map(|o| {
            format!(
                "every complete page is in {}: rerun the same command with --resume to continue",
                o.display()
            )
        });
        ("interrupted", hint)
    }
}

/// The exit status of a command that ended, its error reported.
fn finished(r: Result<anyhow::Result<u8>, tokio::task::JoinError>) -> u8 {
    match r {
        Ok(Ok(code)) => code,
        Ok(Err(e)) if exit::is_stdout_closed(&e) => exit::OK,
        Ok(Err(e)) => {
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
        // A panic, already reported by the hook: exit as Rust does after one.
        Err(_) => exit::PANIC,
    }
}

/// Whether `--log-format json` was asked for, read from the raw arguments so that an argument
/// error, found before there is a parsed `Cli`, is reported in the format asked for.
fn json_requested(argv: &[OsString]) -> bool {
    let mut args = argv.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    let mut json = false;
    while let Some(a) = args.next() {
        match a {
            "--" => break,
            "--log-format" => json = args.next() == Some("json"),
            _ => {
                if let Some(v) = a.strip_prefix("--log-format=") {
                    json = v == "json";
                }
            }
        }
    }
    json
}

/// Our copy of the command line may hold `--client-secret`: wiped once parsed. (The kernel's copy,
/// in the process list, is why that flag warns.)
fn wipe(argv: Vec<OsString>) {
    use zeroize::Zeroize as _;
    for a in argv {
        a.into_encoded_bytes().zeroize();
    }
}

/// Reports an argument error (exit 2), or prints help or the version (exit 0). Under
/// `--log-format json` the error is one JSON object with the usage line as a field.
fn usage_error(e: &clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let _ = e.print();
        return exit::OK;
    }
    if !json {
        let _ = e.print();
        return exit::USAGE;
    }
    ui::init(LogFormat::Json, false);
    let text = e.render().to_string();
    let (mut message, mut usage, mut tips) = (None, None, Vec::new());
    for block in text.split("\n\n").map(str::trim) {
        if let Some(m) = block.strip_prefix("error: ") {
            message = Some(m.to_string());
        } else if let Some(t) = block.strip_prefix("tip: ") {
            tips.push(t.to_string());
        } else if let Some(u) = block.strip_prefix("Usage: ") {
            usage = Some(u.lines().next().unwrap_or(u).to_string());
        }
    }
    let message = match e.kind() {
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            "a command is required; see tokenwarden --help".to_string()
        }
        _ => message.unwrap_or_else(|| text.trim().to_string()),
    };
    // One line of message; clap's further lines (the possible values...) as a field.
    let (message, details) = match message.split_once('\n') {
        Some((first, rest)) => (first.to_string(), Some(rest.trim().to_string())),
        None => (message, None),
    };
    ui::error_with(
        &message,
        serde_json::json!({ "usage": usage, "details": details }),
    );
    for t in tips {
        ui::hint(&t);
    }
    exit::USAGE
}

/// A panic is reported like any error (one JSON object with `--log-format json`, secrets
/// scrubbed), saying it is a bug.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        ui::error(&format!(
            "internal error, a bug in tokenwarden (please report it): {what}{at}"
        ));
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured && !ui::is_json() {
            ui::note(&trace.to_string());
        }
    }));
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called (not from its first poll);
/// the future resolves on either, or never if no handler could be installed.
fn interrupted() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            let one = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = one(int) => {}
                () = one(term) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_log_format_is_found_before_parsing() {
        assert!(json_requested(&argv(&["tw", "--log-format", "json", "x"])));
        assert!(json_requested(&argv(&["tw", "x", "--log-format=json"])));
        assert!(!json_requested(&argv(&["tw", "--log-format", "text"])));
        assert!(!json_requested(&argv(&[
            "tw",
            "--",
            "--log-format",
            "json"
        ])));
        assert!(!json_requested(&argv(&["tw", "--log-format"])));
    }
}
