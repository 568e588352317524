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
//! ([`paginate`]).
//!
//! The root holds the names nearly every user needs; the rest is in the public modules, each name
//! at one path:
//!
//! - the token core: [`grant`] (the token endpoint and the grants), [`manager`] (the token
//!   lifecycle), [`token`] (a held token and the refresh rules), [`store`] (where tokens live
//!   beyond one process), [`session`] (a person's sign-in on disk), [`authorize`] (the browser
//!   sign-in), [`region`];
//! - the client: [`client`] (the send loop's settings and metrics, arbitrary forwarded requests),
//!   [`retry`] (backoff and jitter), [`paginate`] (listings and analytics jobs as streams),
//!   `middleware` (feature `middleware`), [`identity`] (who a token is), [`observe`] (a run's
//!   events and metrics);
//! - the jobs: [`jobs`] ([`jobs::batch`], [`jobs::export`], [`jobs::ownership`]: who owns an
//!   output file);
//! - shared rules: [`redact`] (secrets scrubbed out of text), [`fs`] (private files),
//!   [`duration`] (durations as people write them); `test_util` (feature `test-util`).
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

pub mod authorize;
pub mod client;
mod clock;
pub mod duration;
mod error;
pub mod fs;
pub mod grant;
pub mod identity;
pub mod jobs;
mod keyset;
pub mod manager;
mod metrics;
#[cfg(feature = "middleware")]
pub mod middleware;
pub mod observe;
pub mod paginate;
mod rate;
pub mod redact;
pub mod region;
pub mod retry;
mod secret;
pub mod session;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod token;
mod transport;

// The names nearly every user needs; everything else is in the public modules above (at most 30
// names here: `scripts/root-names` counts them).
pub use client::{ApiBase, ApiClient, ApiClientBuilder, ApiResponse, RateLimit, RequestBuilder};
pub use error::{Class, Error, Result};
pub use grant::{
    ClientCredentials, FetchError, Grant, RefreshTokenGrant, StaticToken, TokenEndpoint,
    TokenResponse, TokenUrl,
};
pub use manager::{TokenManager, TokenManagerBuilder};
pub use paginate::Page;
pub use region::Region;
pub use secret::{AccessToken, ClientSecret, RefreshToken};
pub use store::{FileStore, MemoryStore, TokenStore};
pub use token::Bearer;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
