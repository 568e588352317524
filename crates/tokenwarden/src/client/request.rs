//! One request and the loop that sends it: token, heal, retry, redirect.

use super::policy::{self, Action, Failure};
use super::{ApiClient, ApiResponse, Counters};
use crate::error::{Error, Result, excerpt};
use crate::token::Bearer;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::sync::atomic::Ordering;
use std::time::Duration;
use url::Url;

/// A request being built; sent with [`send`](Self::send). Made by [`ApiClient::request`].
///
/// The body is kept as bytes so that a retry sends exactly the same bytes again. A streaming body
/// ([`body_stream`](Self::body_stream)) can be sent only once: if a retry would be needed, `send`
/// fails with [`Error::NotReplayable`] instead.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: ApiClient,
    method: Method,
    url: Result<Url>,
    headers: HeaderMap,
    body: Option<Body>,
    timeout: Option<Duration>,
    replay_safe: bool,
}

impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("path", &self.url.as_ref().map(|u| u.path()).ok())
            .field("replay_safe", &self.replay_safe)
            .finish_non_exhaustive()
    }
}

/// A request body: bytes (sent again as they are on a retry), or a stream (sent once).
enum Body {
    Bytes(Bytes),
    Once(Option<reqwest::Body>),
}

impl RequestBuilder {
    pub(super) fn new(client: ApiClient, method: Method, path_or_url: &str) -> Self {
        let url = client.resolve(path_or_url);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        Self {
            client,
            method,
            url,
            headers,
            body: None,
            timeout: None,
            replay_safe: false,
        }
    }

    /// Sets a header (replacing one of the same name). `Authorization` is the client's own: a value
    /// set here is replaced by the token on requests to the API's origin.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Appends query parameters (percent-encoded).
    ///
    /// ```no_run
    /// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
    /// let page = client
    ///     .get("/api/v2/users")
    ///     .query([("pageSize", "100"), ("pageNumber", "1")])
    ///     .send()
    ///     .await?;
    /// # let _ = page; Ok(()) }
    /// ```
    pub fn query<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        if let Ok(url) = &mut self.url {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// A JSON body (and `Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.body = Some(Body::Bytes(Bytes::from(v)));
                self.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            Err(e) => {
                self.url = Err(Error::Config(format!("request body is not JSON: {e}")));
            }
        }
        self
    }

    /// A body of bytes, sent again as they are on a retry. Set `Content-Type` with
    /// [`header`](Self::header).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(Body::Bytes(body.into()));
        self
    }

    /// A reqwest body. One backed by bytes is kept as bytes (replayable); a streaming one is sent
    /// at most once, and a failure that would need it again gives [`Error::NotReplayable`].
    pub fn body_stream(mut self, body: reqwest::Body) -> Self {
        self.body = Some(match body.as_bytes() {
            Some(b) => Body::Bytes(Bytes::copy_from_slice(b)),
            None => Body::Once(Some(body)),
        });
        self
    }

    /// Marks a `POST` or `PATCH` as safe to send again after a 5xx or a timeout, because it only
    /// reads (e.g. `POST /api/v2/analytics/conversations/details/query`). Without it such a
    /// request is replayed only when the failure proves the server did not act (401, 429, or a
    /// failed connect). `GET`, `HEAD`, `PUT`, `DELETE` and `OPTIONS` need no mark.
    pub fn replay_safe(mut self) -> Self {
        self.replay_safe = true;
        self
    }

    /// The timeout of each attempt of this request (default: the client's request timeout).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sends the request; retries, heals and follows redirects as described on [`ApiClient`].
    ///
    /// # Errors
    /// - 401 again with a freshly issued token: [`Error::Unauthorized`].
    /// - 403: [`Error::Forbidden`].
    /// - 429, 5xx or transport failures until the budget ran out: [`Error::RetriesExhausted`].
    /// - A transport failure that may not be retried (e.g. a timeout of an unmarked `POST`: it may
    ///   have reached the server): [`Error::Transport`].
    /// - A streaming body would have to be sent again: [`Error::NotReplayable`].
    /// - Too many redirects, or an unusable `Location`: [`Error::Redirect`].
    /// - Token errors from [`TokenManager::bearer`](crate::TokenManager::bearer), e.g.
    ///   [`Error::Credentials`].
    /// - The path is not a path or URL, or the body could not be serialized: [`Error::Config`].
    ///
    /// A non-replayable request that got a 5xx returns that response (`Ok`), as do 2xx, 404 and
    /// other 4xx answers: use [`ApiResponse::error_for_status`] to turn them into errors.
    pub async fn send(self) -> Result<ApiResponse> {
        let counters = self.client.clone();
        let counters = &counters.inner.counters;
        Counters::inc(&counters.requests);
        let result = self.run().await;
        if let Err(e) = &result {
            Counters::inc(&counters.failures);
            tracing::debug!(error = %e, "API request failed");
        }
        result
    }

    async fn run(self) -> Result<ApiResponse> {
        let RequestBuilder {
            client,
            mut method,
            url,
            mut headers,
            mut body,
            timeout,
            replay_safe,
        } = self;
        let inner = &client.inner;
        let mut url = url?;
        let timeout = timeout.unwrap_or(inner.request_timeout);
        let started = inner.clock.now();
        let mut sends = 0u32; // attempts, not counting redirect hops
        let mut retries = 0u32;
        let mut redirects = 0u32;
        let mut after_heal = false;
        let mut heals = 0u32;
        loop {
            let carry = policy::may_carry_token(&inner.base, &url);
            if carry {
                let paused = inner.paused_until_nanos.load(Ordering::Relaxed);
                if paused != 0 {
                    let until = inner.origin + Duration::from_nanos(paused);
                    if until > inner.clock.now() {
                        tokio::time::sleep_until(until).await;
                    }
                }
                if let Some(limiter) = &inner.limiter
                    && !limiter.acquire(inner.clock.now()).await.is_zero()
                {
                    Counters::inc(&inner.counters.throttle_waits);
                }
            }
            // Only the API's origin ever sees the token.
            let bearer: Option<Bearer> = if carry {
                Some(inner.tokens.bearer().await?)
            } else {
                None
            };
            let mut req = reqwest::Request::new(method.clone(), url.clone());
            *req.headers_mut() = headers.clone();
            match &bearer {
                Some(b) => {
                    req.headers_mut()
                        .insert(header::AUTHORIZATION, b.header_value());
                }
                None => {
                    req.headers_mut().remove(header::AUTHORIZATION);
                }
            }
            *req.body_mut() = match &mut body {
                None => None,
                Some(Body::Bytes(b)) => Some(reqwest::Body::from(b.clone())),
                Some(Body::Once(b)) => Some(b.take().ok_or_else(|| not_replayable(&method, &url))?),
            };
            *req.timeout_mut() = Some(timeout);
            sends += 1;
            Counters::inc(&inner.counters.attempts);
            let exchanged = exchange(&inner.http, req).await;

            // Either return, or fall through to the retry decision with what went wrong.
            let (failure, retry_after, last, response) = match exchanged {
                Err(e) if e.is_builder() => {
                    // A request reqwest cannot even build: nothing to retry.
                    return Err(Error::Config(format!(
                        "invalid request {method} {}: {e}",
                        url.path()
                    )));
                }
                Err(e) => {
                    let failure = policy::transport_failure(e.is_connect());
                    let err = Error::transport(format!("{method} {}", host_path(&url)), e);
                    tracing::debug!(%method, path = url.path(), error = %err, "transport failure");
                    (failure, None, err.to_string(), Err(err))
                }
                Ok((status, rheaders, bytes)) => {
                    let resp = ApiResponse {
                        method: method.clone(),
                        url: url.clone(),
                        status,
                        headers: rheaders,
                        body: bytes,
                    };
                    tracing::trace!(%method, path = url.path(), status = status.as_u16(), "API answer");
                    // A 429 is waited out by its Retry-After; other answers may warn us first.
                    if carry && inner.honor_rate_limit_headers && status.as_u16() != 429 {
                        note_rate_limit(inner, &resp.headers);
                    }
                    let fresh_token_refused = policy::note_answer(
                        status,
                        bearer.as_ref(),
                        &inner.tokens,
                        after_heal,
                        heals,
                    );
                    match policy::action(status, bearer.is_some(), fresh_token_refused) {
                        Action::Return => return Ok(resp),
                        Action::Redirect => {
                            redirects += 1;
                            let Some(next) = follow(&resp, redirects, inner.max_redirects)? else {
                                return Ok(resp);
                            };
                            let (next_method, keep_body) = policy::redirected(status, &method);
                            if !keep_body {
                                body = None;
                                headers.remove(header::CONTENT_TYPE);
                                headers.remove(header::CONTENT_LENGTH);
                            } else if matches!(body, Some(Body::Once(None))) {
                                return Err(not_replayable(&method, &url));
                            }
                            if !policy::may_carry_token(&inner.base, &next) {
                                // The caller's own credentials stay home too.
                                headers.remove(header::COOKIE);
                                headers.remove(header::PROXY_AUTHORIZATION);
                            }
                            tracing::debug!(
                                from = url.path(),
                                to_host = next.host_str().unwrap_or_default(),
                                carries_token = policy::may_carry_token(&inner.base, &next),
                                "following redirect"
                            );
                            Counters::inc(&inner.counters.redirects_followed);
                            sends -= 1;
                            method = next_method;
                            url = next;
                            continue;
                        }
                        Action::Heal => {
                            if matches!(body, Some(Body::Once(None))) {
                                return Err(not_replayable(&method, &url));
                            }
                            // A 401 proves the server did not act: any method may be sent again.
                            debug_assert!(policy::may_replay(
                                &method,
                                false,
                                Failure::Unauthorized
                            ));
                            let rejected = bearer.as_ref().expect("Heal only with a token");
                            tracing::info!(
                                %method,
                                path = url.path(),
                                generation = rejected.generation(),
                                "API answered 401; refreshing the token and retrying once"
                            );
                            let why = crate::Rejection::from_code(
                                ErrorBody::parse(&resp.body).code.as_deref(),
                            );
                            inner.tokens.rejected_with(rejected, why).await?;
                            Counters::inc(&inner.counters.unauthorized_healed);
                            Counters::inc(&inner.counters.retries);
                            after_heal = true;
                            heals += 1;
                            continue;
                        }
                        Action::Unauthorized => {
                            let e = ErrorBody::parse(&resp.body);
                            return Err(Error::Unauthorized {
                                method: method.to_string(),
                                path: url.path().to_string(),
                                code: e.code,
                            });
                        }
                        Action::Forbidden => {
                            let e = ErrorBody::parse(&resp.body);
                            return Err(Error::Forbidden {
                                method: method.to_string(),
                                path: url.path().to_string(),
                                code: e.code,
                                message: e.message.map(|m| excerpt(&m, 300)).unwrap_or_else(|| {
                                    excerpt(&String::from_utf8_lossy(&resp.body), 300)
                                }),
                            });
                        }
                        Action::Retry(failure) => {
                            let retry_after = (failure == Failure::RateLimited)
                                .then(|| {
                                    crate::retry::retry_after_header(
                                        &resp.headers,
                                        inner.clock.wall(),
                                    )
                                })
                                .flatten();
                            let last = format!(
                                "HTTP {}: {}",
                                status.as_u16(),
                                excerpt(&String::from_utf8_lossy(&resp.body), 200)
                            );
                            (failure, retry_after, last, Ok(resp))
                        }
                    }
                }
            };

            after_heal = false;
            if !policy::may_replay(&method, replay_safe, failure) {
                tracing::warn!(
                    %method,
                    path = url.path(),
                    failure = failure.describe(),
                    "not retrying: the request may have reached the server and is not marked replay-safe"
                );
                return response;
            }
            if matches!(body, Some(Body::Once(None))) {
                return Err(not_replayable(&method, &url));
            }
            retries += 1;
            let elapsed = inner.clock.now().saturating_duration_since(started);
            let Some(delay) = inner.backoff.next_delay(
                retries,
                sends,
                elapsed,
                retry_after,
                inner.jitter.sample(),
            ) else {
                tracing::warn!(%method, path = url.path(), attempts = sends, %last, "retries exhausted");
                return Err(Error::RetriesExhausted {
                    method: method.to_string(),
                    path: url.path().to_string(),
                    attempts: sends,
                    last,
                });
            };
            let c = &inner.counters;
            Counters::inc(&c.retries);
            Counters::inc(match failure {
                Failure::RateLimited => &c.rate_limited_waits,
                Failure::ServerError => &c.server_errors_retried,
                _ => &c.transport_retries,
            });
            // Retries are routine (that is the point): visible with -v, not by default.
            tracing::info!(
                %method,
                path = url.path(),
                failure = failure.describe(),
                attempt = sends,
                retry_in_ms = delay.as_millis() as u64,
                "retrying API request"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// One HTTP exchange, the body read in full (a failure while reading is a transport failure).
async fn exchange(
    http: &reqwest::Client,
    req: reqwest::Request,
) -> std::result::Result<(StatusCode, HeaderMap, Bytes), reqwest::Error> {
    let resp = http.execute(req).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    Ok((status, headers, body))
}

/// Pauses the client's API requests if the `inin-ratelimit-*` headers say the allowance is used up.
fn note_rate_limit(inner: &super::Inner, headers: &HeaderMap) {
    let Some(pause) = policy::rate_limit_pause(headers, inner.backoff.max_retry_after) else {
        return;
    };
    let until = inner.clock.now() + pause;
    let nanos = until
        .saturating_duration_since(inner.origin)
        .as_nanos()
        .clamp(1, u64::MAX as u128) as u64;
    if inner.paused_until_nanos.fetch_max(nanos, Ordering::Relaxed) < nanos {
        Counters::inc(&inner.counters.rate_limit_pauses);
        tracing::debug!(
            pause_ms = pause.as_millis() as u64,
            "rate-limit allowance used up; pausing"
        );
    }
}

/// The redirect target of `resp`, `None` if it has no `Location` (then it is returned as it is).
fn follow(resp: &ApiResponse, hops: u32, max: u32) -> Result<Option<Url>> {
    let redirect_error = |detail: String| Error::Redirect {
        method: resp.method.to_string(),
        path: resp.url.path().to_string(),
        detail,
    };
    if hops > max {
        return Err(redirect_error(format!("more than {max} redirects")));
    }
    let Some(location) = resp.headers.get(header::LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| redirect_error("the Location header is not text".into()))?;
    let next = resp
        .url
        .join(location)
        .map_err(|e| redirect_error(format!("bad Location {}: {e}", excerpt(location, 200))))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(redirect_error(format!(
            "redirect to unsupported scheme {:?}",
            next.scheme()
        )));
    }
    Ok(Some(next))
}

fn not_replayable(method: &Method, url: &Url) -> Error {
    Error::NotReplayable(format!(
        "{method} {} has a streaming body, which was already sent and cannot be sent again: give it as bytes to let the client retry",
        url.path()
    ))
}

/// `host[:port]/path`, without the query string (which could carry anything).
fn host_path(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}{}", url.host_str().unwrap_or_default(), url.path()),
        None => format!("{}{}", url.host_str().unwrap_or_default(), url.path()),
    }
}

/// The Genesys error body: `{"message", "code", "status", "contextId", ...}`.
#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}
