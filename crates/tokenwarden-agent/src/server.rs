//! The HTTP server: one loopback listener, HTTP/1.1 with bounded heads, every request checked by
//! [`guard::check`] before it is routed to an endpoint or to the proxy.

use crate::connections::{Admission, Connections, Slot};
use crate::metrics::ProxyCounters;
use crate::{AgentKey, connections, guard, metrics, proxy};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Bodies the agent answers with.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The largest request head (request line and headers) read: a longer one is answered 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers in a request.
pub const MAX_HEADERS: usize = 100;
/// The largest body of `POST /oauth/token`.
const MAX_TOKEN_REQUEST: usize = 16 * 1024;
/// A request head must arrive within this time ([`Limits::head_timeout`]'s default), counted from
/// the moment the connection waits for one: its start, or the end of the previous answer (so an
/// idle keep-alive connection is closed after it too).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The body of `POST /oauth/token` must arrive within this time ([`Limits::token_body_timeout`]'s
/// default): it is read before the key is checked (it may hold the key).
pub const TOKEN_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections open at once ([`Limits::max_connections`]'s default): well under the
/// usual soft limit of 1024 file descriptors, with room for the API's connections and files.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a stopping agent waits for the requests in progress to be answered; connections
/// still busy then are closed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// What the agent's token endpoint says its local credential lives: a year. It is no token of
/// the API; it is valid for as long as the key is.
pub const LOCAL_TOKEN_LIFETIME: u64 = 365 * 86_400;

/// Limits on what a local caller may send, and on what it is answered.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body forwarded.
    pub max_body: u64,
    /// The largest answer passed on, in bytes; `None` (the default): the client's
    /// [`max_response_bytes`](tokenwarden::ApiClient::max_response_bytes) (the CLI's
    /// `--max-response-bytes`, 64 MiB by default). An answer that announces a larger
    /// `Content-Length` is refused (502 `agent.api.too.large`); one that streams past it is cut
    /// (the connection closed before its end), never passed on truncated as if it were whole.
    pub max_response: Option<u64>,
    /// How long a request head may take to arrive, from the connection's start or the end of the
    /// previous answer on it ([`HEAD_TIMEOUT`]): a head that never completes, or a keep-alive
    /// connection idle that long, is closed.
    pub head_timeout: Duration,
    /// How long the body of `POST /oauth/token` may take to arrive ([`TOKEN_BODY_TIMEOUT`]): a
    /// slower one is answered 408 `invalid_request` and its connection closed.
    pub token_body_timeout: Duration,
    /// How long a forwarded request body may stop arriving before it is cut (408
    /// `agent.body.stalled` while it is read, the forwarded request failed once it streams);
    /// `None` (the default): the client's
    /// [`request_timeout`](tokenwarden::ApiClient::request_timeout). A body that keeps coming is
    /// not cut, however long it takes.
    pub body_stall: Option<Duration>,
    /// The most connections open at once ([`MAX_CONNECTIONS`]). At the cap a new connection
    /// closes the oldest one that has not shown the key, or is answered 503 and closed when every
    /// open one has.
    pub max_connections: usize,
    /// How long a stopping agent waits for the requests in progress ([`DRAIN_TIMEOUT`]); the
    /// connections still busy then are closed.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 64 << 20,
            max_response: None,
            head_timeout: HEAD_TIMEOUT,
            token_body_timeout: TOKEN_BODY_TIMEOUT,
            body_stall: None,
            max_connections: MAX_CONNECTIONS,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// What every request is served with.
pub(crate) struct State {
    pub(crate) client: ApiClient,
    pub(crate) key: AgentKey,
    pub(crate) local: SocketAddr,
    pub(crate) counters: ProxyCounters,
    pub(crate) limits: Limits,
    /// The largest answer passed on ([`Limits::max_response`], resolved).
    pub(crate) max_response: u64,
    /// How long a forwarded body may stop arriving ([`Limits::body_stall`], resolved).
    pub(crate) body_stall: Duration,
}

pub(crate) fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON answer with `Cache-Control: no-store` (nothing the agent says is to be cached).
fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = Bytes::from(value.to_string());
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error in the Genesys shape: `{"message", "code", "status"}`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut r = json(
        status,
        &serde_json::json!({"message": message, "code": code, "status": status.as_u16()}),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tokenwarden-agent\""),
        );
    }
    r
}

/// Accepts connections until `stop` turns true; then stops accepting, lets each connection
/// finish the request it is serving (up to [`Limits::drain_timeout`]) and returns when all are
/// done.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    // The connections are kept (not detached): a stop waits for them, and aborting this task
    // (the agent dropped) aborts them.
    let mut connections = tokio::task::JoinSet::new();
    let cap = Connections::new(state.limits.max_connections);
    let mut failures = AcceptFailures::default();
    loop {
        let burst_ends = cap.burst_ends();
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Finished connections are reaped as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = tokio::time::sleep_until(burst_ends.unwrap_or_else(tokio::time::Instant::now)),
                if burst_ends.is_some() => {
                cap.end_burst();
                continue;
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let (stream, _) = match accepted {
            Ok(a) => {
                failures.succeeded();
                a
            }
            Err(e) => {
                failures.failed(&e, tokio::time::Instant::now());
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Accepted even at the cap (never left in the backlog, where it would wait unanswered):
        // it takes the place of an older connection that has not shown the key, or is told so
        // and closed.
        let Some(admission) = cap.admit() else {
            let _ = stream.try_write(connections::refused_answer().as_bytes());
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            Arc::clone(&state),
            stop.clone(),
            admission,
        ));
    }
    drop(listener);
    drain(connections, state.limits.drain_timeout).await;
}

/// How long the accept loop waits after a failed accept (out of file descriptors, most often)
/// before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How often, at most, failed accepts are logged while they go on.
pub(crate) const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Failed accepts, logged without flooding: the first of a run at once, then at most one line
/// every [`ACCEPT_WARN_EVERY`] with how many failed since (a run of EMFILE fails every
/// [`ACCEPT_RETRY`], 20 a second), and one line when accepting works again.
#[derive(Default)]
pub(crate) struct AcceptFailures {
    /// Failed accepts in this run, and since the last line.
    total: u64,
    unsaid: u64,
    /// When the last line was written, while a run goes on.
    said: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    /// Counts a failed accept; `true` when it was logged.
    pub(crate) fn failed(&mut self, e: &std::io::Error, now: tokio::time::Instant) -> bool {
        self.total += 1;
        self.unsaid += 1;
        if self
            .said
            .is_some_and(|at| now.duration_since(at) < ACCEPT_WARN_EVERY)
        {
            return false;
        }
        tracing::warn!(
            error = %e,
            failed = self.unsaid,
            "accept failed: new connections wait in the backlog (the open files limit?)"
        );
        self.unsaid = 0;
        self.said = Some(now);
        true
    }

    /// An accept worked: ends a run of failures (and says so); `true` when one ended.
    pub(crate) fn succeeded(&mut self) -> bool {
        if self.total == 0 {
            return false;
        }
        tracing::info!(failed = self.total, "accepting connections again");
        *self = Self::default();
        true
    }
}

/// Waits for the connections to end, at most `timeout` ([`Limits::drain_timeout`]); then closes
/// those left.
async fn drain(mut connections: tokio::task::JoinSet<()>, timeout: Duration) {
    if connections.is_empty() {
        return;
    }
    tracing::debug!(
        connections = connections.len(),
        "waiting for the requests in progress"
    );
    let all = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(timeout, all).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            waited_ms = timeout.as_millis() as u64,
            "requests still in progress after the stop: their connections are closed"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until it ends, or, once `stop` turns true, until the request in progress
/// is answered (hyper's graceful shutdown: an idle connection closes at once), or until it is
/// evicted to make room for a new one (closed at once).
async fn connection(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    admission: Admission,
) {
    let slot = Arc::clone(&admission.slot);
    let head_timeout = state.limits.head_timeout;
    let service = hyper::service::service_fn(move |req| {
        let (state, slot) = (Arc::clone(&state), Arc::clone(&slot));
        async move { Ok::<_, std::convert::Infallible>(handle(&state, &slot, req).await) }
    });
    // hyper's header read timeout starts whenever the connection waits for a head: at its start
    // and after each answer (hyper 1.x), so it bounds an idle keep-alive connection too
    // (`attacks::a_head_that_never_completes_and_an_idle_connection_are_closed_at_the_deadline`).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        () = admission.slot.evicted() => {}
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        }
    }
}

/// Routes one request; marks its connection as keyed once the request passes the key check.
async fn handle(state: &State, slot: &Slot, req: Request<Incoming>) -> Response<Body> {
    if let Err(refusal) = guard::check(req.method(), req.uri(), req.headers(), state.local) {
        state.counters.refused();
        tracing::info!(code = refusal.code, method = %req.method(), "request refused");
        return proxy::guard_response(refusal);
    }
    let method = req.method().clone();
    match req.uri().path() {
        "/healthz" => match method {
            Method::GET | Method::HEAD => healthz(state),
            _ => not_allowed("GET"),
        },
        "/metrics" => match method {
            Method::GET => {
                let text = metrics::render(&state.client, &state.counters);
                let mut r = Response::new(full(Bytes::from(text)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            _ => not_allowed("GET"),
        },
        "/oauth/token" => match method {
            Method::POST => token_endpoint(state, slot, req).await,
            _ => not_allowed("POST"),
        },
        "/token" => match method {
            Method::GET => match authorized(state, slot, &req) {
                true => real_token(state).await,
                false => unauthorized(state),
            },
            _ => not_allowed("GET"),
        },
        _ => match authorized(state, slot, &req) {
            true => proxy::forward(state, req).await,
            false => unauthorized(state),
        },
    }
}

fn authorized(state: &State, slot: &Slot, req: &Request<Incoming>) -> bool {
    let yes = guard::bearer(req.headers()).is_some_and(|b| state.key.accepts(b));
    if yes {
        slot.keyed();
    }
    yes
}

fn unauthorized(state: &State) -> Response<Body> {
    state.counters.refused();
    tracing::info!(code = guard::UNAUTHORIZED.code, "request refused");
    proxy::guard_response(guard::UNAUTHORIZED)
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "agent.method.not.allowed",
        "method not allowed on this endpoint",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// 200 while a valid token is held, 503 otherwise; the body says only which.
fn healthz(state: &State) -> Response<Body> {
    let now = tokio::time::Instant::now();
    let valid = state
        .client
        .tokens()
        .current()
        .is_some_and(|b| b.expires_at() > now);
    match valid {
        true => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        false => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable"}),
        ),
    }
}

/// `GET /token`: the real token, for programs that must hold it themselves.
async fn real_token(state: &State) -> Response<Body> {
    match state.client.tokens().bearer().await {
        Ok(b) => {
            let left = b
                .expires_at()
                .saturating_duration_since(tokio::time::Instant::now());
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "access_token": b.access_token().expose_secret(),
                    "token_type": "bearer",
                    "expires_in": left.as_secs(),
                }),
            )
        }
        Err(e) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent.token.unavailable",
            &tokenwarden::redact::redact(&e.to_string()),
        ),
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str, basic: bool) -> Response<Body> {
    let mut r = json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    );
    if basic && status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokenwarden-agent\""),
        );
    }
    r
}

/// The client secret of a Basic `Authorization` value (`id:secret` in base64), as it was sent and
/// form-decoded; `None` when it is not one.
fn basic_secret(b64: &str) -> Option<(zeroize::Zeroizing<String>, zeroize::Zeroizing<String>)> {
    let raw = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(b64).ok()?);
    let text = std::str::from_utf8(&raw).ok()?;
    let (_, secret) = text.split_once(':')?;
    let query = zeroize::Zeroizing::new(format!("s={secret}"));
    let decoded: String = url::form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Some((
        zeroize::Zeroizing::new(secret.to_string()),
        zeroize::Zeroizing::new(decoded),
    ))
}

/// `POST /oauth/token`: `client_credentials` with the key as the client secret (HTTP Basic or
/// form fields), answered with the local credential.
async fn token_endpoint(state: &State, slot: &Slot, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_TOKEN_REQUEST);
    // The body is read before the key is checked: without a deadline, a caller sending a byte a
    // minute would hold the connection (and a task) for ever.
    let deadline = state.limits.token_body_timeout;
    let collected = match tokio::time::timeout(deadline, limited.collect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body is too large or broken",
                false,
            );
        }
        Err(_) => {
            // Debug only: a flood of slow token requests must not flood the log.
            tracing::debug!("token request body slower than the deadline: answered 408, closed");
            let mut r = oauth_error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                &format!(
                    "the request body did not arrive within {}",
                    tokenwarden::duration::human(deadline)
                ),
                false,
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let body = collected.to_bytes();
    // A body of another type (JSON, the common mistake) would read as no fields at all, and the
    // caller be told its secret is wrong.
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request's body must be form-encoded (Content-Type: \
             application/x-www-form-urlencoded, RFC 6749 §4.4): grant_type=client_credentials",
            false,
        );
    }
    let form: Vec<(String, zeroize::Zeroizing<String>)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), zeroize::Zeroizing::new(v.into_owned())))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let basic = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| b64.trim().to_string());
    let accepted = match &basic {
        Some(b64) => basic_secret(b64).is_some_and(|(raw, decoded)| {
            // RFC 6749 §2.3.1 form-encodes the secret before Basic; many clients (requests'
            // HTTPBasicAuth, curl -u) do not. Either spelling of the key is the key, and both are
            // compared, always, in constant time.
            let raw = state.key.is_key(&raw);
            let decoded = state.key.is_key(&decoded);
            raw | decoded
        }),
        None => field("client_secret").is_some_and(|s| state.key.is_key(s)),
    };
    if accepted {
        slot.keyed();
    } else {
        state.counters.refused();
        tracing::info!("token request refused: wrong or missing client secret");
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: the client secret must be the agent key",
            basic.is_some(),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "the agent issues client_credentials tokens only",
            false,
        );
    }
    state.counters.local_token();
    let mut r = json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": state.key.local_credential(),
            "token_type": "bearer",
            "expires_in": LOCAL_TOKEN_LIFETIME,
        }),
    );
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    // The accept loop logged every failed accept: out of file descriptors, 20 lines a second for
    // as long as it lasted.
    #[tokio::test(start_paused = true)]
    async fn failed_accepts_are_logged_once_per_interval_with_their_count() {
        let (logs, _guard) = tokenwarden_test_support::logs::capture();
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut f = AcceptFailures::default();
        assert!(!f.succeeded(), "no run of failures to end");
        let start = tokio::time::Instant::now();
        // 30 s of failures every 50 ms: 600 failures, 3 lines.
        let mut said = Vec::new();
        for i in 0..600u32 {
            if f.failed(&emfile, start + ACCEPT_RETRY * i) {
                said.push(i);
            }
        }
        assert_eq!(
            said,
            [0, 200, 400],
            "the first at once, then one every 10 s"
        );
        let text = logs.text();
        assert_eq!(text.matches("accept failed").count(), 3, "{text}");
        assert!(text.contains("failed=1\n"), "{text}");
        assert_eq!(text.matches("failed=200\n").count(), 2, "{text}");
        // Accepting works again: said once, and the next failure is logged at once.
        assert!(f.succeeded());
        assert!(
            logs.text()
                .contains("accepting connections again failed=600")
        );
        assert!(!f.succeeded());
        assert!(f.failed(&emfile, start + ACCEPT_RETRY * 601));
    }
}
