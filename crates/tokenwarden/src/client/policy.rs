//! The client's rules as pure functions: what an answer means, which requests may be sent again,
//! where a redirect may carry the token. The send loop in `send.rs` only applies them.

use crate::clock::Instant;
use crate::error::Class;
use http::{Method, StatusCode};
use std::time::Duration;
use url::Url;

/// What a failed attempt proves about the server, for the replay rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// HTTP 401: the token was refused. Genesys authenticates before it acts, so nothing happened.
    Unauthorized,
    /// HTTP 429: the request was refused by the rate limiter before it was processed.
    RateLimited,
    /// HTTP 500, 502, 503 or 504: the server may have acted before it failed.
    ServerError,
    /// No connection was made: the request never left this process.
    Connect,
    /// A timeout, a reset or a broken body after the request may have been sent.
    Transport,
}

impl Failure {
    /// True when the failure proves that the server did not act on the request, so that sending it
    /// again cannot do anything twice.
    pub(crate) fn proves_not_acted(self) -> bool {
        matches!(
            self,
            Failure::Unauthorized | Failure::RateLimited | Failure::Connect
        )
    }

    /// The name used in logs and error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::Unauthorized => "401 unauthorized",
            Failure::RateLimited => "429 rate limited",
            Failure::ServerError => "server error",
            Failure::Connect => "connect error",
            Failure::Transport => "transport error",
        }
    }
}

/// Methods that RFC 9110 defines as idempotent: sending one twice has the effect of sending it once.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// The replay rule: an idempotent method, or a request the caller marked safe (e.g. the analytics
/// query `POST`, which is a read), may always be sent again; any other request (a `POST` or `PATCH`
/// that creates or changes something) only when the failure proves the server did not act.
pub(crate) fn may_replay(method: &Method, marked_safe: bool, failure: Failure) -> bool {
    failure.proves_not_acted() || marked_safe || is_idempotent(method)
}

/// What the send loop does with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Hand the response to the caller as it is (2xx, 404 and other 4xx, other 5xx).
    Return,
    /// Follow the `Location` header.
    Redirect,
    /// Report the rejected token, and send again with a new one.
    Heal,
    /// The API rejected the token it was just given, or one a heal could not help
    /// ([`may_heal`]): stop with [`Error::Unauthorized`].
    ///
    /// [`Error::Unauthorized`]: crate::Error::Unauthorized
    Unauthorized,
    /// Stop with [`Error::Forbidden`]: a refresh never cures a 403.
    ///
    /// [`Error::Forbidden`]: crate::Error::Forbidden
    Forbidden,
    /// Send again after a wait, if the replay rule and the budget allow.
    Retry(Failure),
}

impl Action {
    /// What the answer means as a failure ([`Class`]), as the error the send loop ends with is
    /// classified; `None` for an answer handed back or a redirect followed. A heal and a retry
    /// are [`Class::Transient`]: a later attempt may succeed.
    pub(crate) fn class(self) -> Option<Class> {
        match self {
            Action::Return | Action::Redirect => None,
            Action::Heal | Action::Retry(_) => Some(Class::Transient),
            Action::Unauthorized => Some(Class::Credentials),
            Action::Forbidden => Some(Class::Permission),
        }
    }
}

/// Classifies a status.
///
/// `carried_token`: whether this request carried our token (a 401 or 403 from a host we did not
/// give the token to says nothing about it and is returned as it is). `refused`: whether a 401 is
/// not to be healed ([`note_answer`]): the token this request carried came from healing a 401 of
/// the same request, with nothing in between, so a second 401 means the token is fine but the
/// client is not allowed, and refreshing again would loop; or the token is doubted ([`may_heal`]).
pub(crate) fn action(status: StatusCode, carried_token: bool, refused: bool) -> Action {
    match status.as_u16() {
        301 | 302 | 303 | 307 | 308 => Action::Redirect,
        401 if !carried_token => Action::Return,
        401 if refused => Action::Unauthorized,
        401 => Action::Heal,
        403 if carried_token => Action::Forbidden,
        429 => Action::Retry(Failure::RateLimited),
        500 | 502 | 503 | 504 => Action::Retry(Failure::ServerError),
        _ => Action::Return,
    }
}

/// Most 401 heals for one request. The first always happens; further ones only when the token that
/// was refused had been revoked meanwhile (see [`note_answer`]).
pub(crate) const MAX_HEALS: u32 = 3;

/// The first window of the heal rule ([`may_heal`]): long enough that an API refusing every token
/// costs a few token requests a minute at most, short enough that a job whose token really was
/// revoked at that moment waits little.
pub(crate) const FIRST_DOUBT: Duration = Duration::from_secs(15);

/// The longest window of the heal rule: however long the refusals go on, one heal is tried every
/// five minutes (Genesys limits token creation per client; 12 an hour are far within it).
pub(crate) const LONGEST_DOUBT: Duration = Duration::from_secs(300);

/// The window of the `n`-th token in a row that a heal could not help (`n` from 1): 15 s, then
/// doubling, at most [`LONGEST_DOUBT`].
pub(crate) fn doubt_window(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    FIRST_DOUBT
        .saturating_mul(1 << doublings)
        .min(LONGEST_DOUBT)
}

/// **The heal rule: a token that a heal could not help is not healed again for a while.**
///
/// When a request ends with [`Error::Unauthorized`] after a heal (the API refused the token the
/// heal just gave it, or refused every token of [`MAX_HEALS`] heals), the token it last carried is
/// *doubted* ([`TokenManager::doubt`]): until its window ends, a 401 carrying that token (the same
/// generation) is passed back at once ([`Error::Unauthorized`]; the agent hands on the 401) without
/// a token request, and only then may one request heal it again (a single token request, as every
/// 401 of one token causes). The window is [`doubt_window`] of the tokens doubted in a row: 15 s,
/// 30 s, 60 s, ... at most 5 minutes; a heal that works (its replay gets past the token check)
/// starts the row again.
///
/// Why: a 401 proves only that the API refused the token it carried. Healing it once per request
/// is right for a token revoked in use, but against an API that refuses every token (a client it
/// does not know, a path it never allows, an attacker's API behind the agent) each request would
/// buy a token: a flood of the token endpoint, which Genesys rate-limits for the whole client.
/// Keyed on the token, the rule leaves every other token alone: a token revoked after the API had
/// accepted it is healed at once by every request (its replay is accepted, nothing is doubted),
/// and a new token (a proactive refresh, or one another request healed to) starts undoubted.
///
/// An answer the API accepts with the doubted token does not lift its window: an API that answers
/// 401 on one path while accepting the token on others (`/x` always 401, `/users/me` 200) would
/// otherwise make each 401 on `/x` after an accepted `/users/me` look like a revocation, and each
/// pair of requests buy a token. With the rule that costs one token request per window, and a real
/// revocation of the doubted token waits at most its window for the heal it needs (one).
///
/// `doubted_until`: until when the token is doubted, if it is ([`TokenManager::doubted_until`]).
///
/// [`Error::Unauthorized`]: crate::Error::Unauthorized
/// [`TokenManager::doubt`]: crate::manager::TokenManager::doubt
/// [`TokenManager::doubted_until`]: crate::manager::TokenManager::doubted_until
pub(crate) fn may_heal(doubted_until: Option<Instant>, now: Instant) -> bool {
    doubted_until.is_none_or(|until| now >= until)
}

/// Notes what an answer says about the token it carried, and decides whether a 401 means "stop
/// with `Error::Unauthorized`" (`true`) instead of a heal.
///
/// Any answer but 401 marks the token as accepted by the API (and, right after a heal, tells the
/// manager that healing works). A 401 of a doubted token is a refusal while its window runs (the
/// heal rule, [`may_heal`]). A 401 after a heal is a refusal, unless the token it carried was
/// revoked meanwhile: the API had already accepted it, or another request already reported it and
/// it was replaced. Then healing again is right, at most [`MAX_HEALS`] times per request. (A token
/// revoked on its very first use cannot be told apart from one the client may not use at all: that
/// case is reported as a refusal.) A refusal after a heal doubts the token it carried.
pub(crate) fn note_answer(
    status: StatusCode,
    bearer: Option<&crate::token::Bearer>,
    tokens: &crate::manager::TokenManager,
    after_heal: bool,
    heals: u32,
    now: Instant,
) -> bool {
    let Some(b) = bearer else { return false };
    if status != StatusCode::UNAUTHORIZED {
        b.mark_accepted();
        if after_heal {
            tokens.heal_worked();
        }
        return false;
    }
    let doubted_until = tokens.doubted_until(b);
    let healable = may_heal(doubted_until, now);
    if !after_heal {
        if !healable {
            tracing::debug!(
                generation = b.generation(),
                "401 of a token a heal could not help: passed back without a token request"
            );
            return true;
        }
        // The token a heal gave, refused before the API ever accepted it, by a request other
        // than the one that healed (one that waited for the heal, or the next one after a
        // request that cannot be sent again): the heal did not help it either. Once its window
        // has passed (it was doubted before), one request may heal it again.
        let heal_failed = doubted_until.is_none() && !b.was_accepted() && tokens.came_from_heal(b);
        if heal_failed {
            doubt(tokens, b, now);
        }
        return heal_failed;
    }
    let revoked_meanwhile = b.was_accepted()
        || tokens
            .current()
            .is_none_or(|c| c.generation() != b.generation());
    let refused = heals >= MAX_HEALS || !revoked_meanwhile || !healable;
    if refused {
        doubt(tokens, b, now);
    }
    refused
}

/// Doubts `b` (the heal rule, [`may_heal`]), saying so when its window starts.
fn doubt(tokens: &crate::manager::TokenManager, b: &crate::token::Bearer, now: Instant) {
    if let Some(window) = tokens.doubt(b, now, doubt_window) {
        tracing::info!(
            generation = b.generation(),
            window_s = window.as_secs(),
            "the API refused the token a heal gave it; its 401s are passed back unhealed for a while"
        );
    }
}

/// Classifies a transport error: a failed connect proves nothing was sent.
pub(crate) fn transport_failure(is_connect: bool) -> Failure {
    if is_connect {
        Failure::Connect
    } else {
        Failure::Transport
    }
}

/// Whether the token may be sent to `target`: only to the API base's own origin (scheme, host and
/// port), so that neither a redirect nor an absolute URL can carry it anywhere else.
pub(crate) fn may_carry_token(api_base: &Url, target: &Url) -> bool {
    same_origin(api_base, target)
}

/// Whether two `http(s)` URLs have the same origin: scheme, host and port (a default port
/// written out or not). As `Url::origin` compares them, without its allocations (this runs on
/// every attempt).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The method and body of the request that follows a redirect, as browsers and reqwest do it:
/// 303 turns anything but `HEAD` into a bodiless `GET`; 301 and 302 turn a `POST` into a bodiless
/// `GET`; 307 and 308 keep both. Returns the method and whether the body is kept.
pub(crate) fn redirected(status: StatusCode, method: &Method) -> (Method, bool) {
    match status.as_u16() {
        303 if *method == Method::HEAD => (Method::HEAD, false),
        303 => (Method::GET, false),
        301 | 302 if *method == Method::POST => (Method::GET, false),
        _ => (method.clone(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn idempotent_methods_replay_after_anything() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            for f in [Failure::ServerError, Failure::Transport, Failure::Connect] {
                assert!(may_replay(&m, false, f), "{m} after {f:?}");
            }
        }
    }

    #[test]
    fn unmarked_post_and_patch_replay_only_when_nothing_happened() {
        for m in [Method::POST, Method::PATCH] {
            assert!(!may_replay(&m, false, Failure::ServerError));
            assert!(!may_replay(&m, false, Failure::Transport));
            assert!(may_replay(&m, false, Failure::Connect));
            assert!(may_replay(&m, false, Failure::Unauthorized));
            assert!(may_replay(&m, false, Failure::RateLimited));
            // marked safe by the caller (a read such as the analytics query)
            assert!(may_replay(&m, true, Failure::ServerError));
            assert!(may_replay(&m, true, Failure::Transport));
        }
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(action(s(200), true, false), Action::Return);
        assert_eq!(action(s(204), true, true), Action::Return);
        assert_eq!(action(s(404), true, false), Action::Return);
        assert_eq!(action(s(400), true, false), Action::Return);
        assert_eq!(action(s(409), true, false), Action::Return);
        assert_eq!(action(s(501), true, false), Action::Return);
        assert_eq!(action(s(505), true, false), Action::Return);
        for code in [500, 502, 503, 504] {
            assert_eq!(
                action(s(code), true, false),
                Action::Retry(Failure::ServerError)
            );
        }
        assert_eq!(
            action(s(429), true, false),
            Action::Retry(Failure::RateLimited)
        );
        for code in [301, 302, 303, 307, 308] {
            assert_eq!(action(s(code), true, false), Action::Redirect);
        }
        assert_eq!(action(s(304), true, false), Action::Return);
    }

    #[test]
    fn one_heal_per_401_then_a_clear_error() {
        assert_eq!(action(s(401), true, false), Action::Heal);
        assert_eq!(action(s(401), true, true), Action::Unauthorized);
        // a 401 from a host that never saw our token is not about our token
        assert_eq!(action(s(401), false, false), Action::Return);
    }

    #[test]
    fn forbidden_never_heals() {
        assert_eq!(action(s(403), true, false), Action::Forbidden);
        assert_eq!(action(s(403), true, true), Action::Forbidden);
        assert_eq!(action(s(403), false, false), Action::Return);
    }

    #[test]
    fn connect_errors_prove_nothing_was_sent() {
        assert_eq!(transport_failure(true), Failure::Connect);
        assert_eq!(transport_failure(false), Failure::Transport);
        assert!(Failure::Connect.proves_not_acted());
        assert!(!Failure::Transport.proves_not_acted());
        assert!(!Failure::ServerError.proves_not_acted());
    }

    #[test]
    fn same_origin_is_url_origin_equality() {
        let urls = [
            "https://api.example/a",
            "https://api.example:443/b?q",
            "https://API.example/",
            "http://api.example/",
            "http://api.example:80/",
            "https://api.example:8443/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://[::1]:443/x",
            "https://other.example/",
        ];
        for a in urls {
            for b in urls {
                let (ua, ub) = (Url::parse(a).unwrap(), Url::parse(b).unwrap());
                assert_eq!(same_origin(&ua, &ub), ua.origin() == ub.origin(), "{a} {b}");
            }
        }
    }

    #[test]
    fn token_stays_on_the_api_origin() {
        let base = Url::parse("https://api.mypurecloud.com").unwrap();
        let ok = |u: &str| may_carry_token(&base, &Url::parse(u).unwrap());
        assert!(ok("https://api.mypurecloud.com/api/v2/users?x=1"));
        assert!(ok("https://api.mypurecloud.com:443/api/v2/users"));
        assert!(!ok("http://api.mypurecloud.com/api/v2/users"));
        assert!(!ok("https://api.mypurecloud.com:8443/api/v2/users"));
        assert!(!ok("https://evil.example/api/v2/users"));
        assert!(!ok("https://api.mypurecloud.com.evil.example/"));
        assert!(!ok("https://login.mypurecloud.com/oauth/token"));
        let local = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(may_carry_token(
            &local,
            &Url::parse("http://127.0.0.1:8080/a").unwrap()
        ));
        assert!(!may_carry_token(
            &local,
            &Url::parse("http://127.0.0.1:8081/a").unwrap()
        ));
        assert!(!may_carry_token(
            &local,
            &Url::parse("http://localhost:8080/a").unwrap()
        ));
    }

    #[test]
    fn redirect_methods() {
        assert_eq!(redirected(s(303), &Method::POST), (Method::GET, false));
        assert_eq!(redirected(s(303), &Method::HEAD), (Method::HEAD, false));
        assert_eq!(redirected(s(302), &Method::POST), (Method::GET, false));
        assert_eq!(redirected(s(301), &Method::POST), (Method::GET, false));
        assert_eq!(redirected(s(302), &Method::GET), (Method::GET, true));
        assert_eq!(redirected(s(307), &Method::POST), (Method::POST, true));
        assert_eq!(redirected(s(308), &Method::PUT), (Method::PUT, true));
    }

    /// A manager holding one static token, and that token as a request carries it.
    async fn static_token() -> (crate::TokenManager, crate::token::Bearer) {
        let tokens =
            crate::TokenManager::builder(crate::StaticToken::new(crate::AccessToken::new("t")))
                .build();
        let b = tokens.bearer().await.unwrap();
        (tokens, b)
    }

    const DENIED: StatusCode = StatusCode::UNAUTHORIZED;
    const OK: StatusCode = StatusCode::OK;

    #[tokio::test]
    async fn a_second_401_is_a_refusal_unless_the_token_was_revoked_meanwhile() {
        let now = Instant::now();
        let (tokens, b) = static_token().await;
        let refused = |status, after_heal, heals| {
            note_answer(status, Some(&b), &tokens, after_heal, heals, now)
        };
        // Without a token, or before any heal, a 401 is never a refusal.
        assert!(!note_answer(DENIED, None, &tokens, true, 1, now));
        assert!(!refused(DENIED, false, 0));
        // Once the API accepted the token, a 401 means it was revoked: heal again...
        assert!(!refused(OK, false, 0));
        assert!(b.was_accepted());
        assert!(!refused(DENIED, true, 1));
        // ...but never more than MAX_HEALS times.
        assert!(refused(DENIED, true, MAX_HEALS));
        // Right after a heal, a never-accepted current token refused: the client is not allowed.
        let (tokens, b) = static_token().await;
        assert!(note_answer(DENIED, Some(&b), &tokens, true, 1, now));
    }

    #[test]
    fn doubt_windows_double_from_15_seconds_to_5_minutes() {
        let secs = |n| doubt_window(n).as_secs();
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 6, 7, 40, u32::MAX].map(secs),
            [15, 15, 30, 60, 120, 240, 300, 300, 300, 300]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_a_heal_could_not_help_is_not_healed_until_its_window_ends() {
        let (tokens, b) = static_token().await;
        let refused = |status, after_heal, heals, at| {
            note_answer(status, Some(&b), &tokens, after_heal, heals, at)
        };
        let start = Instant::now();
        assert!(may_heal(None, start));
        assert!(may_heal(tokens.doubted_until(&b), start));
        // The token a heal gave is refused: doubted for 15 s.
        assert!(refused(DENIED, true, 1, start));
        let until = tokens.doubted_until(&b).expect("doubted");
        assert_eq!(until - start, FIRST_DOUBT);
        // Its 401s are refusals until the window ends, whatever the API accepted meanwhile.
        assert!(refused(DENIED, false, 0, start));
        assert!(!refused(OK, false, 0, start));
        let just_before = until - Duration::from_millis(1);
        assert!(!may_heal(Some(until), just_before));
        assert!(refused(DENIED, false, 0, just_before));
        assert!(refused(DENIED, true, 1, just_before));
        assert_eq!(
            tokens.doubted_until(&b),
            Some(until),
            "one window per token"
        );
        // Then one request may heal it.
        assert!(may_heal(Some(until), until));
        assert!(!refused(DENIED, false, 0, until));
        // Refused again (the API accepted this token elsewhere, so a refusal after a heal takes
        // the heals running out): the next window is twice as long...
        assert!(!refused(DENIED, true, 1, until));
        assert!(refused(DENIED, true, MAX_HEALS, until));
        assert_eq!(tokens.doubted_until(&b), Some(until + doubt_window(2)));
        // ...until a heal works: then the row starts again.
        let later = until + doubt_window(2);
        assert!(!refused(OK, true, 1, later));
        assert!(refused(DENIED, true, MAX_HEALS, later));
        assert_eq!(tokens.doubted_until(&b), Some(later + FIRST_DOUBT));
        // Another manager's token is not doubted.
        let (other, c) = static_token().await;
        assert!(may_heal(other.doubted_until(&c), later));
    }

    #[test]
    fn actions_are_classified_as_the_errors_they_end_in() {
        let (method, path) = (String::from("GET"), String::from("/api/v2/users"));
        let unauthorized = crate::Error::Unauthorized {
            method: method.clone(),
            path: path.clone(),
            code: None,
        };
        let forbidden = crate::Error::Forbidden {
            method: method.clone(),
            path: path.clone(),
            code: None,
            message: "missing permission".into(),
        };
        let exhausted = crate::Error::RetriesExhausted {
            method,
            path,
            attempts: 8,
            last: "HTTP 503".into(),
            no_answer: false,
        };
        assert_eq!(Action::Unauthorized.class(), Some(unauthorized.class()));
        assert_eq!(Action::Forbidden.class(), Some(forbidden.class()));
        // A retry that runs out is transient, as the retry itself was.
        for f in [
            Failure::ServerError,
            Failure::RateLimited,
            Failure::Transport,
        ] {
            assert_eq!(Action::Retry(f).class(), Some(exhausted.class()));
        }
        assert_eq!(Action::Heal.class(), Some(Class::Transient));
        assert_eq!(action(s(200), true, false).class(), None);
        assert_eq!(action(s(404), true, false).class(), None);
        assert_eq!(action(s(302), true, false).class(), None);
        assert_eq!(action(s(403), true, false).class(), Some(Class::Permission));
        assert_eq!(action(s(401), true, true).class(), Some(Class::Credentials));
    }
}
