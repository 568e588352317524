//! The observer hook: each API request and each token refresh as it ends, for a tracer (the
//! CLI's OpenTelemetry export turns them into spans) and each exchange for a histogram of its own.
//!
//! Nothing is built for it unless an [`Observer`] is set on the [`Recorder`](super::Recorder):
//! without one, the send loop reads no wall clock and formats no route. What an observer is given
//! holds no secret, no id and no query string: the route is the path with every segment that
//! looks like an id replaced by `{id}` ([`route`]).

use super::{Class, RefreshReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Receives a run's requests and refreshes as they end, once set with
/// [`Recorder::set_observer`](super::Recorder::set_observer) (without one, nothing is built for
/// it). What it is given holds no secret, no id and no query string (see [`route`]). Called on the
/// task that sent the request or ran the refresh: keep it quick (queue, don't export).
pub trait Observer: Send + Sync + 'static {
    /// One exchange with the API (one attempt) ended in `class` after `latency`: the event the
    /// recorder's latency histogram counts.
    fn exchange(&self, class: Class, latency: Duration) {
        let _ = (class, latency);
    }
    /// One API request ended (after all its attempts).
    fn request(&self, request: &RequestEnd<'_>);
    /// One token refresh ended.
    fn refresh(&self, refresh: &RefreshEnd);
}

/// What became of an API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// An answer was handed back (any status: the caller judges it).
    Answered,
    /// The request ended with an error (refused, retries exhausted, no answer).
    Failed,
}

impl Outcome {
    /// Its label: `answered` or `failed`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "failed",
        }
    }
}

/// One API request, as an observer is told of it: nothing secret, no id.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestEnd<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The path with ids replaced by `{id}`, without the query (see [`route`]).
    pub route: &'a str,
    /// The last answer's status (none: no attempt was answered).
    pub status: Option<u16>,
    /// Exchanges sent (retries, the retry after a 401 and redirect hops included).
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started and ended (wall clock).
    pub started: SystemTime,
    /// See `started`.
    pub ended: SystemTime,
    /// The token refresh ([`RefreshEnd::id`]) this request waited for, if it waited for one (its
    /// first token, or a new one after a 401).
    pub waited_for: Option<u64>,
}

/// One token refresh, as an observer is told of it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshEnd {
    /// Unique in the process; what [`RequestEnd::waited_for`] names.
    pub id: u64,
    /// Why it started.
    pub reason: RefreshReason,
    /// When it started and ended (wall clock).
    pub started: SystemTime,
    /// See `started`.
    pub ended: SystemTime,
    /// Whether it got a token.
    pub ok: bool,
}

/// A new refresh id (never 0: 0 is a token no refresh of a manager made).
pub(crate) fn next_refresh_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `path` as a route: every segment that looks like an id (digits, a UUID, anything of 16
/// characters or more with a digit in it, anything with three digits or more, anything
/// percent-encoded or with an `@`) becomes `{id}`. No query string is ever part of it.
///
/// ```
/// use tokenwarden::observe::route;
/// assert_eq!(
///     route("/api/v2/users/6f2b9a4e-1d3c-4b5a-9e8f-0a1b2c3d4e5f/queues"),
///     "/api/v2/users/{id}/queues"
/// );
/// assert_eq!(route("/api/v2/conversations/12345"), "/api/v2/conversations/{id}");
/// ```
pub fn route(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if looks_like_id(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    out
}

fn looks_like_id(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    let has_digit = digits > 0;
    seg.bytes().all(|b| b.is_ascii_digit())
        || digits >= 3
        || (has_digit && seg.len() >= 16)
        || (seg.len() >= 8 && has_digit && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        || seg.contains(['%', '@', '.', ':', '='])
            && seg
                .bytes()
                .any(|b| b.is_ascii_digit() || b == b'@' || b == b'%')
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn ids_are_replaced_and_names_kept() {
        for (path, want) in [
            ("/api/v2/users/me", "/api/v2/users/me"),
            (
                "/api/v2/analytics/conversations/details/jobs/a1b2c3d4-0000-4000-8000-000000000001/results",
                "/api/v2/analytics/conversations/details/jobs/{id}/results",
            ),
            (
                "/api/v2/users/42?pageSize=100&secret=x",
                "/api/v2/users/{id}",
            ),
            (
                "/api/v2/externalcontacts/contacts/deadbeef01",
                "/api/v2/externalcontacts/contacts/{id}",
            ),
            ("/api/v2/users/jane%40example.com", "/api/v2/users/{id}"),
            ("/api/v2/users/jane@example.com", "/api/v2/users/{id}"),
            ("/api/v2/items/AbCdEfGh1234567890xyz", "/api/v2/items/{id}"),
            ("/api/v2/users/user-000042", "/api/v2/users/{id}"),
            ("/api/v2/oauth2/clients", "/api/v2/oauth2/clients"),
            ("/", "/"),
        ] {
            assert_eq!(route(path), want, "{path}");
        }
    }
}
