//! One function per command, and the shared glue that turns settings into library objects.

mod batch;
mod check;
mod demo;
mod export;
mod paginate;
mod request;
mod sim;
mod token;

use crate::ConfigError;
use crate::args::{Cli, Command, ExportCommand, GlobalArgs};
use crate::config::{self, Credentials, Settings};
use anyhow::{Context as _, Result};
use std::io::Read as _;
use std::path::PathBuf;
use tokenwarden::{
    ApiClient, ClientCredentials, RateLimit, StaticToken, TokenEndpoint, TokenManager,
    TokenManagerBuilder,
};

pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let g = cli.global;
    // Which credentials were used, once resolved: added to a credentials error.
    let mut hint = None;
    let result = match cli.command {
        Command::Token(a) => token::run(&g, a, &mut hint).await,
        Command::Check(a) => check::run(&connect(&g, None, &mut hint)?, &a).await,
        Command::Request(a) => request::run(&connect(&g, None, &mut hint)?, a).await,
        Command::Paginate(a) => paginate::paginate(&connect(&g, None, &mut hint)?, a).await,
        Command::Export(ExportCommand::Conversations(a)) => {
            export::conversations(&connect(&g, None, &mut hint)?, a).await
        }
        Command::Batch(a) => {
            batch::check_args(&a, &g)?;
            let client = connect(&g, a.rate, &mut hint)?;
            batch::run(&client, a, &g, hint.as_deref()).await
        }
        Command::Sim(a) => sim::run(a).await,
        Command::Demo(a) => demo::run(a, &g).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tokenwarden",
                &mut std::io::stdout(),
            );
            Ok(crate::exit::OK)
        }
    };
    match (result, hint) {
        (Err(e), Some(hint)) if is_credentials(&e) => {
            Err(ConfigError(format!("{e:#}\nhint: {hint}")).into())
        }
        (Err(e), _) => Err(with_flag_hint(e)),
        (r, _) => r,
    }
}

/// A request refused by a client limit the user can lift with a flag: the flag, as a hint.
fn with_flag_hint(e: anyhow::Error) -> anyhow::Error {
    let flag = e
        .chain()
        .filter_map(|c| c.downcast_ref::<tokenwarden::Error>())
        .find_map(|tw| match tw {
            tokenwarden::Error::Redirect {
                target: Some(_), ..
            } => Some(
                "pass --follow-redirects-across-origins to follow it (the token never goes there)",
            ),
            tokenwarden::Error::ResponseTooLarge { .. } => Some(
                "raise the limit with --max-response-bytes (e.g. 256MiB) if the answer is expected",
            ),
            _ => None,
        });
    match flag {
        Some(hint) => crate::exit::FailedError(format!("{e:#}\nhint: {hint}")).into(),
        None => e,
    }
}

/// Whether the error says the credentials (or the token they give) were refused.
fn is_credentials(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<tokenwarden::Error>())
        .any(tokenwarden::Error::is_credentials)
}

/// Resolves the settings from flags, environment and profiles; prints warnings.
pub(crate) fn settings(g: &GlobalArgs) -> Result<Settings> {
    let paths = config::Paths::from_system(g.config.as_deref());
    let mut stdin = || {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        Ok(s)
    };
    let (settings, warnings) = config::resolve(g, &config::process_env, &paths, &mut stdin)
        .map_err(|e| anyhow::Error::new(ConfigError(format!("{e:#}"))))?;
    for w in warnings {
        // A secret on the command line is worth a warning even with -q.
        if w.starts_with("--client-secret") {
            crate::ui::warn_always(&w);
        } else {
            crate::ui::warn(&w);
        }
    }
    for (what, from) in &settings.sources {
        tracing::debug!(setting = %what, from = %from, "configuration");
    }
    Ok(settings)
}

/// A token manager for the settings (optionally with a store).
pub(crate) fn token_builder(s: &Settings) -> Result<TokenManagerBuilder> {
    Ok(match &s.credentials {
        Credentials::Client { id, secret } => {
            let ep = if s.allow_insecure_http {
                TokenEndpoint::allow_insecure_http(&s.token_url)?
            } else {
                TokenEndpoint::new(&s.token_url)?
            }
            .with_client_auth(s.client_auth);
            let mut grant = ClientCredentials::new(ep, id.clone(), secret.clone());
            if let Some(scope) = &s.scope {
                grant = grant.with_scope(scope.clone());
            }
            TokenManager::builder(grant)
        }
        Credentials::Static(tok) => TokenManager::builder(StaticToken::new(tok.clone())),
    })
}

/// The API client for the settings and the connection flags.
pub(crate) fn client_for(
    s: &Settings,
    g: &GlobalArgs,
    tokens: TokenManager,
    rate: Option<RateLimit>,
) -> Result<ApiClient> {
    let mut b = ApiClient::builder(&s.api_base, tokens)
        .allow_insecure_http(s.allow_insecure_http)
        .follow_redirects_across_origins(g.follow_redirects_across_origins);
    if let Some(r) = rate {
        b = b.rate_limit(r);
    }
    if let Some(max) = g.max_response_bytes {
        b = b.max_response_bytes(max);
    }
    Ok(b.build()?)
}

fn connect(
    g: &GlobalArgs,
    rate: Option<RateLimit>,
    hint: &mut Option<String>,
) -> Result<ApiClient> {
    let s = settings(g)?;
    *hint = Some(s.credentials_hint());
    let tokens = token_builder(&s)?.build();
    client_for(&s, g, tokens, rate)
}

/// A JSON argument given inline or as @FILE (@- for stdin).
pub(crate) fn json_arg(v: &str) -> Result<serde_json::Value> {
    let text = if let Some(path) = v.strip_prefix('@') {
        if path == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(PathBuf::from(path))
                .with_context(|| format!("reading {path}"))?
        }
    } else {
        v.to_string()
    };
    serde_json::from_str(&text).map_err(|e| {
        anyhow::Error::new(crate::exit::UsageError(format!("{v}: not valid JSON: {e}")))
    })
}
