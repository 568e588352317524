//! Forwarding a request another program made: any method, path, headers and body, sent through
//! the client's send loop (token, 401 heal, 429 waits, retries, pacing), with the answer handed
//! back as it arrives, its body unread. What a local proxy in front of the API needs (the
//! `tokenwarden agent`).

use super::request::{self, Body, RequestBuilder};
use super::send::{Attempt, Hop, Sent, Target};
use super::{ApiClient, Inner, policy};
use crate::error::{Error, Result, excerpt, shown_path};
use crate::token::Bearer;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use std::time::Duration;
use url::Url;

/// A request to forward as it was given, made by [`ApiClient::forward`].
///
/// What differs from a [`RequestBuilder`](super::RequestBuilder):
/// - the headers are the caller's, sent as they are (the client adds none of its own but the
///   token); `Host`, `Authorization` and `Content-Length` given here are dropped (the client sets
///   them);
/// - every answer is handed back, 403, 5xx after the retries and all, with its body unread
///   ([`ForwardResponse`]), to be streamed on;
/// - a redirect is followed by the client only on the API's own origin; a redirect elsewhere is
///   handed back unfollowed (the token never goes there).
///
/// The 401, 429, retry and replay rules are the client's own (see [`ApiClient`]).
///
/// The client's request timeout bounds the wait for the answer's head and then each read of its
/// body (every chunk that arrives starts it again), not the whole exchange: an answer streamed on
/// as it arrives (a large download) is not cut while it keeps coming, and one that stalls fails
/// after the timeout. [`timeout`](Self::timeout) sets a deadline on the whole attempt instead.
#[must_use = "a request does nothing until it is sent"]
pub struct ForwardRequest {
    /// What is sent: the caller's headers as the request's own, the body, timeout and replay
    /// mark set through the [`RequestBuilder`](super::RequestBuilder)'s setters.
    request: RequestBuilder,
}

impl std::fmt::Debug for ForwardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardRequest")
            .field("method", &self.request.method)
            .field("path", &self.request.url.as_ref().map(|u| u.path()).ok())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A request to forward: `method` and `path_and_query` (a path below the API base, checked
    /// with [`url_on_origin`](Self::url_on_origin): `//host/x`, `/\\host/x` or an absolute URL
    /// to another origin are refused at [`send`](ForwardRequest::send) with [`Error::Config`]).
    ///
    /// ```no_run
    /// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
    /// let resp = client
    ///     .forward(http::Method::GET, "/api/v2/users/me")
    ///     .send()
    ///     .await?;
    /// let status = resp.status();
    /// let body = resp.into_response().bytes().await;
    /// # let _ = (status, body); Ok(()) }
    /// ```
    pub fn forward(&self, method: Method, path_and_query: &str) -> ForwardRequest {
        let url = match path_and_query.starts_with('/') {
            true => self.url_on_origin(path_and_query),
            false => Err(Error::Config(format!(
                "path '{}' must start with /",
                excerpt(path_and_query, 200)
            ))),
        };
        ForwardRequest {
            request: RequestBuilder::bare(self.clone(), method, url),
        }
    }
}

impl ForwardRequest {
    /// The request's headers, as the caller sent them (less `Host`, `Authorization` and
    /// `Content-Length`, which the client sets). Hop-by-hop headers are the caller's to remove.
    pub fn headers(mut self, mut headers: HeaderMap) -> Self {
        headers.remove(header::HOST);
        headers.remove(header::AUTHORIZATION);
        // The client states the length of what it sends (bytes), or streams a body as it comes.
        headers.remove(header::CONTENT_LENGTH);
        self.request.caller_headers = headers;
        self
    }

    /// A body of bytes: sent again as they are on a retry, a heal or a redirect that keeps it.
    pub fn body(self, body: impl Into<Bytes>) -> Self {
        self.with(|r| r.body(body))
    }

    /// A streaming body, sent at most once: if the request would have to be sent again (a 401, a
    /// retry, a `307`), `send` fails with [`Error::NotReplayable`] instead (after a 401, the
    /// refused token has been replaced all the same, so sending the request again works).
    pub fn body_stream(self, body: reqwest::Body) -> Self {
        self.with(|r| r.body_stream(body))
    }

    /// Marks a `POST` or `PATCH` as safe to send again after a 5xx or a timeout, as
    /// [`RequestBuilder::replay_safe`](super::RequestBuilder::replay_safe).
    pub fn replay_safe(mut self, safe: bool) -> Self {
        self.request.replay_safe = safe;
        self
    }

    /// A deadline on each whole attempt, reading the whole answer included. Without one (the
    /// default), the client's request timeout bounds the wait for the head and each read of the
    /// body, so that a long answer that keeps coming is not cut.
    pub fn timeout(self, d: Duration) -> Self {
        self.with(|r| r.timeout(d))
    }

    /// The request, with one of the [`RequestBuilder`]'s setters applied.
    fn with(self, set: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Self {
        Self {
            request: set(self.request),
        }
    }

    /// Sends the request through the client's send loop and hands back the answer with its body
    /// unread.
    ///
    /// # Errors
    /// Those of [`RequestBuilder::send`](super::RequestBuilder::send) that are not about an
    /// answer: every answer is handed back (a 403, the last 429 or 5xx when the retries ran out,
    /// a redirect to another origin, unfollowed), its body unread, so [`Error::Forbidden`] and
    /// [`Error::ResponseTooLarge`] never come, and [`Error::RetriesExhausted`] only when no
    /// answer came at all. A path that leads off the API's origin is an [`Error::Config`].
    pub async fn send(self) -> Result<ForwardResponse> {
        let r = self.request;
        let client = r.client.clone();
        let inner = &*client.inner;
        let http = forward_http(inner);
        let attempt = http
            .and_then(|http| r.url.map(|url| (http, url)))
            .map(|(http, url)| ForwardAttempt {
                inner,
                http,
                target: Target {
                    method: r.method,
                    url,
                    replay_safe: r.replay_safe,
                },
                headers: r.caller_headers,
                body: r.body,
                timeout: r.timeout,
            });
        let response = request::send_counted(inner, attempt).await?;
        Ok(ForwardResponse { response })
    }
}

/// The answer to a forwarded request, its body unread.
#[derive(Debug)]
pub struct ForwardResponse {
    response: reqwest::Response,
}

impl ForwardResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The answer's headers, as the API sent them.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The URL that answered (after same-origin redirects).
    pub fn url(&self) -> &Url {
        self.response.url()
    }

    /// The answer, to read its body as it arrives (`chunk`, `bytes_stream`).
    pub fn into_response(self) -> reqwest::Response {
        self.response
    }
}

/// The HTTP client forwarded requests go through ([`Inner::forward_http`]), built the first time.
fn forward_http(inner: &Inner) -> Result<&reqwest::Client> {
    if let Some(http) = inner.forward_http.get() {
        return Ok(http);
    }
    let http = crate::transport::http::streaming_client(&crate::transport::http::HttpOptions {
        connect_timeout: inner.connect_timeout,
        timeout: inner.request_timeout,
        user_agent: &inner.user_agent,
        proxies: &inner.proxies,
    })?;
    // Two first requests at once build two; one is kept.
    Ok(inner.forward_http.get_or_init(|| http))
}

/// The forwarding [`Attempt`]: the caller's headers and body, the answer unread.
struct ForwardAttempt<'c> {
    inner: &'c Inner,
    http: &'c reqwest::Client,
    target: Target,
    headers: HeaderMap,
    body: Option<Body>,
    /// A deadline on the whole attempt, if the caller set one.
    timeout: Option<Duration>,
}

impl Attempt for ForwardAttempt<'_> {
    type Answer = reqwest::Response;
    type Error = Error;

    fn target(&self) -> &Target {
        &self.target
    }

    fn can_resend(&self) -> bool {
        Body::can_resend(&self.body)
    }

    fn hands_back_answers(&self) -> bool {
        true
    }

    async fn send(&mut self, bearer: Option<&Bearer>) -> Result<Sent<reqwest::Response, Error>> {
        let req = request::build(
            &self.target.method,
            &self.target.url,
            self.headers.clone(),
            bearer,
            &mut self.body,
            self.timeout,
        )?;
        let target = (&self.target.method, &self.target.url);
        Ok(
            match request::execute(self.http, req, target, || shown_path(&self.target.url)).await? {
                Ok(resp) => Sent::Answer(resp),
                Err(failed) => failed,
            },
        )
    }

    fn redirect(&mut self, answer: reqwest::Response, hop: u32) -> Result<Hop<reqwest::Response>> {
        let Some(next) = same_origin_target(&answer, &self.target.url) else {
            // No usable Location, or one elsewhere: the caller gets the answer as it is.
            return Ok(Hop::Return(answer));
        };
        if hop > self.inner.max_redirects {
            return Err(Error::Redirect {
                method: self.target.method.to_string(),
                path: shown_path(&self.target.url),
                target: None,
                detail: format!("more than {} redirects", self.inner.max_redirects),
            });
        }
        let (next_method, keep_body) = policy::redirected(answer.status(), &self.target.method);
        if keep_body && !self.can_resend() {
            return Ok(Hop::Return(answer));
        }
        if !keep_body {
            self.body = None;
            self.headers.remove(header::CONTENT_TYPE);
            self.headers.remove(header::TRANSFER_ENCODING);
        }
        tracing::debug!(
            from = self.target.url.path(),
            to = next.path(),
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

/// Where a redirect leads, if it stays on `from`'s origin (the API's: only there is the request
/// sent with the token).
fn same_origin_target(resp: &reqwest::Response, from: &Url) -> Option<Url> {
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    if location.chars().any(char::is_control) {
        return None;
    }
    let next = from.join(location).ok()?;
    policy::same_origin(&next, from).then_some(next)
}
