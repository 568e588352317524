//! Ctrl-C and SIGTERM for commands that stop cleanly: such a command [`subscribe`]s, and the
//! first signal asks it to stop (it records what it finished, writes its summary, and exits 130
//! itself); a second signal exits at once. Any other command is stopped at once by the first.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Turned `true` by the first signal.
static STOP: OnceLock<watch::Sender<bool>> = OnceLock::new();
/// A command listens: the first signal is its to handle.
static SUBSCRIBED: AtomicBool = AtomicBool::new(false);

fn sender() -> &'static watch::Sender<bool> {
    STOP.get_or_init(|| watch::channel(false).0)
}

/// A receiver that turns `true` at the first Ctrl-C or SIGTERM; from now on, that signal is the
/// caller's to handle (it must then end the command soon).
pub(crate) fn subscribe() -> watch::Receiver<bool> {
    SUBSCRIBED.store(true, Ordering::SeqCst);
    sender().subscribe()
}

/// Called at the first signal: whether a command handles it (it has been told to stop).
pub(crate) fn handled_by_command() -> bool {
    let _ = sender().send(true);
    SUBSCRIBED.load(Ordering::SeqCst)
}
