//! The `tokenwarden._tokenwarden` extension module: the binding between Python and the tokenwarden
//! library, kept thin (conversions and the GIL boundary; every rule lives in the library).
//!
//! The public Python API is the `tokenwarden` package (Python code beside this crate), which wraps
//! the classes here:
//!
//! - `Auth`: a `TokenManager`. `token()` takes the library's lock-free fast path without
//!   leaving the GIL; only when no valid token exists does it wait, with the GIL released.
//! - `Client`: an `ApiClient` (401 heal, 429 waits, learned pacing, 5xx retries), sync and
//!   async.
//! - `Pages`: a paginated listing as batches of items.
//!
//! Everything runs on one tokio runtime owned by this module, on its own threads: refreshes and
//! requests never run on a Python thread, and async methods return asyncio awaitables bridged
//! from tokio futures (`pyo3-async-runtimes`), so an event loop never blocks.

mod auth;
mod client;
mod errors;
mod runtime;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _tokenwarden(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<auth::Auth>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Pages>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
