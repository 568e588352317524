//! Library errors as the package's Python exceptions (`tokenwarden.errors`), by kind. Messages
//! are the library's, passed once more through its redaction: no token or secret reaches Python.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The kind of a library error, as the exception class that stands for it.
fn class_of(e: &tokenwarden::Error) -> (&'static str, &'static str) {
    use tokenwarden::Error as E;
    match e {
        E::Forbidden { .. } => ("ForbiddenError", "forbidden"),
        e if e.is_credentials() => ("CredentialsError", "credentials"),
        E::Config(_) => ("ConfigurationError", "configuration"),
        e if e.is_retryable() => ("TransientError", "transient"),
        E::Status { status, .. } if *status >= 500 => ("TransientError", "transient"),
        _ => ("Error", "other"),
    }
}

/// A library error as a Python exception.
pub(crate) fn library(e: tokenwarden::Error) -> PyErr {
    let (class, kind) = class_of(&e);
    let attrs = |d: &Bound<'_, PyDict>| -> PyResult<()> {
        use tokenwarden::Error as E;
        match &e {
            E::Forbidden {
                method, path, code, ..
            } => {
                d.set_item("status", 403)?;
                d.set_item("code", code.as_deref())?;
                d.set_item("method", method)?;
                d.set_item("path", path)?;
            }
            E::Unauthorized {
                method, path, code, ..
            } => {
                d.set_item("status", 401)?;
                d.set_item("code", code.as_deref())?;
                d.set_item("method", method)?;
                d.set_item("path", path)?;
            }
            E::Credentials { status, code, .. } => {
                d.set_item("status", status)?;
                d.set_item("code", code.as_deref())?;
            }
            E::Status { status, .. } => d.set_item("status", status)?,
            _ => {}
        }
        d.set_item("retryable", e.is_retryable())?;
        Ok(())
    };
    raise(class, kind, &e.to_string(), attrs)
}

/// A settings error (`Auth.from_env`) as `ConfigurationError`.
pub(crate) fn config(e: tokenwarden_config::Error) -> PyErr {
    raise("ConfigurationError", "configuration", e.message(), |_| {
        Ok(())
    })
}

/// A bad argument, as `ConfigurationError` (it is also a `ValueError`).
pub(crate) fn argument(message: impl Into<String>) -> PyErr {
    raise(
        "ConfigurationError",
        "configuration",
        &message.into(),
        |_| Ok(()),
    )
}

/// Builds `tokenwarden.errors.<class>(message)` with `kind` and the attributes `attrs` sets.
fn raise(
    class: &str,
    kind: &str,
    message: &str,
    attrs: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let message = tokenwarden::redact::redact(message);
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let module = py.import("tokenwarden.errors")?;
            let d = PyDict::new(py);
            d.set_item("kind", kind)?;
            attrs(&d)?;
            let exc = module.getattr(class)?.call((message.as_ref(),), Some(&d))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| e)
    })
}
