//! The exit-status table, kept by every command, and the one function that maps an error to it.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | everything succeeded |
//! | 1 | the request, or some records, failed (an HTTP error after retries) |
//! | 2 | what was typed is wrong: a flag or its value, a file named on the command line that is missing or unreadable, an output directory that does not exist, bad inline JSON |
//! | 3 | credentials or configuration files: the token endpoint refuses the client, a broken config file |
//! | 4 | network, server or disk failure that outlasted the retries |
//! | 130 | interrupted |

/// Everything succeeded.
pub(crate) const OK: u8 = 0;
/// The request, or some records, failed.
pub(crate) const FAILED: u8 = 1;
/// What was typed is wrong (flags, values, files named on the command line).
pub(crate) const USAGE: u8 = 2;
/// Credentials or configuration files.
pub(crate) const CONFIG: u8 = 3;
/// Network, server or disk failure that outlasted the retries.
pub(crate) const RUNTIME: u8 = 4;
/// Interrupted (Ctrl-C, SIGTERM).
pub(crate) const INTERRUPTED: u8 = 130;
/// A bug: tokenwarden panicked (reported as an internal error). Not in the table: it is never
/// the outcome of a job, and Rust programs exit 101 after a panic.
pub(crate) const PANIC: u8 = 101;

/// The table as shown at the end of `--help`.
pub(crate) const TABLE: &str = "\
Exit status:
  0    everything succeeded
  1    the request, or some records, failed (an HTTP error after retries; the rest completed)
  2    what was typed is wrong: a flag or its value, a missing or unreadable file, bad inline JSON
  3    credentials or configuration: the token endpoint refuses the client, a broken config file,
       a bad value in the environment or a profile
  4    network, server or disk failure that outlasted the retries
  130  interrupted (Ctrl-C, SIGTERM)";

/// What was typed is wrong (exit 2): a flag value, a missing file named on the command line.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

/// Credentials or configuration files (exit 3).
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

/// A request or some records failed (exit 1), already reported.
#[derive(Debug)]
pub(crate) struct FailedError(pub(crate) String);

macro_rules! message_error {
    ($($t:ident),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for $t {}
    )*};
}
message_error!(UsageError, ConfigError, FailedError);

/// Maps an error to the table: the first cause that says what it is decides.
pub(crate) fn code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return USAGE;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return CONFIG;
        }
        if let Some(c) = cause.downcast_ref::<tokenwarden_config::Error>() {
            return if c.is_usage() { USAGE } else { CONFIG };
        }
        if cause.downcast_ref::<FailedError>().is_some() {
            return FAILED;
        }
        if let Some(tw) = cause.downcast_ref::<tokenwarden::Error>() {
            return library_code(tw);
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return RUNTIME;
        }
    }
    RUNTIME
}

/// Whether the error is stdout closed under us (`tokenwarden paginate | head`): the reader chose
/// to stop, so, like ripgrep, we stop quietly. A library error before it in the chain means a
/// network socket broke, which is not this.
pub(crate) fn is_stdout_closed(e: &anyhow::Error) -> bool {
    for cause in e.chain() {
        if cause.downcast_ref::<tokenwarden::Error>().is_some() {
            return false;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
    }
    false
}

/// Where a library error sits in the table: its [`Class`](tokenwarden::Class) decides, and a
/// fatal error is split by what failed (the configuration, the server, or the request).
pub(crate) fn library_code(e: &tokenwarden::Error) -> u8 {
    use tokenwarden::{Class, Error as E};
    match e.class() {
        Class::Credentials => CONFIG,
        // A 403: the request failed, the rest of a job can go on.
        Class::Permission => FAILED,
        Class::Transient => RUNTIME,
        _ => match e {
            E::Config(_) => CONFIG,
            // A server failure (5xx) that was not retried: the server's.
            E::Status { status, .. } if *status >= 500 => RUNTIME,
            // An HTTP answer that is an error: the request failed.
            E::Status { .. } | E::JobFailed { .. } => FAILED,
            _ => RUNTIME,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_decide_even_under_context() {
        use anyhow::Context as _;
        let e = Err::<(), _>(UsageError("x".into()))
            .context("while y")
            .unwrap_err();
        assert_eq!(code(&e), USAGE);
        let e = anyhow::Error::new(ConfigError("x".into()));
        assert_eq!(code(&e), CONFIG);
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        assert_eq!(code(&anyhow::Error::new(io)), RUNTIME);
        let e = anyhow::Error::new(tokenwarden::Error::Status {
            method: "GET".into(),
            path: "/x".into(),
            status: 404,
            body: String::new(),
        });
        assert_eq!(code(&e), FAILED);
        let e = anyhow::Error::new(tokenwarden::Error::Status {
            method: "POST".into(),
            path: "/x".into(),
            status: 503,
            body: String::new(),
        });
        assert_eq!(code(&e), RUNTIME, "a 5xx is the server's failure");
    }

    #[test]
    fn a_closed_stdout_is_told_from_a_broken_socket() {
        use anyhow::Context as _;
        let pipe = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = Err::<(), _>(pipe()).context("writing items").unwrap_err();
        assert!(is_stdout_closed(&e));
        let e = anyhow::Error::new(tokenwarden::Error::Internal("socket".into()));
        assert!(!is_stdout_closed(&e));
    }
}
