//! # tokenwarden-agent
//!
//! One process that holds the token (and the rate budget) for every program on the machine, the
//! way Vault Agent holds a Vault token: programs in any language, unchanged but for their base URL
//! and the secret they are given, get tokens that never expire mid-job.
//!
//! An [`Agent`] listens on loopback and serves:
//! - `GET /healthz` (no key): 200 while a valid token is held, 503 otherwise.
//! - `POST /oauth/token`: an OAuth 2.0 token endpoint for local clients (`client_credentials`,
//!   the client secret being the [`AgentKey`]), answering a *local credential*, never the real
//!   token.
//! - `GET /token` (key): the real token, for programs that must hold it themselves.
//! - `GET /metrics`: Prometheus text.
//! - anything else: forwarded to the API through the library's [`ApiClient`] with the real token
//!   (401 healed, 429 waited out, retries, the learned rate shared), the answer streamed back with
//!   the real token scrubbed.
//!
//! Every request is first checked by [`guard::check`]: loopback `Host` only (DNS rebinding), no
//! `Origin` (web pages), no proxy requests (`CONNECT`, absolute form), no path naming another
//! host. [`Sink`]s write the real token to files as it is refreshed.
//!
//! ```no_run
//! # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden_agent::AgentError> {
//! use tokenwarden_agent::{Agent, AgentKey, AgentOptions};
//!
//! let agent = Agent::start(client, AgentOptions::new("127.0.0.1:0".parse().unwrap(), AgentKey::generate())).await?;
//! println!("listening on {}", agent.url());
//! agent.shutdown().await;
//! # Ok(()) }
//! ```

mod connections;
mod error;
pub mod guard;
mod key;
mod metrics;
mod proxy;
mod server;
mod sink;

pub use error::AgentError;
pub use key::{AgentKey, KEY_BYTES, KEY_ENV, MIN_KEY_LEN};
pub use metrics::{ProxyCounters, render};
pub use proxy::{GATHER_WINDOW, REPLAYABLE_BODY, SCRUBBED_WHOLE, strip_hop_by_hop};
pub use server::{
    DRAIN_TIMEOUT, HEAD_TIMEOUT, LOCAL_TOKEN_LIFETIME, Limits, MAX_CONNECTIONS, MAX_HEAD,
    MAX_HEADERS, TOKEN_BODY_TIMEOUT,
};
pub use sink::{Sink, SinkFormat, Written};

use std::net::SocketAddr;
use std::sync::Arc;
use tokenwarden::ApiClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How an [`Agent`] is started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentOptions {
    /// Where to listen: a loopback address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The key local programs present.
    pub key: AgentKey,
    /// Files the real token is written to.
    pub sinks: Vec<Sink>,
    /// Limits on what callers send.
    pub limits: Limits,
}

impl AgentOptions {
    /// Options to listen on `listen` with `key`, no sinks, the default limits.
    pub fn new(listen: SocketAddr, key: AgentKey) -> Self {
        Self {
            listen,
            key,
            sinks: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sinks.push(sink);
        self
    }
}

/// A running agent. Dropping it stops it (and removes its sinks) without waiting for the requests
/// in progress; prefer [`shutdown`](Self::shutdown).
pub struct Agent {
    addr: SocketAddr,
    state: Arc<server::State>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    sink_task: Option<JoinHandle<()>>,
    sinks: Arc<sink::Sinks>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("addr", &self.addr)
            .field("sinks", &self.sinks.list())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Listens on `options.listen` and serves with `client`.
    ///
    /// # Errors
    /// [`AgentError::Listen`] for an address that is not loopback (the agent speaks plain HTTP:
    /// off loopback the key and the answers would travel in clear text) or that cannot be bound;
    /// [`AgentError::Sink`] for an unusable sink (see [`Sink::check`]); with sinks, the first
    /// token is had and written to them before it returns ([`AgentError::Library`] if it cannot
    /// be had, [`AgentError::Io`] if a sink cannot be written), so that a program finds a token
    /// in them as soon as the agent listens.
    pub async fn start(client: ApiClient, options: AgentOptions) -> Result<Agent, AgentError> {
        let AgentOptions {
            listen,
            key,
            sinks,
            limits,
        } = options;
        if !listen.ip().is_loopback() {
            return Err(AgentError::Listen {
                addr: listen.to_string(),
                why: "not a loopback address: the agent speaks plain HTTP, so the key and the API's answers would cross the network in clear text, and it has no TLS; listen on 127.0.0.1 (in Kubernetes, a sidecar shares the pod's loopback)".into(),
            });
        }
        // Each sink claimed (its lock held for the agent's life) and checked, before listening.
        let sinks = Arc::new(sink::Sinks::claim(sinks)?);
        let listener =
            tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| AgentError::Listen {
                    addr: listen.to_string(),
                    why: match e.kind() {
                        std::io::ErrorKind::AddrInUse => format!(
                            "{e}: another agent, or another program, listens there already; stop it, or listen on port 0 (127.0.0.1:0) for a free port, printed at start"
                        ),
                        _ => e.to_string(),
                    },
                })?;
        let addr = listener.local_addr().map_err(|e| AgentError::Listen {
            addr: listen.to_string(),
            why: e.to_string(),
        })?;
        let mut written = None;
        if !sinks.list().is_empty() {
            let bearer = client.tokens().bearer().await?;
            if let Err(e) = sinks.write_all(&bearer) {
                sinks.remove_all();
                return Err(e);
            }
            written = Some(bearer.generation());
        }
        let state = Arc::new(server::State {
            client: client.clone(),
            key,
            local: addr,
            counters: ProxyCounters::default(),
            max_response: limits
                .max_response
                .unwrap_or_else(|| client.max_response_bytes()),
            body_stall: limits
                .body_stall
                .unwrap_or_else(|| client.request_timeout()),
            limits,
        });
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(server::serve(listener, Arc::clone(&state), stopped));
        // Also without sinks: it keeps the token fresh while no caller asks.
        let sink_task = Some(tokio::spawn(sink::run(client, Arc::clone(&sinks), written)));
        tracing::info!(%addr, sinks = sinks.list().len(), "agent listening");
        Ok(Agent {
            addr,
            state,
            stop,
            accept: Some(accept),
            sink_task,
            sinks,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus text `GET /metrics` serves.
    pub fn metrics(&self) -> String {
        render(&self.state.client, &self.state.counters)
    }

    /// Stops listening, removes the sinks (those still holding the file the agent wrote), and
    /// lets the requests in progress finish: each connection is asked to close once its answer is
    /// sent, and those still busy after [`Limits::drain_timeout`] are closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.sink_task.take() {
            t.abort();
        }
        self.sinks.remove_all();
        if let Some(a) = self.accept.take() {
            let _ = a.await;
        }
        tracing::info!(addr = %self.addr, "agent stopped");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.sink_task.take() {
            t.abort();
        }
        if let Some(a) = self.accept.take() {
            // The connections are the accept task's: aborted with it.
            a.abort();
            self.sinks.remove_all();
        }
    }
}
