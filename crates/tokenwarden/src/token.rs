//! A held access token and the pure rules that say when it must be refreshed.

use crate::clock::Instant;
use crate::secret::AccessToken;
use base64::Engine as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// When to refresh a token, as a function of its lifetime.
///
/// A fixed margin fails for Genesys Cloud, whose tokens live from 5 minutes to 48 hours (and in tests
/// for 1 second): 60 s is 20% of a 5-minute token and more than the whole of a 30-second one. So the
/// margin is a *fraction* of the lifetime, capped for long-lived tokens, and spread by jitter so that a
/// fleet started together does not refresh in the same second.
///
/// **Odd lifetimes.** A lifetime the token endpoint states is first held between a floor and a
/// ceiling ([`clamp_lifetime`](Self::clamp_lifetime)): a token said to live `1e-9` s (or whose JWT
/// `exp` has already passed) is treated as living `min_lifetime` (1 s), so a confused server costs at
/// most about one token request per `0.75 × min_lifetime`, never one per API call; a token said to
/// live `1e300` s is re-checked after `max_lifetime` (one year). An `expires_in` that is zero,
/// negative, not a number, or of another JSON type is refused at the token endpoint with
/// [`Error::TokenDecode`](crate::Error::TokenDecode); an absent one means `default_lifetime`.
///
/// **Clock skew.** When the API reports as expired a token this policy still considered valid, the
/// [`TokenManager`](crate::TokenManager) learns by how much the server's clock runs ahead and
/// shortens the lifetimes it schedules by that much (see the manager's documentation for the rule).
/// The margin and buffer below then apply to the shortened lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshPolicy {
    /// Refresh when this fraction of the lifetime remains (before jitter). Default 0.25.
    pub margin_fraction: f64,
    /// Never refresh earlier than this before expiry (before jitter), for long-lived tokens.
    /// Default 5 minutes: a 24-hour token is refreshed about 5 minutes before it expires.
    pub max_margin: Duration,
    /// Jitter widens the margin by up to this fraction of itself. Default 0.5.
    pub jitter_fraction: f64,
    /// A token is not handed out during the last `expiry_buffer_fraction` of its lifetime (capped by
    /// `max_expiry_buffer`), so a request in flight does not arrive after expiry. Default 0.05.
    pub expiry_buffer_fraction: f64,
    /// Cap on the expiry buffer. Default 10 s.
    pub max_expiry_buffer: Duration,
    /// Lifetime assumed when the token endpoint gives no `expires_in` and the token is no JWT.
    /// Default 1 hour.
    pub default_lifetime: Duration,
    /// Shortest lifetime scheduled, whatever the token endpoint, a JWT `exp` or a learned clock skew
    /// say. Default 1 s.
    pub min_lifetime: Duration,
    /// Longest lifetime scheduled. Default 365 days.
    pub max_lifetime: Duration,
}

/// [`RefreshPolicy::min_lifetime`] by default.
pub const DEFAULT_MIN_LIFETIME: Duration = Duration::from_secs(1);
/// [`RefreshPolicy::max_lifetime`] by default.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            margin_fraction: 0.25,
            max_margin: Duration::from_secs(300),
            jitter_fraction: 0.5,
            expiry_buffer_fraction: 0.05,
            max_expiry_buffer: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(3600),
            min_lifetime: DEFAULT_MIN_LIFETIME,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

impl RefreshPolicy {
    /// How long before expiry a token of `lifetime` is refreshed, given a jitter sample in `[0, 1)`.
    pub fn refresh_margin(&self, lifetime: Duration, jitter: f64) -> Duration {
        let base = scale(lifetime, fraction(self.margin_fraction, 1.0)).min(self.max_margin);
        let widened = scale(
            base,
            1.0 + fraction(self.jitter_fraction, 1e6) * fraction(jitter, 1.0),
        );
        // Never past the middle of the lifetime, whatever the settings.
        widened.min(lifetime / 2)
    }

    /// How long before expiry a token of `lifetime` stops being handed out.
    pub fn expiry_buffer(&self, lifetime: Duration) -> Duration {
        scale(lifetime, fraction(self.expiry_buffer_fraction, 0.5)).min(self.max_expiry_buffer)
    }

    /// `lifetime` held between [`min_lifetime`](Self::min_lifetime) and
    /// [`max_lifetime`](Self::max_lifetime) (a floor above the ceiling counts as the ceiling).
    pub fn clamp_lifetime(&self, lifetime: Duration) -> Duration {
        // A century at most, whatever the settings, so that no instant arithmetic can overflow.
        let ceiling = self.max_lifetime.clamp(Duration::from_millis(1), CENTURY);
        lifetime.max(self.min_lifetime).min(ceiling)
    }
}

/// `f` in `[0, max]`; NaN counts as 0 (a policy field set to NaN must not panic).
fn fraction(f: f64, max: f64) -> f64 {
    if f.is_nan() { 0.0 } else { f.clamp(0.0, max) }
}

/// `d × k` for a finite `k ≥ 0`, saturating instead of panicking like `Duration::mul_f64`.
fn scale(d: Duration, k: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * k).unwrap_or(Duration::MAX)
}

/// Where a token stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Before its refresh point: use it.
    Fresh,
    /// In its refresh window: use it, and refresh in the background.
    Stale,
    /// Expired (or too close to expiry to send): do not use it.
    Expired,
}

/// The pure freshness rule: `Fresh` before `refresh_at`, `Stale` until `usable_until`, then `Expired`.
pub fn freshness(refresh_at: Instant, usable_until: Instant, now: Instant) -> Freshness {
    if now < refresh_at {
        Freshness::Fresh
    } else if now < usable_until {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// When a held token is refreshed and stops being handed out, all counted from when its token
/// request was sent. Computed by the manager's timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// When the token request was sent (or the static token was given).
    pub(crate) obtained_at: Instant,
    /// When the token endpoint said the token expires (after the lifetime floor and ceiling).
    pub(crate) advertised_expires_at: Instant,
    /// When the token is believed to expire: the advertised expiry less the learned clock skew.
    pub(crate) expires_at: Instant,
    /// From here on the token is refreshed in the background.
    pub(crate) refresh_at: Instant,
    /// From here on the token is not handed out any more.
    pub(crate) usable_until: Instant,
}

/// An access token held by a [`TokenManager`](crate::TokenManager), with its timing.
///
/// Shared behind an `Arc`; handed out for each request as a [`Bearer`].
pub(crate) struct HeldToken {
    pub(crate) access: AccessToken,
    /// `Bearer <token>`, built once (checked to be a legal header value) and zeroized when the
    /// last request holding a copy is done with it.
    header: http::HeaderValue,
    pub(crate) generation: u64,
    pub(crate) schedule: Schedule,
    /// The wall-clock time at `schedule.obtained_at`.
    pub(crate) obtained_wall: SystemTime,
    /// A static token of unknown lifetime: valid until the API says otherwise.
    pub(crate) never_expires: bool,
    /// Set the first time the token is handed out: only a token in use is refreshed by the timer.
    pub(crate) used: AtomicBool,
    /// Set once the API has answered a request carrying this token with something other than 401.
    pub(crate) accepted: AtomicBool,
    /// Set once the API has accepted this token a second time: a token refused after that was
    /// revoked in use, not refused after a single use (see `TokenManager::single_use_streak`).
    pub(crate) accepted_again: AtomicBool,
    /// Set when the API rejected the token (HTTP 401): it is never handed out again, and a refresh
    /// that was waiting for it to run out stops waiting.
    pub(crate) withdrawn: AtomicBool,
    /// Set by the first rejection reported for this token: one token is one clock-skew sample,
    /// however many requests carrying it were refused.
    pub(crate) rejection_noted: AtomicBool,
    /// The refresh that obtained it (`observe::RefreshEnd::id`; 0: none of a manager's).
    pub(crate) refresh_id: u64,
}

impl HeldToken {
    /// A held token, or why `access` cannot be sent in an `Authorization` header.
    pub(crate) fn new(
        access: AccessToken,
        generation: u64,
        schedule: Schedule,
        obtained_wall: SystemTime,
        never_expires: bool,
    ) -> Result<Self, HeaderProblem> {
        let header = bearer_header(access.expose_secret())?;
        Ok(Self {
            access,
            header,
            generation,
            schedule,
            obtained_wall,
            never_expires,
            used: AtomicBool::new(false),
            accepted: AtomicBool::new(false),
            accepted_again: AtomicBool::new(false),
            withdrawn: AtomicBool::new(false),
            rejection_noted: AtomicBool::new(false),
            refresh_id: 0,
        })
    }

    /// Marks the token as in use (a load first, so the common case writes nothing).
    #[inline]
    pub(crate) fn mark_used(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn freshness(&self, now: Instant) -> Freshness {
        freshness(self.schedule.refresh_at, self.schedule.usable_until, now)
    }

    /// The lifetime it was scheduled with (after clock skew).
    pub(crate) fn lifetime(&self) -> Duration {
        self.schedule
            .expires_at
            .saturating_duration_since(self.schedule.obtained_at)
    }

    /// The lifetime the token endpoint stated (after the floor and ceiling).
    pub(crate) fn advertised_lifetime(&self) -> Duration {
        self.schedule
            .advertised_expires_at
            .saturating_duration_since(self.schedule.obtained_at)
    }

    /// The advertised expiry by the wall clock: what other processes sharing the token are told.
    pub(crate) fn advertised_expires_at_wall(&self) -> SystemTime {
        self.obtained_wall + self.advertised_lifetime()
    }

    pub(crate) fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for HeldToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldToken")
            .field("generation", &self.generation)
            .field("schedule", &self.schedule)
            .field("withdrawn", &self.is_withdrawn())
            .finish_non_exhaustive()
    }
}

/// Why a token cannot go into an `Authorization` header. Says where, never what: the value is a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderProblem(pub(crate) String);

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest access token accepted. Servers refuse longer headers (nginx and Apache at 8 KiB,
/// IIS at 16 KiB), and every token is also kept by the redaction registry.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Checks that `token` may follow `Bearer ` in a header: [`AccessToken::is_header_value`] (visible
/// ASCII only, as the `b64token` of RFC 6750 and every real token are) and at most
/// [`MAX_TOKEN_LEN`] bytes. A CR or LF would let a token endpoint inject headers
/// (`curl -H "Authorization: Bearer $(tokenwarden token)"`); other control characters, spaces and
/// non-ASCII bytes are refused by HTTP stacks or change the header's meaning. The problem says
/// what and where, never the token.
pub(crate) fn check_header_safe(token: &str) -> Result<(), HeaderProblem> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(HeaderProblem(format!(
            "the access token is {} bytes long; HTTP servers refuse headers over {} KiB",
            token.len(),
            MAX_TOKEN_LEN / 1024
        )));
    }
    if AccessToken::is_header_value(token) {
        return Ok(());
    }
    let Some(at) = token.bytes().position(|b| !b.is_ascii_graphic()) else {
        return Err(HeaderProblem("the access token is empty".into()));
    };
    let what = match token.as_bytes()[at] {
        b'\r' | b'\n' => "a line break (CR or LF)",
        b' ' | b'\t' => "white space",
        0..=0x1f | 0x7f => "a control character",
        _ => "a non-ASCII character",
    };
    Err(HeaderProblem(format!(
        "the access token contains {what} at byte {at} of {}, which is not allowed in an HTTP header",
        token.len()
    )))
}

/// `Bearer <token>` as a sensitive header value whose bytes are zeroized when the last copy is
/// dropped (the bytes are shared, not copied, by the `HeaderValue` and its clones).
fn bearer_header(token: &str) -> Result<http::HeaderValue, HeaderProblem> {
    check_header_safe(token)?;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(7 + token.len()));
    buf.extend_from_slice(b"Bearer ");
    buf.extend_from_slice(token.as_bytes());
    let mut v = http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
        .map_err(|_| HeaderProblem("the access token is not a legal header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// The token to put on one request: what [`TokenManager::bearer`](crate::TokenManager::bearer)
/// returns. Pass it back to [`TokenManager::rejected`](crate::TokenManager::rejected) if the API
/// answers 401, so that the refresh is keyed on *this* token.
#[derive(Clone)]
pub struct Bearer {
    pub(crate) held: std::sync::Arc<HeldToken>,
    /// When the manager handed it out: a request carrying it was sent after this (what a clock-skew
    /// sample is measured from when the request is refused).
    pub(crate) handed_out: Instant,
}

impl Bearer {
    pub(crate) fn new(held: std::sync::Arc<HeldToken>, handed_out: Instant) -> Self {
        Self { held, handed_out }
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.held.access
    }

    /// A number that identifies this token within its manager (increases with every new token).
    pub fn generation(&self) -> u64 {
        self.held.generation
    }

    /// When the token is believed to expire, by the monotonic clock: the token endpoint's word,
    /// less any clock skew the manager has learned.
    pub fn expires_at(&self) -> Instant {
        self.held.schedule.expires_at
    }

    /// [`expires_at`](Self::expires_at) by the wall clock.
    pub fn expires_at_wall(&self) -> SystemTime {
        self.held.obtained_wall + self.held.lifetime()
    }

    /// Records that the API accepted this token (answered something other than 401).
    pub fn mark_accepted(&self) {
        if !self.held.accepted.load(Ordering::Relaxed) {
            self.held.accepted.store(true, Ordering::Relaxed);
        } else if !self.held.accepted_again.load(Ordering::Relaxed) {
            self.held.accepted_again.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the API has accepted this token at least once ([`Bearer::mark_accepted`]). A 401
    /// for an accepted token means it was revoked; for a never-accepted one, that the client is not
    /// allowed.
    pub fn was_accepted(&self) -> bool {
        self.held.accepted.load(Ordering::Relaxed)
    }

    /// The `Authorization` header value (`Bearer …`), marked sensitive so that `http`'s and
    /// reqwest's `Debug` output hides it.
    ///
    /// Built once per token, when the token was obtained: a token that is not a legal header value
    /// (a CR or LF, another control character, a space, a non-ASCII byte) is refused there with a
    /// clear error and never becomes a `Bearer`, so this cannot fail. The bytes are shared by the
    /// clones handed out and zeroized when the last one is dropped.
    pub fn header_value(&self) -> http::HeaderValue {
        self.held.header.clone()
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("generation", &self.held.generation)
            .field("expires_at", &self.held.schedule.expires_at)
            .finish_non_exhaustive()
    }
}

/// The `exp` claim of a JWT-shaped token, if there is one. Tokens are opaque in general: anything
/// that does not decode is simply "no claim".
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    if !exp.is_finite() || exp < 0.0 {
        return None;
    }
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e11)))
}

/// Computes when a token obtained by a request sent at `sent_at` (`sent_wall` by the wall clock)
/// expires: `expires_in` counted from the send time, or a JWT `exp` if that is earlier. Saturates
/// at a century, however large the lifetime given.
pub fn expiry(
    sent_at: Instant,
    sent_wall: SystemTime,
    expires_in: Option<Duration>,
    jwt_exp: Option<SystemTime>,
    default_lifetime: Duration,
) -> Instant {
    sent_at + lifetime(sent_wall, expires_in, jwt_exp, default_lifetime).min(CENTURY)
}

/// The longest duration ever added to an instant, so that no instant arithmetic can overflow.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The lifetime of a token obtained by a request sent at `sent_wall`: `expires_in`, or the time to
/// a JWT `exp` if that is shorter (zero if it has passed), or `default_lifetime` if neither is
/// known.
pub(crate) fn lifetime(
    sent_wall: SystemTime,
    expires_in: Option<Duration>,
    jwt_exp: Option<SystemTime>,
    default_lifetime: Duration,
) -> Duration {
    let from_jwt = jwt_exp.map(|exp| exp.duration_since(sent_wall).unwrap_or(Duration::ZERO));
    match (expires_in, from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => default_lifetime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_fits_the_lifetime() {
        let p = RefreshPolicy::default();
        // 48 h: capped at 5 min (7.5 with full jitter)
        let h48 = Duration::from_secs(48 * 3600);
        assert_eq!(p.refresh_margin(h48, 0.0), Duration::from_secs(300));
        assert_eq!(p.refresh_margin(h48, 1.0), Duration::from_secs(450));
        // 5 min: 75 s before expiry
        let m5 = Duration::from_secs(300);
        assert_eq!(p.refresh_margin(m5, 0.0), Duration::from_secs(75));
        // 2 s: 0.5 s before expiry, up to 0.75 s with jitter
        let s2 = Duration::from_secs(2);
        assert_eq!(p.refresh_margin(s2, 0.0), Duration::from_millis(500));
        assert_eq!(p.refresh_margin(s2, 1.0), Duration::from_millis(750));
        // a 30 s token is not refreshed on every call, as a fixed 60 s margin would do
        assert!(p.refresh_margin(Duration::from_secs(30), 1.0) < Duration::from_secs(15));
    }

    #[test]
    fn margin_never_passes_half_the_lifetime() {
        let p = RefreshPolicy {
            margin_fraction: 0.9,
            jitter_fraction: 5.0,
            ..RefreshPolicy::default()
        };
        assert_eq!(
            p.refresh_margin(Duration::from_secs(10), 1.0),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn expiry_buffer_is_small_and_capped() {
        let p = RefreshPolicy::default();
        assert_eq!(
            p.expiry_buffer(Duration::from_secs(1)),
            Duration::from_millis(50)
        );
        assert_eq!(
            p.expiry_buffer(Duration::from_secs(86399)),
            Duration::from_secs(10)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn freshness_boundaries() {
        let t0 = Instant::now();
        let refresh_at = t0 + Duration::from_secs(10);
        let until = t0 + Duration::from_secs(12);
        let ms = Duration::from_millis(1);
        assert_eq!(
            freshness(refresh_at, until, refresh_at - ms),
            Freshness::Fresh
        );
        assert_eq!(freshness(refresh_at, until, refresh_at), Freshness::Stale);
        assert_eq!(freshness(refresh_at, until, until - ms), Freshness::Stale);
        assert_eq!(freshness(refresh_at, until, until), Freshness::Expired);
    }

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"none"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn reads_jwt_exp_and_ignores_opaque_tokens() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000}"#)),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_expiry("opaque-token-value"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_takes_the_earlier_of_expires_in_and_jwt() {
        let sent = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let d = Duration::from_secs(3600);
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(expiry(sent, wall, hour, None, d), sent + d);
        let jwt_sooner = Some(wall + Duration::from_secs(60));
        assert_eq!(
            expiry(sent, wall, hour, jwt_sooner, d),
            sent + Duration::from_secs(60)
        );
        let jwt_later = Some(wall + Duration::from_secs(7200));
        assert_eq!(expiry(sent, wall, hour, jwt_later, d), sent + d);
        assert_eq!(expiry(sent, wall, None, None, d), sent + d);
        let jwt_past = Some(wall - Duration::from_secs(5));
        assert_eq!(expiry(sent, wall, hour, jwt_past, d), sent);
    }

    #[test]
    fn lifetimes_are_held_between_floor_and_ceiling() {
        let p = RefreshPolicy::default();
        assert_eq!(p.clamp_lifetime(Duration::ZERO), DEFAULT_MIN_LIFETIME);
        assert_eq!(
            p.clamp_lifetime(Duration::from_nanos(1)),
            DEFAULT_MIN_LIFETIME
        );
        assert_eq!(
            p.clamp_lifetime(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.clamp_lifetime(Duration::from_secs(86_399)),
            Duration::from_secs(86_399)
        );
        assert_eq!(p.clamp_lifetime(DEFAULT_MAX_LIFETIME), DEFAULT_MAX_LIFETIME);
        assert_eq!(p.clamp_lifetime(Duration::MAX), DEFAULT_MAX_LIFETIME);
        // Settings that make no sense do not panic: a century at most.
        let odd = RefreshPolicy {
            max_lifetime: Duration::MAX,
            margin_fraction: f64::NAN,
            jitter_fraction: f64::INFINITY,
            ..RefreshPolicy::default()
        };
        assert_eq!(odd.clamp_lifetime(Duration::MAX), CENTURY);
        assert_eq!(odd.refresh_margin(Duration::MAX, 1.0), Duration::ZERO);
    }

    #[test]
    fn only_visible_ascii_goes_into_a_header() {
        assert!(check_header_safe("abc-._~+/=XYZ09").is_ok());
        assert!(check_header_safe(&"a".repeat(MAX_TOKEN_LEN)).is_ok());
        for (bad, says) in [
            ("", "empty"),
            ("a\r\nb", "line break"),
            ("a\nb", "line break"),
            ("a b", "white space"),
            ("a\tb", "white space"),
            ("a\u{0}b", "control character"),
            ("a\u{7f}b", "control character"),
            ("a\u{e9}b", "non-ASCII"),
        ] {
            let e = check_header_safe(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let long = check_header_safe(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err();
        assert!(long.to_string().contains("16 KiB"), "{long}");
    }

    #[test]
    fn the_header_value_is_built_once_and_shared() {
        let v = bearer_header("tok-shared-1").unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer tok-shared-1");
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("tok-shared-1"));
        // Clones share the bytes (no copy to leave behind); they are zeroized with the last one.
        let c = v.clone();
        assert_eq!(c.as_bytes().as_ptr(), v.as_bytes().as_ptr());
    }
}
