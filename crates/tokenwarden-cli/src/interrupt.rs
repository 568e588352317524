//! Ctrl-C and SIGTERM for commands that stop cleanly: such a command [`subscribe`]s, and the
//! first signal asks it to stop (it records what it finished, writes its summary, and exits 130
//! itself); a second signal exits at once. Any other command is stopped at once by the first.
//! A command that passes signals on to a child of its own (`exec`) calls
//! [`pass_on_to_command`]: from then on no signal makes tokenwarden exit; the child decides, and
//! the command ends when the child does.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Turned `true` by the first signal.
static STOP: OnceLock<watch::Sender<bool>> = OnceLock::new();
/// A command listens: the first signal is its to handle.
static SUBSCRIBED: AtomicBool = AtomicBool::new(false);
/// Signals are passed on to the command's child: none is tokenwarden's to act on.
static PASSED_ON: AtomicBool = AtomicBool::new(false);

fn sender() -> &'static watch::Sender<bool> {
    STOP.get_or_init(|| watch::channel(false).0)
}

/// A receiver that turns `true` at the first Ctrl-C or SIGTERM; from now on, that signal is the
/// caller's to handle (it must then end the command soon).
pub(crate) fn subscribe() -> watch::Receiver<bool> {
    SUBSCRIBED.store(true, Ordering::SeqCst);
    sender().subscribe()
}

/// From now on every signal is passed on to the command's child (the caller does that), and
/// none, the first or any later one, makes tokenwarden exit before the command ends.
pub(crate) fn pass_on_to_command() {
    PASSED_ON.store(true, Ordering::SeqCst);
}

/// Whether signals are passed on to a child (see [`pass_on_to_command`]).
pub(crate) fn passed_on() -> bool {
    PASSED_ON.load(Ordering::SeqCst)
}

/// Called at the first signal: whether a command handles it (it has been told to stop).
pub(crate) fn handled_by_command() -> bool {
    let _ = sender().send(true);
    SUBSCRIBED.load(Ordering::SeqCst)
}
