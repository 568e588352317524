//! `--metrics-listen ADDR`: `GET /metrics` in the Prometheus text format while the command runs.
//!
//! HTTP/1 only, one small answer per request: `/metrics` for `GET` and `HEAD`, 404 for any other
//! path, 405 for any other method. The exposition holds counts, durations and fixed labels only
//! (no id, path or secret), so what it shows is safe to scrape from wherever the address lets in;
//! the address is the user's choice (a loopback one keeps it on this machine).

use crate::exit::UsageError;
use anyhow::Result;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokenwarden::observe::{PROMETHEUS_CONTENT_TYPE, render_prometheus};

/// How long a connection may take to send its request head (a slow client holds nothing long).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint, served until dropped.
pub(crate) struct MetricsServer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsServer {
    /// Listens on `addr` and serves `client`'s metrics.
    ///
    /// # Errors
    /// A usage error when the address cannot be listened on (in use, not this machine's).
    pub(crate) async fn start(addr: SocketAddr, client: ApiClient) -> Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            UsageError(format!("--metrics-listen {addr}: cannot listen there: {e}"))
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(%local, "serving Prometheus metrics at /metrics");
        crate::ui::note(&format!("metrics: http://{local}/metrics"));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let client = client.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let client = client.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&req, &client)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEAD_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = conn.await;
                });
            }
        });
        Ok(MetricsServer { task })
    }
}

fn answer(req: &Request<Incoming>, client: &ApiClient) -> Response<String> {
    let plain = |status: StatusCode, text: &str| {
        let mut r = Response::new(format!("{text}\n"));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: metrics are at /metrics");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let remaining = client.token_metrics().time_to_expiry;
    let mut r = Response::new(render_prometheus(client.recorder(), remaining));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
    );
    r
}
