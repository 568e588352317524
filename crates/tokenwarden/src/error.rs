//! [`Error`], the token core's and the client's error, and [`Class`], the one classification of
//! failures that every error type of the library answers (the job engines have their own error,
//! `jobs::JobError`, which wraps this one). Variants are named by where the failure
//! happened; none carries a secret (tokens and client secrets are never part of a message).
//!
//! This is a leaf: it names no type of a module above it. The sign-in's failures
//! ([`SignInFailure`], [`CallbackProblem`], [`AuthorizationError`]) live here, beside the variant
//! that carries them; `authorize` produces them.

use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong in tokenwarden.
///
/// `Error` is `Clone` (sources are shared behind `Arc`) because one failed refresh is reported to every
/// task that was waiting for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint permanently rejected the client credentials or the grant (HTTP 400/401/403
    /// other than throttling). Retrying cannot help: the configuration must change.
    #[error(
        "the token endpoint rejected the credentials (HTTP {status}{}{}): {hint}",
        code_part(.code), desc_part(.description)
    )]
    Credentials {
        /// HTTP status from the token endpoint.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        code: Option<String>,
        /// The endpoint's description, if any.
        description: Option<String>,
        /// What to check, in words.
        hint: String,
    },

    /// A static access token expired (or was rejected) and there is no way to get another one.
    #[error(
        "the access token supplied directly (e.g. GENESYSCLOUD_ACCESS_TOKEN) {reason} and a static token cannot be refreshed: supply client credentials (GENESYSCLOUD_OAUTHCLIENT_ID / GENESYSCLOUD_OAUTHCLIENT_SECRET) instead"
    )]
    StaticTokenExpired {
        /// "has expired" or "was rejected by the API".
        reason: &'static str,
    },

    /// There is no usable sign-in to act as the user: none was stored, it was signed out, or it
    /// belongs to another endpoint or client. Signing in again (`tokenwarden login`) is the fix.
    #[error("no usable sign-in: {reason}")]
    SignInRequired {
        /// What is missing or wrong, in words (never a token).
        reason: String,
    },

    /// A sign-in in the browser did not complete (see [`SignInFailure`]).
    #[error("{0}")]
    SignIn(SignInFailure),

    /// The token endpoint kept failing with transient errors until the retry budget ran out and no
    /// valid token was left to serve.
    #[error(
        "the token endpoint is unavailable after {} over {}: {last}",
        plural(u64::from(*.attempts), "attempt"),
        human_duration(*.elapsed)
    )]
    TokenEndpointUnavailable {
        /// Token requests made in this refresh.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure, in words.
        last: String,
    },

    /// The token endpoint answered 2xx with something that is not a token response.
    #[error("the token endpoint's answer is not a token response: {detail}")]
    TokenDecode {
        /// What was wrong (never the body itself: it may hold a token).
        detail: String,
    },

    /// A network-level failure (connect, DNS, TLS, timeout, reset) talking to `context`.
    ///
    /// The message names the cause: the whole chain of the underlying error on one line (e.g.
    /// `... error sending request: client error (Connect): tcp connect error: Connection refused
    /// (os error 111)`), so [`source`](std::error::Error::source) is `None` (printing both would
    /// repeat it); the reqwest error itself is in `error`, e.g. for `is_timeout()`.
    #[error("transport error talking to {context}: {}", chain(.error.as_ref()))]
    Transport {
        /// Which endpoint, without query strings or secrets.
        context: String,
        /// The underlying error.
        error: Arc<reqwest::Error>,
    },

    /// The API rejected a freshly obtained token too: the OAuth client, its role or its scopes are the
    /// problem, not token expiry.
    #[error(
        "the API rejected a freshly issued token for {method} {path} (HTTP 401{}): the OAuth client, its role or its scopes do not allow this; check the client's roles and divisions",
        code_part(.code)
    )]
    Unauthorized {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// Genesys error code, if any.
        code: Option<String>,
    },

    /// The API answered 403: a permission or scope is missing. A token refresh never cures this.
    #[error(
        "permission denied for {method} {path} (HTTP 403{}): {message} (a permission or OAuth scope is missing: grant the client's role the permission)",
        code_part(.code)
    )]
    Forbidden {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// Genesys `code`.
        code: Option<String>,
        /// Genesys `message`.
        message: String,
    },

    /// Retries were exhausted on an API request (429, 5xx, transport errors).
    #[error("{method} {path} failed after {}: {last}", plural(u64::from(*.attempts), "attempt"))]
    RetriesExhausted {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure, in words.
        last: String,
        /// No attempt got an HTTP answer (every one failed to connect, or in transit): the API
        /// could not be reached at all (see [`Error::is_unreachable`]).
        no_answer: bool,
    },

    /// A response body could not be decoded.
    #[error("could not decode {what}: {detail}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The parser's complaint and an excerpt of the body.
        detail: String,
    },

    /// A request cannot be sent again safely (non-idempotent and not marked safe, or a streaming body).
    #[error("{0}")]
    NotReplayable(String),

    /// A redirect was not followed: it leads to another origin (not followed unless the client
    /// allows it), there were too many, or the `Location` is unusable.
    #[error("{method} {path}: {detail}")]
    Redirect {
        /// Request method.
        method: String,
        /// Request path (of the answer that redirected).
        path: String,
        /// The other origin (`scheme://host[:port]`) when the redirect was refused for leaving the
        /// request's origin; `None` for the other reasons.
        target: Option<String>,
        /// What was wrong.
        detail: String,
    },

    /// An answer's body is larger than the client accepts (`max_response_bytes`). Sending the
    /// request again would get the same answer, so it is not retried.
    #[error(
        "{method} {path}: the answer's body{} is larger than the limit of {limit} bytes (raise max_response_bytes if it is expected)",
        .length.map(|n| format!(" ({n} bytes)")).unwrap_or_default()
    )]
    ResponseTooLarge {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The limit in bytes.
        limit: u64,
        /// The length the server announced (`Content-Length`), if it did.
        length: Option<u64>,
    },

    /// An API returned an unexpected status.
    #[error("{method} {path} answered HTTP {status}: {body}")]
    Status {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// An excerpt of the body.
        body: String,
    },

    /// An asynchronous job ended in a state other than success.
    #[error("job {job_id} ended in state {state}")]
    JobFailed {
        /// The job id.
        job_id: String,
        /// Its terminal state.
        state: String,
    },

    /// The token store failed: a cache file or directory that fails the safety checks, a lock held
    /// elsewhere past the deadline, a disk error. The message names the file and the fix; it never
    /// holds a token.
    #[error("token store: {detail}")]
    Store {
        /// What failed, and what to do about it.
        detail: String,
        /// Whether a later attempt may succeed (a lock that another process held too long), as
        /// opposed to a condition someone must fix first (an unsafe directory).
        retryable: bool,
    },

    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),

    /// A bug or a runtime failure inside tokenwarden (e.g. a refresh task was cancelled by runtime
    /// shutdown).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a sign-in in the browser did not complete, for [`Error::SignIn`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignInFailure {
    /// No callback of this sign-in arrived in time.
    TimedOut {
        /// How long was waited.
        waited: Duration,
        /// Requests to the redirect URI refused on the way (wrong or missing `state`).
        ignored: u32,
    },
    /// The callback arrived with the authorization server's error, or without a code.
    Callback(CallbackProblem),
    /// The listener failed.
    Listener(String),
}

impl std::fmt::Display for SignInFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInFailure::TimedOut { waited, ignored } => {
                write!(
                    f,
                    "no sign-in came back within {}",
                    crate::error::human_duration(*waited)
                )?;
                match ignored {
                    0 => Ok(()),
                    1 => f.write_str(" (1 request with the wrong state was refused)"),
                    n => write!(f, " ({n} requests with the wrong state were refused)"),
                }
            }
            SignInFailure::Callback(p) => write!(f, "the sign-in failed: {p}"),
            SignInFailure::Listener(e) => write!(f, "the sign-in listener failed: {e}"),
        }
    }
}

/// Why a request to the redirect URI is not the code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackProblem {
    /// A request for another path (the browser's favicon): not for us.
    NotTheCallback,
    /// No `state`, or not this sign-in's: a stale tab, or someone else's request. Ignored.
    WrongState,
    /// The right `state`, but neither a code nor an error.
    NoCode,
    /// The right `state`, and the authorization server's error.
    Refused(AuthorizationError),
}

impl std::fmt::Display for CallbackProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallbackProblem::NotTheCallback => f.write_str("not the redirect URI's path"),
            CallbackProblem::WrongState => f.write_str(
                "its state does not match the sign-in in progress (a stale browser tab, or a forged request)",
            ),
            CallbackProblem::NoCode => f.write_str("it carries neither a code nor an error"),
            CallbackProblem::Refused(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallbackProblem {}

/// The authorization server's refusal, as it came back in the callback (`error=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationError {
    /// The OAuth `error` code: `access_denied`, `invalid_request`, `unauthorized_client`, ...
    pub error: String,
    /// `error_description`, scrubbed of secrets and control characters, shortened.
    pub description: Option<String>,
}

impl std::fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error.as_str() {
            "access_denied" => f.write_str("the sign-in was denied (consent was refused)")?,
            e => write!(f, "the authorization server refused the sign-in ({e})")?,
        }
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// What a failure means for whoever made the call: the one classification of the library's
/// errors ([`Error::class`], [`FetchError::class`](crate::FetchError::class), and the job
/// engines' `JobError::class`), so that no caller has to match variants to decide what to
/// do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// A later attempt may succeed (a transport failure, an unavailable endpoint, retries that
    /// ran out, a lock held elsewhere past its deadline): wait and try again.
    Transient,
    /// The credentials, the grant or the sign-in are wrong (or the API refused a freshly issued
    /// token): stop at once; the configuration must change.
    Credentials,
    /// A permission or an OAuth scope is missing for this request (HTTP 403): a token refresh
    /// never cures it; the client's role must change.
    Permission,
    /// Anything else: this request cannot succeed as it is, and trying it again will not help.
    Fatal,
}

/// The one duration formatter, for the messages below.
pub(crate) use crate::duration::human as human_duration;

/// `n` and `word`, pluralised with an `s` when `n` is not 1: `1 page`, `2 pages`, for the
/// library's messages (the command line has its own text helpers).
pub(crate) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn code_part(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
}

fn desc_part(d: &Option<String>) -> String {
    d.as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl Error {
    /// What this failure means ([`Class`]).
    pub fn class(&self) -> Class {
        match self {
            Error::Transport { .. }
            | Error::TokenEndpointUnavailable { .. }
            | Error::RetriesExhausted { .. }
            | Error::Store {
                retryable: true, ..
            } => Class::Transient,
            Error::Credentials { .. }
            | Error::StaticTokenExpired { .. }
            | Error::Unauthorized { .. }
            | Error::SignInRequired { .. }
            | Error::SignIn(SignInFailure::Callback(_)) => Class::Credentials,
            Error::Forbidden { .. } => Class::Permission,
            _ => Class::Fatal,
        }
    }

    /// True for failures a later attempt may cure (transport errors, an unavailable endpoint, a store
    /// lock that another process held past the deadline): [`Class::Transient`].
    pub fn is_retryable(&self) -> bool {
        self.class() == Class::Transient
    }

    /// True when no access token can be had at all: every later request would fail the same
    /// way, so a job stops rather than recording the request as failed. That is every
    /// [`Class::Credentials`] failure (the credentials, the sign-in, or the API refusing a freshly
    /// issued token) and every failure of the token's source ([`Error::is_token_source_failure`]).
    /// A failure of one request (a 404, a 403, retries that ran out on it) is not.
    pub fn is_token_failure(&self) -> bool {
        self.class() == Class::Credentials || self.is_token_source_failure()
    }

    /// True when the token store or the token endpoint failed (whatever its [`Class`]): the one
    /// distinction [`Class`] does not make, since a busy store and an unavailable endpoint are
    /// [`Class::Transient`] like a request's transport failure, and a store refusal or an
    /// undecodable token answer are [`Class::Fatal`] like a request's 404, while only the former
    /// stop a job.
    pub fn is_token_source_failure(&self) -> bool {
        matches!(
            self,
            Error::Store { .. }
                | Error::TokenEndpointUnavailable { .. }
                | Error::TokenDecode { .. }
        )
    }

    /// True when the API could not be reached at all: a connection that could not be made (refused,
    /// DNS, TLS), or retries that ran out without a single HTTP answer. A batch holds such records
    /// back and stops when every record finds the API so (a batch's breaker).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Transport { error, .. } => error.is_connect(),
            Error::RetriesExhausted { no_answer, .. } => *no_answer,
            _ => false,
        }
    }

    /// True when the credentials or grant are wrong: the job should stop at once
    /// ([`Class::Credentials`]).
    pub fn is_credentials(&self) -> bool {
        self.class() == Class::Credentials
    }

    /// A store failure that someone must fix before a retry can help.
    pub(crate) fn store(detail: impl Into<String>) -> Self {
        Error::Store {
            detail: detail.into(),
            retryable: false,
        }
    }

    pub(crate) fn transport(context: impl Into<String>, source: reqwest::Error) -> Self {
        Error::Transport {
            context: context.into(),
            error: Arc::new(source.without_url()),
        }
    }
}

/// `e` and every error below it (`source()`), on one line: `a: b: c`. A message that only repeats
/// the one before it (or is part of it) is left out. Scrubbed with [`excerpt`]: a TLS error can
/// quote a name from the server's certificate.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts
            .last()
            .is_some_and(|prev| prev.contains(text.as_str()))
        {
            parts.push(text);
        }
        next = err.source();
    }
    excerpt(&parts.join(": "), 1000)
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A URL's path for an error message: it can come from a server (a `Location`, a `nextUri`), so
/// it goes through [`excerpt`] like any server text.
pub(crate) fn shown_path(url: &url::Url) -> String {
    excerpt(url.path(), 300)
}

/// At most `max` characters of an answer's body, for error messages: a JSON body is scrubbed as
/// decoded text first ([`crate::redact::redact_json_bytes`]), so a secret spelled with JSON escapes does
/// not reach the message; then as [`excerpt`].
pub(crate) fn body_excerpt(body: &[u8], max: usize) -> String {
    excerpt(
        &String::from_utf8_lossy(&crate::redact::redact_json_bytes(body)),
        max,
    )
}

/// At most `max` characters of `s`, for error messages: text that may have come from a server, so
/// registered secrets are redacted and control characters escaped (see [`crate::redact::terminal_safe`]).
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    crate::redact::terminal_safe(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |below, t| Some(Layer(t, below.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn durations_and_counts_read_like_words() {
        // The durations' words are `duration::human`'s, tested there.
        assert_eq!(plural(1, "page"), "1 page");
        assert_eq!(plural(0, "page"), "0 pages");
        assert_eq!(plural(3, "attempt"), "3 attempts");
        let e = Error::TokenEndpointUnavailable {
            attempts: 1,
            elapsed: Duration::from_nanos(2_538_670_698),
            last: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "the token endpoint is unavailable after 1 attempt over 2.5 s: x"
        );
    }

    #[test]
    fn chain_is_one_line_without_repeats() {
        let e = layers(&[
            "error sending request",
            "client error (Connect)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            chain(&e),
            "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        // A source that only repeats (part of) the message above it is said once.
        let e = layers(&["dns error: no such host", "no such host"]);
        assert_eq!(chain(&e), "dns error: no such host");
        // Control characters from a server-made message are escaped: one line.
        let e = layers(&["tls", "bad name \"evil\ncom\""]);
        assert!(!chain(&e).contains('\n'), "{}", chain(&e));
    }
}
