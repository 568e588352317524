//! `exec`'s watchdog: when tokenwarden itself is killed (SIGKILL, the OOM killer), its command
//! gets SIGTERM instead of running on without its agent.
//!
//! The direct way, `PR_SET_PDEATHSIG` set in the child before `exec`, needs `unsafe`
//! (`pre_exec`), which the workspace forbids. So `exec` starts a second, tiny process of its own
//! binary (`tokenwarden __exec-watchdog`, nothing else parsed, an empty environment, a process
//! group of its own so that a Ctrl-C or a group kill meant for the command does not reach it)
//! that holds a pidfd of the command (as its stdout) and the read end of a pipe from tokenwarden
//! (its stdin). When the command ends, tokenwarden writes [`DONE`] and the watchdog leaves; when
//! tokenwarden dies, the kernel closes the pipe and the watchdog signals the command through the
//! pidfd, which names that process and no other (its pid reused after it was reaped cannot be
//! hit). Linux only (pidfds); elsewhere, or on a kernel before 5.3, the command outlives a
//! SIGKILL of tokenwarden, its agent gone.

/// The watchdog's one argument: `main` runs [`run`] when it sees it, before anything else.
pub(crate) const ARG: &str = "__exec-watchdog";

/// What tokenwarden writes when the command has ended: leave without a signal.
const DONE: &[u8] = b"done";

/// A watchdog started for a command: [`Watchdog::release`] it once the command has ended.
pub(crate) struct Watchdog {
    process: tokio::process::Child,
    pipe: tokio::process::ChildStdin,
}

impl Watchdog {
    /// Starts the watchdog of the process `pid` (a child of ours, not yet waited for, so the pid
    /// is still its own). `None` when it cannot be started (said at debug level): the command
    /// runs without one.
    pub(crate) fn start(pid: u32) -> Option<Watchdog> {
        use std::process::Stdio;
        let not_started = |why: &dyn std::fmt::Display| {
            tracing::debug!(%why, "no watchdog: the command would outlive a SIGKILL of tokenwarden");
        };
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| not_started(&e))
            .ok()?;
        let exe = std::env::current_exe().map_err(|e| not_started(&e)).ok()?;
        let mut process = tokio::process::Command::new(exe)
            .arg(ARG)
            .env_clear()
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(pidfd))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| not_started(&e))
            .ok()?;
        let pipe = process.stdin.take()?;
        Some(Watchdog { process, pipe })
    }

    /// The command has ended: the watchdog leaves without a signal, and is waited for.
    pub(crate) async fn release(mut self) {
        use tokio::io::AsyncWriteExt as _;
        let _ = self.pipe.write_all(DONE).await;
        drop(self.pipe);
        let _ = self.process.wait().await;
    }
}

/// The watchdog process: waits for its stdin to end; unless tokenwarden said [`DONE`] first (the
/// command ended), sends SIGTERM to the process its stdout (a pidfd) names.
pub(crate) fn run() -> std::process::ExitCode {
    use std::io::Read as _;
    let mut said = Vec::new();
    let _ = std::io::stdin()
        .take(DONE.len() as u64 + 1)
        .read_to_end(&mut said);
    if said != DONE {
        let _ =
            rustix::process::pidfd_send_signal(std::io::stdout(), rustix::process::Signal::TERM);
    }
    std::process::ExitCode::SUCCESS
}
