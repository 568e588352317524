//! # tokenwarden-sim
//!
//! An embedded simulator of Genesys Cloud CX: an HTTP server on loopback that speaks the OAuth
//! token endpoint (`POST /oauth/token`) and a handful of API routes in Genesys shapes, with
//! adversity knobs (short and skewed token lifetimes, revocations, token-endpoint outages and
//! throttling, per-token rate limits, injected 5xx, dropped connections, latency) and a
//! [`Journal`] of everything it saw. Every test, demo and benchmark of `tokenwarden` talks to it
//! over HTTP only.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use tokenwarden_sim::{SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig {
//!     token_ttl: Duration::from_secs(2),
//!     api_rate_limit_per_minute: Some(300),
//!     ..SimConfig::default()
//! })
//! .await?;
//! println!("token endpoint: {}, API: {}", sim.token_url(), sim.base_url());
//! sim.update(|c| c.token_outage = true); // the token endpoint now answers 503
//! let journal = sim.journal();
//! assert_eq!(journal.api_requests, 0);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Design notes
//! * **Determinism.** Data (users, contacts, conversations) is a pure function of its index
//!   (see [`data`]); nothing is materialised, so a million users cost nothing. Injected errors and
//!   drops are decided by a stateless hash of (`seed`, n) where n counts authenticated API requests,
//!   so a run that sends the same requests in the same order sees the same faults. Token strings
//!   themselves are random (they only need to be distinct and unguessable-looking).
//! * **Speed.** Configuration is read lock-free (`arc-swap`); the token store is sharded; the
//!   journal lock is held for a few counter updates; no lock is ever held across an `.await`.
//! * **Journal consistency.** Outcomes are journaled before the response is written, and each
//!   request runs in its own task, so a request whose client gave up (a client-side timeout) is
//!   still finished and journaled.
//! * **Dropped connections** (`drop_rate`). The server runs its own accept loop on `hyper-util`;
//!   for a dropped request, the service returns an error to hyper instead of a response. Hyper then
//!   closes the HTTP/1 connection without writing a single byte of response (the client sees
//!   "connection closed before message completed"), or, on HTTP/2, resets the stream.
//! * **Token endpoint errors.** Bad client credentials answer **401** `invalid_client`. Outages
//!   answer 503 with a body carrying both the OAuth fields (`error: "temporarily_unavailable"`)
//!   and the Genesys error fields (`code: "service.unavailable"`).
//!
//! ## Routes
//! * `POST /oauth/token`: `client_credentials`, `authorization_code` and `refresh_token` grants.
//! * `GET|POST /oauth/authorize`: the sign-in (authorization code, PKCE), see [`AuthorizeMode`].
//! * `GET /api/v2/users/{id}`, `GET /api/v2/users?pageSize=&pageNumber=`, `GET /api/v2/users/me`
//! * `GET /api/v2/externalcontacts/scan/contacts?limit=&cursor=`
//! * `POST /api/v2/analytics/conversations/details/query`
//! * `POST /api/v2/analytics/conversations/details/jobs`,
//!   `GET|DELETE .../jobs/{jobId}`, `GET .../jobs/{jobId}/results?cursor=&pageSize=`
//! * `GET|HEAD|DELETE /api/v2/tokens/me`
//! * `ANY /api/v2/sim/echo?delay_ms=&headers=1&status=&escape=unicode`, `GET /api/v2/sim/status/{code}`,
//!   `GET /api/v2/sim/redirect?location=`, `GET /api/v2/sim/bytes?n=&chunked=`
//! * Admin (no auth, not journaled): `GET /sim/journal`, `POST /sim/journal/reset`,
//!   `POST /sim/revoke-all`, `POST /sim/refresh-token?client_id=`, `GET|PATCH /sim/config`.

mod admin;
mod api;
mod authorize;
mod config;
pub mod data;
mod delay;
mod ids;
mod journal;
pub mod recorder;
mod session;
mod state;
mod sync;
mod time;
mod token;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get, post};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub use config::{
    AuthorizeMode, ConfigPatch, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_NAME, DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS, JobOutcome, SimClient, SimConfig, default_scopes,
};
pub use journal::{Journal, JournalEntry, Outcome};
pub use time::{format_rfc3339, parse_interval, parse_rfc3339};
pub use token::THROTTLE_DESCRIPTION;

use state::Inner;
use util::DropConnection;

/// A running simulator. Dropping it (or calling [`Simulator::shutdown`]) stops the server.
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The error hyper gets for a request whose connection must be dropped.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the simulator (drop_rate)")
    }
}

impl std::error::Error for ConnectionDropped {}

fn router(inner: Arc<Inner>) -> Router {
    const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
    Router::new()
        .route("/oauth/token", post(token::token_endpoint))
        .route(
            "/oauth/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/api/v2/users", get(api::list_users))
        .route("/api/v2/users/me", get(api::users_me))
        .route("/api/v2/users/{id}", get(api::get_user))
        .route(
            "/api/v2/externalcontacts/scan/contacts",
            get(api::scan_contacts),
        )
        .route(
            "/api/v2/analytics/conversations/details/query",
            post(api::analytics_query),
        )
        .route(JOBS, post(api::job_submit))
        .route(
            &format!("{JOBS}/{{job_id}}"),
            get(api::job_status).delete(api::job_delete),
        )
        .route(&format!("{JOBS}/{{job_id}}/results"), get(api::job_results))
        .route(
            "/api/v2/tokens/me",
            get(api::tokens_me).delete(api::tokens_me_delete),
        )
        .route("/api/v2/sim/echo", any(api::echo))
        .route("/api/v2/sim/status/{code}", get(api::sim_status))
        .route("/api/v2/sim/redirect", get(api::sim_redirect))
        .route("/api/v2/sim/bytes", get(api::sim_bytes))
        .route("/sim/journal", get(admin::journal))
        .route("/sim/journal/reset", post(admin::journal_reset))
        .route("/sim/revoke-all", post(admin::revoke_all))
        .route("/sim/refresh-token", post(admin::refresh_token))
        .route(
            "/sim/config",
            get(admin::get_config).patch(admin::patch_config),
        )
        .fallback(api::fallback)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            api::outer_layer,
        ))
        .with_state(inner)
}

/// Serve one accepted connection until it ends or the simulator shuts down.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    mut shutdown: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let resp = match app.oneshot(req.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(ConnectionDropped)
            } else {
                Ok(resp)
            }
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, app.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Typically EMFILE under a connection storm: back off briefly.
                    tracing::warn!(error = %e, "tokenwarden-sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
        }
    }
}

impl Simulator {
    /// Bind `config.bind` (default `127.0.0.1:0`) and start serving. Must be called within a
    /// Tokio runtime; the server's tasks run on that runtime until the simulator is shut down or
    /// dropped, so that runtime must keep being driven while clients talk to it (for benchmarks,
    /// start it on a multi-thread runtime).
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(config));
        let (tx, rx) = watch::channel(());
        let app = router(inner.clone());
        let task = tokio::spawn(accept_loop(listener, app, rx));
        Ok(Simulator {
            inner,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash). The API and the token endpoint share it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint: `base_url() + "/oauth/token"`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// The authorization endpoint: `base_url() + "/oauth/authorize"`.
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url())
    }

    /// A snapshot of the journal (counters and retained entries).
    pub fn journal(&self) -> Journal {
        self.inner.journal(true)
    }

    /// A snapshot of the journal's counters only (`entries` empty): cheap, for hot loops.
    pub fn journal_counters(&self) -> Journal {
        self.inner.journal(false)
    }

    /// Clear the journal (counters and entries; entry sequence numbers keep increasing).
    pub fn reset_journal(&self) {
        self.inner.reset_journal();
    }

    /// Change knobs at runtime, e.g. `sim.update(|c| c.token_outage = true)`.
    pub fn update(&self, f: impl FnOnce(&mut SimConfig)) {
        self.inner.update(f);
    }

    /// The current configuration.
    pub fn config(&self) -> SimConfig {
        (*self.inner.cfg()).clone()
    }

    /// Issue a refresh token for `client_id`, standing in for an Authorization Code login of
    /// [`SimConfig::sign_in_user`] (a new session). It can be used once with
    /// `grant_type=refresh_token` (with that client's credentials); each use rotates it.
    pub fn issue_refresh_token(&self, client_id: &str) -> String {
        self.inner.issue_refresh_token(client_id)
    }

    /// Issue an access token for `client_id` directly (no token request, not journaled), as if
    /// obtained earlier. Uses the current `token_ttl`, `clock_skew` and `jwt_tokens`.
    pub fn issue_access_token(&self, client_id: &str) -> String {
        let cfg = self.inner.cfg();
        let name = cfg.client(client_id).map_or("", |c| c.name.as_str());
        self.inner.issue_access_token(client_id, name, &cfg).token
    }

    /// Revoke every access token and refresh token issued so far (a later API call with one of
    /// them gets 401 and is journaled as a revoked token). Tokens issued afterwards are valid.
    pub fn revoke_all_tokens(&self) {
        self.inner.revoke_all();
    }

    /// Stop accepting connections and wait for the accept loop to end. Open connections finish
    /// their in-flight requests (for up to one second) and close.
    pub async fn shutdown(mut self) {
        drop(self.shutdown.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loop and every connection task.
        drop(self.shutdown.take());
    }
}
