//! A held access token and the pure rules that say when it must be refreshed.

use crate::clock::Instant;
use crate::secret::AccessToken;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

/// When to refresh a token, as a function of its lifetime.
///
/// A fixed margin fails for Genesys Cloud, whose tokens live from 5 minutes to 48 hours (and in tests
/// for 1 second): 60 s is 20% of a 5-minute token and more than the whole of a 30-second one. So the
/// margin is a *fraction* of the lifetime, capped for long-lived tokens, and spread by jitter so that a
/// fleet started together does not refresh in the same second.
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
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            margin_fraction: 0.25,
            max_margin: Duration::from_secs(300),
            jitter_fraction: 0.5,
            expiry_buffer_fraction: 0.05,
            max_expiry_buffer: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(3600),
        }
    }
}

impl RefreshPolicy {
    /// How long before expiry a token of `lifetime` is refreshed, given a jitter sample in `[0, 1)`.
    pub fn refresh_margin(&self, lifetime: Duration, jitter: f64) -> Duration {
        let base = lifetime
            .mul_f64(self.margin_fraction.clamp(0.0, 1.0))
            .min(self.max_margin);
        let widened = base.mul_f64(1.0 + self.jitter_fraction.max(0.0) * jitter.clamp(0.0, 1.0));
        // Never past the middle of the lifetime, whatever the settings.
        widened.min(lifetime / 2)
    }

    /// How long before expiry a token of `lifetime` stops being handed out.
    pub fn expiry_buffer(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.expiry_buffer_fraction.clamp(0.0, 0.5))
            .min(self.max_expiry_buffer)
    }
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

/// An access token held by a [`TokenManager`](crate::TokenManager), with its timing.
///
/// Cheap to clone (`Arc` inside); handed out for each request as a [`Bearer`].
#[derive(Debug)]
pub(crate) struct HeldToken {
    pub(crate) access: AccessToken,
    pub(crate) generation: u64,
    pub(crate) obtained_at: Instant,
    pub(crate) expires_at: Instant,
    pub(crate) refresh_at: Instant,
    pub(crate) usable_until: Instant,
    pub(crate) expires_at_wall: SystemTime,
    pub(crate) never_expires: bool,
    /// Set the first time the token is handed out: only a token in use is refreshed by the timer.
    pub(crate) used: std::sync::atomic::AtomicBool,
    /// Set once the API has answered a request carrying this token with something other than 401.
    pub(crate) accepted: std::sync::atomic::AtomicBool,
}

impl HeldToken {
    /// Marks the token as in use (a load first, so the common case writes nothing).
    #[inline]
    pub(crate) fn mark_used(&self) {
        use std::sync::atomic::Ordering;
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn freshness(&self, now: Instant) -> Freshness {
        freshness(self.refresh_at, self.usable_until, now)
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.expires_at.saturating_duration_since(self.obtained_at)
    }
}

/// The token to put on one request: what [`TokenManager::bearer`](crate::TokenManager::bearer)
/// returns. Pass it back to [`TokenManager::rejected`](crate::TokenManager::rejected) if the API
/// answers 401, so that the refresh is keyed on *this* token.
#[derive(Clone)]
pub struct Bearer(pub(crate) std::sync::Arc<HeldToken>);

impl Bearer {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.access
    }

    /// A number that identifies this token within its manager (increases with every new token).
    pub fn generation(&self) -> u64 {
        self.0.generation
    }

    /// When the token expires, by the monotonic clock.
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }

    /// When the token expires, by the wall clock.
    pub fn expires_at_wall(&self) -> SystemTime {
        self.0.expires_at_wall
    }

    /// Records that the API accepted this token (answered something other than 401).
    pub fn mark_accepted(&self) {
        use std::sync::atomic::Ordering;
        if !self.0.accepted.load(Ordering::Relaxed) {
            self.0.accepted.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the API has accepted this token at least once ([`Bearer::mark_accepted`]). A 401
    /// for an accepted token means it was revoked; for a never-accepted one, that the client is not
    /// allowed.
    pub fn was_accepted(&self) -> bool {
        self.0.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `Authorization` header value (`Bearer …`), marked sensitive so that `http`'s and
    /// reqwest's `Debug` output hides it.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut v =
            http::HeaderValue::from_str(&format!("Bearer {}", self.0.access.expose_secret()))
                .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer invalid"));
        v.set_sensitive(true);
        v
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("generation", &self.0.generation)
            .field("expires_at", &self.0.expires_at)
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
/// expires: `expires_in` counted from the send time, or a JWT `exp` if that is earlier.
pub fn expiry(
    sent_at: Instant,
    sent_wall: SystemTime,
    expires_in: Option<Duration>,
    jwt_exp: Option<SystemTime>,
    default_lifetime: Duration,
) -> Instant {
    let from_jwt = jwt_exp.map(|exp| {
        let ahead = exp.duration_since(sent_wall).unwrap_or(Duration::ZERO);
        sent_at + ahead
    });
    match (expires_in.map(|d| sent_at + d), from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => sent_at + default_lifetime,
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
}
