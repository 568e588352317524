//! The API proxy: a local request, its credential checked, forwarded through the library's
//! client with the real token (see [`tokenwarden::ApiClient::forward`]), and the answer streamed
//! back, hop-by-hop headers handled as RFC 9110 §7.6.1 says and the real token scrubbed.

use crate::guard;
use crate::server::{Body, State, error_response, full};
use bytes::Bytes;
use futures::StreamExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use std::time::Instant;

/// A request body up to this size is read whole before it is forwarded, so that a 401 heal, a
/// 429 or a retry can send it again; a larger one streams, and is sent once.
pub const REPLAYABLE_BODY: usize = 1 << 20;

/// An answer up to this size that arrives within [`GATHER_WINDOW`] is read whole, scrubbed of
/// every secret the agent knows with its escapes decoded ([`tokenwarden::redact::redact_body`]:
/// JSON or not) and sent with its exact `Content-Length`; a larger or slower one streams,
/// scrubbed of every registered form of every secret as it passes
/// ([`tokenwarden::redact::Streaming`]).
pub const SCRUBBED_WHOLE: usize = 8 << 20;

/// How long an answer is gathered to be scrubbed whole before what came is passed on and the rest
/// streams: an answer that trickles (a long poll, a slow export) reaches its caller as it comes
/// instead of at its end. (To an HTTP/1.0 caller, which cannot be streamed to, the whole answer is
/// gathered, however long it takes.)
pub const GATHER_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// The header that carries the agent's own marker: its value is `1.1 tokenwarden-agent`.
const VIA: &str = "1.1 tokenwarden-agent";

/// Headers that concern one connection only (RFC 9110 §7.6.1), never forwarded either way, with
/// the ones `Connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, those named in `Connection` first.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        strip_named_in_connection(headers);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Removes the headers that `Connection` names.
fn strip_named_in_connection(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
}

/// Forwards `req` (its head already checked by [`guard::check`], its credential by the caller).
pub(crate) async fn forward(state: &State, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let http::request::Parts {
        method,
        uri,
        version,
        mut headers,
        ..
    } = parts;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = uri.path();

    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > state.limits.max_body) {
        state.counters.refused();
        return guard_response(guard::TOO_LARGE);
    }

    strip_hop_by_hop(&mut headers);
    // The agent reads what it forwards back: an encoded answer could not be scrubbed. So it asks
    // for none (an API that compresses by default without `Accept-Encoding` is told not to), and
    // refuses an encoded answer all the same (`respond`).
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    // Answered by the agent's own HTTP server when it reads the body.
    headers.remove(header::EXPECT);
    headers.append(header::VIA, HeaderValue::from_static(VIA));

    let mut request = state
        .client
        .forward(method.clone(), target)
        .headers(headers);
    match read_body(body, state.limits.max_body, state.body_stall).await {
        Ok(ReadBody::Whole(bytes)) if bytes.is_empty() && announced.is_none() => {}
        Ok(ReadBody::Whole(bytes)) => request = request.body(bytes),
        Ok(ReadBody::Stream(body)) => request = request.body_stream(body),
        Err(refusal) => {
            state.counters.refused();
            return guard_response(refusal);
        }
    }

    let result = request.send().await;
    let took = started.elapsed();
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            let (status, code) = library_error_status(&e);
            state.counters.record(None, took);
            tracing::info!(%method, path = %path, error = %e, "forwarded request failed");
            return error_response(status, code, &tokenwarden::redact::redact(&e.to_string()));
        }
    };
    let status = answer.status();
    state.counters.record(Some(status.as_u16()), took);
    tracing::debug!(%method, path = %path, status = status.as_u16(), took_ms = took.as_millis() as u64, "forwarded");
    respond(state, &method, version, answer).await
}

/// What the caller gets for a library error: a status and a stable code (the message is the
/// error's own, which the library keeps free of secrets).
fn library_error_status(e: &tokenwarden::Error) -> (StatusCode, &'static str) {
    use tokenwarden::Error as E;
    match e {
        E::Config(_) => (StatusCode::BAD_REQUEST, "agent.path.refused"),
        E::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "agent.token.refused"),
        E::NotReplayable(_) => (StatusCode::BAD_GATEWAY, "agent.not.replayable"),
        E::Redirect { .. } => (StatusCode::BAD_GATEWAY, "agent.redirect"),
        E::Transport { .. } | E::RetriesExhausted { .. } => {
            (StatusCode::BAD_GATEWAY, "agent.api.unreachable")
        }
        e if e.is_credentials() => (StatusCode::SERVICE_UNAVAILABLE, "agent.credentials.refused"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "agent.token.unavailable"),
    }
}

pub(crate) fn guard_response(r: guard::Refusal) -> Response<Body> {
    error_response(r.status, r.code, r.message)
}

enum ReadBody {
    Whole(Bytes),
    Stream(reqwest::Body),
}

/// The request body: whole when it ends within [`REPLAYABLE_BODY`], else a stream of what was
/// read and what follows, cut off (the forwarded request fails) past `max` bytes or once nothing
/// arrived for `stall` (408 [`guard::STALLED_BODY`] while it is read whole).
async fn read_body(
    mut body: Incoming,
    max: u64,
    stall: std::time::Duration,
) -> Result<ReadBody, guard::Refusal> {
    let mut head = bytes::BytesMut::new();
    loop {
        let Ok(frame) = tokio::time::timeout(stall, body.frame()).await else {
            return Err(guard::STALLED_BODY);
        };
        match frame {
            None => return Ok(ReadBody::Whole(head.freeze())),
            Some(Err(_)) => return Err(guard::BROKEN_BODY),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                    if head.len() as u64 > max {
                        return Err(guard::TOO_LARGE);
                    }
                    if head.len() > REPLAYABLE_BODY {
                        break;
                    }
                }
            }
        }
    }
    let mut seen = head.len() as u64;
    let first = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(head.freeze()) });
    // Each read bounded by `stall`; after a stall or an error, the stream ends.
    let frames = futures::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => Some((
                Err(std::io::Error::other("the request body stopped arriving")),
                None,
            )),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(Some(Ok(frame))) => Some((Ok(frame), Some(body))),
        }
    });
    let rest = frames.filter_map(move |frame| {
        let item = match frame {
            Err(e) => Some(Err(e)),
            Ok(f) => match f.into_data() {
                Ok(data) => {
                    seen += data.len() as u64;
                    if seen > max {
                        Some(Err(std::io::Error::other(
                            "request body larger than the agent accepts",
                        )))
                    } else {
                        Some(Ok(data))
                    }
                }
                Err(_) => None,
            },
        };
        std::future::ready(item)
    });
    Ok(ReadBody::Stream(reqwest::Body::wrap_stream(
        first.chain(rest),
    )))
}

/// The API's answer as the local caller gets it.
async fn respond(
    state: &State,
    method: &Method,
    version: http::Version,
    answer: tokenwarden::client::ForwardResponse,
) -> Response<Body> {
    let status = answer.status();
    let mut response = answer.into_response();
    // The answer's own headers, taken (not copied): the body is read from `response` alone.
    let mut headers = std::mem::take(response.headers_mut());
    // Looked at before the hop-by-hop headers go: `Transfer-Encoding` is one of them.
    let transfer = transfer_coded(&headers);
    strip_hop_by_hop(&mut headers);
    // No CORS header ever leaves the agent, whatever the API says.
    let cors = |n: &HeaderName| n.as_str().starts_with("access-control-");
    if headers.keys().any(cors) {
        let named: Vec<HeaderName> = headers.keys().filter(|n| cors(n)).cloned().collect();
        for n in named {
            headers.remove(n);
        }
    }
    scrub_headers(&mut headers);
    headers.append(header::VIA, HeaderValue::from_static(VIA));

    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = if no_body {
        full(Bytes::new())
    } else {
        if let Some(coding) = transfer {
            // The HTTP client undoes `chunked` only: the bytes under another transfer coding
            // (`gzip, chunked`) cannot be searched for the token either.
            tracing::info!(
                transfer_encoding = %coding,
                "the API's answer has a transfer coding other than chunked: refused"
            );
            return error_response(
                StatusCode::BAD_GATEWAY,
                "agent.api.encoded",
                &format!(
                    "the API answered with Transfer-Encoding {coding}, which the agent cannot \
                     scrub of the token (only chunked is undone)"
                ),
            );
        }
        if let Some(coding) = encoded(&headers) {
            // Compressed bytes cannot be searched for the token: nothing of it is passed on.
            tracing::info!(
                content_encoding = %coding,
                "the API's answer is encoded although identity was asked for: refused"
            );
            return error_response(
                StatusCode::BAD_GATEWAY,
                "agent.api.encoded",
                &format!(
                    "the API answered with Content-Encoding {coding}, which the agent cannot scrub \
                     of the token; it asks for identity, so the API ignored Accept-Encoding"
                ),
            );
        }
        let max = state.max_response;
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = announced.filter(|n| *n > max) {
            tracing::info!(
                length = n,
                limit = max,
                "the API's answer is larger than the limit: refused"
            );
            return too_large(Some(n), max);
        }
        headers.remove(header::CONTENT_LENGTH);
        // Read up to the limit; an answer that ends there is scrubbed whole. One that announces
        // more streams at once.
        let mut whole = Gathered::default();
        let mut complete = false;
        let gather = announced.is_none_or(|n| n <= SCRUBBED_WHOLE as u64);
        let window = (version >= http::Version::HTTP_11)
            .then(|| tokio::time::Instant::now() + GATHER_WINDOW);
        while gather && whole.len() <= SCRUBBED_WHOLE {
            let next = match window {
                // `chunk` is cancel safe: a chunk is taken from the body only when it is returned.
                Some(end) => match tokio::time::timeout_at(end, response.chunk()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::debug!(
                            gathered = whole.len(),
                            "the API's answer is slow to come: streamed from here"
                        );
                        break;
                    }
                },
                None => response.chunk().await,
            };
            match next {
                Ok(Some(c)) => {
                    whole.push(c);
                    if whole.len() as u64 > max {
                        tracing::info!(
                            limit = max,
                            "the API's answer is larger than the limit: refused"
                        );
                        return too_large(None, max);
                    }
                }
                Ok(None) => {
                    complete = true;
                    break;
                }
                Err(e) => {
                    tracing::info!(error = %tokenwarden::redact::redact(&e.to_string()), "the API's answer broke off");
                    return error_response(
                        StatusCode::BAD_GATEWAY,
                        "agent.api.unreachable",
                        "the API's answer broke off",
                    );
                }
            }
        }
        if complete {
            let clean = scrubbed_whole(whole.freeze());
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(clean.len()));
            full(clean)
        } else if version < http::Version::HTTP_11 {
            // A streamed answer has no length; to an HTTP/1.0 caller its end is the connection's
            // close, so a cut (past the limit, or the API's connection broken) would look like
            // a whole answer. Only chunked encoding marks the end.
            tracing::info!("a streamed answer refused to an HTTP/1.0 caller");
            return error_response(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "agent.http.version",
                &format!(
                    "the answer is larger than {SCRUBBED_WHOLE} bytes and is streamed, which needs \
                     HTTP/1.1 so that an answer cut short is seen as one: send the request with \
                     HTTP/1.1"
                ),
            );
        } else {
            streamed(whole.freeze(), response, max)
        }
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// The content coding of an answer other than `identity`, if it has one.
fn encoded(headers: &HeaderMap) -> Option<String> {
    let codings = codings(headers, &header::CONTENT_ENCODING);
    let unscrubbable: Vec<&str> = codings
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "identity")
        .collect();
    shown(&unscrubbable)
}

/// The transfer codings of an answer, unless they are none or `chunked` alone (which the HTTP
/// client undoes).
fn transfer_coded(headers: &HeaderMap) -> Option<String> {
    let codings = codings(headers, &header::TRANSFER_ENCODING);
    let all: Vec<&str> = codings.iter().map(String::as_str).collect();
    match all.as_slice() {
        [] | ["chunked"] => None,
        _ => shown(&all),
    }
}

/// The codings a header lists (lower case, empty ones left out).
fn codings(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .flat_map(|v| {
            v.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Codings as a message shows them (at most 100 characters, scrubbed), `None` for none.
fn shown(codings: &[&str]) -> Option<String> {
    let text: String = codings.join(", ").chars().take(100).collect();
    (!codings.is_empty()).then(|| tokenwarden::redact::redact(&text).into_owned())
}

/// 502 `agent.api.too.large`: an answer larger than [`Limits::max_response`](crate::Limits).
fn too_large(length: Option<u64>, max: u64) -> Response<Body> {
    let size = length.map_or_else(|| "more than that".to_string(), |n| format!("{n} bytes"));
    error_response(
        StatusCode::BAD_GATEWAY,
        "agent.api.too.large",
        &format!(
            "the API's answer is larger than the agent passes on ({size}; the limit is {max}              bytes: raise it with --max-response-bytes if the answer is expected)"
        ),
    )
}

/// Chunks read into one buffer: the first kept as it is (no copy for the common answer of one
/// chunk), copied into a buffer only when a second one comes.
#[derive(Default)]
struct Gathered {
    first: Bytes,
    more: Option<bytes::BytesMut>,
}

impl Gathered {
    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), |m| m.len())
    }

    fn push(&mut self, chunk: Bytes) {
        match &mut self.more {
            Some(m) => m.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let mut m = bytes::BytesMut::with_capacity(self.first.len() + chunk.len());
                m.extend_from_slice(&self.first);
                m.extend_from_slice(&chunk);
                self.more = Some(m);
            }
        }
    }

    fn freeze(self) -> Bytes {
        self.more.map_or(self.first, bytes::BytesMut::freeze)
    }
}

/// A body read whole, scrubbed (no copy when there is nothing to replace).
fn scrubbed_whole(body: Bytes) -> Bytes {
    match tokenwarden::redact::redact_body(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    }
}

/// A large or slow answer, streamed and scrubbed as it passes of every secret registered (each
/// token the process minted, in every form); cut (an error that closes the connection before the
/// answer's end) once more than `max` bytes came.
fn streamed(head: Bytes, response: reqwest::Response, max: u64) -> Body {
    let mut scrubber = tokenwarden::redact::Streaming::new();
    let first = Bytes::from(scrubber.push(&head));
    let scrubber = std::sync::Arc::new(std::sync::Mutex::new(scrubber));
    let tail = std::sync::Arc::clone(&scrubber);
    let mut seen = head.len() as u64;
    let rest = response.bytes_stream().map(move |c| match c {
        Ok(c) => {
            seen += c.len() as u64;
            if seen > max {
                tracing::info!(limit = max, "the API's answer streamed past the limit: cut");
                return Err(std::io::Error::other(
                    "the API's answer is larger than the agent passes on",
                ));
            }
            Ok(Bytes::from(
                scrubber.lock().unwrap_or_else(|e| e.into_inner()).push(&c),
            ))
        }
        Err(e) => Err(std::io::Error::other(e.without_url())),
    });
    let end = futures::stream::once(async move {
        Ok(Bytes::from(
            tail.lock().unwrap_or_else(|e| e.into_inner()).finish(),
        ))
    });
    let stream = futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .chain(end)
        .map(|r: Result<Bytes, std::io::Error>| r.map(Frame::data));
    http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream))
}

/// Header values with a token in them scrubbed (one that no longer parses is dropped).
fn scrub_headers(headers: &mut HeaderMap) {
    let dirty: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| {
            matches!(
                tokenwarden::redact::redact_bytes(v.as_bytes()),
                std::borrow::Cow::Owned(_)
            )
        })
        .map(|(n, _)| n.clone())
        .collect();
    for name in dirty {
        let values: Vec<HeaderValue> = headers
            .get_all(&name)
            .iter()
            .filter_map(|v| {
                HeaderValue::from_bytes(&tokenwarden::redact::redact_bytes(v.as_bytes())).ok()
            })
            .collect();
        headers.remove(&name);
        for v in values {
            headers.append(&name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, x-private-hop"),
            ("keep-alive", "timeout=5"),
            ("x-private-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic abc"),
            ("content-type", "application/json"),
            ("x-kept", "yes"),
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type", "x-kept"]);
    }
}
