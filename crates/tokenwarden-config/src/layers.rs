//! Gathering what every source says: flags, environment, tokenwarden's profile, gc's profile.
//! Nothing is decided here except which files and which profile are read.

use super::file::{self, Dialect};
use super::secret::{self, MAX_CONFIG_BYTES, ReadError};
use super::source::{Given, Source, Value};
use super::table::{ENV_CONFIG, ENV_PROFILE, Key, SETTINGS};
use super::{Inputs, Warning};
use crate::Flags;
use crate::Result;
use crate::error::{ConfigError, UsageError};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A config file and why it is the one read.
#[derive(Debug, Clone)]
pub struct FileUse {
    /// The file's path; `None` without a home directory.
    pub path: Option<PathBuf>,
    /// `--config`, `TOKENWARDEN_CONFIG` or `default`.
    pub chosen_by: &'static str,
    /// Whether it exists.
    pub exists: bool,
}

/// Every value every source gave, most specific source first.
#[derive(Debug)]
pub struct Layers {
    /// Sorted by [`Source::rank`] (stable: within a source, in the order read).
    pub(crate) given: Vec<(Key, Given)>,
    /// The profile name and what chose it (`--profile`, `TOKENWARDEN_PROFILE`, `default`).
    pub profile: (String, &'static str),
    /// tokenwarden's config file.
    pub config_file: FileUse,
    /// The gc CLI's config file.
    pub gc_file: FileUse,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// What is worth telling the person (unknown keys, files others can read).
    pub warnings: Vec<Warning>,
}

/// An error about a value from `from`: a usage error (exit 2) when typed on the command line, a
/// configuration error (exit 3) otherwise.
pub(crate) fn problem(from: &Source, message: String) -> crate::Error {
    if from.is_typed() {
        UsageError(message).into()
    } else {
        ConfigError(message).into()
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

impl Layers {
    /// Reads the flags, the environment and both config files.
    ///
    /// # Errors
    /// A config file named by `--config` or `TOKENWARDEN_CONFIG` that is missing or unreadable, a
    /// broken tokenwarden config file, a profile asked for by name that no file has.
    pub fn collect(inputs: &Inputs<'_>) -> Result<Layers> {
        let mut layers = Layers {
            given: Vec::new(),
            profile: ("default".into(), "default"),
            config_file: FileUse {
                path: inputs.default_config.clone(),
                chosen_by: "default",
                exists: false,
            },
            gc_file: FileUse {
                path: inputs.gc_config.clone(),
                chosen_by: "default",
                exists: false,
            },
            allow_insecure_http: inputs.flags.allow_insecure_http,
            warnings: Vec::new(),
        };
        layers.flags(inputs.flags);
        layers.environment(inputs.env);
        let env = |k: &str| nonempty((inputs.env)(k));
        let explicit_profile = if let Some(p) = nonempty(inputs.flags.profile.clone()) {
            Some((p, Source::Flag("--profile")))
        } else {
            env(ENV_PROFILE).map(|p| (p, Source::Env(ENV_PROFILE)))
        };
        if let Some((name, from)) = &explicit_profile {
            layers.profile = (
                name.trim().to_string(),
                if from.is_typed() {
                    "--profile"
                } else {
                    ENV_PROFILE
                },
            );
        }
        let config_choice = if let Some(p) = &inputs.flags.config {
            Some((p.clone(), Source::Flag("--config")))
        } else {
            env(ENV_CONFIG).map(|p| (PathBuf::from(p), Source::Env(ENV_CONFIG)))
        };
        if let Some((path, from)) = &config_choice {
            layers.config_file.path = Some(path.clone());
            layers.config_file.chosen_by = if from.is_typed() {
                "--config"
            } else {
                ENV_CONFIG
            };
        }
        let wanted = layers.profile.0.clone();

        // tokenwarden's file: named explicitly, it must exist; at the default place, it may not.
        let mut names = Vec::new();
        let mut found = false;
        if let Some(path) = layers.config_file.path.clone() {
            let named_by = config_choice.as_ref().map(|(_, from)| from);
            if let Some(text) = read_config(&path, named_by)? {
                layers.config_file.exists = true;
                let read = file::read_profile(&text, &path, &wanted, Dialect::Tokenwarden)
                    .map_err(ConfigError)?;
                // A secret, or a token store URL with a (Redis) password in it.
                let holds_secret = read.given.iter().any(|(_, g)| match &g.value {
                    Value::Secret(_) => true,
                    Value::Text(t) => url::Url::parse(t).is_ok_and(|u| u.password().is_some()),
                    _ => false,
                });
                layers.warnings.extend(
                    file::exposure(&path, holds_secret)
                        .into_iter()
                        .map(Warning::always),
                );
                layers.absorb(read, &mut names, &mut found);
            }
        }
        // gc's file is another tool's: a problem with it is a warning, and it is then ignored.
        if let Some(path) = layers.gc_file.path.clone() {
            match secret::read_file(&path, MAX_CONFIG_BYTES) {
                Ok(text) => {
                    layers.gc_file.exists = true;
                    match file::read_profile(&text, &path, &wanted, Dialect::Gc) {
                        Ok(read) => {
                            let holds_secret = read
                                .given
                                .iter()
                                .any(|(_, g)| matches!(g.value, Value::Secret(_)));
                            if holds_secret {
                                layers.warnings.extend(
                                    file::exposure(&path, true).into_iter().map(Warning::always),
                                );
                            }
                            layers.absorb(read, &mut names, &mut found);
                        }
                        Err(e) => layers
                            .warnings
                            .push(Warning::new(format!("ignoring the gc CLI's config: {e}"))),
                    }
                }
                Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => layers.warnings.push(Warning::new(format!(
                    "ignoring the gc CLI's config {}: {e}",
                    path.display()
                ))),
            }
        }
        if let (Some((name, from)), false) = (&explicit_profile, found) {
            return Err(problem(from, layers.profile_not_found(name, &names)));
        }
        layers.given.sort_by_key(|(_, g)| g.from.rank());
        // The secret file that will be read (`--client-secret-file`, `client_secret_file`): the
        // same checks as a config file that holds a secret.
        if let Some((_, g)) = layers.first(&[Key::ClientSecret])
            && let Value::SecretFile(p) = &g.value
        {
            let warnings = file::exposure(p, true);
            layers
                .warnings
                .extend(warnings.into_iter().map(Warning::always));
        }
        Ok(layers)
    }

    fn absorb(&mut self, read: file::ProfileRead, names: &mut Vec<String>, found: &mut bool) {
        *found |= read.found;
        names.extend(read.names);
        self.warnings
            .extend(read.warnings.into_iter().map(Warning::new));
        self.given.extend(read.given);
    }

    fn profile_not_found(&self, name: &str, names: &[String]) -> String {
        let where_ = |f: &FileUse| match (&f.path, f.exists) {
            (Some(p), true) => p.display().to_string(),
            (Some(p), false) => format!("{} (no such file)", p.display()),
            (None, _) => "(no home directory)".into(),
        };
        let near: Vec<&str> = names
            .iter()
            .filter(|n| strsim::levenshtein(&n.to_lowercase(), &name.to_lowercase()) <= 2)
            .map(String::as_str)
            .collect();
        let mut m = format!(
            "profile '{name}' not found in {} or {}",
            where_(&self.config_file),
            where_(&self.gc_file)
        );
        if !near.is_empty() {
            m.push_str(&format!(
                "; did you mean {}?",
                super::endpoint::or_list(&near)
            ));
        } else if !names.is_empty() {
            m.push_str(&format!("; profiles there: {}", names.join(", ")));
        }
        m
    }

    fn flags(&mut self, f: &Flags) {
        let mut text = |key: Key, flag: &'static str, v: &Option<String>| {
            if let Some(v) = nonempty(v.clone()) {
                self.given.push((
                    key,
                    Given::new(Value::Text(v.trim().to_string()), Source::Flag(flag)),
                ));
            }
        };
        text(Key::Region, "--region", &f.region);
        text(Key::TokenUrl, "--token-url", &f.token_url);
        text(Key::ApiBase, "--api-base", &f.api_base);
        text(Key::ClientId, "--client-id", &f.client_id);
        text(Key::ClientAuth, "--client-auth", &f.client_auth);
        text(Key::Scope, "--scope", &f.scope);
        text(
            Key::Grant,
            "--as-user",
            &f.as_user.then(|| super::GRANT_USER.to_string()),
        );
        text(Key::AuthorizeUrl, "--authorize-url", &f.authorize_url);
        text(Key::RedirectUri, "--redirect-uri", &f.redirect_uri);
        text(Key::TokenStore, "--token-store", &f.token_store);
        let secret = if let Some(s) = &f.client_secret {
            self.warnings.push(Warning::always(
                "--client-secret on the command line is visible to other users in the process list; prefer GENESYSCLOUD_OAUTHCLIENT_SECRET, --client-secret-file or --client-secret-stdin",
            ));
            Some((
                Value::Secret(Zeroizing::new(s.expose().trim().to_string())),
                "--client-secret",
            ))
        } else if let Some(p) = &f.client_secret_file {
            Some((Value::SecretFile(p.clone()), "--client-secret-file"))
        } else if f.client_secret_stdin {
            Some((Value::SecretStdin, "--client-secret-stdin"))
        } else {
            None
        };
        if let Some((value, flag)) = secret {
            self.given
                .push((Key::ClientSecret, Given::new(value, Source::Flag(flag))));
        }
    }

    fn environment(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        for spec in SETTINGS {
            let Some(var) = spec.env else { continue };
            let Some(v) = nonempty(env(var)) else {
                continue;
            };
            let value = if spec.secret {
                Value::Secret(Zeroizing::new(v.trim().to_string()))
            } else {
                Value::Text(v.trim().to_string())
            };
            self.given
                .push((spec.key, Given::new(value, Source::Env(var))));
        }
    }

    /// The first of `keys` in precedence order: the most specific source that gives any of them,
    /// and within that source, the first of `keys` it gives.
    pub(crate) fn first(&self, keys: &[Key]) -> Option<(Key, &Given)> {
        let rank = self
            .given
            .iter()
            .filter(|(k, _)| keys.contains(k))
            .map(|(_, g)| g.from.rank())
            .min()?;
        keys.iter().find_map(|want| {
            self.given
                .iter()
                .find(|(k, g)| k == want && g.from.rank() == rank)
                .map(|(k, g)| (*k, g))
        })
    }

    /// Every value given for `key`, most specific first.
    pub(crate) fn all(&self, key: Key) -> impl Iterator<Item = &Given> {
        self.given
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, g)| g)
    }

    /// Takes the winning value for `key` out (to move a secret rather than copy it).
    pub(crate) fn take_first(&mut self, key: Key) -> Option<Given> {
        let i = self.given.iter().position(|(k, _)| *k == key)?;
        Some(self.given.remove(i).1)
    }
}

/// The text of tokenwarden's config file; `None` when it is at the default place and absent.
fn read_config(
    path: &std::path::Path,
    named_by: Option<&Source>,
) -> Result<Option<Zeroizing<String>>> {
    match secret::read_file(path, MAX_CONFIG_BYTES) {
        Ok(text) => Ok(Some(text)),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => match named_by {
            None => Ok(None),
            Some(from) => Err(problem(
                from,
                format!("config file {} ({from}) does not exist", path.display()),
            )),
        },
        Err(ReadError::Io(e)) => {
            let message = format!("cannot read config file {}: {e}", path.display());
            Err(match named_by {
                Some(from) => problem(from, message),
                None => ConfigError(message).into(),
            })
        }
        Err(e) => Err(ConfigError(format!("config file {}: {e}", path.display())).into()),
    }
}
