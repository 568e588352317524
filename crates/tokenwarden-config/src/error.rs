//! The crate's one error: a bad value typed by the person (a flag), or a configuration problem
//! (the environment, a config file, missing settings). Messages never hold a secret.

/// Why the settings cannot be resolved. The message says what to change, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value typed on this command line (a flag) is wrong: the CLI exits 2.
    #[error("{0}")]
    Usage(String),
    /// A value from the environment or a config file is wrong, or settings are missing: the CLI
    /// exits 3.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The message, without saying which kind it is.
    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m) | Error::Config(m) => m,
        }
    }

    /// Whether the value was typed on the command line (a flag).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A configuration error (see [`Error::Config`]), as the resolution code builds it.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

/// A usage error (see [`Error::Usage`]), as the resolution code builds it.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e.0)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Error {
        Error::Usage(e.0)
    }
}
