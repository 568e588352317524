//! The refusals of a local credential server, as pure functions of a request's head: what a web
//! page in the user's browser (DNS rebinding, cross-origin requests) or a confused client (proxy
//! requests, paths naming another host) could send, refused before anything else is looked at.

use http::{HeaderMap, Method, StatusCode, Uri, header};
use std::net::SocketAddr;

/// Why a request is refused: its status, a stable code, and a sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status answered.
    pub status: StatusCode,
    /// A stable code, in the Genesys error body's `code` field.
    pub code: &'static str,
    /// What was wrong, for the caller (never echoes what was sent).
    pub message: &'static str,
}

impl Refusal {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
        }
    }
}

/// `CONNECT`: the agent is no forward proxy.
pub const CONNECT: Refusal = Refusal::new(
    StatusCode::METHOD_NOT_ALLOWED,
    "agent.connect.refused",
    "CONNECT is refused: the agent forwards requests to its API only",
);
/// A target in absolute form (`GET http://host/x`): a forward-proxy request.
pub const ABSOLUTE_FORM: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "agent.absolute.form.refused",
    "a request target with a scheme or host is refused: send the path only (e.g. /api/v2/users/me)",
);
/// No `Host` header, or one that is not the agent's address nor `localhost`.
pub const HOST: Refusal = Refusal::new(
    StatusCode::MISDIRECTED_REQUEST,
    "agent.host.refused",
    "the Host header must be the agent's own address or localhost",
);
/// An `Origin` header: a web page is calling.
pub const ORIGIN: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "agent.origin.refused",
    "requests from web pages (with an Origin header) are refused",
);
/// A path that names another host (`//host/x`, `/\host/x`) or does not start with `/`.
pub const OTHER_HOST: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "agent.path.refused",
    "the path must start with a single / and stay on the API (//host and /\\host are refused)",
);
/// A body longer than the agent accepts.
pub const TOO_LARGE: Refusal = Refusal::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "agent.body.too.large",
    "the request body is larger than the agent accepts",
);
/// A request body that broke off or was malformed.
pub const BROKEN_BODY: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "agent.body.broken",
    "the request body could not be read",
);
/// A request body that stopped arriving (no byte for the forward timeout): cut, not waited for.
pub const STALLED_BODY: Refusal = Refusal::new(
    StatusCode::REQUEST_TIMEOUT,
    "agent.body.stalled",
    "the request body stopped arriving",
);
/// A request head (target and headers) larger than [`MAX_HEAD`](crate::MAX_HEAD).
pub const HEAD_TOO_LARGE: Refusal = Refusal::new(
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    "agent.head.too.large",
    "the request's headers are larger than the agent accepts",
);
/// No key, or a wrong one.
pub const UNAUTHORIZED: Refusal = Refusal::new(
    StatusCode::UNAUTHORIZED,
    "agent.key.required",
    "present the agent key (or the token from the agent's /oauth/token) as Authorization: Bearer",
);

/// Checks a request's head, in this order: its size, `CONNECT`, absolute form, `Host`, `Origin`,
/// the path.
/// `local` is the address the agent listens on.
///
/// # Errors
/// The first [`Refusal`] that applies.
pub fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    local: SocketAddr,
) -> Result<(), Refusal> {
    // The target's length as it was sent (no copy of it made).
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    let size = target
        + headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > crate::MAX_HEAD {
        return Err(HEAD_TOO_LARGE);
    }
    if method == Method::CONNECT {
        return Err(CONNECT);
    }
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(ABSOLUTE_FORM);
    }
    let host = headers.get_all(header::HOST);
    let mut hosts = host.iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(HOST);
    };
    if !host_is_local(host.as_bytes(), local) {
        return Err(HOST);
    }
    if headers.contains_key(header::ORIGIN) {
        return Err(ORIGIN);
    }
    path_stays(uri.path())
}

/// Whether a `Host` value names the agent: its own IP literal or `localhost`, with its own port or
/// none.
pub fn host_is_local(host: &[u8], local: SocketAddr) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    if host.contains('@') {
        return false;
    }
    let Ok(authority) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    if authority.port().is_some_and(|p| p.as_u16() != local.port()) {
        return false;
    }
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    literal
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip == local.ip())
}

/// Whether a path stays below the agent (and so on the API): one leading `/`, no `/\`.
pub fn path_stays(path: &str) -> Result<(), Refusal> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') || matches!(b.get(1), Some(b'/' | b'\\')) {
        return Err(OTHER_HOST);
    }
    Ok(())
}

/// The bearer credential of `Authorization: Bearer <x>` (the scheme in any case).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:4100".parse().unwrap()
    }

    fn head(host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(header::HOST, host.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1:4100", "127.0.0.1", "localhost:4100", "LOCALHOST"] {
            assert!(host_is_local(ok.as_bytes(), local()), "{ok}");
        }
        for bad in [
            "127.0.0.1:4101",
            "127.0.0.2:4100",
            "evil.example:4100",
            "localhost.evil.example:4100",
            "user@127.0.0.1:4100",
            "",
            "[::1]:4100",
        ] {
            assert!(!host_is_local(bad.as_bytes(), local()), "{bad}");
        }
        let v6: SocketAddr = "[::1]:4100".parse().unwrap();
        assert!(host_is_local(b"[::1]:4100", v6));
    }

    #[test]
    fn refusals_in_order() {
        let get = Method::GET;
        let ok = |p: &str| {
            check(
                &get,
                &p.parse().unwrap(),
                &head(Some("localhost:4100")),
                local(),
            )
        };
        assert_eq!(ok("/api/v2/users/me"), Ok(()));
        assert_eq!(ok("//evil.example/x"), Err(OTHER_HOST));
        assert_eq!(ok("/\\evil.example/x"), Err(OTHER_HOST));
        assert_eq!(
            check(
                &get,
                &"http://evil.example/x".parse().unwrap(),
                &head(Some("localhost:4100")),
                local()
            ),
            Err(ABSOLUTE_FORM)
        );
        assert_eq!(
            check(
                &Method::CONNECT,
                &"evil.example:443".parse().unwrap(),
                &head(Some("localhost:4100")),
                local()
            ),
            Err(CONNECT)
        );
        assert_eq!(
            check(&get, &"/x".parse().unwrap(), &head(None), local()),
            Err(HOST)
        );
        let mut origin = head(Some("127.0.0.1:4100"));
        origin.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            check(&get, &"/x".parse().unwrap(), &origin, local()),
            Err(ORIGIN)
        );
        let mut two = head(Some("127.0.0.1:4100"));
        two.append(header::HOST, "evil.example".parse().unwrap());
        assert_eq!(
            check(&get, &"/x".parse().unwrap(), &two, local()),
            Err(HOST)
        );
    }

    #[test]
    fn bearer_credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
