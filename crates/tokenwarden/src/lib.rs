//! # tokenwarden
//!
//! OAuth 2.0 access tokens that never expire in the middle of a job.
//!
//! Long-running jobs against OAuth-protected REST APIs (Genesys Cloud CX first) die when the access
//! token expires mid-batch. A [`TokenManager`] keeps a valid token at hand: it refreshes before
//! expiry in the background, runs one refresh at a time however many tasks ask, refreshes once when
//! the API rejects a token (keyed on the token that failed), and retries a flaky token endpoint
//! without letting callers notice while the current token is still valid.
//!
//! An [`ApiClient`] sends every API request with that token: it heals a 401 once, waits out 429s,
//! retries 5xx and transport failures without ever replaying an unsafe request, keeps the token on
//! the API's origin across redirects, and pages through Genesys listings as streams
//! ([`paginate_pages`], [`paginate_cursor`], [`paginate_query`], [`analytics_job`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), tokenwarden::Error> {
//! use tokenwarden::{ClientCredentials, ClientSecret, Region, TokenEndpoint, TokenManager};
//!
//! let region = Region::parse("eu-west-1")?;
//! let endpoint = TokenEndpoint::new(&region.token_url())?;
//! let grant = ClientCredentials::new(endpoint, "client-id", ClientSecret::new("secret"));
//! let tokens = TokenManager::builder(grant).build();
//! let bearer = tokens.bearer().await?; // cheap: lock-free while the token is fresh
//! # let _ = bearer; Ok(()) }
//! ```

mod authorize;
pub mod batch;
mod client;
mod clock;
pub mod duration;
mod error;
pub mod fs;
mod grant;
pub mod identity;
mod manager;
mod metrics;
#[cfg(feature = "middleware")]
mod middleware;
pub mod observe;
pub mod ownership;
mod paginate;
mod rate;
mod redact;
mod region;
mod retry;
mod secret;
mod session;
mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
mod token;
mod transport;

pub use authorize::{
    AuthorizationCode, AuthorizationError, AuthorizationRequest, CallbackProblem, Code,
    LoopbackListener, MAX_CALLBACK_HEAD,
};
pub use client::{
    ApiClient, ApiClientBuilder, ApiResponse, ClientMetrics, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_TIMEOUT, ForwardRequest,
    ForwardResponse, ProxyConfig, RateLimit, RequestBuilder, SharedBudget,
};
pub use clock::Jitter;
pub use error::{Class, Error, Result, SignInFailure};
pub use grant::{
    ClientAuth, ClientCredentials, FetchError, Grant, MAX_TOKEN_RESPONSE, RefreshTokenGrant,
    RotationHook, StaticToken, TokenEndpoint, TokenResponse,
};
pub use manager::{
    DEFAULT_FATAL_COOLDOWN, MintPacing, Rejection, TokenManager, TokenManagerBuilder,
    UNREACHABLE_AT_START,
};
pub use metrics::Metrics;
#[cfg(feature = "middleware")]
pub use middleware::{AuthMiddleware, ReplaySafe};
pub use paginate::export;
pub use paginate::{
    Interval, IntervalError, JobOptions, MAX_SLICE, Page, Position, analytics_job,
    analytics_job_from, paginate_cursor, paginate_cursor_from, paginate_pages, paginate_pages_from,
    paginate_query, paginate_query_from, parse_slice_length,
};
pub use redact::{
    MAX_ROTATING_SECRETS, MIN_SECRET_LEN, REDACTED, redact, redact_bytes, redact_json,
    redact_json_bytes, register_secret, terminal_lines, terminal_safe,
};
pub use region::{REGIONS, Region};
pub use retry::{Backoff, parse_retry_after};
pub use secret::{AccessToken, ClientSecret, RefreshToken};
pub use session::{Session, SessionStore, SessionUser};
pub use store::{
    DEFAULT_LOCK_TIMEOUT, FileStore, LockAttempt, MemoryStore, RefreshTokenStore, StoreLock,
    StoredToken, TokenKey, TokenStore,
};
#[cfg(feature = "redis")]
pub use store::{RedisBudget, RedisOptions, RedisRefreshTokens, RedisStore};
pub use token::{
    Bearer, DEFAULT_MAX_LIFETIME, DEFAULT_MIN_LIFETIME, Freshness, RefreshPolicy, expiry,
    freshness, jwt_expiry,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
