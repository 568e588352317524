//! Command-line arguments, kept as the user typed them; `config` turns them into library settings.
//!
//! Connection options ([`ConnectionArgs`]) go before or after the command name, and only commands
//! that talk to an API take them: `sim`, `demo` and `completions` show none in their help. Output
//! options ([`OutputArgs`]) apply to every command.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

// Help stays one screen per command: every option's help is one line, and nothing here may set
// a long help (`long_about`, `after_long_help`, an option's second doc paragraph, documented enum
// values): clap would then lay out `--help` one paragraph per option.
/// tokenwarden: OAuth tokens that never expire mid-job, for Genesys Cloud and any OAuth 2.0 API
#[derive(Debug, Parser)]
#[command(name = "tokenwarden", version, long_about = None, after_help = top_after_help())]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

fn top_after_help() -> String {
    format!(
        "Examples:
  tokenwarden demo                      # see it work, offline, against the embedded simulator
  tokenwarden -p me login && tokenwarden -p me --as-user request GET /api/v2/users/me

{}",
        crate::exit::TABLE
    )
}

/// Where the API is and who is calling: accepted before or after the command name (after wins).
/// Each has an environment variable and a profile key too; `tokenwarden config` shows the winners.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnectionArgs {
    /// Profile to use [env: TOKENWARDEN_PROFILE] [default: default]
    #[arg(long, short = 'p', value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Config file [env: TOKENWARDEN_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Region: eu-west-1 or mypurecloud.ie [env: GENESYSCLOUD_REGION]
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// OAuth client id [env: GENESYSCLOUD_OAUTHCLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// Secret (seen in `ps`) [env: GENESYSCLOUD_OAUTHCLIENT_SECRET]
    #[arg(long, value_name = "SECRET", value_parser = SecretArg::parse, group = "secret")]
    pub(crate) client_secret: Option<SecretArg>,
    /// Read the client secret from the first line of FILE
    #[arg(long, value_name = "FILE", group = "secret")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Read the client secret from the first line of stdin
    #[arg(long, group = "secret")]
    pub(crate) client_secret_stdin: bool,
    /// Token endpoint URL [env: TOKENWARDEN_TOKEN_URL]
    #[arg(long, value_name = "URL")]
    pub(crate) token_url: Option<String>,
    /// API base URL [env: TOKENWARDEN_API_BASE]
    #[arg(long, value_name = "URL")]
    pub(crate) api_base: Option<String>,
    /// basic (default) or form [env: TOKENWARDEN_CLIENT_AUTH]
    #[arg(long, value_enum, value_name = "HOW", hide_possible_values = true)]
    pub(crate) client_auth: Option<ClientAuthArg>,
    /// OAuth scopes, space-separated [env: TOKENWARDEN_SCOPE]
    #[arg(long, value_name = "SCOPES")]
    pub(crate) scope: Option<String>,
    /// Act as you, signed in with `login` [env: TOKENWARDEN_GRANT=user]
    #[arg(long)]
    pub(crate) as_user: bool,
    /// `login`'s --redirect-uri, for the settings table.
    #[arg(skip)]
    pub(crate) redirect_uri: Option<String>,
    /// `login`'s --authorize-url, for the settings table.
    #[arg(skip)]
    pub(crate) authorize_url: Option<String>,
    /// Allow http:// off loopback (tokens travel in clear text)
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,
    // Hidden from the help: its name alone would make clap put every option's help on a line of
    // its own; the error that needs it names it, and the README documents it.
    /// Follow redirects to other origins (never with the token)
    #[arg(long, hide = true)]
    pub(crate) follow_redirects_across_origins: bool,
    /// Largest API answer accepted, e.g. 500KB [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_response_bytes: Option<u64>,
    /// memory, file[:DIR], redis://... [env: TOKENWARDEN_TOKEN_STORE]
    #[arg(long, value_name = "STORE")]
    pub(crate) token_store: Option<String>,
    // Hidden from the help (one line per option keeps every page on one screen): the README and
    // `token`'s examples document it and the default (`file`), and `config` shows both.
    /// Do not read or write the token cache (as --token-store memory)
    #[arg(long, hide = true)]
    pub(crate) no_cache: bool,
}

impl ConnectionArgs {
    /// The flags that settings resolution reads (`tokenwarden_config`), as plain values.
    pub(crate) fn flags(&self) -> tokenwarden_config::Flags {
        tokenwarden_config::Flags {
            profile: self.profile.clone(),
            config: self.config.clone(),
            region: self.region.clone(),
            client_id: self.client_id.clone(),
            client_secret: self
                .client_secret
                .as_ref()
                .map(|s| tokenwarden_config::FlagSecret::new(s.expose())),
            client_secret_file: self.client_secret_file.clone(),
            client_secret_stdin: self.client_secret_stdin,
            token_url: self.token_url.clone(),
            api_base: self.api_base.clone(),
            client_auth: self.client_auth.map(|a| a.name().to_string()),
            scope: self.scope.clone(),
            as_user: self.as_user,
            redirect_uri: self.redirect_uri.clone(),
            authorize_url: self.authorize_url.clone(),
            allow_insecure_http: self.allow_insecure_http,
            token_store: self.token_store.clone(),
        }
    }

    /// These options given before the command name, overridden by `later` (given after it). The
    /// three ways to give the secret count as one option: the later one replaces the earlier.
    pub(crate) fn then(self, later: ConnectionArgs) -> ConnectionArgs {
        let later_secret = later.client_secret.is_some()
            || later.client_secret_file.is_some()
            || later.client_secret_stdin;
        let (client_secret, client_secret_file, client_secret_stdin) = if later_secret {
            (
                later.client_secret,
                later.client_secret_file,
                later.client_secret_stdin,
            )
        } else {
            (
                self.client_secret,
                self.client_secret_file,
                self.client_secret_stdin,
            )
        };
        ConnectionArgs {
            profile: later.profile.or(self.profile),
            config: later.config.or(self.config),
            region: later.region.or(self.region),
            client_id: later.client_id.or(self.client_id),
            client_secret,
            client_secret_file,
            client_secret_stdin,
            token_url: later.token_url.or(self.token_url),
            api_base: later.api_base.or(self.api_base),
            client_auth: later.client_auth.or(self.client_auth),
            scope: later.scope.or(self.scope),
            as_user: later.as_user || self.as_user,
            redirect_uri: later.redirect_uri.or(self.redirect_uri),
            authorize_url: later.authorize_url.or(self.authorize_url),
            allow_insecure_http: later.allow_insecure_http || self.allow_insecure_http,
            follow_redirects_across_origins: later.follow_redirects_across_origins
                || self.follow_redirects_across_origins,
            max_response_bytes: later.max_response_bytes.or(self.max_response_bytes),
            token_store: later.token_store.or(self.token_store),
            no_cache: later.no_cache || self.no_cache,
        }
    }

    /// The first connection flag given, for "this command takes none" messages.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            (self.profile.is_some(), "--profile"),
            (self.config.is_some(), "--config"),
            (self.region.is_some(), "--region"),
            (self.client_id.is_some(), "--client-id"),
            (self.client_secret.is_some(), "--client-secret"),
            (self.client_secret_file.is_some(), "--client-secret-file"),
            (self.client_secret_stdin, "--client-secret-stdin"),
            (self.token_url.is_some(), "--token-url"),
            (self.api_base.is_some(), "--api-base"),
            (self.client_auth.is_some(), "--client-auth"),
            (self.scope.is_some(), "--scope"),
            (self.as_user, "--as-user"),
            (self.allow_insecure_http, "--allow-insecure-http"),
            (
                self.follow_redirects_across_origins,
                "--follow-redirects-across-origins",
            ),
            (self.max_response_bytes.is_some(), "--max-response-bytes"),
            (self.token_store.is_some(), "--token-store"),
            (self.no_cache, "--no-cache"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// A secret typed on the command line: wiped from memory when dropped, never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretArg(Zeroizing<String>);

impl SecretArg {
    /// Takes the value as clap hands it over (borrowed), so the only copy we own is the wiped one.
    fn parse(s: &str) -> Result<SecretArg, String> {
        if s.trim().is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(SecretArg(Zeroizing::new(s.to_owned())))
    }

    /// The secret itself: only to be wrapped into a `ClientSecret`.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How much is said on stderr, and in which format; every command takes these.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// More logs: -v info, -vv debug, -vvv trace (never secrets)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors, and the warning about --client-secret
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// text (default), or json: one object per line on stderr
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT",
        hide_default_value = true,
        hide_possible_values = true
    )]
    pub(crate) log_format: LogFormat,
}

/// What a command needs besides its own arguments: the connection options (merged from before and
/// after the command name) and the output options.
#[derive(Debug, Default)]
pub(crate) struct GlobalArgs {
    pub(crate) connection: ConnectionArgs,
    pub(crate) quiet: bool,
}

/// A command's own arguments followed by the connection options.
#[derive(Debug, Args)]
pub(crate) struct Connected<T: Args> {
    #[command(flatten)]
    pub(crate) args: T,
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ClientAuthArg {
    // HTTP Basic (Genesys Cloud's documented way). Variants carry no doc comment: clap would
    // then switch the whole `--help` to its long, one-paragraph-per-option layout.
    Basic,
    // client_id and client_secret as form fields.
    Form,
}

impl ClientAuthArg {
    /// The name as typed (`basic`, `form`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientAuthArg::Basic => "basic",
            ClientAuthArg::Form => "form",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    // Human-readable lines.
    #[default]
    Text,
    // One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print a valid access token (cached across invocations, refreshed when due)
    #[command(after_help = "Examples:
  curl -H \"Authorization: Bearer $(tokenwarden token)\" https://api.mypurecloud.com/api/v2/users/me
  tokenwarden token --json | jq .expires_in
  tokenwarden token --no-cache     # a fresh token, not from the cache nor into it (any command)
  tokenwarden --token-url http://127.0.0.1:8080/oauth/token --client-id tw-client token")]
    Token(Connected<TokenArgs>),
    /// Preflight: check credentials, token lifetime and scopes before a long job
    #[command(after_help = "Examples:
  tokenwarden check
  tokenwarden -p prod check --require-scope analytics:conversationDetail:view
  tokenwarden check --require-scope users:readonly --require-scope routing:queue:view")]
    Check(Connected<CheckArgs>),
    /// Send one API request through the client (refresh, retries); body to stdout
    #[command(after_help = "Examples:
  tokenwarden request GET /api/v2/users/me
  tokenwarden request DELETE /api/v2/tokens/me
  tokenwarden request POST /api/v2/analytics/conversations/details/query -d @q.json --replay-safe")]
    Request(Connected<RequestArgs>),
    /// Every item of a paged listing, as JSON Lines or CSV; resumable with --out FILE.
    #[command(after_help = "Examples:
  tokenwarden paginate /api/v2/users --format csv --out users.csv
  tokenwarden paginate /api/v2/externalcontacts/scan/contacts --out contacts.jsonl --resume
  tokenwarden paginate /api/v2/analytics/conversations/details/query --body @q.json | wc -l")]
    Paginate(Connected<PaginateArgs>),
    /// Export data with analytics jobs, slice by slice; resumable with --out FILE
    #[command(
        subcommand,
        after_help = "Examples:
  tokenwarden export conversations --interval 2024-01-01/2024-02-01 --out jan.jsonl
  tokenwarden export conversations --interval 2024-01-01/P31D --out jan.jsonl --resume  # after kill"
    )]
    Export(ExportCommand),
    /// Run one request per input record; resumable, exactly-once output
    #[command(after_help = "Examples:
  tokenwarden batch --input requests.jsonl --output results.jsonl --concurrency 8 --rate 5/s
  tokenwarden batch --ids user-ids.txt --path-template '/api/v2/users/{id}' --output users.jsonl
  tokenwarden batch --input requests.jsonl --output results.jsonl --resume   # after a crash or kill

Input lines: {\"id\": \"r1\", \"method\": \"GET\", \"path\": \"/api/v2/users/abc\", \"body\": null}
Output lines: {\"id\": \"r1\", \"status\": 200, \"body\": {...}} or {\"id\": \"r1\", \"error\": \"...\"}")]
    Batch(Connected<BatchArgs>),
    /// Sign in as yourself in the browser (authorization code + PKCE)
    #[command(after_help = "Examples:
  tokenwarden -p work login                     # opens the browser
  tokenwarden -p work --as-user batch --input requests.jsonl --output results.jsonl
  tokenwarden login --no-browser                # over SSH: prints the URL to open elsewhere
  tokenwarden login --redirect-uri http://localhost:9000/callback   # as registered on the client

The redirect URI (default http://127.0.0.1:8765/callback) must be registered on the OAuth client;
a profile sets it with redirect_uri, and grant = \"user\" makes every command act as you.")]
    Login(Connected<LoginArgs>),
    /// Sign out: revoke the sign-in on the server and delete what is stored
    #[command(after_help = "Examples:
  tokenwarden logout
  tokenwarden -p work logout")]
    Logout(Connected<NoArgs>),
    /// Who you are signed in as: user, organization, OAuth client and scopes
    #[command(after_help = "Examples:
  tokenwarden whoami
  tokenwarden -p work whoami --json | jq -r .user.email")]
    Whoami(Connected<WhoamiArgs>),
    /// Show each connection setting, its value and where it came from (secrets as [set])
    #[command(after_help = "Examples:
  tokenwarden config
  tokenwarden -p prod config --json | jq -r .settings.region.source
  GENESYSCLOUD_REGION=eu-west-1 tokenwarden config")]
    Config(Connected<ConfigArgs>),
    /// Serve the token to every local program: a token endpoint and an API proxy on loopback
    #[command(after_help = "Examples:
  tokenwarden agent --listen 127.0.0.1:8181 --key-file ~/.config/tokenwarden/agent.key
  echo \"Authorization: Bearer $(cat ~/.config/tokenwarden/agent.key)\" | curl -H @- http://127.0.0.1:8181/api/v2/tokens/me
  tokenwarden agent --listen 127.0.0.1:0 --key-file agent.key --sink /run/token --sink-format json")]
    Agent(Connected<AgentArgs>),
    /// Run CMD with an agent of its own (TOKENWARDEN_AGENT_URL, TOKENWARDEN_AGENT_KEY)
    #[command(after_help = "Examples:
  tokenwarden exec -- python3 job.py
  tokenwarden -p prod exec --rate 5/s -- sh -c 'curl -H \"Authorization: Bearer $TOKENWARDEN_AGENT_KEY\" $TOKENWARDEN_AGENT_URL/api/v2/tokens/me'")]
    Exec(Connected<ExecArgs>),
    /// Run the embedded Genesys Cloud simulator standalone
    #[command(after_help = "Examples:
  tokenwarden sim --port 8080 --token-ttl 5s --revoke-every 100
  tokenwarden sim --port 8080 --sim-client me:pw --forbidden-path /api/v2/routing
  # then, in another shell, run the export lines it prints")]
    Sim(SimArgs),
    /// A realistic job against the embedded simulator: short tokens, revocations, 429s
    #[command(after_help = "Examples:
  tokenwarden demo
  tokenwarden demo --requests 2000 --token-ttl 1s --revoke-every 500 --no-progress")]
    Demo(DemoArgs),
    /// Print shell completions (install them in your user directories, no root needed)
    #[command(after_help = "Examples:
  tokenwarden completions bash > ~/.local/share/bash-completion/completions/tokenwarden
  tokenwarden completions zsh > ~/.zfunc/_tokenwarden
  tokenwarden completions fish > ~/.config/fish/completions/tokenwarden.fish")]
    Completions(CompletionsArgs),
}

/// What the agent serves with, for `agent` and `exec`.
#[derive(Debug, Args, Clone)]
pub(crate) struct AgentServeArgs {
    /// Write the token to FILE at each refresh, 0600 (repeatable)
    #[arg(long, value_name = "FILE")]
    pub(crate) sink: Vec<PathBuf>,
    /// raw (the token alone) or json
    #[arg(long, value_enum, default_value_t = SinkFormatArg::Raw, value_name = "FORMAT", hide_possible_values = true)]
    pub(crate) sink_format: SinkFormatArg,
    /// Rate per token, e.g. 5/s or 300/m (fleet-wide with a redis store)
    #[arg(long, value_name = "N/s|N/m", value_parser = parse_rate)]
    pub(crate) rate: Option<tokenwarden::RateLimit>,
    #[command(flatten)]
    pub(crate) pool: PoolArgs,
    #[command(flatten)]
    pub(crate) otlp: OtlpArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum SinkFormatArg {
    // The token alone, no newline.
    Raw,
    // {"access_token", "token_type", "expires_in", "expires_at"}.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Loopback address to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8181", value_parser = parse_listen)]
    pub(crate) listen: std::net::SocketAddr,
    /// The agent key, created 0600 if missing [or env: TOKENWARDEN_AGENT_KEY]
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) serve: AgentServeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub(crate) serve: AgentServeArgs,
    /// The command to run, after --
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// Print JSON with the expiry instead of the bare token
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up after this long when another process holds the cache's lock while it fetches a
    /// token (e.g. 500ms, 30s, 2m) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) lock_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args, Default, Clone)]
pub(crate) struct CheckArgs {
    /// Fail unless the token carries this scope (repeatable)
    #[arg(long = "require-scope", value_name = "SCOPE")]
    pub(crate) require_scope: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// HTTP method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS
    #[arg(value_parser = parse_method)]
    pub(crate) method: http::Method,
    /// Path below the API base (e.g. /api/v2/users/me)
    pub(crate) path: String,
    /// JSON body, or @FILE to read it from a file (@- for stdin)
    #[arg(long, short = 'd', value_name = "JSON|@FILE")]
    pub(crate) data: Option<String>,
    /// Extra header (repeatable), as "Name: value"
    #[arg(long, short = 'H', value_name = "HEADER", value_parser = parse_header)]
    pub(crate) header: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Allow retries of a POST/PATCH (mark it as a read or idempotent)
    #[arg(long)]
    pub(crate) replay_safe: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Print the URL to open instead of opening a browser (SSH sessions)
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Give up on the sign-in after this long, e.g. 90s [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<std::time::Duration>,
    /// Loopback URI registered on the client [env: TOKENWARDEN_REDIRECT_URI]
    #[arg(long, value_name = "URI")]
    pub(crate) redirect_uri: Option<String>,
    /// Sign-in endpoint [env: TOKENWARDEN_AUTHORIZE_URL]
    #[arg(long, value_name = "URL")]
    pub(crate) authorize_url: Option<String>,
    /// Keep the refresh token in the private file, not the OS keyring
    #[arg(long)]
    pub(crate) no_keyring: bool,
}

/// No arguments of its own.
#[derive(Debug, Args)]
pub(crate) struct NoArgs {}

#[derive(Debug, Args)]
pub(crate) struct WhoamiArgs {
    /// One JSON object instead of lines
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// One JSON object instead of the table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct PaginateArgs {
    /// Path of the listing (query parameters allowed).
    pub(crate) path: String,
    /// JSON query body for POST query endpoints, or @FILE (paging.pageNumber is managed).
    #[arg(long, value_name = "JSON|@FILE")]
    pub(crate) body: Option<String>,
    /// Paging style; auto picks cursor for the scan endpoints, query when --body is given.
    #[arg(long, value_enum, default_value_t = PagingStyle::Auto)]
    pub(crate) style: PagingStyle,
    /// Items per page.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page_size: Option<u32>,
    #[command(flatten)]
    pub(crate) out: ExportOutArgs,
}

/// Where and how `paginate` and `export` write their items.
#[derive(Debug, Args, Clone)]
pub(crate) struct ExportOutArgs {
    /// Write the items to FILE (created 0600), recording the position beside it in FILE.twstate
    /// so that --resume can continue; - (the default) writes to stdout.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// jsonl: one JSON object per line. csv: a header from the items' fields (nested ones joined
    /// with dots, arrays as JSON text), written once every item is in.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub(crate) format: ExportFormat,
    /// Continue the export recorded beside --out after a crash, Ctrl-C or kill -9 (or start it
    /// if there is none); rerun the same command with --resume.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Overwrite an existing --out and start over.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) observe: ObserveArgs,
}

/// What a long command shows of its run while and after it runs.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ObserveArgs {
    /// An HTML report of the run (0600, self-contained, opens offline)
    #[arg(long, value_name = "FILE.html")]
    pub(crate) report: Option<PathBuf>,
    /// Serve Prometheus metrics at ADDR/metrics, e.g. 127.0.0.1:9464
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub(crate) otlp: OtlpArgs,
}

/// OpenTelemetry export, for the long commands and the agent.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct OtlpArgs {
    // One line, to keep `batch --help` one screen; the README has the variables.
    /// Export to an OTLP/HTTP collector [or env OTEL_EXPORTER_OTLP_*]
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    // JSON Lines. (No doc comments on values: see `Cli`.)
    Jsonl,
    // CSV (RFC 4180).
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum PagingStyle {
    // Decide from the path and arguments.
    Auto,
    // pageNumber / pageSize / nextUri listings.
    Pages,
    // cursor / after / nextUri listings.
    Cursor,
    // POST query with paging.pageNumber and totalHits.
    Query,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// Conversation details of an interval, one analytics job per slice (default a week).
    #[command(after_help = "Examples:
  tokenwarden export conversations --interval 2024-01-01/2024-02-01 --out jan.jsonl
  tokenwarden export conversations --interval 2024-01-01/P7D --slice 6h --format csv --out week.csv
  tokenwarden export conversations --interval 2024-01-01/P31D --out jan.jsonl --resume  # after kill")]
    Conversations(Connected<ExportArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// ISO-8601 interval START/END (or START/P7D), e.g. 2024-01-01T00:00:00Z/2024-02-01T00:00:00Z.
    #[arg(long, value_name = "START/END", value_parser = parse_interval)]
    pub(crate) interval: tokenwarden::paginate::Interval,
    /// One analytics job per slice of the interval (e.g. 1d, 12h), at most 31 days (the API's
    /// limit for one query); slices start at midnight UTC. A resume continues the recorded job,
    /// or redoes that one slice if the API no longer has it.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_slice)]
    pub(crate) slice: std::time::Duration,
    /// Extra job body fields as JSON (e.g. '{"segmentFilters": [...]}'), or @FILE.
    #[arg(long, value_name = "JSON|@FILE")]
    pub(crate) filter: Option<String>,
    /// Results per page.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page_size: Option<u32>,
    #[command(flatten)]
    pub(crate) out: ExportOutArgs,
}

/// An address to listen on: `IP:PORT`, or `localhost:PORT` for 127.0.0.1 (a name is not looked
/// up: what it resolves to is not ours to trust).
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{port:?} is not a port (0 to 65535)"))?;
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        "expected IP:PORT, such as 127.0.0.1:8181 or [::1]:8181 (port 0 picks a free one)".into()
    })
}

fn parse_interval(s: &str) -> Result<tokenwarden::paginate::Interval, String> {
    s.parse()
        .map_err(|e: tokenwarden::paginate::IntervalError| e.to_string())
}

fn parse_slice(s: &str) -> Result<std::time::Duration, String> {
    tokenwarden::paginate::parse_slice_length(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args, Clone)]
pub(crate) struct BatchArgs {
    /// JSON Lines: {"id", "method", "path", "body"} per line (- for stdin, FIFOs work)
    #[arg(
        long,
        short,
        value_name = "FILE",
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub(crate) input: Option<PathBuf>,
    /// One id per line, used with --path-template (- for standard input).
    #[arg(long, value_name = "FILE", requires = "path_template")]
    pub(crate) ids: Option<PathBuf>,
    /// Path with {id} for --ids, e.g. '/api/v2/users/{id}'
    #[arg(long, value_name = "TEMPLATE", value_parser = parse_path_template, conflicts_with = "input")]
    pub(crate) path_template: Option<String>,
    /// Method for --ids records.
    #[arg(long, default_value = "GET", value_parser = parse_method)]
    pub(crate) method: http::Method,
    /// Output JSON Lines (0600), the journal for --resume
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) concurrency: u32,
    /// Rate per token, e.g. 5/s or 300/m (fleet-wide with a redis store)
    #[arg(long, value_name = "N/s|N/m", value_parser = parse_rate)]
    pub(crate) rate: Option<tokenwarden::RateLimit>,
    /// Stop past N (or N%) failed records; then --resume --retry-failed
    #[arg(long, value_name = "N|N%")]
    pub(crate) max_failures: Option<tokenwarden::jobs::batch::FailureLimit>,
    /// Retry a request at most this long, e.g. 10s [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) retry_for: Option<std::time::Duration>,
    /// Continue an interrupted job: skip records already in the output.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Only the records whose id hashes to shard INDEX (from 0)
    #[arg(long, value_name = "INDEX/COUNT")]
    pub(crate) shard: Option<tokenwarden::jobs::batch::Shard>,
    #[command(flatten)]
    pub(crate) pool: PoolArgs,
    /// With --resume: run again the records that failed (non-2xx or error), replacing their lines.
    #[arg(long, requires = "resume")]
    pub(crate) retry_failed: bool,
    /// Overwrite an existing output file.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) force: bool,
    /// POST/PATCH records are safe to retry (reads, idempotent writes).
    #[arg(long)]
    pub(crate) replay_safe: bool,
    /// Run `check` first (with --require-scope).
    #[arg(long)]
    pub(crate) preflight: bool,
    /// Scopes the preflight must find (implies --preflight).
    #[arg(long = "require-scope", value_name = "SCOPE")]
    pub(crate) require_scope: Vec<String>,
    /// Also write the summary as JSON here (0600; --force to replace)
    #[arg(long, value_name = "FILE")]
    pub(crate) summary_json: Option<PathBuf>,
    /// Never draw a progress bar (plain progress lines instead).
    #[arg(long)]
    pub(crate) no_progress: bool,
    #[command(flatten)]
    pub(crate) observe: ObserveArgs,
}

/// A token pool: how many tokens a batch spreads its requests over.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct PoolArgs {
    /// Spread requests over K tokens (a rate budget each)
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) tokens: Option<u32>,
    // Hidden to keep the help one screen; the README documents it.
    /// Least time between two token requests [default: 1s with --tokens over 1]
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) token_spacing: Option<std::time::Duration>,
}

/// A `--path-template`: starts with `/` and holds `{id}` (the API base decides the rest).
fn parse_path_template(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || !s.contains("{id}") {
        return Err(format!(
            "{s:?} must start with / and contain {{id}}, e.g. '/api/v2/users/{{id}}'"
        ));
    }
    Ok(s.to_string())
}

fn parse_method(s: &str) -> Result<http::Method, String> {
    const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let upper = s.to_ascii_uppercase();
    match METHODS.contains(&upper.as_str()) {
        true => http::Method::from_bytes(upper.as_bytes()).map_err(|e| e.to_string()),
        false => Err(format!("{s:?}: use one of {}", METHODS.join(", "))),
    }
}

/// Parses `5/s`, `300/m` or `300/min`; a number needs its unit.
pub(crate) fn parse_rate(s: &str) -> Result<tokenwarden::RateLimit, String> {
    use tokenwarden::RateLimit;
    let bad = || format!("{s:?}: use N/s or N/m, e.g. 5/s or 300/m");
    let (n, unit) = s.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    match unit.trim() {
        "s" | "sec" | "second" => Ok(RateLimit::per_second(n)),
        "m" | "min" | "minute" => Ok(RateLimit::per_minute(n)),
        _ => Err(bad()),
    }
}

#[derive(Debug, Args, Clone)]
pub(crate) struct SimArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    #[command(flatten)]
    pub(crate) knobs: SimKnobs,
}

/// Every simulator knob, as flags.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SimKnobs {
    /// Token lifetime (e.g. 300s, 5m, 1500ms) [default: 86399s]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) token_ttl: Option<std::time::Duration>,
    /// Tokens die this long before their advertised expiry.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) clock_skew: Option<std::time::Duration>,
    /// Issue JWT-shaped tokens (with exp).
    #[arg(long)]
    pub(crate) jwt_tokens: bool,
    /// Revoke the calling token every N API calls.
    #[arg(long, value_name = "N")]
    pub(crate) revoke_every: Option<u64>,
    /// Fail the first K token requests with 503.
    #[arg(long, value_name = "K")]
    pub(crate) fail_first_token_requests: Option<u32>,
    /// Throttle every Nth token request (Genesys's 400)
    #[arg(long, value_name = "N")]
    pub(crate) throttle_token_every: Option<u32>,
    /// Tokens per client per window, e.g. 2/1s (Genesys's 400 beyond)
    #[arg(long, value_name = "N/TIME", value_parser = parse_token_limit)]
    pub(crate) token_limit: Option<(u32, std::time::Duration)>,
    /// Delay every token response.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) token_latency: Option<std::time::Duration>,
    /// Per-token API requests per window (429 beyond)
    #[arg(long, value_name = "N")]
    pub(crate) rate_limit: Option<u32>,
    /// The rate-limit window [default: 60s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) rate_limit_window: Option<std::time::Duration>,
    /// Fraction of API requests answered 5xx (seeded).
    #[arg(long, value_name = "FRACTION")]
    pub(crate) error_rate: Option<f64>,
    /// Fraction of API requests whose connection is dropped.
    #[arg(long, value_name = "FRACTION")]
    pub(crate) drop_rate: Option<f64>,
    /// Seed for injected faults.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Latency added to every API response.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) latency: Option<std::time::Duration>,
    /// Up to this much more latency, drawn for each API response (an API whose latency varies).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) latency_jitter: Option<std::time::Duration>,
    /// Number of users.
    #[arg(long, value_name = "N")]
    pub(crate) users: Option<usize>,
    /// Number of external contacts.
    #[arg(long, value_name = "N")]
    pub(crate) contacts: Option<usize>,
    /// Number of conversations.
    #[arg(long, value_name = "N")]
    pub(crate) conversations: Option<usize>,
    /// How long an analytics job takes.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) job_duration: Option<std::time::Duration>,
    /// Analytics jobs end fulfilled, failed, cancelled or expired
    #[arg(long, value_enum, value_name = "STATE", hide_possible_values = true)]
    pub(crate) job_outcome: Option<JobOutcomeArg>,
    /// Largest accepted page size.
    #[arg(long, value_name = "N")]
    pub(crate) max_page_size: Option<usize>,
    /// Accepted client, repeatable (replaces tw-client:tw-secret)
    #[arg(long = "sim-client", value_name = "ID:SECRET", value_parser = parse_sim_client)]
    pub(crate) clients: Vec<(String, String)>,
    /// Refuse client credentials sent as form fields
    #[arg(long)]
    pub(crate) basic_only: bool,
    /// Path prefixes answered 403 (repeatable).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) forbidden_path: Vec<String>,
    /// Scopes /api/v2/tokens/me reports (repeatable)
    #[arg(long = "sim-scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// Sign-ins at /oauth/authorize: page (default), approve or deny at once
    #[arg(long, value_enum, value_name = "HOW", hide_possible_values = true)]
    pub(crate) sign_in: Option<SignInArg>,
    /// Redirect URI the clients accept (repeatable; replaces the 127.0.0.1:8765 ones)
    #[arg(long = "sim-redirect-uri", value_name = "URI")]
    pub(crate) redirect_uris: Vec<String>,
    /// Accepted public client (PKCE, no secret), repeatable
    #[arg(long = "sim-public-client", value_name = "ID")]
    pub(crate) public_clients: Vec<String>,
    /// A sign-in's refresh tokens stop working this long after it
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) session_lifetime: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum SignInArg {
    // The sign-in page. (No doc comments on values: see `Cli`.)
    Page,
    // Approve at once.
    Approve,
    // Deny at once.
    Deny,
}

/// Terminal state of the simulator's analytics jobs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum JobOutcomeArg {
    Fulfilled,
    Failed,
    Cancelled,
    Expired,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct DemoArgs {
    /// Number of requests in the demo batch.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) requests: u64,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub(crate) concurrency: u32,
    /// Simulator token lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub(crate) token_ttl: std::time::Duration,
    /// Revoke the calling token every N API calls.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) revoke_every: u64,
    /// Per-token rate limit per second in the simulator (429 beyond it).
    #[arg(long, default_value_t = 1_500)]
    pub(crate) rate_limit_per_second: u32,
    /// Fraction of API requests answered 5xx.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) error_rate: f64,
    /// Keep the demo's output file here (default: a temporary file, deleted).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
    #[command(flatten)]
    pub(crate) observe: ObserveArgs,
}

/// `Name: value`, both legal in an HTTP header.
fn parse_header(s: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| "use \"Name: value\", e.g. -H 'Accept-Language: en'".to_string())?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("'{}' is not a header name", name.trim()))?;
    let value = http::HeaderValue::from_str(value.trim())
        .map_err(|_| "the value holds characters a header cannot carry".to_string())?;
    Ok((name, value))
}

/// `N/DURATION` for `sim --token-limit`: at most N tokens per client in any such window.
fn parse_token_limit(s: &str) -> Result<(u32, std::time::Duration), String> {
    let bad = || format!("{s:?}: use N/DURATION, e.g. 2/1s or 10/1m");
    let (n, window) = s.split_once('/').ok_or_else(bad)?;
    let n = n.trim().parse::<u32>().map_err(|_| bad())?;
    let window = parse_duration(window).map_err(|_| bad())?;
    if n == 0 || window.is_zero() {
        return Err(bad());
    }
    Ok((n, window))
}

/// `ID:SECRET` for `sim --sim-client`.
fn parse_sim_client(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok((id.to_string(), secret.to_string()))
        }
        _ => Err("use ID:SECRET, e.g. --sim-client me:pw".into()),
    }
}

/// Parses a size in bytes: a number, optionally followed by KiB/MiB/GiB (or K/M/G: powers of
/// 1024) or KB/MB/GB (powers of 1000), in any case. At least 1 byte.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("{s:?} is not a size (e.g. 64MiB, 500KB, 1048576)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(factor) {
        Some(0) => Err(format!("{s:?}: the size must be at least 1 byte")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{s:?} is too large")),
    }
}

/// The longest duration a flag takes: longer is a typo, and near `Duration::MAX` arithmetic on
/// instants would overflow.
pub(crate) const MAX_DURATION: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

/// Parses a duration in tokenwarden's one grammar ([`tokenwarden::duration::parse`]: `1500ms`,
/// `5s`, `2m`, `1h`, `1d`, `PT6H`, or a bare number of seconds), at most [`MAX_DURATION`]
/// (one year).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use tokenwarden::duration::DurationError;
    let s = s.trim();
    match tokenwarden::duration::parse(s) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(DurationError::TooLong) => Err(format!("{s:?} is too long (at most 1 year)")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    // A new user's finding: `--listen localhost:0` got clap's "invalid socket address syntax".
    #[test]
    fn listen_takes_localhost_and_says_what_it_expects() {
        assert_eq!(
            parse_listen("localhost:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:8181").unwrap(),
            "[::1]:8181".parse().unwrap()
        );
        let e = parse_listen("localhost").unwrap_err();
        assert!(e.contains("expected IP:PORT"), "{e}");
        assert!(
            parse_listen("localhost:99999")
                .unwrap_err()
                .contains("not a port")
        );
        // A name is not looked up.
        assert!(parse_listen("example.com:80").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size(" 500 KB "), Ok(500_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        for bad in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "10 bytes",
            "0",
            "0KiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("18446744073709551615GiB").is_err(), "overflow");
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        // The grammar slice lengths take: days, ISO-8601, several units.
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("P1D"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("PT1M30S"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        assert!(parse_duration("5y").is_err());
        assert!(
            parse_duration("P1M")
                .unwrap_err()
                .contains("vary in length")
        );
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn regression_a_huge_duration_is_a_usage_error_not_a_panic() {
        // `Duration::from_secs_f64` panicked (exit 101) past `Duration::MAX`.
        for huge in [
            "99999999999999999999",
            "10000000000000000000",
            "1e300h",
            "inf",
            "366d",
        ] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
        assert!(
            parse_duration("8761h")
                .unwrap_err()
                .contains("at most 1 year")
        );
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert!(parse_duration("NaN").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_duration_never_panics_and_stays_within_a_year(s in "\\PC{0,24}") {
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
        }

        #[test]
        fn parse_duration_reads_any_number_with_any_unit(n in proptest::num::f64::ANY, unit in "(ms|s|m|h|d|)") {
            let _ = parse_duration(&format!("{n}{unit}"));
        }

        #[test]
        fn parse_size_never_panics_and_is_at_least_one_byte(s in "[0-9]{0,25}[ a-zA-Z]{0,4}") {
            if let Ok(n) = parse_size(&s) {
                proptest::prop_assert!(n >= 1);
            }
        }
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tokenwarden").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn batch_connection(cli: Cli) -> ConnectionArgs {
        match cli.command {
            Command::Batch(c) => cli.connection.then(c.connection),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_limits_are_a_count_over_a_window() {
        assert_eq!(parse_token_limit("2/1s"), Ok((2, Duration::from_secs(1))));
        assert_eq!(
            parse_token_limit(" 10 / 500ms"),
            Ok((10, Duration::from_millis(500)))
        );
        for bad in ["2", "0/1s", "2/0s", "x/1s", "2/1y", ""] {
            assert!(parse_token_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_need_a_unit() {
        assert_eq!(
            parse_rate("5/s").unwrap().interval(),
            Duration::from_millis(200)
        );
        assert_eq!(
            parse_rate("300/m").unwrap().interval(),
            Duration::from_millis(200)
        );
        for bad in ["50", "0/s", "5/h", "x", "abc", "-5/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_options_go_before_or_after_the_command() {
        let before = parse(&["--api-base", "http://x", "batch", "-i", "in", "-o", "out"]);
        let after = parse(&["batch", "-i", "in", "-o", "out", "--api-base", "http://x"]);
        assert_eq!(
            batch_connection(before).api_base.as_deref(),
            Some("http://x")
        );
        assert_eq!(
            batch_connection(after).api_base.as_deref(),
            Some("http://x")
        );
        // Given twice, the later (after the command name) wins, as with any repeated flag.
        let both = parse(&[
            "--region", "a", "batch", "-i", "i", "-o", "o", "--region", "b",
        ]);
        assert_eq!(batch_connection(both).region.as_deref(), Some("b"));
    }

    #[test]
    fn a_later_secret_option_replaces_an_earlier_one_of_another_kind() {
        let c = batch_connection(parse(&[
            "--client-secret-file",
            "f",
            "batch",
            "-i",
            "i",
            "-o",
            "o",
            "--client-secret-stdin",
        ]));
        assert!(c.client_secret_stdin);
        assert_eq!(c.client_secret_file, None);
        let e = Cli::try_parse_from([
            "tokenwarden",
            "--client-secret-file",
            "f",
            "--client-secret-stdin",
            "check",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn commands_that_call_no_api_take_no_connection_options() {
        for cmd in [
            ["sim", "--client-id"],
            ["demo", "--region"],
            ["completions", "--scope"],
        ] {
            let e = Cli::try_parse_from(["tokenwarden", cmd[0], cmd[1], "x"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{cmd:?}");
        }
    }

    #[test]
    fn regression_debug_of_the_arguments_never_shows_the_client_secret() {
        let cli = parse(&["--client-secret", "hunter2-on-the-command-line", "check"]);
        let shown = format!("{cli:?} {cli:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn methods_headers_and_sim_clients_are_checked_when_parsed() {
        assert_eq!(parse_method("get"), Ok(http::Method::GET));
        assert!(parse_method("FETCH").unwrap_err().contains("GET, POST"));
        assert!(parse_header("Accept: x").is_ok());
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header("X-A: line\nbreak").is_err());
        assert_eq!(parse_sim_client("me:pw"), Ok(("me".into(), "pw".into())));
        assert!(parse_sim_client("me").is_err());
        assert!(parse_sim_client(":pw").is_err());
    }
}
