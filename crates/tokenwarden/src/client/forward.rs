//! Forwarding a request another program made: any method, path, headers and body, sent through
//! the client's send loop (token, 401 heal, 429 waits, retries, pacing), with the answer handed
//! back as it arrives, its body unread. What a local proxy in front of the API needs (the
//! `tokenwarden agent`).

use super::request::{self, Body};
use super::send::{Attempt, Hop, Sent};
use super::{ApiClient, Inner, policy};
use crate::error::{Error, Result, excerpt, shown_path};
use crate::token::Bearer;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use std::time::Duration;
use url::Url;

/// The most of a 401 or 403 body read for its Genesys error code before a heal.
const MAX_ERROR_BODY: u64 = 64 * 1024;

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
#[must_use = "a request does nothing until it is sent"]
pub struct ForwardRequest {
    client: ApiClient,
    method: Method,
    url: Result<Url>,
    headers: HeaderMap,
    body: Option<Body>,
    timeout: Option<Duration>,
    replay_safe: bool,
}

impl std::fmt::Debug for ForwardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardRequest")
            .field("method", &self.method)
            .field("path", &self.url.as_ref().map(|u| u.path()).ok())
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
            client: self.clone(),
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            replay_safe: false,
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
        self.headers = headers;
        self
    }

    /// A body of bytes: sent again as they are on a retry, a heal or a redirect that keeps it.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(Body::Bytes(body.into()));
        self
    }

    /// A streaming body, sent at most once: if the request would have to be sent again (a 401, a
    /// retry, a `307`), `send` fails with [`Error::NotReplayable`] instead (after a 401, the
    /// refused token has been replaced all the same, so sending the request again works).
    pub fn body_stream(mut self, body: reqwest::Body) -> Self {
        self.body = Some(Body::of(body));
        self
    }

    /// Marks a `POST` or `PATCH` as safe to send again after a 5xx or a timeout, as
    /// [`RequestBuilder::replay_safe`](super::RequestBuilder::replay_safe).
    pub fn replay_safe(mut self, safe: bool) -> Self {
        self.replay_safe = safe;
        self
    }

    /// The timeout of each attempt, reading the whole answer included (default: the client's
    /// request timeout).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sends the request through the client's send loop and hands back the answer with its body
    /// unread.
    ///
    /// # Errors
    /// - The path leads off the API's origin: [`Error::Config`].
    /// - A fresh token refused again: [`Error::Unauthorized`].
    /// - No answer at all after the retries: [`Error::RetriesExhausted`]; a transport failure
    ///   that may not be retried: [`Error::Transport`].
    /// - A streaming body would have to be sent again: [`Error::NotReplayable`].
    /// - Too many redirects, or an unusable `Location`: [`Error::Redirect`].
    /// - Token errors, as [`TokenManager::bearer`](crate::TokenManager::bearer).
    pub async fn send(self) -> Result<ForwardResponse> {
        let client = self.client.clone();
        let inner = &*client.inner;
        let attempt = self.url.map(|url| ForwardAttempt {
            inner,
            method: self.method,
            url,
            headers: self.headers,
            body: self.body,
            timeout: self.timeout.unwrap_or(inner.request_timeout),
            replay_safe: self.replay_safe,
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

/// The forwarding [`Attempt`]: the caller's headers and body, the answer unread.
struct ForwardAttempt<'c> {
    inner: &'c Inner,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Body>,
    timeout: Duration,
    replay_safe: bool,
}

impl Attempt for ForwardAttempt<'_> {
    type Answer = reqwest::Response;
    type Error = Error;

    fn method(&self) -> &Method {
        &self.method
    }

    fn url(&self) -> &Url {
        &self.url
    }

    fn marked_replay_safe(&self) -> bool {
        self.replay_safe
    }

    fn can_resend(&self) -> bool {
        Body::can_resend(&self.body)
    }

    fn hands_back_answers(&self) -> bool {
        true
    }

    async fn send(&mut self, bearer: Option<&Bearer>) -> Result<Sent<reqwest::Response, Error>> {
        let req = request::build(
            &self.method,
            &self.url,
            self.headers.clone(),
            bearer,
            &mut self.body,
            self.timeout,
        )?;
        let target = (&self.method, &self.url);
        Ok(
            match request::execute(self.inner, req, target, || shown_path(&self.url)).await? {
                Ok(resp) => Sent::Answer(resp),
                Err(failed) => failed,
            },
        )
    }

    fn status(answer: &reqwest::Response) -> StatusCode {
        answer.status()
    }

    fn headers(answer: &reqwest::Response) -> &HeaderMap {
        answer.headers()
    }

    async fn body(answer: reqwest::Response) -> Bytes {
        crate::transport::http::read_body(answer, MAX_ERROR_BODY)
            .await
            .unwrap_or_default()
    }

    fn describe(answer: &reqwest::Response) -> String {
        format!("HTTP {}", answer.status().as_u16())
    }

    fn redirect(&mut self, answer: reqwest::Response, hop: u32) -> Result<Hop<reqwest::Response>> {
        let Some(next) = same_origin_target(&answer, &self.url) else {
            // No usable Location, or one elsewhere: the caller gets the answer as it is.
            return Ok(Hop::Return(answer));
        };
        if hop > self.inner.max_redirects {
            return Err(Error::Redirect {
                method: self.method.to_string(),
                path: shown_path(&self.url),
                target: None,
                detail: format!("more than {} redirects", self.inner.max_redirects),
            });
        }
        let (next_method, keep_body) = policy::redirected(answer.status(), &self.method);
        if keep_body && !self.can_resend() {
            return Ok(Hop::Return(answer));
        }
        if !keep_body {
            self.body = None;
            self.headers.remove(header::CONTENT_TYPE);
            self.headers.remove(header::TRANSFER_ENCODING);
        }
        tracing::debug!(
            from = self.url.path(),
            to = next.path(),
            "following redirect"
        );
        self.method = next_method;
        self.url = next;
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
