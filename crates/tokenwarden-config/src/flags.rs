//! What the person typed on the command line, as plain values: the CLI fills this from its
//! argument parser, other front ends (the Python package) leave it empty or set a few fields.

use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The connection flags, each `None` (or `false`) when not given. Values are taken as typed
/// (trimmed later); an empty one counts as not given.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--profile`.
    pub profile: Option<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--region`: a region name or a domain.
    pub region: Option<String>,
    /// `--client-id`.
    pub client_id: Option<String>,
    /// `--client-secret`: the secret itself (warned about: other users see it in `ps`).
    pub client_secret: Option<FlagSecret>,
    /// `--client-secret-file`.
    pub client_secret_file: Option<PathBuf>,
    /// `--client-secret-stdin`.
    pub client_secret_stdin: bool,
    /// `--token-url`.
    pub token_url: Option<String>,
    /// `--api-base`.
    pub api_base: Option<String>,
    /// `--client-auth`: `basic` or `form`.
    pub client_auth: Option<String>,
    /// `--scope`.
    pub scope: Option<String>,
    /// `--as-user`.
    pub as_user: bool,
    /// `login --redirect-uri`.
    pub redirect_uri: Option<String>,
    /// `login --authorize-url`.
    pub authorize_url: Option<String>,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// `--token-store`.
    pub token_store: Option<String>,
}

/// A secret given as a flag value, kept in a buffer wiped when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct FlagSecret(Zeroizing<String>);

impl FlagSecret {
    /// Wraps a secret (copied into a wiped buffer).
    pub fn new(s: &str) -> FlagSecret {
        FlagSecret(Zeroizing::new(s.to_owned()))
    }

    /// The secret itself: only to be wrapped into a `ClientSecret`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for FlagSecret {
    fn from(s: &str) -> Self {
        FlagSecret::new(s)
    }
}

impl fmt::Debug for FlagSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
