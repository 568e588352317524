//! Simulator configuration: every adversity knob lives in [`SimConfig`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Client id of the OAuth client configured by [`SimConfig::default`].
pub const DEFAULT_CLIENT_ID: &str = "tw-client";
/// Client secret of the OAuth client configured by [`SimConfig::default`].
pub const DEFAULT_CLIENT_SECRET: &str = "tw-secret";
/// Display name of the OAuth client configured by [`SimConfig::default`].
pub const DEFAULT_CLIENT_NAME: &str = "tokenwarden demo";

/// Default `conversation_interval` start: 2024-01-01T00:00:00Z (Unix seconds).
const DEFAULT_INTERVAL_START_UNIX: u64 = 1_704_067_200;
/// Default `conversation_interval` end: 2024-01-08T00:00:00Z (Unix seconds).
const DEFAULT_INTERVAL_END_UNIX: u64 = 1_704_672_000;

/// The redirect URIs every client built by [`SimClient::new`] has registered: the loopback ones
/// `tokenwarden login` uses by default.
pub const DEFAULT_REDIRECT_URIS: [&str; 2] = [
    "http://127.0.0.1:8765/callback",
    "http://localhost:8765/callback",
];

/// An OAuth client known to the simulated token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimClient {
    /// The OAuth client id (`client_id`).
    pub id: String,
    /// The OAuth client secret (`client_secret`); empty for a public client.
    pub secret: String,
    /// The client's display name, reported by `GET /api/v2/tokens/me` as `OAuthClient.name`.
    pub name: String,
    /// The redirect URIs registered for the Authorization Code grant (`/oauth/authorize` accepts
    /// exactly these, compared as strings). Default [`DEFAULT_REDIRECT_URIS`].
    pub redirect_uris: Vec<String>,
    /// A public client (PKCE, no secret): it authenticates to the token endpoint with its
    /// `client_id` alone, may only use the Authorization Code and Refresh Token grants, and must
    /// send a PKCE challenge. A confidential client (the default) must authenticate with its
    /// secret for every grant.
    pub public: bool,
}

impl SimClient {
    /// A confidential client with the given id, secret and display name, and the
    /// [`DEFAULT_REDIRECT_URIS`].
    pub fn new(id: impl Into<String>, secret: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            name: name.into(),
            redirect_uris: DEFAULT_REDIRECT_URIS
                .iter()
                .map(|u| u.to_string())
                .collect(),
            public: false,
        }
    }

    /// A public client (no secret; PKCE required) with the [`DEFAULT_REDIRECT_URIS`].
    pub fn public(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            public: true,
            ..Self::new(id, "", name)
        }
    }

    /// Registers exactly these redirect URIs instead.
    pub fn with_redirect_uris<I, S>(mut self, uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redirect_uris = uris.into_iter().map(Into::into).collect();
        self
    }
}

/// What `GET /oauth/authorize` does once the request itself is valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizeMode {
    /// Show the tiny sign-in page (a user id and Allow / Deny buttons, posted back to
    /// `/oauth/authorize`). The default, for a person at a browser.
    #[default]
    Page,
    /// Sign in [`SimConfig::sign_in_user`] and redirect back with a code at once (tests).
    Approve,
    /// Redirect back with `error=access_denied` at once, as when the person refuses consent.
    Deny,
}

impl Default for SimClient {
    /// The default client: [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`].
    fn default() -> Self {
        Self::new(
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            DEFAULT_CLIENT_NAME,
        )
    }
}

/// Terminal state of a simulated async analytics job (see [`SimConfig::job_outcome`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobOutcome {
    /// The job succeeds; its results can be fetched.
    #[default]
    Fulfilled,
    /// The job fails (`state: "FAILED"`, with an `errorMessage`).
    Failed,
    /// The job is cancelled by the platform (`state: "CANCELLED"`).
    Cancelled,
    /// The job's results expired (`state: "EXPIRED"`).
    Expired,
}

impl JobOutcome {
    /// The Genesys `state` string of this outcome (`"FULFILLED"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Fulfilled => "FULFILLED",
            JobOutcome::Failed => "FAILED",
            JobOutcome::Cancelled => "CANCELLED",
            JobOutcome::Expired => "EXPIRED",
        }
    }
}

/// The realistic default scope list answered by `GET /api/v2/tokens/me`.
pub fn default_scopes() -> Vec<String> {
    [
        "analytics",
        "analytics:readonly",
        "analytics:conversationDetail:view",
        "analytics:conversationAggregate:view",
        "users",
        "users:readonly",
        "externalContacts",
        "externalContacts:readonly",
        "conversations:readonly",
        "routing:readonly",
        "presence:readonly",
        "organization:readonly",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Configuration of a [`Simulator`](crate::Simulator): identity, data sizes and adversity knobs.
///
/// Every field can be changed at runtime with [`Simulator::update`](crate::Simulator::update)
/// (except `bind`, which only matters at start). Knobs are read per request, so a change applies
/// to the next request that reaches the relevant check.
///
/// Counters behind "every Nth" and "first K" knobs (`revoke_every`, `throttle_token_every`,
/// `fail_first_token_requests`) restart from zero whenever `update` changes that knob's value, so
/// "the first 3 token requests fail" means "the first 3 after I set it". The random stream behind
/// `error_rate`/`drop_rate` restarts whenever `seed`, `error_rate` or `drop_rate` changes.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on. Default `127.0.0.1:0` (an ephemeral port; see
    /// [`Simulator::addr`](crate::Simulator::addr)).
    pub bind: SocketAddr,
    /// OAuth clients accepted by the token endpoint. Default: one client,
    /// [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`], named `"tokenwarden demo"`.
    pub clients: Vec<SimClient>,
    /// Server-side lifetime of an access token. Default 86399 s. `expires_in` in the token response
    /// is this value in whole seconds rounded UP (minimum 1), but the token really dies after exactly
    /// `token_ttl` (minus `clock_skew`), so sub-second lifetimes are possible in tests.
    pub token_ttl: Duration,
    /// Tokens die this long BEFORE their advertised expiry (server side). Default 0.
    pub clock_skew: Duration,
    /// When true, access tokens are JWT-shaped (`header.payload.signature`, base64url, with
    /// `exp`, `iat`, `sub` (the client id) and `jti` claims; the signature is random, not a real
    /// one). When false (default) they are opaque random 40-character url-safe strings.
    pub jwt_tokens: bool,
    /// Every Nth API call that carries a valid token has that token revoked before handling, and
    /// the call gets 401 `bad.credentials` (journaled as a revoked token). Default `None`.
    pub revoke_every: Option<u64>,
    /// When set, every token is revoked at a random age drawn uniformly from `[0, this)` (from the
    /// RNG seeded with `seed` and the token's number, so a run is repeatable): the first API call
    /// carrying it at or after that age gets 401 `bad.credentials` (journaled as a revoked token).
    /// A draw beyond the token's lifetime means the token simply expires. Revocations at random
    /// ages, unlike `clock_skew`, kill tokens at no consistent age. Default `None`.
    pub revoke_at_random_age: Option<Duration>,
    /// The Genesys error `code` of the 401 answered for an expired token. Default
    /// `"credentials.expired"`; `"bad.credentials"` models a server that gives the same code for
    /// every 401, so that a client can only go by the status (the journal still says
    /// [`Outcome::ExpiredToken`](crate::Outcome::ExpiredToken)).
    pub expired_token_code: String,
    /// The first K token requests (after start, or after this value is changed) get 503 with an
    /// OAuth error body (`temporarily_unavailable`). Default 0.
    pub fail_first_token_requests: u32,
    /// While true, every token request gets 503. Default false.
    pub token_outage: bool,
    /// Every Nth token request is throttled the Genesys way: HTTP 400
    /// `{"error":"invalid_request","description":"rate limit exceeded; retry in a few seconds",...}`.
    /// Default `None`.
    pub throttle_token_every: Option<u32>,
    /// Per-client token-creation limit: at most this many tokens issued to one OAuth client within
    /// any `token_creation_window` (a sliding window); a token request beyond it is throttled the
    /// Genesys way (HTTP 400 `invalid_request`, "rate limit exceeded; ..."), like
    /// `throttle_token_every`. Counts the authenticated token requests it lets through (a
    /// throttled one is not counted, and uses up no refresh token). Default `None` (unlimited).
    pub token_creation_limit: Option<u32>,
    /// The sliding window of `token_creation_limit`. Default 1 s.
    pub token_creation_window: Duration,
    /// The token endpoint sleeps this long before answering. Default 0. On tokio's timer (a test
    /// on a paused clock skips it), unlike [`latency`](Self::latency).
    pub token_latency: Duration,
    /// When set, a successful token request is answered 200 with exactly this body, with
    /// `{access_token}` replaced by the token issued (which the API accepts as usual): for testing
    /// clients against a misbehaving token endpoint (odd `expires_in`, other `token_type`, a token
    /// with a line break, a huge body). Default `None`.
    pub token_body_template: Option<String>,
    /// Per-token API request limit per `rate_limit_window` (fixed windows aligned to the
    /// simulator's start). Requests beyond it get 429 `too.many.requests.retry.after` with
    /// `Retry-After`. When set, every authenticated API response carries `inin-ratelimit-count`,
    /// `inin-ratelimit-allowed` and `inin-ratelimit-reset`. Default `None` (unlimited).
    pub api_rate_limit_per_minute: Option<u32>,
    /// Length of the rate-limit window. Default 60 s (shorten it in tests).
    pub rate_limit_window: Duration,
    /// Whether responses under `api_rate_limit_per_minute` carry the `inin-ratelimit-*` headers.
    /// Default true; false models a server that enforces a limit it does not announce (only the
    /// 429 and its `Retry-After` tell).
    pub rate_limit_headers: bool,
    /// Fraction (0.0..=1.0) of authenticated API requests answered with an injected 5xx (cycling
    /// 500, 502, 503, 504), chosen by a RNG seeded with `seed`. Default 0.0.
    pub error_rate: f64,
    /// Fraction (0.0..=1.0) of authenticated API requests whose connection is closed without any
    /// response (HTTP/1: the TCP connection is closed; HTTP/2: the stream is reset). Default 0.0.
    pub drop_rate: f64,
    /// Seed of the RNG behind `error_rate` and `drop_rate`: the i-th authenticated request gets the
    /// same fate in every run with the same seed. Default 42.
    pub seed: u64,
    /// Added to every API response (slept before the request is processed). Default 0. Kept by
    /// the operating system's high-resolution timer, not tokio's millisecond wheel (which
    /// rounds it up, 20 ms to 20-22 ms): real time, which a paused tokio clock does not skip.
    pub latency: Duration,
    /// Up to this much more, drawn afresh (uniformly) for each API response: an API whose
    /// latency varies, as a real one's does, instead of the same `latency` every time. Default 0.
    pub latency_jitter: Duration,
    /// Scopes reported by `GET /api/v2/tokens/me` (`authorizedScope`). Default
    /// [`default_scopes()`].
    pub scopes: Vec<String>,
    /// API path prefixes (e.g. `"/api/v2/users"`) answered 403 `missing.any.permissions` for
    /// valid tokens. Default empty.
    pub forbidden_paths: Vec<String>,
    /// Number of users (`GET /api/v2/users...`). Generated on demand by index. Default 1000.
    pub users: usize,
    /// Number of external contacts (`GET /api/v2/externalcontacts/scan/contacts`). Default 1000.
    pub contacts: usize,
    /// Number of conversations (analytics query and jobs). Default 5000.
    pub conversations: usize,
    /// Conversation i (of `conversations`) starts at `start + i * (end - start) / conversations`.
    /// Default 2024-01-01T00:00:00Z .. 2024-01-08T00:00:00Z.
    pub conversation_interval: Range<SystemTime>,
    /// An async analytics job is `QUEUED` for the first half of this, then `PENDING`, and reaches
    /// its terminal state (`job_outcome`) once this much time has passed since submission.
    /// Captured when the job is submitted. Default 2 s.
    pub job_duration: Duration,
    /// Terminal state of async analytics jobs, captured when a job is submitted.
    /// Default [`JobOutcome::Fulfilled`].
    pub job_outcome: JobOutcome,
    /// Accept `client_id`/`client_secret` as form fields as well as HTTP Basic. Default true.
    pub accept_form_credentials: bool,
    /// Largest page size accepted by the paged routes (larger ones get 400). Default 500.
    pub max_page_size: usize,
    /// Every item of the listing routes (users, contacts, the analytics query and job results)
    /// carries the caller's `Authorization` header in an `echoedAuthorization` field, as a
    /// careless or hostile API might. Default false.
    pub echo_token_in_items: bool,
    /// Number of most recent [`JournalEntry`](crate::JournalEntry)s kept. Default 200 000.
    pub journal_capacity: usize,
    /// What `GET /oauth/authorize` does with a valid request: show the sign-in page (default),
    /// approve at once, or deny at once.
    pub authorize_mode: AuthorizeMode,
    /// The user (index, as in [`data::user`](crate::data::user)) who signs in when
    /// `authorize_mode` approves, and the one the sign-in page suggests. Default 1
    /// (`user-000001`).
    pub sign_in_user: usize,
    /// How long an authorization code may be exchanged. Default 60 s.
    pub authorization_code_ttl: Duration,
    /// The absolute lifetime of a sign-in: once it has passed since the authorization code was
    /// exchanged, every refresh token of that session is refused (`invalid_grant`), however
    /// recently it was rotated. Default `None` (sessions last until revoked).
    pub refresh_token_lifetime: Option<Duration>,
    /// A refresh token presented a second time (after it was rotated) revokes its whole session,
    /// as OAuth's security best practice recommends: every refresh token and access token of that
    /// sign-in stops working. Default false (the reuse alone is refused, and counted in
    /// [`Journal::refresh_token_reuse`](crate::Journal::refresh_token_reuse)).
    pub refresh_token_reuse_revokes_session: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            clients: vec![SimClient::default()],
            token_ttl: Duration::from_secs(86_399),
            clock_skew: Duration::ZERO,
            jwt_tokens: false,
            revoke_every: None,
            revoke_at_random_age: None,
            expired_token_code: "credentials.expired".into(),
            fail_first_token_requests: 0,
            token_outage: false,
            throttle_token_every: None,
            token_creation_limit: None,
            token_creation_window: Duration::from_secs(1),
            token_latency: Duration::ZERO,
            token_body_template: None,
            api_rate_limit_per_minute: None,
            rate_limit_window: Duration::from_secs(60),
            rate_limit_headers: true,
            error_rate: 0.0,
            drop_rate: 0.0,
            seed: 42,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            scopes: default_scopes(),
            forbidden_paths: Vec::new(),
            users: 1000,
            contacts: 1000,
            conversations: 5000,
            conversation_interval: SystemTime::UNIX_EPOCH
                + Duration::from_secs(DEFAULT_INTERVAL_START_UNIX)
                ..SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_INTERVAL_END_UNIX),
            job_duration: Duration::from_secs(2),
            job_outcome: JobOutcome::Fulfilled,
            accept_form_credentials: true,
            max_page_size: 500,
            echo_token_in_items: false,
            journal_capacity: 200_000,
            authorize_mode: AuthorizeMode::Page,
            sign_in_user: 1,
            authorization_code_ttl: Duration::from_secs(60),
            refresh_token_lifetime: None,
            refresh_token_reuse_revokes_session: false,
        }
    }
}

impl SimConfig {
    /// The client with this id, if configured.
    pub fn client(&self, id: &str) -> Option<&SimClient> {
        self.clients.iter().find(|c| c.id == id)
    }
}

/// Deserialize a field that may be absent (no change), `null` (clear) or a value (set).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update of [`SimConfig`], accepted as JSON by `PATCH /sim/config` and applied with
/// [`ConfigPatch::apply`]. Absent fields are left alone; for `Option` knobs, `null` clears the knob.
/// Durations are given in milliseconds (`*_ms`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New [`SimConfig::token_ttl`], in ms.
    #[serde(default)]
    pub token_ttl_ms: Option<u64>,
    /// New [`SimConfig::clock_skew`], in ms.
    #[serde(default)]
    pub clock_skew_ms: Option<u64>,
    /// New [`SimConfig::jwt_tokens`].
    #[serde(default)]
    pub jwt_tokens: Option<bool>,
    /// New [`SimConfig::revoke_every`] (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub revoke_every: Option<Option<u64>>,
    /// New [`SimConfig::revoke_at_random_age`], in ms (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub revoke_at_random_age_ms: Option<Option<u64>>,
    /// New [`SimConfig::expired_token_code`].
    #[serde(default)]
    pub expired_token_code: Option<String>,
    /// New [`SimConfig::fail_first_token_requests`].
    #[serde(default)]
    pub fail_first_token_requests: Option<u32>,
    /// New [`SimConfig::token_outage`].
    #[serde(default)]
    pub token_outage: Option<bool>,
    /// New [`SimConfig::throttle_token_every`] (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub throttle_token_every: Option<Option<u32>>,
    /// New [`SimConfig::token_creation_limit`] (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub token_creation_limit: Option<Option<u32>>,
    /// New [`SimConfig::token_creation_window`], in ms.
    #[serde(default)]
    pub token_creation_window_ms: Option<u64>,
    /// New [`SimConfig::token_latency`], in ms.
    #[serde(default)]
    pub token_latency_ms: Option<u64>,
    /// New [`SimConfig::api_rate_limit_per_minute`] (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub api_rate_limit_per_minute: Option<Option<u32>>,
    /// New [`SimConfig::rate_limit_window`], in ms.
    #[serde(default)]
    pub rate_limit_window_ms: Option<u64>,
    /// New [`SimConfig::rate_limit_headers`].
    #[serde(default)]
    pub rate_limit_headers: Option<bool>,
    /// New [`SimConfig::error_rate`].
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// New [`SimConfig::drop_rate`].
    #[serde(default)]
    pub drop_rate: Option<f64>,
    /// New [`SimConfig::seed`].
    #[serde(default)]
    pub seed: Option<u64>,
    /// New [`SimConfig::latency`], in ms.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// New [`SimConfig::latency_jitter`], in ms.
    #[serde(default)]
    pub latency_jitter_ms: Option<u64>,
    /// New [`SimConfig::scopes`].
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// New [`SimConfig::forbidden_paths`].
    #[serde(default)]
    pub forbidden_paths: Option<Vec<String>>,
    /// New [`SimConfig::users`].
    #[serde(default)]
    pub users: Option<usize>,
    /// New [`SimConfig::contacts`].
    #[serde(default)]
    pub contacts: Option<usize>,
    /// New [`SimConfig::conversations`].
    #[serde(default)]
    pub conversations: Option<usize>,
    /// New [`SimConfig::job_duration`], in ms.
    #[serde(default)]
    pub job_duration_ms: Option<u64>,
    /// New [`SimConfig::job_outcome`] (`"FULFILLED"`, `"FAILED"`, `"CANCELLED"`, `"EXPIRED"`).
    #[serde(default)]
    pub job_outcome: Option<JobOutcome>,
    /// New [`SimConfig::accept_form_credentials`].
    #[serde(default)]
    pub accept_form_credentials: Option<bool>,
    /// New [`SimConfig::max_page_size`].
    #[serde(default)]
    pub max_page_size: Option<usize>,
    /// New [`SimConfig::echo_token_in_items`].
    #[serde(default)]
    pub echo_token_in_items: Option<bool>,
    /// New [`SimConfig::authorize_mode`] (`"page"`, `"approve"`, `"deny"`).
    #[serde(default)]
    pub authorize_mode: Option<AuthorizeMode>,
    /// New [`SimConfig::sign_in_user`].
    #[serde(default)]
    pub sign_in_user: Option<usize>,
    /// New [`SimConfig::authorization_code_ttl`], in ms.
    #[serde(default)]
    pub authorization_code_ttl_ms: Option<u64>,
    /// New [`SimConfig::refresh_token_lifetime`], in ms (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    pub refresh_token_lifetime_ms: Option<Option<u64>>,
    /// New [`SimConfig::refresh_token_reuse_revokes_session`].
    #[serde(default)]
    pub refresh_token_reuse_revokes_session: Option<bool>,
}

impl ConfigPatch {
    /// Apply the present fields of this patch to `config`.
    pub fn apply(&self, c: &mut SimConfig) {
        let ms = Duration::from_millis;
        if let Some(v) = self.token_ttl_ms {
            c.token_ttl = ms(v);
        }
        if let Some(v) = self.clock_skew_ms {
            c.clock_skew = ms(v);
        }
        if let Some(v) = self.jwt_tokens {
            c.jwt_tokens = v;
        }
        if let Some(v) = self.revoke_every {
            c.revoke_every = v;
        }
        if let Some(v) = self.revoke_at_random_age_ms {
            c.revoke_at_random_age = v.map(ms);
        }
        if let Some(v) = &self.expired_token_code {
            c.expired_token_code.clone_from(v);
        }
        if let Some(v) = self.fail_first_token_requests {
            c.fail_first_token_requests = v;
        }
        if let Some(v) = self.token_outage {
            c.token_outage = v;
        }
        if let Some(v) = self.throttle_token_every {
            c.throttle_token_every = v;
        }
        if let Some(v) = self.token_creation_limit {
            c.token_creation_limit = v;
        }
        if let Some(v) = self.token_creation_window_ms {
            c.token_creation_window = ms(v);
        }
        if let Some(v) = self.token_latency_ms {
            c.token_latency = ms(v);
        }
        if let Some(v) = self.api_rate_limit_per_minute {
            c.api_rate_limit_per_minute = v;
        }
        if let Some(v) = self.rate_limit_window_ms {
            c.rate_limit_window = ms(v);
        }
        if let Some(v) = self.rate_limit_headers {
            c.rate_limit_headers = v;
        }
        if let Some(v) = self.error_rate {
            c.error_rate = v;
        }
        if let Some(v) = self.drop_rate {
            c.drop_rate = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.latency_ms {
            c.latency = ms(v);
        }
        if let Some(v) = self.latency_jitter_ms {
            c.latency_jitter = ms(v);
        }
        if let Some(v) = &self.scopes {
            c.scopes = v.clone();
        }
        if let Some(v) = &self.forbidden_paths {
            c.forbidden_paths = v.clone();
        }
        if let Some(v) = self.users {
            c.users = v;
        }
        if let Some(v) = self.contacts {
            c.contacts = v;
        }
        if let Some(v) = self.conversations {
            c.conversations = v;
        }
        if let Some(v) = self.job_duration_ms {
            c.job_duration = ms(v);
        }
        if let Some(v) = self.job_outcome {
            c.job_outcome = v;
        }
        if let Some(v) = self.accept_form_credentials {
            c.accept_form_credentials = v;
        }
        if let Some(v) = self.max_page_size {
            c.max_page_size = v;
        }
        if let Some(v) = self.echo_token_in_items {
            c.echo_token_in_items = v;
        }
        if let Some(v) = self.authorize_mode {
            c.authorize_mode = v;
        }
        if let Some(v) = self.sign_in_user {
            c.sign_in_user = v;
        }
        if let Some(v) = self.authorization_code_ttl_ms {
            c.authorization_code_ttl = ms(v);
        }
        if let Some(v) = self.refresh_token_lifetime_ms {
            c.refresh_token_lifetime = v.map(ms);
        }
        if let Some(v) = self.refresh_token_reuse_revokes_session {
            c.refresh_token_reuse_revokes_session = v;
        }
    }
}
