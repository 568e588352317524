//! Where a command's tokens live and how many it keeps: the `token_store` setting (`memory`,
//! `file[:DIR]`, `redis://...`; `--token-store`, `TOKENWARDEN_TOKEN_STORE`, `token_store` in a
//! profile), `--no-cache`, `--tokens K` and `--token-spacing`.
//!
//! **The default is the user's private file cache, for every command** ([`DEFAULT_STORE`]):
//! `token`, `request`, `paginate`, `export`, `check` and `batch` with the same credentials share
//! one token across invocations (keyed by token URL, client, scope and a fingerprint of the
//! secret), as `gh` and `gcloud` share theirs. Genesys throttles token creation per client, so a
//! shell loop of commands must not mint one token per command. `--token-store memory` or
//! `--no-cache` keeps a command's tokens to itself; a Redis store, where given, wins.

use crate::ConfigError;
use crate::args::{GlobalArgs, PoolArgs};
use crate::config::{Credentials, Named, Settings};
use crate::exit::UsageError;
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokenwarden::{
    FileStore, TokenManager, client::SharedBudget, manager::MintPacing, store::RedisOptions,
    store::RedisStore, store::TokenKey,
};

/// The environment variable that names the token store (recommended for a URL with a password).
pub(crate) const STORE_ENV: &str = "TOKENWARDEN_TOKEN_STORE";
/// Where tokens are kept when no store is named: the user's private file cache.
pub(crate) const DEFAULT_STORE: StoreSpec = StoreSpec::File(None);
/// A certificate authority (PEM file) to trust for `rediss://`.
pub(crate) const REDIS_CA_ENV: &str = "TOKENWARDEN_REDIS_CA_FILE";
/// The spacing of token requests with more than one token, by default.
const POOL_SPACING: Duration = Duration::from_secs(1);

/// Where tokens are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// In this process only.
    Memory,
    /// The user's file cache (`None`: the default directory).
    File(Option<PathBuf>),
    /// A fleet's Redis.
    Redis(String),
}

impl StoreSpec {
    /// `memory`, `file`, `file:DIR`, `redis://...` or `rediss://...`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if t == "file" {
            return Ok(StoreSpec::File(None));
        }
        if let Some(dir) = t.strip_prefix("file:") {
            if dir.is_empty() {
                return Err("file: needs a directory after the colon (or just `file`)".into());
            }
            return Ok(StoreSpec::File(Some(PathBuf::from(dir))));
        }
        if t.starts_with("redis://") || t.starts_with("rediss://") {
            return Ok(StoreSpec::Redis(t.to_string()));
        }
        Err("use memory, file, file:DIR, redis://HOST[:PORT][/DB] or rediss://...".into())
    }
}

/// The store the settings name (flag, environment or profile), or `default`.
fn spec(s: &Settings, default: StoreSpec) -> Result<(StoreSpec, Option<&Named>)> {
    let Some(named) = &s.token_store else {
        return Ok((default, None));
    };
    let spec = StoreSpec::parse(&named.value)
        .map_err(|e| store_error(named, format!("{}: {e}", shown(&named.value))))?;
    if named.typed && matches!(&spec, StoreSpec::Redis(u) if has_password(u)) {
        crate::ui::warn_always(&format!(
            "the Redis password in --token-store is visible to other users in the process list: give the URL in {STORE_ENV} instead"
        ));
    }
    Ok((spec, Some(named)))
}

/// A store setting that cannot be used: a usage error when typed (exit 2), else a configuration
/// error (exit 3), naming where it was given.
fn store_error(named: &Named, text: String) -> anyhow::Error {
    let text = format!("{}: {text}", named.place);
    if named.typed {
        UsageError(text).into()
    } else {
        ConfigError(text).into()
    }
}

fn has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// A store URL as it may be shown: without its password.
fn shown(s: &str) -> String {
    crate::config::masked(s).into_owned()
}

/// A command's tokens: one manager, or a pool's, each with the rate budget it shares with the
/// fleet (with a Redis store).
pub(crate) struct Tokens {
    pub(crate) managers: Vec<TokenManager>,
    pub(crate) budgets: Vec<Option<Arc<dyn SharedBudget>>>,
}

impl From<TokenManager> for Tokens {
    /// One manager, sharing no rate budget.
    fn from(tokens: TokenManager) -> Self {
        Tokens {
            managers: vec![tokens],
            budgets: vec![None],
        }
    }
}

/// The store a command's tokens are kept in, and the setting that named it: memory with
/// `--no-cache`, else the store the settings name, else [`DEFAULT_STORE`].
pub(crate) fn chosen(s: &Settings, g: &GlobalArgs) -> Result<(StoreSpec, Option<Named>)> {
    if g.connection.no_cache {
        return Ok((StoreSpec::Memory, None));
    }
    let (spec, named) = spec(s, DEFAULT_STORE)?;
    Ok((spec, named.cloned()))
}

/// The directory of the file cache `spec` names, if it is one (for `config`).
pub(crate) fn cache_dir(spec: &StoreSpec) -> Option<PathBuf> {
    match spec {
        StoreSpec::File(dir) => file_dir(dir.as_ref()).ok(),
        _ => None,
    }
}

/// The tokens for `s`, kept where [`chosen`] says; as many as `pool` says (one by default).
pub(crate) async fn tokens(
    s: &Settings,
    g: &GlobalArgs,
    pool: &PoolArgs,
    lock_timeout: Option<Duration>,
) -> Result<Tokens> {
    let (mut spec, named) = chosen(s, g)?;
    let named = named.as_ref();
    // No cache directory (no HOME, no XDG_CACHE_HOME, no TOKENWARDEN_CACHE_DIR): the default
    // cannot be had, and nobody asked for it, so the command keeps its token to itself as it
    // would with --no-cache. A file store that was named still fails with the reason.
    if named.is_none() && spec == DEFAULT_STORE && cache_dir(&spec).is_none() {
        tracing::debug!("no cache directory: keeping the token in memory");
        spec = StoreSpec::Memory;
    }
    let k = pool.tokens.unwrap_or(1);
    let (id, secret) = match &s.credentials {
        Credentials::Client { id, secret } => (id, secret),
        other => {
            if k > 1 || g.connection.no_cache || (named.is_some() && spec != StoreSpec::Memory) {
                crate::ui::warn(match other {
                    // Its tokens are kept beside the sign-in, whose lock takes turns at rotating
                    // the refresh token.
                    Credentials::User { .. } => {
                        "acting as the signed-in person (--as-user), tokens are kept beside the sign-in: --token-store, --no-cache and --tokens are ignored"
                    }
                    _ => {
                        "a token given directly (GENESYSCLOUD_ACCESS_TOKEN) cannot be refreshed, shared or pooled: --token-store, --no-cache and --tokens are ignored"
                    }
                });
            }
            return Ok(super::token_builder(s).await?.build().into());
        }
    };
    let mut key = TokenKey::new(s.require_token_url()?, id).with_secret(secret.clone());
    if let Some(scope) = &s.scope {
        key = key.with_scope(scope);
    }
    let spacing = pool.token_spacing.or((k > 1).then_some(POOL_SPACING));
    let mut mint = spacing.map(MintPacing::new);
    let redis = match &spec {
        StoreSpec::Redis(url) => Some(redis_store(url, key.clone(), lock_timeout, named)?),
        _ => None,
    };
    if let (Some(m), Some(r)) = (mint.take(), &redis) {
        mint = Some(m.shared(Arc::new(r.mint_budget())));
    }
    let mut out = Tokens {
        managers: vec![],
        budgets: vec![],
    };
    for slot in 0..k {
        let mut b = super::token_builder(s).await?;
        if let Some(m) = &mint {
            b = b.mint_pacing(m.clone());
        }
        let budget: Option<Arc<dyn SharedBudget>> = match (&spec, &redis) {
            (StoreSpec::Redis(_), Some(r)) => {
                let store = r.slot(slot);
                let budget = Arc::new(store.rate_budget());
                b = b.store(store);
                Some(budget)
            }
            (StoreSpec::File(dir), _) => {
                let mut store =
                    FileStore::new(file_dir(dir.as_ref())?, key.clone().with_slot(slot));
                if let Some(t) = lock_timeout {
                    store = store.with_lock_timeout(t);
                }
                b = b.store(store);
                None
            }
            _ => None,
        };
        out.managers.push(b.build());
        out.budgets.push(budget);
    }
    Ok(out)
}

fn redis_store(
    url: &str,
    key: TokenKey,
    lock_timeout: Option<Duration>,
    named: Option<&Named>,
) -> Result<RedisStore> {
    if let Some(pw) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        let pw = percent_decode(&pw);
        if pw.len() >= tokenwarden::redact::MIN_SECRET_LEN {
            tokenwarden::redact::register_secret(&pw);
        }
    }
    let mut options = RedisOptions::default();
    if let Some(t) = lock_timeout {
        options.lock_wait = t;
    }
    if let Some(ca) = std::env::var_os(REDIS_CA_ENV).filter(|v| !v.is_empty()) {
        let pem = std::fs::read(&ca).map_err(|e| {
            ConfigError(format!(
                "{REDIS_CA_ENV}: cannot read {}: {e}",
                PathBuf::from(&ca).display()
            ))
        })?;
        options.root_certificates = Some(pem);
    }
    RedisStore::open(url, key, options).map_err(|e| match named {
        Some(n) => store_error(n, e.to_string()),
        None => ConfigError(e.to_string()).into(),
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The file cache's directory: the one given, or `<cache dir>/tokenwarden/tokens/`
/// (`TOKENWARDEN_CACHE_DIR/tokens/` when set).
fn file_dir(dir: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.clone());
    }
    std::env::var_os("TOKENWARDEN_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("tokenwarden")))
        .map(|d| d.join("tokens"))
        .ok_or_else(|| {
            ConfigError(
                "no cache directory: set TOKENWARDEN_CACHE_DIR or give --token-store file:DIR"
                    .into(),
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs() {
        assert_eq!(StoreSpec::parse("memory"), Ok(StoreSpec::Memory));
        assert_eq!(StoreSpec::parse("file"), Ok(StoreSpec::File(None)));
        assert_eq!(
            StoreSpec::parse("file:/tmp/x"),
            Ok(StoreSpec::File(Some("/tmp/x".into())))
        );
        assert_eq!(
            StoreSpec::parse("rediss://:pw@h:6380/1"),
            Ok(StoreSpec::Redis("rediss://:pw@h:6380/1".into()))
        );
        for bad in ["", "file:", "mem", "http://x", "redis:/x"] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(shown("redis://:hunter2@h/0"), "redis://:****@h/0");
        assert_eq!(percent_decode("a%40b"), "a@b");
    }
}
