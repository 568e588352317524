//! The one tokio runtime every refresh and request runs on, and the way a Python thread waits for
//! it: with the GIL released, waking up to let Ctrl-C through.

use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// How often a blocked Python thread looks for signals (Ctrl-C) while it waits.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
/// The process that started the runtime: a forked child has its memory but not its threads.
static OWNER: OnceLock<u32> = OnceLock::new();

/// Refuses to use the runtime in a process forked from the one that started it (`os.fork`,
/// multiprocessing's `fork` start method): its threads do not exist there, so every wait would
/// hang. A clear error instead.
pub(crate) fn check_fork() -> PyResult<()> {
    match OWNER.get() {
        Some(pid) if *pid != std::process::id() => Err(crate::errors::argument(
            "this tokenwarden object was created before the process forked and cannot be used in the child: create the Auth in the child process (or use multiprocessing's 'spawn' start method)",
        )),
        _ => Ok(()),
    }
}

/// The runtime: two worker threads (the work is I/O: a few threads serve any number of requests),
/// shared with `pyo3-async-runtimes` so that awaitables run their futures here too.
pub(crate) fn get() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        let _ = OWNER.set(std::process::id());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokenwarden")
            .enable_all()
            .build()
            .expect("cannot start the tokenwarden runtime threads")
    })
}

/// Makes `pyo3-async-runtimes` use [`get`]'s runtime (called once, at the first async call).
pub(crate) fn for_asyncio() -> PyResult<&'static tokio::runtime::Runtime> {
    check_fork()?;
    static SHARED: OnceLock<()> = OnceLock::new();
    let rt = get();
    SHARED.get_or_init(|| {
        // Err: already set, to this same runtime.
        let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    });
    Ok(rt)
}

/// Runs `fut` on the runtime and waits for it with the GIL released. Every
/// [`SIGNAL_CHECK`] the thread takes the GIL back to run Python's signal handlers: a
/// `KeyboardInterrupt` cancels the wait (and the future) and is raised.
pub(crate) fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    check_fork()?;
    let rt = get();
    let mut handle = rt.spawn(fut);
    loop {
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut handle).await })
        });
        match step {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(join)) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "tokenwarden internal error: {}",
                    if join.is_panic() {
                        "a task panicked"
                    } else {
                        "a task was cancelled"
                    }
                )));
            }
            Err(_elapsed) => {
                if let Err(e) = py.check_signals() {
                    handle.abort();
                    return Err(e);
                }
            }
        }
    }
}
