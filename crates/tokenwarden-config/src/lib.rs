//! Connection settings: one table, one precedence. Used by the `tokenwarden` command line and
//! the Python package (`tokenwarden.Auth.from_env`), so both read the same settings the same way.
//!
//! Each setting comes from the first source that gives it, in this order:
//!
//! 1. a flag (`--region`),
//! 2. the environment (`GENESYSCLOUD_REGION`),
//! 3. the profile in tokenwarden's config file (`--profile`, default `default`),
//! 4. the same profile in the gc CLI's `~/.gc/config.toml` (read only).
//!
//! The settings and how each source spells them are in one table (`table::SETTINGS`). Two
//! settings also give others, at the rank of their source: a region gives the token URL and the
//! API base, and a token URL gives the API base (`login.X` → `api.X`, else its origin). Within
//! one source the explicit setting wins. So `GENESYSCLOUD_REGION` beats a profile's
//! `token_url`, and `--token-url` beats `GENESYSCLOUD_REGION`; a region that nothing uses is
//! never checked.
//!
//! Credentials: a client id and secret (each by the rule above), unless
//! `GENESYSCLOUD_ACCESS_TOKEN` is set and no client id or secret comes from a flag or the
//! environment.
//!
//! Why not figment or serde defaults: the region is one value that stands for two settings, at its
//! source's rank, which a key-by-key merge gets wrong (that was the bug: a profile's `token_url`
//! beat `GENESYSCLOUD_REGION`); secrets must move into wiped buffers, not be copied through an
//! untyped value tree; and a file's errors must name line and column without echoing the line.

mod endpoint;
mod error;
mod explain;
mod file;
mod flags;
mod layers;
mod resolve;
mod secret;
mod source;
mod table;
#[cfg(test)]
mod tests;

pub use endpoint::{api_base_for, masked};
pub use error::{Error, Result};
pub use explain::Row;
pub use flags::{FlagSecret, Flags};
pub use layers::{FileUse, Layers};
pub use secret::ReadError;

use std::path::PathBuf;
use tokenwarden::{AccessToken, ClientSecret, TokenUrl};
use zeroize::Zeroizing;

/// The `grant` value that makes commands act as the signed-in person.
pub const GRANT_USER: &str = "user";

/// The redirect URI `login` listens on unless one is configured: what the OAuth client must have
/// registered.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Client credentials grant.
    Client {
        /// The OAuth client id.
        id: String,
        /// The client secret.
        secret: ClientSecret,
    },
    /// The person signed in with `tokenwarden login` (refresh tokens); the secret of a
    /// confidential client, none for a public one.
    User {
        /// The OAuth client id.
        id: String,
        /// The client secret, for a confidential client.
        secret: Option<ClientSecret>,
    },
    /// A token supplied directly; it cannot be refreshed.
    Static(AccessToken),
}

/// Resolved connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The token endpoint; `None` for a static access token given without a region or token URL
    /// (it needs none). [`token_url_text`](Self::token_url_text) says which, for messages.
    pub token_url: Option<TokenUrl>,
    /// The API base URL, without a trailing `/`.
    pub api_base: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// How the client credentials are sent to the token endpoint.
    pub client_auth: tokenwarden::grant::ClientAuth,
    /// The scopes to request, space-separated.
    pub scope: Option<String>,
    /// Where tokens are kept (`--token-store`), as given, if given.
    pub token_store: Option<Named>,
    /// Whether plain `http://` off loopback is allowed (`--allow-insecure-http`).
    pub allow_insecure_http: bool,
    /// The profile's name (sign-ins are kept per profile).
    pub profile: String,
    /// Where a person signs in (`login`): given, or beside the token URL; `None` when neither.
    pub authorize_url: Option<String>,
    /// The loopback redirect URI `login` listens on.
    pub redirect_uri: String,
    /// Where each setting came from, for `-v` and messages about rejected credentials.
    pub sources: Vec<(String, String)>,
}

/// A setting's value as given, and where: for settings checked where they are used.
#[derive(Debug, Clone)]
pub struct Named {
    /// The value as given.
    pub value: String,
    /// Where it was given (`--token-store`, `TOKENWARDEN_TOKEN_STORE`, a profile's key).
    pub place: String,
    /// Typed on this command line: a wrong value is a usage error (exit 2), not configuration.
    pub typed: bool,
}

/// Something worth telling the person; `always` when `-q` must not hide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What to tell.
    pub text: String,
    /// Shown even with `-q`.
    pub always: bool,
}

impl Warning {
    /// A warning `-q` hides.
    pub fn new(text: impl Into<String>) -> Warning {
        Warning {
            text: text.into(),
            always: false,
        }
    }

    /// A warning shown even with `-q`.
    pub fn always(text: impl Into<String>) -> Warning {
        Warning {
            text: text.into(),
            always: true,
        }
    }
}

/// What resolution reads, injected so that tests need no process environment or home directory.
pub struct Inputs<'a> {
    /// What was typed on the command line.
    pub flags: &'a Flags,
    /// The environment (`process_env`, or a map in tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// tokenwarden's config file when neither `--config` nor `TOKENWARDEN_CONFIG` names one.
    pub default_config: Option<PathBuf>,
    /// The gc CLI's config file (`~/.gc/config.toml`).
    pub gc_config: Option<PathBuf>,
}

impl<'a> Inputs<'a> {
    /// The process environment and the usual places of the two config files.
    pub fn from_system(flags: &'a Flags, env: &'a dyn Fn(&str) -> Option<String>) -> Inputs<'a> {
        Inputs {
            flags,
            env,
            default_config: dirs::config_dir().map(|d| d.join("tokenwarden").join("config.toml")),
            gc_config: dirs::home_dir().map(|h| h.join(".gc").join("config.toml")),
        }
    }
}

/// The process environment (not valid UTF-8 counts as unset).
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Reads standard input for `--client-secret-stdin`: the first line, at most 64 KiB, into a wiped
/// buffer.
pub fn read_stdin_secret() -> Result<Zeroizing<String>, ReadError> {
    tracing::debug!("reading the client secret from standard input");
    secret::read_bounded(secret::UnbufferedStdin, secret::MAX_SECRET_BYTES, true)
}

/// Resolves the settings: reads every source, then decides each setting. The warnings found
/// while reading (an unknown key in a config file) are added to `warnings` even when resolution
/// then fails: a typo'd key is often why it fails (`token_ur =` → "no token URL").
///
/// # Errors
/// A usage error (exit 2) for a bad value typed on the command line, a configuration error
/// (exit 3) for one from the environment or a file, or missing settings.
pub fn resolve(
    inputs: &Inputs<'_>,
    stdin: &mut dyn FnMut() -> Result<Zeroizing<String>, ReadError>,
    warnings: &mut Vec<Warning>,
) -> Result<Settings> {
    let mut layers = Layers::collect(inputs)?;
    warnings.append(&mut layers.warnings);
    resolve::settings(layers, stdin)
}

/// Resolves settings from already collected layers (for `tokenwarden config`, which shows them
/// first).
///
/// # Errors
/// As [`resolve`].
pub fn settings_from(
    layers: Layers,
    stdin: &mut dyn FnMut() -> Result<Zeroizing<String>, ReadError>,
) -> Result<Settings> {
    resolve::settings(layers, stdin)
}

/// Every setting with its value and source, for `tokenwarden config`.
pub fn explain(layers: &Layers) -> Vec<Row> {
    explain::rows(layers)
}

/// What [`Settings::token_url_text`] says when no token endpoint is used.
pub const NO_TOKEN_URL: &str = "(none: a static access token is used)";

impl Settings {
    /// The token endpoint, for the credentials that get their tokens from one (all but a static
    /// access token).
    ///
    /// # Errors
    /// [`Error::Config`] when there is none: a static access token was given without a region or
    /// token URL.
    pub fn require_token_url(&self) -> Result<&TokenUrl> {
        self.token_url.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "no token URL {NO_TOKEN_URL}: set --region or --token-url for a token endpoint"
            ))
        })
    }

    /// The token URL as text for messages: the URL, or [`NO_TOKEN_URL`] when none is used.
    pub fn token_url_text(&self) -> &str {
        self.token_url
            .as_ref()
            .map_or(NO_TOKEN_URL, TokenUrl::as_str)
    }

    /// Which credentials were used and where they came from (never the secret itself), for
    /// messages about rejected credentials: with four places to set them, the usual mistake is
    /// a stale one winning.
    pub fn credentials_hint(&self) -> String {
        let from = |what: &str| {
            self.sources
                .iter()
                .find(|(w, _)| w == what)
                .map_or("?", |(_, f)| f.as_str())
        };
        match &self.credentials {
            Credentials::Client { id, .. } => format!(
                "used client id {id:?} (from {}) and the client secret from {}, at {}{}; `tokenwarden config` shows every source",
                from("client id"),
                from("client secret"),
                self.token_url_text(),
                match self.client_auth {
                    // The usual cause when the credentials are right: say it.
                    tokenwarden::grant::ClientAuth::FormFields => {
                        ", sent as form fields (--client-auth form): a server that takes only HTTP Basic refuses them, so try --client-auth basic"
                    }
                    _ => "",
                }
            ),
            Credentials::User { id, .. } => format!(
                "acting as the person signed in for profile '{}' (client id {id:?}, at {}): run `tokenwarden login{}` again to sign in",
                self.profile,
                self.token_url_text(),
                self.profile_flag()
            ),
            Credentials::Static(_) => {
                format!("used the access token from {}", from("access token"))
            }
        }
    }

    /// ` -p NAME` for commands to suggest, empty for the default profile.
    pub fn profile_flag(&self) -> String {
        if self.profile == "default" {
            String::new()
        } else {
            format!(" -p {}", self.profile)
        }
    }
}
