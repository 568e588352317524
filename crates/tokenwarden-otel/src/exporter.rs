//! The SDK's HTTP client: the workspace's reqwest (rustls), each export bounded by its timeout,
//! sent on the job's Tokio runtime (the SDK's export threads have none of their own), failures
//! logged once as a warning that names the endpoint and what went wrong, never a header value.

use crate::settings::{SignalTarget, shown_url};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sends the SDK's export requests on the workspace's reqwest: each export bounded by its timeout, sent
/// on the job's Tokio runtime, a failure logged once as a warning that never shows a header value.
#[derive(Clone)]
pub struct ReqwestExporter {
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    signal: &'static str,
    shown: String,
    warned: Arc<AtomicBool>,
}

impl std::fmt::Debug for ReqwestExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestExporter")
            .field("endpoint", &self.shown)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ReqwestExporter {
    /// A client for `target` (`signal`: `traces` or `metrics`, for messages), sending on
    /// `runtime`. `warned` is shared by the exporters of one run: the first failure of any of
    /// them is the run's one warning.
    pub fn new(
        target: &SignalTarget,
        signal: &'static str,
        runtime: tokio::runtime::Handle,
        warned: Arc<AtomicBool>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(target.timeout)
            .connect_timeout(target.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            headers: target.headers.clone(),
            timeout: target.timeout,
            runtime,
            signal,
            shown: shown_url(&target.endpoint),
            warned,
        }
    }

    /// Logs the run's first failure; later ones only at debug level (a dead collector says so
    /// once).
    fn failed(&self, what: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = %self.shown,
                "OpenTelemetry {} export failed ({what}); the job goes on, and later failures are not reported",
                self.signal
            );
        } else {
            tracing::debug!(endpoint = %self.shown, "OpenTelemetry {} export failed ({what})", self.signal);
        }
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        // The configured headers last: they win over anything the exporter set.
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        let url = parts.uri.to_string();
        let client = self.client.clone();
        let method = parts.method;
        let timeout = self.timeout;
        let job = async move {
            let answer = client
                .request(method, url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(describe)?;
            let status = answer.status();
            let body = answer.bytes().await.map_err(describe)?;
            let mut r = Response::new(body);
            *r.status_mut() = status;
            Ok::<_, String>(r)
        };
        // On the job's runtime, whoever polls this (the SDK's own threads block on it).
        // The timer is made inside the task: the SDK's threads have no runtime context.
        let sent = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, job).await });
        match sent.await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(format!("no answer within {} ms", timeout.as_millis())),
            Err(_) => Err("the runtime is shutting down".into()),
        }
    }
}

/// A reqwest error in words without its URL (which could hold a key in its query).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the request failed".into()
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestExporter {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match self.send(request).await {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => {
                self.failed(&format!("HTTP {}", r.status().as_u16()));
                Ok(r)
            }
            Err(what) => {
                self.failed(&what);
                Err(what.into())
            }
        }
    }
}
