//! Where a value came from, and which source wins: flags, then the environment, then
//! tokenwarden's profile, then the gc CLI's profile.

use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A place settings come from. [`Source::rank`] is the precedence: lower wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A flag on the command line, e.g. `--region`.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A section of tokenwarden's config file.
    Profile { name: String, file: PathBuf },
    /// A section of the gc CLI's config file.
    GcProfile { name: String, file: PathBuf },
}

impl Source {
    /// The precedence, stated once: flags (0) > environment (1) > tokenwarden profile (2) > gc
    /// profile (3).
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Source::Flag(_) => 0,
            Source::Env(_) => 1,
            Source::Profile { .. } => 2,
            Source::GcProfile { .. } => 3,
        }
    }

    /// Whether the person typed the value on this command line: a wrong value there is a usage
    /// error (exit 2); from the environment or a file it is a configuration error (exit 3).
    pub(crate) fn is_typed(&self) -> bool {
        matches!(self, Source::Flag(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => f.write_str(flag),
            Source::Env(var) => f.write_str(var),
            Source::Profile { name, file } => {
                write!(f, "profile '{name}' in {}", file.display())
            }
            Source::GcProfile { name, file } => {
                write!(f, "gc profile '{name}' in {}", file.display())
            }
        }
    }
}

/// A value as a source gave it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    /// A secret given as such; wiped when dropped.
    Secret(Zeroizing<String>),
    /// The first line of this file is the secret (read only if this value wins).
    SecretFile(PathBuf),
    /// The first line of standard input is the secret (read only if this value wins).
    SecretStdin,
}

impl Value {
    /// The text or secret given directly; empty for values still to be read.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Value::Text(t) => t,
            Value::Secret(s) => s,
            Value::SecretFile(_) | Value::SecretStdin => "",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(t) => write!(f, "Text({t:?})"),
            Value::Secret(_) => f.write_str("Secret([redacted])"),
            Value::SecretFile(p) => write!(f, "SecretFile({p:?})"),
            Value::SecretStdin => f.write_str("SecretStdin"),
        }
    }
}

/// One setting as one source gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Given {
    pub(crate) value: Value,
    pub(crate) from: Source,
    /// The key as spelled in a config file (`client_secret_file`), for messages.
    pub(crate) file_key: Option<&'static str>,
    /// Line in the config file, for messages.
    pub(crate) line: Option<usize>,
}

impl Given {
    /// A value from a flag or the environment.
    pub(crate) fn new(value: Value, from: Source) -> Given {
        Given {
            value,
            from,
            file_key: None,
            line: None,
        }
    }

    /// The text, for settings that are text.
    pub(crate) fn text(&self) -> &str {
        self.value.as_str()
    }

    /// Where it was given, precisely enough to go and fix it: `--token-url`,
    /// `GENESYSCLOUD_REGION`, `token_url in profile 'sim' in /x/config.toml (line 3)`.
    pub(crate) fn place(&self) -> String {
        match (&self.from, self.file_key) {
            (Source::Profile { .. } | Source::GcProfile { .. }, Some(key)) => match self.line {
                Some(line) => format!("{key} in {} (line {line})", self.from),
                None => format!("{key} in {}", self.from),
            },
            _ => self.from.to_string(),
        }
    }

    /// The value as `tokenwarden config` shows it: secrets as `[set]`, the password of a URL (a
    /// token URL's, a Redis token store's) as `****`.
    pub(crate) fn shown(&self) -> String {
        match &self.value {
            Value::Text(t) => super::endpoint::masked(t).into_owned(),
            Value::Secret(_) => "[set]".into(),
            Value::SecretFile(p) => format!("[set] (file {})", p.display()),
            Value::SecretStdin => "[set] (standard input)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_stated_precedence() {
        let file = PathBuf::from("/c.toml");
        let order = [
            Source::Flag("--region"),
            Source::Env("GENESYSCLOUD_REGION"),
            Source::Profile {
                name: "default".into(),
                file: file.clone(),
            },
            Source::GcProfile {
                name: "DEFAULT".into(),
                file,
            },
        ];
        for pair in order.windows(2) {
            assert!(pair[0].rank() < pair[1].rank(), "{pair:?}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        let g = Given::new(
            Value::Secret(Zeroizing::new("hunter2-secret".into())),
            Source::Env("X"),
        );
        assert_eq!(g.shown(), "[set]");
        assert!(!format!("{g:?}").contains("hunter2"));
    }
}
