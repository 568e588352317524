//! One function per command, and the shared glue that turns settings into library objects.

mod agent;
mod batch;
mod check;
mod config;
mod demo;
mod export;
mod login;
pub(crate) mod observe;
mod paginate;
mod request;
mod session;
mod sim;
mod summary;
mod token;
pub(crate) mod tokens;

pub(crate) use summary::check_replaceable;

use crate::ConfigError;
use crate::args::{Cli, Command, ConnectionArgs, ExportCommand, GlobalArgs, OutputArgs, PoolArgs};
use crate::config::{Credentials, Settings};
use crate::exit::UsageError;
use anyhow::Result;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use tokenwarden::{
    ApiClient, ClientCredentials, RateLimit, StaticToken, TokenEndpoint, TokenManager,
    TokenManagerBuilder,
};

/// The advice for an output another run is writing, the same for every command (exit 4: nothing
/// typed is wrong).
pub(crate) const BUSY_HINT: &str =
    "wait for that run to finish (or stop it), or choose another output";

pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let Cli {
        connection: before,
        output,
        command,
    } = cli;
    let OutputArgs { quiet, .. } = output;
    let mut before = Some(before);
    // The connection options given before the command name, then those after it.
    let mut with = |after: ConnectionArgs| GlobalArgs {
        connection: before.take().unwrap_or_default().then(after),
        quiet,
    };
    // Which credentials were used, once resolved: added to a credentials error.
    let mut hint = None;
    let result = match command {
        Command::Token(c) => token::run(&with(c.connection), c.args, &mut hint).await,
        Command::Check(c) => {
            check::run(&connect_one(&with(c.connection), &mut hint).await?, &c.args).await
        }
        Command::Request(c) => {
            request::run(&connect_one(&with(c.connection), &mut hint).await?, c.args).await
        }
        Command::Paginate(c) => {
            paginate::paginate(&connect_one(&with(c.connection), &mut hint).await?, c.args).await
        }
        Command::Export(ExportCommand::Conversations(c)) => {
            let client = connect_one(&with(c.connection), &mut hint).await?;
            export::conversations(&client, c.args).await
        }
        Command::Batch(c) => {
            let g = with(c.connection);
            batch::check_args(&c.args, &g)?;
            batch::run(&g, c.args, &mut hint).await
        }
        Command::Agent(c) => agent::agent(&with(c.connection), c.args, &mut hint).await,
        Command::Exec(c) => agent::exec(&with(c.connection), c.args, &mut hint).await,
        Command::Config(c) => config::run(&with(c.connection), &c.args),
        Command::Login(c) => login::login(with(c.connection), c.args, &mut hint).await,
        Command::Logout(c) => login::logout(with(c.connection), &mut hint).await,
        Command::Whoami(c) => login::whoami(with(c.connection), c.args, &mut hint).await,
        Command::Sim(a) => {
            no_connection(&with(ConnectionArgs::default()), "sim")?;
            sim::run(a).await
        }
        Command::Demo(a) => {
            let g = with(ConnectionArgs::default());
            no_connection(&g, "demo")?;
            demo::run(a, &g).await
        }
        Command::Completions(a) => {
            no_connection(&with(ConnectionArgs::default()), "completions")?;
            completions(a.shell)
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
            } => Some("pass --follow-redirects-across-origins to follow it"),
            tokenwarden::Error::ResponseTooLarge { .. } => Some(
                "raise the limit with --max-response-bytes (e.g. 256MiB) if the answer is expected",
            ),
            _ => None,
        });
    let not_a_token_endpoint = e
        .chain()
        .filter_map(|c| c.downcast_ref::<tokenwarden::Error>())
        .any(|tw| matches!(tw, tokenwarden::Error::TokenDecode { .. }));
    match flag {
        // The library names its builder option; here it is a flag.
        Some(hint) => crate::exit::FailedError(format!(
            "{}\nhint: {hint}",
            format!("{e:#}").replace(
                "(allow it with follow_redirects_across_origins)",
                "(the token never goes there)"
            )
        ))
        .into(),
        // A web page where a token endpoint was expected: the token URL (or region) is wrong.
        None if not_a_token_endpoint => anyhow::anyhow!(
            "{e:#}\nhint: check --token-url (or the region): this does not answer like an OAuth token endpoint; `tokenwarden config` shows where it comes from"
        ),
        None => e,
    }
}

/// `sim`, `demo` and `completions` call no API: a connection option before their name is a
/// mistake worth saying (after their name, clap already refuses it).
fn no_connection(g: &GlobalArgs, command: &str) -> Result<()> {
    match g.connection.first_given() {
        Some(flag) => Err(UsageError(format!(
            "`tokenwarden {command}` calls no API and takes no connection options: drop {flag}"
        ))
        .into()),
        None => Ok(()),
    }
}

/// The completion script, written whole (a closed pipe is an error, not a panic).
fn completions(shell: clap_complete::Shell) -> Result<u8> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokenwarden", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(crate::exit::OK)
}

/// Whether the error says the credentials (or the token they give) were refused.
fn is_credentials(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<tokenwarden::Error>())
        .any(|tw| tw.class() == tokenwarden::Class::Credentials)
}

/// Set once `--client-secret-stdin` has read standard input: nothing else may then.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Resolves the settings from flags, environment and profiles; shows the warnings.
pub(crate) fn settings(g: &GlobalArgs) -> Result<Settings> {
    let flags = g.connection.flags();
    let inputs = crate::config::Inputs::from_system(&flags, &crate::config::process_env);
    let mut stdin = || {
        STDIN_TAKEN.store(true, Ordering::SeqCst);
        crate::config::read_stdin_secret()
    };
    let mut warnings = Vec::new();
    let settings = crate::config::resolve(&inputs, &mut stdin, &mut warnings);
    // Before the error, if any: an unknown key is often its cause.
    show_warnings(warnings);
    let settings = settings?;
    for (what, from) in &settings.sources {
        tracing::debug!(setting = %what, from = %from, "configuration");
    }
    Ok(settings)
}

/// Shows configuration warnings; those marked `always` even with `-q`.
pub(crate) fn show_warnings(warnings: Vec<crate::config::Warning>) {
    for w in warnings {
        if w.always {
            crate::ui::warn_always(&w.text);
        } else {
            crate::ui::warn(&w.text);
        }
    }
}

/// The token endpoint of the settings.
pub(crate) fn endpoint(s: &Settings) -> Result<TokenEndpoint> {
    let url = s.require_token_url()?;
    Ok(if s.allow_insecure_http {
        TokenEndpoint::allow_insecure_http(url)?
    } else {
        TokenEndpoint::new(url)?
    }
    .with_client_auth(s.client_auth))
}

/// A token manager for the settings (optionally with a store). Acting as the signed-in person, it
/// shares the sign-in's access-token cache already.
pub(crate) async fn token_builder(s: &Settings) -> Result<TokenManagerBuilder> {
    Ok(match &s.credentials {
        Credentials::User { .. } => session::token_builder(s).await?,
        Credentials::Client { id, secret } => {
            let ep = endpoint(s)?;
            let mut grant = ClientCredentials::new(ep, id.clone(), secret.clone());
            if let Some(scope) = &s.scope {
                grant = grant.with_scope(scope.clone());
            }
            TokenManager::builder(grant)
        }
        Credentials::Static(tok) => TokenManager::builder(StaticToken::new(tok.clone())),
    })
}

/// The API client for the settings and the connection flags, sending with `tokens` (one, or a
/// pool's, each with its shared rate budget if any).
pub(crate) fn client_for(
    s: &Settings,
    g: &GlobalArgs,
    tokens: impl Into<tokens::Tokens>,
    rate: Option<RateLimit>,
    retry_for: Option<std::time::Duration>,
) -> Result<ApiClient> {
    let tokens::Tokens { managers, budgets } = tokens.into();
    let mut slots = managers.into_iter().zip(budgets);
    let (first, budget) = slots
        .next()
        .ok_or_else(|| anyhow::anyhow!("no token manager"))?;
    let mut b = ApiClient::builder(&s.api_base, first);
    if let Some(budget) = budget {
        b = b.shared_budget(budget);
    }
    for (tokens, budget) in slots {
        b = b.add_token(tokens, budget);
    }
    let mut b = b
        .allow_insecure_http(s.allow_insecure_http)
        .follow_redirects_across_origins(g.connection.follow_redirects_across_origins);
    if let Some(r) = rate {
        b = b.rate_limit(r);
    }
    if let Some(max) = g.connection.max_response_bytes {
        b = b.max_response_bytes(max);
    }
    if let Some(d) = retry_for {
        b = b.backoff(tokenwarden::retry::Backoff {
            max_elapsed: d,
            ..tokenwarden::retry::Backoff::default()
        });
    }
    Ok(b.build()?)
}

/// [`connect`] for a command that sends one request at a time: no client-side rate, one token,
/// the default retry budget.
async fn connect_one(g: &GlobalArgs, hint: &mut Option<String>) -> Result<ApiClient> {
    connect(g, None, &PoolArgs::default(), None, hint).await
}

async fn connect(
    g: &GlobalArgs,
    rate: Option<RateLimit>,
    pool: &PoolArgs,
    retry_for: Option<std::time::Duration>,
    hint: &mut Option<String>,
) -> Result<ApiClient> {
    let s = settings(g)?;
    *hint = Some(s.credentials_hint());
    let tokens = tokens::tokens(&s, g, pool, None).await?;
    client_for(&s, g, tokens, rate, retry_for)
}

/// `path` (typed by the person) on the API's origin, or a usage error (exit 2): the check batch
/// records get, so `//host/x`, `/\\host/x` and `http://other-host/x` are refused everywhere, as
/// is a path without its leading `/`.
pub(crate) fn on_origin(client: &ApiClient, path: &str) -> Result<url::Url> {
    client.url_on_origin(path).map_err(|e| {
        let why = match e {
            tokenwarden::Error::Config(why) => why,
            other => other.to_string(),
        };
        UsageError(format!(
            "{why}\nhint: give a path below the API base {} (e.g. /api/v2/users/me)",
            client.api_base()
        ))
        .into()
    })
}

/// The largest JSON argument read from @FILE or @- (`--data`, `--body`, `--filter`): a request
/// body or query, never a data set. A bound keeps `@/dev/zero` or a mistyped log file from eating
/// the memory.
pub(crate) const MAX_JSON_ARG: u64 = 64 << 20;

/// A JSON argument given inline or as @FILE (@- for stdin), at most [`MAX_JSON_ARG`] bytes. Bad
/// JSON, a file that cannot be read or one that is too large is a usage error (exit 2): it is
/// what was typed.
pub(crate) fn json_arg(v: &str) -> Result<serde_json::Value> {
    let (text, what) = if let Some(path) = v.strip_prefix('@') {
        if path == "-" {
            if STDIN_TAKEN.load(Ordering::SeqCst) {
                return Err(UsageError(
                    "@- reads standard input, which already gave the client secret (--client-secret-stdin): put the JSON in a file and give @FILE".into(),
                )
                .into());
            }
            let what = "standard input".to_string();
            (read_bounded(std::io::stdin().lock(), &what)?, what)
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| UsageError(format!("cannot read {path}: {e}")))?;
            (read_bounded(file, path)?, path.to_string())
        }
    } else {
        let shown: String = v.chars().take(60).collect();
        let ellipsis = if shown.len() < v.len() { "..." } else { "" };
        (v.to_string(), format!("'{shown}{ellipsis}'"))
    };
    serde_json::from_str(&text)
        .map_err(|e| anyhow::Error::new(UsageError(format!("{what} is not valid JSON: {e}"))))
}

/// All of `from` as text, refused (usage error) past [`MAX_JSON_ARG`] bytes without reading more.
fn read_bounded(from: impl std::io::Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    from.take(MAX_JSON_ARG + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UsageError(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > MAX_JSON_ARG {
        return Err(UsageError(format!(
            "{what} is larger than {} MiB: a JSON argument is a request body or query, not a data set",
            MAX_JSON_ARG >> 20
        ))
        .into());
    }
    String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("{what} is not valid JSON: not UTF-8 text")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inline_json_is_a_usage_error() {
        let e = json_arg("{\"a\":").unwrap_err();
        assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
        assert!(
            e.to_string().starts_with("'{\"a\":' is not valid JSON"),
            "{e}"
        );
        let e = json_arg("@/no/such/file.json").unwrap_err();
        assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
        assert_eq!(json_arg("[1]").unwrap(), serde_json::json!([1]));
    }

    #[cfg(unix)]
    #[test]
    fn regression_an_endless_json_file_is_a_usage_error_not_all_the_memory() {
        // `--data @/dev/zero` read without a bound until memory ran out.
        let e = json_arg("@/dev/zero").unwrap_err();
        assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
        assert!(e.to_string().contains("larger than 64 MiB"), "{e}");
    }
}
