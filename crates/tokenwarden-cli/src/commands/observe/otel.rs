//! `--otlp-endpoint URL` and the `OTEL_EXPORTER_OTLP_*` variables: the run's metrics and spans
//! exported by OTLP/HTTP (the `tokenwarden-otel` crate), from the client's one record of events.
//!
//! The export of a process is held here until [`flush`], which `main` calls however the command
//! ended (done, failed, interrupted): what is left is sent then, within the export timeout, so a
//! short run loses nothing and a dead collector costs at most that timeout.

use crate::args::OtlpArgs;
use crate::exit::{ConfigError, UsageError};
use anyhow::Result;
use std::sync::Mutex;
use tokenwarden::ApiClient;
use tokenwarden_otel::{OtlpSettings, Telemetry};

/// The process's export, until [`flush`].
static RUNNING: Mutex<Option<Telemetry>> = Mutex::new(None);

/// Starts exporting `client`'s run if the flag or the variables say where; does nothing when
/// neither does (or `OTEL_SDK_DISABLED=true`).
///
/// # Errors
/// A usage error for a bad `--otlp-endpoint`, a configuration error (exit 3) for a bad variable;
/// neither message holds a header value.
pub(crate) fn start(a: &OtlpArgs, client: &ApiClient) -> Result<()> {
    let flag = a.otlp_endpoint.as_deref();
    let settings = OtlpSettings::resolve(flag, |name| std::env::var(name).ok()).map_err(|e| {
        if e.0.starts_with("--otlp-endpoint") {
            anyhow::Error::new(UsageError(e.0))
        } else {
            anyhow::Error::new(ConfigError(e.0))
        }
    })?;
    let Some(settings) = settings else {
        return Ok(());
    };
    let mut running = RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // One export per process (one command, one client): a second start keeps the first.
    if running.is_none() {
        *running =
            Some(Telemetry::start(&settings, client).map_err(|e| UsageError(e.to_string()))?);
    }
    Ok(())
}

/// Sends what is left of the export and stops it, within its timeout. Does nothing when no
/// export was started.
pub(crate) async fn flush() {
    let running = RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(t) = running {
        t.shutdown().await;
    }
}
