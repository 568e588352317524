//! The agent's one error type.

use std::path::Path;

/// Why the agent could not start (or a file of it could not be written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent key (file or environment) is unusable.
    #[error("agent key: {0}")]
    Key(String),
    /// The listen address is refused (not loopback).
    #[error("listen address {addr}: {why}")]
    Listen {
        /// The address given.
        addr: String,
        /// Why it is refused.
        why: String,
    },
    /// A sink is unusable.
    #[error("sink {path}: {why}")]
    Sink {
        /// The sink's path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    #[error("cannot {op} {path}: {error}")]
    Io {
        /// What was being done (`read`, `create`...).
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        error: std::io::Error,
    },
    /// The library refused something (e.g. the first token could not be had).
    #[error(transparent)]
    Library(#[from] tokenwarden::Error),
}

impl AgentError {
    pub(crate) fn io(op: &'static str, path: &Path, error: std::io::Error) -> Self {
        AgentError::Io {
            op,
            path: path.display().to_string(),
            error,
        }
    }
}
