//! `tokenwarden.Client` / `AsyncClient`'s core: the library's `ApiClient` (401 heal, 429 waits,
//! learned pacing, 5xx retries, replay rules), and its paginated listings.

use crate::auth::Auth;
use crate::{errors, runtime};
use futures::StreamExt as _;
use http::{HeaderName, HeaderValue, Method};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenwarden::{ApiClient, ApiResponse, RateLimit, RequestBuilder, paginate::JobOptions};

/// Most items handed to Python in one batch of a listing.
const BATCH: usize = 1000;
/// Items a listing fetches ahead of what Python has taken.
const AHEAD: usize = 500;

/// Requests with the managed token: the library's `ApiClient`.
#[pyclass(frozen, module = "tokenwarden._tokenwarden")]
pub(crate) struct Client {
    client: ApiClient,
}

/// A status, the headers, the body and the final URL, as Python builds its `Response` from them.
type Answer = (u16, Vec<(String, String)>, Py<PyBytes>, String);

fn answer(py: Python<'_>, r: ApiResponse) -> Answer {
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    (
        r.status().as_u16(),
        headers,
        PyBytes::new(py, r.body()).unbind(),
        r.url().to_string(),
    )
}

#[pymethods]
impl Client {
    /// A client for `api_base` (default: the one `auth` is for) with `auth`'s tokens.
    #[new]
    #[pyo3(signature = (auth, api_base=None, rate_per_second=None, timeout=None, max_response_bytes=None, user_agent=None, retry_for=None))]
    fn new(
        auth: &Auth,
        api_base: Option<&str>,
        rate_per_second: Option<u32>,
        timeout: Option<f64>,
        max_response_bytes: Option<u64>,
        user_agent: Option<String>,
        retry_for: Option<f64>,
    ) -> PyResult<Client> {
        let base = api_base.unwrap_or(&auth.api_base);
        let mut b = ApiClient::builder(base, auth.tokens.clone())
            .allow_insecure_http(auth.allow_insecure_http)
            .user_agent(
                user_agent
                    .unwrap_or_else(|| format!("tokenwarden-python/{}", env!("CARGO_PKG_VERSION"))),
            );
        if let Some(r) = rate_per_second {
            if r == 0 {
                return Err(errors::argument("rate_per_second must be at least 1"));
            }
            b = b.rate_limit(RateLimit::per_second(r));
        }
        if let Some(t) = timeout {
            b = b.request_timeout(seconds(t)?);
        }
        if let Some(m) = max_response_bytes {
            b = b.max_response_bytes(m);
        }
        if let Some(d) = retry_for {
            b = b.backoff(tokenwarden::retry::Backoff {
                max_elapsed: seconds(d)?,
                ..tokenwarden::retry::Backoff::default()
            });
        }
        let client = b.build().map_err(errors::library)?;
        Ok(Client { client })
    }

    /// Sends one request and waits for its answer (GIL released).
    #[pyo3(signature = (method, path, params=None, headers=None, body=None, content_type=None, replay_safe=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        path: &str,
        params: Option<Vec<(String, String)>>,
        headers: Option<Vec<(String, String)>>,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        replay_safe: bool,
        timeout: Option<f64>,
    ) -> PyResult<Answer> {
        let rb = self.build(
            method,
            path,
            params,
            headers,
            body,
            content_type,
            replay_safe,
            timeout,
        )?;
        let r = runtime::wait(py, async move { rb.send().await })?.map_err(errors::library)?;
        Ok(answer(py, r))
    }

    /// An awaitable of [`request`](Self::request)'s answer.
    #[pyo3(signature = (method, path, params=None, headers=None, body=None, content_type=None, replay_safe=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn request_async<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
        params: Option<Vec<(String, String)>>,
        headers: Option<Vec<(String, String)>>,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        replay_safe: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rb = self.build(
            method,
            path,
            params,
            headers,
            body,
            content_type,
            replay_safe,
            timeout,
        )?;
        runtime::for_asyncio()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let r = rb.send().await.map_err(errors::library)?;
            Ok(Python::attach(|py| answer(py, r)))
        })
    }

    /// Every item of a listing, in any Genesys paging style: `pages` (pageNumber/nextUri),
    /// `cursor`, `query` (the analytics details query, a POST with `body`) or `job` (an
    /// analytics job at `path`, with `body`).
    #[pyo3(signature = (path, style, body=None))]
    fn paginate(&self, path: &str, style: &str, body: Option<&[u8]>) -> PyResult<Pages> {
        runtime::check_fork()?;
        let body = match body {
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| errors::argument(format!("the body is not JSON: {e}")))?,
            None => serde_json::json!({}),
        };
        let c = &self.client;
        let stream = match style {
            "pages" => tokenwarden::paginate::numbered_items(c, path).boxed(),
            "cursor" => tokenwarden::paginate::cursor_items(c, path).boxed(),
            "query" => tokenwarden::paginate::query_items(c, path, body).boxed(),
            "job" => {
                tokenwarden::paginate::analytics_job_items(c, path, body, JobOptions::default())
                    .boxed()
            }
            other => {
                return Err(errors::argument(format!(
                    "paging style '{other}': use pages, cursor, query or job"
                )));
            }
        };
        Ok(Pages::start(stream))
    }

    /// The API base URL.
    #[getter]
    fn api_base(&self) -> String {
        self.client.api_base().to_string()
    }

    /// The request rate (per second) learned from 429s and rate-limit headers, if any.
    #[getter]
    fn learned_rate(&self) -> Option<f64> {
        self.client.learned_rate()
    }
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        method: &str,
        path: &str,
        params: Option<Vec<(String, String)>>,
        headers: Option<Vec<(String, String)>>,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        replay_safe: bool,
        timeout: Option<f64>,
    ) -> PyResult<RequestBuilder> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| errors::argument(format!("'{method}' is not an HTTP method")))?;
        let mut rb = self.client.request(method, path);
        if let Some(p) = params {
            rb = rb.query(p);
        }
        for (k, v) in headers.into_iter().flatten() {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| errors::argument(format!("'{k}' is not a header name")))?;
            let value = HeaderValue::from_str(&v)
                .map_err(|_| errors::argument(format!("the value of header '{k}' is not valid")))?;
            rb = rb.header(name, value);
        }
        if let Some(ct) = content_type {
            let value = HeaderValue::from_str(ct)
                .map_err(|_| errors::argument("the content type is not a valid header value"))?;
            rb = rb.header(http::header::CONTENT_TYPE, value);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_vec());
        }
        if replay_safe {
            rb = rb.replay_safe();
        }
        if let Some(t) = timeout {
            rb = rb.timeout(seconds(t)?);
        }
        Ok(rb)
    }
}

fn seconds(t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| errors::argument(format!("timeout {t}: give a positive number of seconds")))
}

type Item = Result<serde_json::Value, tokenwarden::Error>;

/// A listing being walked: a task on the runtime fetches pages ahead (at most [`AHEAD`] items)
/// and Python takes them in batches. Dropping it stops the walk.
#[pyclass(frozen, module = "tokenwarden._tokenwarden")]
pub(crate) struct Pages {
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Item>>>,
    /// An error met after items of the same batch: raised by the next call.
    pending: Arc<Mutex<Option<tokenwarden::Error>>>,
}

impl Pages {
    fn start(mut stream: futures::stream::BoxStream<'static, Item>) -> Pages {
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        runtime::get().spawn(async move {
            while let Some(item) = stream.next().await {
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        Pages {
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            pending: Arc::new(Mutex::new(None)),
        }
    }

    fn next(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, tokenwarden::Error>> + Send + 'static
    {
        let rx = Arc::clone(&self.rx);
        let pending = Arc::clone(&self.pending);
        async move {
            if let Some(e) = pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
            let mut rx = rx.lock().await;
            let first = match rx.recv().await {
                None => return Ok(None),
                Some(item) => item?,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(Ok(v)) => batch.push(v),
                    Ok(Err(e)) => {
                        *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        break;
                    }
                    Err(_) => break,
                }
            }
            serde_json::to_vec(&batch)
                .map(Some)
                .map_err(|e| tokenwarden::Error::Internal(format!("items are not JSON: {e}")))
        }
    }
}

#[pymethods]
impl Pages {
    /// The next items as a JSON array (bytes), or `None` at the end; waits with the GIL released.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let fut = self.next();
        let batch = runtime::wait(py, fut)?.map_err(errors::library)?;
        Ok(batch.map(|b| PyBytes::new(py, &b).unbind()))
    }

    /// An awaitable of [`next_batch`](Self::next_batch).
    fn next_batch_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.next();
        runtime::for_asyncio()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let batch = fut.await.map_err(errors::library)?;
            Ok(batch.map(|b| Python::attach(|py| PyBytes::new(py, &b).unbind())))
        })
    }
}
