//! One request: how it is built, and how one attempt of it is sent (the [`Attempt`] adapter of
//! the client; the loop around it is in `send.rs`).

use super::send::{self, Answer, Attempt, Hop, Sent, Target};
use super::{ApiClient, ApiResponse, Inner, policy};
use crate::error::{Error, Result, body_excerpt, excerpt, shown_path};
use crate::token::Bearer;
use crate::transport::http::{BodyError, read_body};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::time::Duration;
use url::Url;

/// A request being built; sent with [`send`](Self::send). Made by [`ApiClient::request`].
///
/// The body is kept as bytes so that a retry sends exactly the same bytes again. A streaming body
/// ([`body_stream`](Self::body_stream)) can be sent only once: if a retry would be needed, `send`
/// fails with [`Error::NotReplayable`] instead.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    pub(super) client: ApiClient,
    pub(super) method: Method,
    pub(super) url: Result<Url>,
    /// The client's own headers (`Accept`, the `Content-Type` of a JSON body).
    own_headers: HeaderMap,
    /// Headers set with [`header`](Self::header): they never follow a redirect to another origin.
    /// A forwarded request's headers, all of them.
    pub(super) caller_headers: HeaderMap,
    pub(super) body: Option<Body>,
    pub(super) timeout: Option<Duration>,
    pub(super) replay_safe: bool,
    hand_back_answers: bool,
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

/// A request body: bytes (sent again as they are on a retry), or a stream (sent once). Also the
/// body of a [`ForwardRequest`](super::ForwardRequest).
pub(super) enum Body {
    Bytes(Bytes),
    Once(Option<reqwest::Body>),
}

impl Body {
    /// A reqwest body: one backed by bytes is kept as bytes (replayable), a streaming one is sent
    /// once.
    pub(super) fn of(body: reqwest::Body) -> Self {
        match body.as_bytes() {
            Some(b) => Body::Bytes(Bytes::copy_from_slice(b)),
            None => Body::Once(Some(body)),
        }
    }

    /// Whether a request with this body (`None`: none) can be sent once more.
    pub(super) fn can_resend(body: &Option<Body>) -> bool {
        !matches!(body, Some(Body::Once(None)))
    }
}

/// One attempt's reqwest request: `headers` as they are, with the token in `Authorization` when
/// `bearer` is given (and no `Authorization` otherwise), the body (a stream taken: it is sent
/// once), the timeout of the whole attempt (`None`: the HTTP client's own).
pub(super) fn build(
    method: &Method,
    url: &Url,
    mut headers: HeaderMap,
    bearer: Option<&Bearer>,
    body: &mut Option<Body>,
    timeout: Option<Duration>,
) -> Result<reqwest::Request> {
    match bearer {
        Some(b) => {
            headers.insert(header::AUTHORIZATION, b.header_value());
        }
        None => {
            headers.remove(header::AUTHORIZATION);
        }
    }
    let mut req = reqwest::Request::new(method.clone(), url.clone());
    *req.headers_mut() = headers;
    *req.body_mut() = match body {
        None => None,
        Some(Body::Bytes(b)) => Some(reqwest::Body::from(b.clone())),
        Some(Body::Once(b)) => Some(b.take().ok_or_else(|| send::not_replayable(method, url))?),
    };
    *req.timeout_mut() = timeout;
    Ok(req)
}

/// Sends one attempt on `http`: the answer, or the transport failure (`Ok(Err)`, said as
/// `where_` in the error); a request reqwest cannot even build is an [`Error::Config`] (nothing to
/// retry).
pub(super) async fn execute<A>(
    http: &reqwest::Client,
    req: reqwest::Request,
    (method, url): (&Method, &Url),
    where_: impl FnOnce() -> String,
) -> Result<std::result::Result<reqwest::Response, Sent<A, Error>>> {
    match http.execute(req).await {
        Ok(resp) => Ok(Ok(resp)),
        Err(e) if e.is_builder() => Err(Error::Config(format!(
            "invalid request {method} {}: {}",
            shown_path(url),
            crate::error::chain(&e)
        ))),
        Err(e) => Ok(Err(transport_failure(method, where_(), e))),
    }
}

/// A transport failure of `method` to `where_`, as the send loop takes it.
fn transport_failure<A>(method: &Method, where_: String, e: reqwest::Error) -> Sent<A, Error> {
    let connect = e.is_connect();
    let error = Error::transport(format!("{method} {where_}"), e);
    Sent::Failed {
        connect,
        what: error.to_string(),
        error,
    }
}

/// A request's top-level send, for both kinds: counted, run through the send loop, its failure
/// counted and said at debug level.
pub(super) async fn send_counted<A: Attempt<Error = Error>>(
    inner: &Inner,
    attempt: Result<A>,
) -> Result<A::Answer> {
    inner.core.recorder.step(crate::observe::Step::Request);
    let result = match attempt {
        Ok(attempt) => send::run(&inner.core, attempt).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        inner.core.recorder.step(crate::observe::Step::Failure);
        tracing::debug!(error = %e, "API request failed");
    }
    result
}

impl RequestBuilder {
    pub(super) fn new(client: ApiClient, method: Method, path_or_url: &str) -> Self {
        let url = client.resolve(path_or_url);
        let mut request = Self::bare(client, method, url);
        request
            .own_headers
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        request
    }

    /// A request to `url` with no header of the client's own (what a forwarded request starts
    /// as).
    pub(super) fn bare(client: ApiClient, method: Method, url: Result<Url>) -> Self {
        Self {
            client,
            method,
            url,
            own_headers: HeaderMap::new(),
            caller_headers: HeaderMap::new(),
            body: None,
            timeout: None,
            replay_safe: false,
            hand_back_answers: false,
        }
    }

    /// Sets a header (replacing one of the same name, the client's own included). `Authorization`
    /// is the client's own: a value set here is replaced by the token on requests to the API's
    /// origin. A header set here is never sent to another origin by a redirect (see
    /// [`ApiClientBuilder::follow_redirects_across_origins`](super::ApiClientBuilder::follow_redirects_across_origins)).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.caller_headers.insert(name, value);
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
                self.own_headers.insert(
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
        self.body = Some(Body::of(body));
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

    /// Hands back every HTTP answer as it is once the client is done with it: a 403 is returned
    /// as a response (not [`Error::Forbidden`]), and when the retries of a 429 or 5xx run out,
    /// the last answer is returned (not [`Error::RetriesExhausted`]). For callers that record
    /// answers with their status and body, such as the batch engine. 401s are still healed, and
    /// a fresh token refused again is still [`Error::Unauthorized`].
    pub fn hand_back_answers(mut self) -> Self {
        self.hand_back_answers = true;
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
    ///   have reached the server): [`Error::Transport`], which names the cause (connection
    ///   refused, DNS, TLS...).
    /// - A streaming body would have to be sent again: [`Error::NotReplayable`].
    /// - A redirect to another origin (unless allowed), too many redirects, or an unusable
    ///   `Location`: [`Error::Redirect`].
    /// - A body larger than [`max_response_bytes`](super::ApiClientBuilder::max_response_bytes):
    ///   [`Error::ResponseTooLarge`] (not retried).
    /// - Token errors from [`TokenManager::bearer`](crate::TokenManager::bearer), e.g.
    ///   [`Error::Credentials`].
    /// - The path is not a path or URL, the body could not be serialized, or a plain `http://`
    ///   target would go through a proxy: [`Error::Config`].
    ///
    /// A non-replayable request that got a 5xx returns that response (`Ok`), as do 2xx, 404 and
    /// other 4xx answers: use [`ApiResponse::error_for_status`] to turn them into errors.
    pub async fn send(self) -> Result<ApiResponse> {
        let client = self.client.clone();
        let inner = &*client.inner;
        send_counted(inner, self.into_attempt(inner)).await
    }

    fn into_attempt(self, inner: &Inner) -> Result<ClientAttempt<'_>> {
        Ok(ClientAttempt {
            inner,
            target: Target {
                url: self.url?,
                method: self.method,
                replay_safe: self.replay_safe,
            },
            own_headers: self.own_headers,
            caller_headers: self.caller_headers,
            body: self.body,
            timeout: self.timeout.unwrap_or(inner.request_timeout),
            hand_back_answers: self.hand_back_answers,
        })
    }
}

/// The client's [`Attempt`]: builds each attempt from the request, reads the answer whole (within
/// the size limit), and follows redirects itself, deciding what may go where.
struct ClientAttempt<'c> {
    inner: &'c Inner,
    target: Target,
    own_headers: HeaderMap,
    caller_headers: HeaderMap,
    body: Option<Body>,
    timeout: Duration,
    hand_back_answers: bool,
}

impl Attempt for ClientAttempt<'_> {
    type Answer = ApiResponse;
    type Error = Error;

    fn target(&self) -> &Target {
        &self.target
    }

    fn can_resend(&self) -> bool {
        Body::can_resend(&self.body)
    }

    fn hands_back_answers(&self) -> bool {
        self.hand_back_answers
    }

    async fn send(&mut self, bearer: Option<&Bearer>) -> Result<Sent<ApiResponse, Error>> {
        let inner = self.inner;
        // The base was checked when the client was built; a target elsewhere is checked here.
        if !policy::same_origin(&self.target.url, &inner.core.origin) {
            inner.proxies.check(&self.target.url)?;
        }
        let mut headers = self.own_headers.clone();
        headers.extend(self.caller_headers.clone());
        let req = build(
            &self.target.method,
            &self.target.url,
            headers,
            bearer,
            &mut self.body,
            Some(self.timeout),
        )?;
        let resp = match execute(
            &inner.http,
            req,
            (&self.target.method, &self.target.url),
            || host_path(&self.target.url),
        )
        .await?
        {
            Ok(resp) => resp,
            Err(failed) => return Ok(failed),
        };
        let transport = |e| transport_failure(&self.target.method, host_path(&self.target.url), e);
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = match read_body(resp, inner.max_response_bytes).await {
            Ok(body) => body,
            Err(BodyError::Transport(e)) => return Ok(transport(e)),
            Err(BodyError::TooLarge { length }) => {
                return Err(Error::ResponseTooLarge {
                    method: self.target.method.to_string(),
                    path: shown_path(&self.target.url),
                    limit: inner.max_response_bytes,
                    length,
                });
            }
        };
        Ok(Sent::Answer(ApiResponse {
            method: self.target.method.clone(),
            url: self.target.url.clone(),
            status,
            headers,
            body,
        }))
    }

    fn redirect(&mut self, answer: ApiResponse, hop: u32) -> Result<Hop<ApiResponse>> {
        let inner = self.inner;
        let Some(next) = follow(&answer, hop, inner.max_redirects)? else {
            return Ok(Hop::Return(answer));
        };
        let crosses = !policy::same_origin(&next, &self.target.url);
        if crosses && !inner.follow_cross_origin {
            let target = excerpt(&next.origin().ascii_serialization(), 200);
            return Err(Error::Redirect {
                method: self.target.method.to_string(),
                path: shown_path(&self.target.url),
                detail: format!(
                    "the answer redirects to another origin, {target}, which is not followed (allow it with follow_redirects_across_origins)"
                ),
                target: Some(target),
            });
        }
        let (next_method, keep_body) = policy::redirected(answer.status, &self.target.method);
        if !keep_body {
            self.body = None;
            for h in [&mut self.own_headers, &mut self.caller_headers] {
                h.remove(header::CONTENT_TYPE);
                h.remove(header::CONTENT_LENGTH);
            }
        } else if !self.can_resend() {
            return Err(send::not_replayable(&self.target.method, &self.target.url));
        }
        if crosses {
            // What the caller gave for this origin (credentials, cookies, ids) stays with it.
            self.caller_headers.clear();
        }
        tracing::debug!(
            from = self.target.url.path(),
            to_host = next.host_str().unwrap_or_default(),
            carries_token = policy::may_carry_token(&inner.core.origin, &next),
            "following redirect"
        );
        self.target.method = next_method;
        self.target.url = next;
        Ok(Hop::Followed)
    }

    fn lift(e: Error) -> Error {
        e
    }
}

/// An answer read whole.
impl Answer for ApiResponse {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    async fn error_body(self) -> Bytes {
        self.body
    }

    fn describe(&self) -> String {
        format!(
            "HTTP {}: {}",
            self.status.as_u16(),
            body_excerpt(&self.body, 200)
        )
    }
}

/// The redirect target of `resp`, `None` if it has no `Location` (then it is returned as it is).
fn follow(resp: &ApiResponse, hops: u32, max: u32) -> Result<Option<Url>> {
    let redirect_error = |detail: String| Error::Redirect {
        method: resp.method.to_string(),
        path: shown_path(&resp.url),
        target: None,
        detail,
    };
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
            excerpt(next.scheme(), 40)
        )));
    }
    if hops > max {
        return Err(redirect_error(format!("more than {max} redirects")));
    }
    Ok(Some(next))
}

/// `host[:port]/path`, without the query string (which could carry anything).
fn host_path(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}{}", shown_path(url)),
        None => format!("{host}{}", shown_path(url)),
    }
}
