//! Lifecycle rules on tokio's paused clock, against a scripted grant that panics if single-flight
//! ever breaks.

use super::*;
use crate::clock::FixedJitter;
use crate::grant::{FetchError, Grant, StaticToken, TokenResponse};
use crate::secret::AccessToken;
use crate::store::{MemoryStore, StoreLock, StoredToken};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

#[derive(Debug, Clone, Copy)]
enum Step {
    Ok,
    Transient(Option<Duration>),
    Unreachable,
    Fatal,
    Panic,
    /// A 200 answer with this body, through the real token-response parser (`{n}`: the call number).
    Body(&'static str),
    /// This access token, as a grant of one's own could return it (no parser in between).
    Token(&'static str),
}

#[derive(Debug)]
struct FakeGrant {
    calls: AtomicU32,
    in_flight: AtomicU32,
    script: Mutex<VecDeque<Step>>,
    ttl: Duration,
    delay: Duration,
}

impl FakeGrant {
    fn new(ttl_secs: u64) -> Arc<Self> {
        Self::with(ttl_secs, Duration::from_millis(50), [])
    }

    fn with(ttl_secs: u64, delay: Duration, script: impl IntoIterator<Item = Step>) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            script: Mutex::new(script.into_iter().collect()),
            ttl: Duration::from_secs(ttl_secs),
            delay,
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().unwrap().extend(steps);
    }
}

#[async_trait]
impl Grant for Arc<FakeGrant> {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let concurrent = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(
            concurrent, 1,
            "single-flight broken: {concurrent} token requests at once"
        );
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let step = self.script.lock().unwrap().pop_front().unwrap_or(Step::Ok);
        match step {
            Step::Ok => Ok(TokenResponse {
                access_token: AccessToken::new(format!("tok-{n}")),
                expires_in: Some(self.ttl),
                refresh_token: None,
                token_type: Some("bearer".into()),
            }),
            Step::Transient(retry_after) => Err(FetchError::Transient {
                reason: "HTTP 503".into(),
                retry_after,
            }),
            Step::Unreachable => Err(FetchError::Unreachable {
                reason: "token request to login.example failed: error sending request: \
                         client error (Connect): tcp connect error: Connection refused (os error 111)"
                    .into(),
            }),
            Step::Fatal => Err(FetchError::Fatal(Error::Credentials {
                status: 401,
                code: Some("invalid_client".into()),
                description: None,
                hint: "check the client id and secret".into(),
            })),
            Step::Panic => panic!("the grant has a bug"),
            Step::Token(t) => Ok(TokenResponse {
                access_token: AccessToken::new(t),
                expires_in: Some(self.ttl),
                refresh_token: None,
                token_type: None,
            }),
            Step::Body(body) => crate::grant::classify(
                200,
                body.replace("{n}", &n.to_string()).as_bytes(),
                None,
                None,
                "fake",
                "login.example",
            ),
        }
    }

    fn name(&self) -> &'static str {
        "fake"
    }
}

fn manager(grant: &Arc<FakeGrant>) -> TokenManager {
    TokenManager::builder(Arc::clone(grant))
        .jitter(FixedJitter(0.0))
        .build()
}

fn secret(b: &Bearer) -> &str {
    b.access_token().expose_secret()
}

async fn settle() {
    // Let spawned refresh tasks run; on a paused clock this also auto-advances past their sleeps.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// `n` tasks asking `m` for a token at once; their answers.
async fn concurrent_bearers(m: &TokenManager, n: usize) -> Vec<Result<Bearer, Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.bearer().await })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn first_call_fetches_then_fresh_calls_do_not() {
    let g = FakeGrant::new(100);
    let m = manager(&g);
    let a = m.bearer().await.unwrap();
    assert_eq!(secret(&a), "tok-1");
    for _ in 0..1000 {
        assert_eq!(m.bearer().await.unwrap().generation(), a.generation());
    }
    assert_eq!(g.calls(), 1);
    let mt = m.metrics();
    assert_eq!((mt.tokens_fetched, mt.reactive_refreshes), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn refresh_starts_in_background_at_the_refresh_point_and_callers_never_wait() {
    // 100 s token, no jitter: refresh point at 75 s after the request was sent.
    let g = FakeGrant::with(100, Duration::from_secs(2), []);
    let m = manager(&g);
    let sent = Instant::now();
    let first = m.bearer().await.unwrap();
    tokio::time::sleep_until(sent + Duration::from_millis(74_999)).await;
    assert_eq!(m.bearer().await.unwrap().generation(), first.generation());
    settle().await;
    assert_eq!(
        g.calls(),
        1,
        "1 ms before the refresh point nothing is fetched"
    );

    tokio::time::sleep_until(sent + Duration::from_secs(75)).await;
    let t = Instant::now();
    // At the refresh point the old token is returned at once, and a refresh starts.
    assert_eq!(m.bearer().await.unwrap().generation(), first.generation());
    assert_eq!(Instant::now(), t, "the caller did not wait");
    for _ in 0..100 {
        assert_eq!(m.bearer().await.unwrap().generation(), first.generation());
    }
    // The refresh takes 2 s (the grant's delay); then the new token is served.
    tokio::time::sleep(Duration::from_millis(2001)).await;
    let second = m.bearer().await.unwrap();
    assert_eq!(secret(&second), "tok-2");
    assert_eq!(g.calls(), 2);
    assert_eq!(m.metrics().proactive_refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn expiry_counts_from_when_the_request_was_sent() {
    // A slow endpoint (5 s) and a 20 s token: it expires 20 s after sending, not after receiving.
    let g = FakeGrant::with(20, Duration::from_secs(5), []);
    let m = manager(&g);
    let sent = Instant::now();
    let b = m.bearer().await.unwrap();
    assert_eq!(b.expires_at(), sent + Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn callers_wait_only_when_no_valid_token_exists() {
    let g = FakeGrant::with(10, Duration::from_secs(1), []);
    let m = manager(&g);
    let first = m.bearer().await.unwrap();
    // The first token was used, so its timer refreshes it at 7.5 s; the second token is never
    // handed out and expires unrefreshed (at ~18.5 s). The next caller must wait for a new one.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(g.calls(), 2);
    let t = Instant::now();
    let b = m.bearer().await.unwrap();
    assert_ne!(b.generation(), first.generation());
    assert!(Instant::now() > t, "waited for the refresh");
    assert_eq!(g.calls(), 3);
    assert_eq!(m.metrics().reactive_refreshes, 2);
}

#[tokio::test(start_paused = true)]
async fn two_hundred_and_fifty_tasks_share_one_token_request() {
    let g = FakeGrant::with(60, Duration::from_millis(300), []);
    let m = manager(&g);
    let gens: Vec<u64> = concurrent_bearers(&m, 250)
        .await
        .into_iter()
        .map(|b| b.unwrap().generation())
        .collect();
    assert!(gens.iter().all(|g| *g == gens[0]));
    assert_eq!(g.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn contention_over_many_lifetimes_keeps_single_flight() {
    // 200 tasks hammer the manager for 10 lifetimes of a 4 s token; the grant panics on overlap.
    let g = FakeGrant::with(4, Duration::from_millis(200), []);
    let m = manager(&g);
    let end = Instant::now() + Duration::from_secs(40);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < end {
                    let b = m.bearer().await.unwrap();
                    assert!(
                        Instant::now() < b.expires_at(),
                        "handed out an expired token"
                    );
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50 + (i % 7) * 10)).await;
                }
                n
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap() > 100);
    }
    // One token per ~3 s refresh period, never a burst.
    let calls = g.calls();
    assert!((10..=16).contains(&calls), "{calls} token requests");
    let mt = m.metrics();
    assert_eq!(
        mt.reactive_refreshes, 1,
        "only the first token was waited for"
    );
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_401s_for_one_token_cause_one_refresh() {
    let g = FakeGrant::with(3600, Duration::from_millis(100), []);
    let m = manager(&g);
    let bad = m.bearer().await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (m, bad) = (m.clone(), bad.clone());
            tokio::spawn(async move { m.rejected(&bad).await.unwrap().generation() })
        })
        .collect();
    let gens: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(gens.iter().all(|g| *g == gens[0] && *g != bad.generation()));
    assert_eq!(g.calls(), 2, "the first token and exactly one replacement");
    // A late 401 for the replaced token fetches nothing.
    let again = m.rejected(&bad).await.unwrap();
    assert_eq!(again.generation(), gens[0]);
    assert_eq!(g.calls(), 2);
    assert_eq!(m.metrics().rejected_refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_not_handed_out_again() {
    let g = FakeGrant::with(3600, Duration::from_secs(1), []);
    let m = manager(&g);
    let bad = m.bearer().await.unwrap();
    let healing = {
        let (m, bad) = (m.clone(), bad.clone());
        tokio::spawn(async move { m.rejected(&bad).await })
    };
    settle().await;
    // While the replacement is being fetched, a new caller waits for it rather than get `bad`.
    let b = m.bearer().await.unwrap();
    assert_ne!(b.generation(), bad.generation());
    assert_eq!(healing.await.unwrap().unwrap().generation(), b.generation());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_honouring_retry_after() {
    let g = FakeGrant::with(
        3600,
        Duration::ZERO,
        [
            Step::Transient(None),
            Step::Transient(Some(Duration::from_secs(7))),
            Step::Ok,
        ],
    );
    let m = manager(&g);
    let t = Instant::now();
    let b = m.bearer().await.unwrap();
    assert_eq!(secret(&b), "tok-3");
    // 100 ms (first backoff, no jitter → half of 200 ms) + 7 s Retry-After.
    assert_eq!(Instant::now() - t, Duration::from_millis(7_100));
    assert_eq!(m.metrics().token_requests, 3);
}

#[tokio::test(start_paused = true)]
async fn bad_credentials_fail_at_once_after_one_request_and_are_not_hammered() {
    let g = FakeGrant::with(3600, Duration::from_millis(20), [Step::Fatal]);
    let m = manager(&g);
    for answer in concurrent_bearers(&m, 20).await {
        let e = answer.unwrap_err();
        assert!(e.is_credentials(), "{e}");
        assert!(e.to_string().contains("client id and secret"), "{e}");
    }
    assert_eq!(g.calls(), 1);
    // Within the cool-down the error is answered from memory...
    assert!(m.bearer().await.is_err());
    assert_eq!(g.calls(), 1);
    // ...after it, a new attempt is made (here it succeeds).
    tokio::time::sleep(DEFAULT_FATAL_COOLDOWN).await;
    assert!(m.bearer().await.is_ok());
    assert_eq!(g.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_outage_shorter_than_the_remaining_lifetime_is_invisible() {
    // 100 s token → refresh point 75 s, usable until 95 s. The endpoint then fails 8 times in a row:
    // backoff 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 + 5 s ≈ 16 s of outage, ending before 95 s.
    let g = FakeGrant::with(100, Duration::from_millis(10), []);
    let m = manager(&g);
    let first = m.bearer().await.unwrap();
    let start = Instant::now();
    g.push(std::iter::repeat_n(Step::Transient(None), 8));
    let mut served = 0;
    while Instant::now() < start + Duration::from_secs(120) {
        let b = m.bearer().await.expect("no caller sees the outage");
        assert!(Instant::now() < b.expires_at());
        served += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(served > 400);
    let mt = m.metrics();
    assert_eq!(mt.refresh_failures, 0);
    assert_eq!(mt.token_requests, 10, "{mt:?}");
    assert_ne!(m.bearer().await.unwrap().generation(), first.generation());
}

#[tokio::test(start_paused = true)]
async fn an_outage_past_expiry_fails_after_the_retry_budget() {
    let g = FakeGrant::with(10, Duration::ZERO, []);
    let m = TokenManager::builder(Arc::clone(&g))
        .jitter(FixedJitter(0.0))
        .backoff(Backoff {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(30),
            ..Backoff::default()
        })
        .build();
    m.bearer().await.unwrap();
    g.push(std::iter::repeat_n(Step::Transient(None), 1000));
    // The old token is served until it is no longer usable (9.5 s)...
    tokio::time::sleep(Duration::from_millis(9_499)).await;
    m.bearer().await.unwrap();
    // ...then callers get an error once the budget (4 attempts after expiry) is spent.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let e = m.bearer().await.unwrap_err();
    assert!(matches!(e, Error::TokenEndpointUnavailable { .. }), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn static_tokens_serve_until_rejected_and_say_why() {
    let m = TokenManager::builder(StaticToken::new(AccessToken::new("given-token"))).build();
    let b = m.bearer().await.unwrap();
    assert_eq!(secret(&b), "given-token");
    tokio::time::sleep(Duration::from_secs(86400 * 3)).await;
    assert_eq!(m.bearer().await.unwrap().generation(), b.generation());
    let e = m.rejected(&b).await.unwrap_err();
    assert!(matches!(e, Error::StaticTokenExpired { .. }), "{e}");
    assert!(e.to_string().contains("cannot be refreshed"), "{e}");
    assert!(!e.to_string().contains("given-token"));

    let m = TokenManager::builder(
        StaticToken::new(AccessToken::new("short")).expires_in(Duration::from_secs(60)),
    )
    .build();
    m.bearer().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let e = m.bearer().await.unwrap_err();
    assert!(e.to_string().contains("has expired"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn regression_a_static_token_that_has_already_expired_is_not_handed_out() {
    // A JWT whose `exp` had passed got the lifetime floor (1 s) and was printed by `token` with
    // `expires_in: 0`, exit 0: it cannot be replaced and the API refuses it.
    use base64::Engine as _;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwt = |exp: u64| {
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"none"}"#),
            e.encode(format!(r#"{{"exp":{exp}}}"#))
        )
    };
    let expired = [
        StaticToken::new(AccessToken::new(jwt(1_000))),
        StaticToken::new(AccessToken::new("opaque-token")).expires_in(Duration::ZERO),
    ];
    for grant in expired {
        let m = TokenManager::builder(grant).build();
        let err = m.bearer().await.unwrap_err();
        assert!(matches!(err, Error::StaticTokenExpired { .. }), "{err}");
        assert!(err.is_credentials(), "{err}");
        assert!(!err.to_string().contains("sig"), "{err}");
    }
    // A JWT that expires in the future is served.
    let later = crate::clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let m = TokenManager::builder(StaticToken::new(AccessToken::new(jwt(later)))).build();
    m.bearer().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn managers_sharing_a_store_fetch_one_token() {
    let g = FakeGrant::new(600);
    let store: Arc<dyn crate::TokenStore> = Arc::new(MemoryStore::new());
    let a = TokenManager::builder(Arc::clone(&g))
        .shared_store(Arc::clone(&store))
        .build();
    let b = TokenManager::builder(Arc::clone(&g))
        .shared_store(Arc::clone(&store))
        .build();
    let (ta, tb) = tokio::join!(a.bearer(), b.bearer());
    assert_eq!(secret(&ta.unwrap()), secret(&tb.unwrap()));
    assert_eq!(g.calls(), 1);
    assert_eq!(
        a.metrics().adopted_from_store + b.metrics().adopted_from_store,
        1
    );
    // A 401 on the shared token makes one manager fetch anew; the other adopts the replacement
    // when it sees its own 401, instead of re-adopting the rejected token.
    let bad = a.current().unwrap();
    let na = a.rejected(&bad).await.unwrap();
    let nb = b.rejected(&b.current().unwrap()).await.unwrap();
    assert_eq!(secret(&na), secret(&nb));
    assert_eq!(g.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn nothing_secret_in_debug_or_errors() {
    let g = FakeGrant::new(600);
    let m = manager(&g);
    let b = m.bearer().await.unwrap();
    let resp = TokenResponse {
        access_token: AccessToken::new("tok-in-response"),
        expires_in: None,
        refresh_token: Some(crate::RefreshToken::new("refresh-in-response")),
        token_type: None,
    };
    let builder = TokenManager::builder(StaticToken::new(AccessToken::new("tok-static-debug")));
    let shown = format!(
        "{m:?} {b:?} {:?} {:?} {resp:?} {builder:?} {:#?}",
        b.access_token(),
        b.held,
        m.metrics()
    );
    for secret in [
        "tok-1",
        "tok-in-response",
        "refresh-in-response",
        "tok-static-debug",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let hv = b.header_value();
    assert!(hv.is_sensitive());
    assert!(!format!("{hv:?}").contains("tok-1"));
}

#[tokio::test(start_paused = true)]
async fn a_token_in_use_is_refreshed_on_time_even_if_nobody_asks_in_its_window() {
    // Every worker is busy elsewhere (say, waiting out a 429) across the whole refresh window.
    let g = FakeGrant::with(4, Duration::from_millis(100), []);
    let m = manager(&g);
    let first = m.bearer().await.unwrap();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(3_950)).await;
    // The first token (4 s, unusable from 3.8 s) was refreshed by its timer at 3 s.
    let t = Instant::now();
    let b = m.bearer().await.unwrap();
    assert_eq!(Instant::now(), t, "no waiting");
    assert_ne!(b.generation(), first.generation());
    assert!(b.expires_at() > t0 + Duration::from_secs(6));
    let mt = m.metrics();
    assert_eq!(mt.reactive_refreshes, 1, "{mt:?}");
    assert!(mt.proactive_refreshes >= 1, "{mt:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_token_is_not_refreshed_forever() {
    let g = FakeGrant::with(4, Duration::from_millis(100), []);
    let m = manager(&g);
    let _ = m.bearer().await.unwrap();
    // Used once: refreshed once by the timer; the new token is never handed out, so it stops there.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(g.calls(), 2);
}

// ---- a refresh that panics or is cancelled never poisons the manager ----------------------------

#[tokio::test(start_paused = true)]
async fn a_panicking_grant_does_not_poison_the_manager() {
    let g = FakeGrant::with(60, Duration::from_millis(10), [Step::Panic]);
    let m = manager(&g);
    for answer in concurrent_bearers(&m, 20).await {
        let e = answer.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e}");
        assert!(e.to_string().contains("panicked"), "{e}");
    }
    // The slot is free: the next caller starts a new refresh, which succeeds.
    let b = m.bearer().await.unwrap();
    assert_eq!(secret(&b), "tok-2");
    assert_eq!(g.calls(), 2);
    assert_eq!(m.metrics().refresh_failures, 1);
}

/// A shared store that can be told to fail or panic.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    panic_on_lock: AtomicBool,
    fail_lock: AtomicBool,
}

#[async_trait]
impl crate::TokenStore for FlakyStore {
    async fn load(&self) -> Result<Option<StoredToken>, Error> {
        self.inner.load().await
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        self.inner.save(token).await
    }

    async fn lock(&self) -> Result<StoreLock, Error> {
        assert!(
            !self.panic_on_lock.load(Ordering::SeqCst),
            "the store has a bug"
        );
        if self.fail_lock.load(Ordering::SeqCst) {
            // A condition someone must fix (not "retryable"), like a cache directory others can
            // write to: still not a reason to stop asking.
            return Err(Error::Store {
                detail: "the cache directory is writable by others".into(),
                retryable: false,
            });
        }
        self.inner.lock().await
    }
}

fn with_store(g: &Arc<FakeGrant>, store: &Arc<FlakyStore>) -> TokenManager {
    TokenManager::builder(Arc::clone(g))
        .shared_store(Arc::clone(store) as Arc<dyn crate::TokenStore>)
        .build()
}

#[tokio::test(start_paused = true)]
async fn a_panicking_store_does_not_poison_the_manager() {
    let g = FakeGrant::new(60);
    let store = Arc::new(FlakyStore::default());
    store.panic_on_lock.store(true, Ordering::SeqCst);
    let m = with_store(&g, &store);
    let e = m.bearer().await.unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e}");
    store.panic_on_lock.store(false, Ordering::SeqCst);
    assert_eq!(secret(&m.bearer().await.unwrap()), "tok-1");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_cannot_be_locked_fails_the_refresh_but_is_not_remembered() {
    let g = FakeGrant::new(60);
    let store = Arc::new(FlakyStore::default());
    store.fail_lock.store(true, Ordering::SeqCst);
    let m = with_store(&g, &store);
    let e = m.bearer().await.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
    assert!(!e.is_credentials(), "{e}");
    assert_eq!(g.calls(), 0, "nothing fetched without the lock");
    // Fixed a moment later: the next call refreshes at once (no cool-down, unlike a wrong secret).
    store.fail_lock.store(false, Ordering::SeqCst);
    assert_eq!(secret(&m.bearer().await.unwrap()), "tok-1");
    assert_eq!(g.calls(), 1);
}

/// Hangs on its first request; answers at once afterwards.
#[derive(Debug, Default)]
struct HangsOnce {
    calls: AtomicU32,
}

#[async_trait]
impl Grant for Arc<HangsOnce> {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            std::future::pending::<()>().await;
        }
        Ok(TokenResponse {
            access_token: AccessToken::new(format!("after-hang-{n}")),
            expires_in: Some(Duration::from_secs(60)),
            refresh_token: None,
            token_type: None,
        })
    }

    fn name(&self) -> &'static str {
        "hangs-once"
    }
}

#[test]
fn a_refresh_cancelled_by_its_runtime_shutting_down_does_not_poison_the_manager() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let g = Arc::new(HangsOnce::default());
    let first = runtime();
    let m = first.block_on(async {
        let m = TokenManager::builder(Arc::clone(&g)).build();
        // A caller gives up; the refresh it started keeps running until the runtime goes.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), m.bearer()).await;
        assert!(gave_up.is_err());
        m
    });
    drop(first);
    runtime().block_on(async {
        let b = m
            .bearer()
            .await
            .expect("a new refresh, not the cancelled one");
        assert_eq!(secret(&b), "after-hang-2");
    });
}

// ---- a 401 while a refresh is running withdraws the token at once ------------------------------

#[tokio::test(start_paused = true)]
async fn a_401_during_a_background_refresh_withdraws_the_token_at_once() {
    // 100 s tokens, refreshed from 75 s; the token endpoint takes 10 s to answer.
    let g = FakeGrant::with(100, Duration::from_secs(10), []);
    let m = manager(&g);
    let sent = Instant::now();
    let revoked = m.bearer().await.unwrap();
    tokio::time::sleep_until(sent + Duration::from_secs(75)).await;
    assert_eq!(m.bearer().await.unwrap().generation(), revoked.generation());
    settle().await;
    assert!(m.inner.flight.is_running(), "background refresh running");
    // The API revokes the token while that refresh runs.
    let healing = {
        let (m, revoked) = (m.clone(), revoked.clone());
        tokio::spawn(async move { m.rejected(&revoked).await })
    };
    settle().await;
    // Nobody gets the revoked token any more: callers wait for the running refresh.
    let t = Instant::now();
    let b = m.bearer().await.unwrap();
    assert_ne!(b.generation(), revoked.generation());
    assert!(Instant::now() > t, "waited for the refresh");
    assert_eq!(healing.await.unwrap().unwrap().generation(), b.generation());
    assert_eq!(g.calls(), 2, "the 401 joined the running refresh");
}

/// A 1-hour token in use, whose background refresh (from 55 min) meets a token-endpoint outage.
async fn outage_during_background_refresh() -> (Arc<FakeGrant>, TokenManager, Bearer) {
    let g = FakeGrant::with(3600, Duration::from_millis(10), []);
    let m = manager(&g);
    let token = m.bearer().await.unwrap();
    g.push(std::iter::repeat_n(Step::Transient(None), 100_000));
    // The timer starts the refresh at 55 min; it keeps retrying while the token is usable.
    tokio::time::sleep(Duration::from_secs(56 * 60)).await;
    assert!(m.inner.flight.is_running());
    assert_eq!(m.bearer().await.unwrap().generation(), token.generation());
    (g, m, token)
}

#[tokio::test(start_paused = true)]
async fn under_outage_and_revocation_callers_get_a_clear_error_within_the_retry_budget() {
    let (_g, m, revoked) = outage_during_background_refresh().await;
    // The token is revoked: callers must not wait for its nominal expiry (~4 min away).
    let t = Instant::now();
    let e = m.rejected(&revoked).await.unwrap_err();
    let waited = Instant::now() - t;
    assert!(matches!(e, Error::TokenEndpointUnavailable { .. }), "{e}");
    assert!(
        waited <= Backoff::default().max_elapsed,
        "waited {waited:?} for an error"
    );
    // Meanwhile nobody was handed the revoked token.
    let e = m.bearer().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test(start_paused = true)]
async fn under_outage_a_401_retries_at_once_and_callers_get_the_new_token_promptly() {
    let (g, m, revoked) = outage_during_background_refresh().await;
    // The outage is over when the 401 arrives: the refresh, sleeping out a backoff meant for a
    // background retry, tries again at once.
    g.script.lock().unwrap().clear();
    let t = Instant::now();
    let fresh = m.rejected(&revoked).await.unwrap();
    assert_ne!(fresh.generation(), revoked.generation());
    assert!(
        Instant::now() - t < Duration::from_millis(100),
        "waited {:?}",
        Instant::now() - t
    );
}

// ---- tasks are bounded ---------------------------------------------------------------------------

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn replaced_tokens_leave_no_timers_behind() {
    let g = FakeGrant::with(3600, Duration::from_millis(1), []);
    let m = manager(&g);
    let mut b = m.bearer().await.unwrap();
    for _ in 0..50 {
        b = m.rejected(&b).await.unwrap();
    }
    settle().await;
    assert_eq!(g.calls(), 51);
    let alive = alive_tasks();
    assert_eq!(alive, 1, "{alive} tasks alive after 50 token replacements");
    drop(m);
    settle().await;
    assert_eq!(alive_tasks(), 0, "the manager's timer went with it");
}

// ---- odd token lifetimes ---------------------------------------------------------------------------

/// Calls `bearer()` every 10 ms for 20 s (2,000 calls); returns how many succeeded.
async fn hammer(m: &TokenManager) -> (u32, Option<Error>) {
    let end = Instant::now() + Duration::from_secs(20);
    let (mut ok, mut last_err) = (0, None);
    while Instant::now() < end {
        match m.bearer().await {
            Ok(b) => {
                assert!(
                    Instant::now() < b.expires_at(),
                    "handed out an expired token"
                );
                ok += 1;
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (ok, last_err)
}

#[tokio::test(start_paused = true)]
async fn odd_lifetimes_never_cost_a_token_request_per_call() {
    // Refused outright: a clear error, repeated from memory for the cool-down (5 s).
    for (body, says) in [
        (
            r#"{"access_token":"odd-{n}","expires_in":0}"#,
            "expires_in is 0",
        ),
        (
            r#"{"access_token":"odd-{n}","expires_in":-5}"#,
            "expires_in is -5",
        ),
        (
            r#"{"access_token":"odd-{n}","expires_in":"soon"}"#,
            "a string",
        ),
        (
            r#"{"access_token":"odd-{n}","expires_in":"NaN"}"#,
            "not a number",
        ),
        (
            r#"{"access_token":"odd-{n}","expires_in":true}"#,
            "a boolean",
        ),
    ] {
        let g = FakeGrant::with(60, Duration::ZERO, []);
        g.push(std::iter::repeat_n(Step::Body(body), 10_000));
        let m = manager(&g);
        let (ok, err) = hammer(&m).await;
        let err = err.expect("an error");
        assert_eq!(ok, 0, "{body}");
        assert!(matches!(err, Error::TokenDecode { .. }), "{body}: {err}");
        assert!(err.to_string().contains(says), "{body}: {err}");
        assert!(!err.to_string().contains("odd-"), "{err}");
        assert!(g.calls() <= 4, "{body}: {} token requests", g.calls());
    }
    // Held between the floor (1 s) and the ceiling (one year).
    for (body, max_requests) in [
        (r#"{"access_token":"odd-{n}","expires_in":1e-9}"#, 28),
        (r#"{"access_token":"odd-{n}","expires_in":0.2}"#, 28),
        (r#"{"access_token":"odd-{n}","expires_in":1e300}"#, 1),
        (r#"{"access_token":"odd-{n}","expires_in":"3600"}"#, 1),
        (r#"{"access_token":"odd-{n}","expires_in":null}"#, 1),
    ] {
        let g = FakeGrant::with(60, Duration::ZERO, []);
        g.push(std::iter::repeat_n(Step::Body(body), 10_000));
        let m = manager(&g);
        let (ok, err) = hammer(&m).await;
        assert!(err.is_none(), "{body}: {err:?}");
        assert_eq!(ok, 2000, "{body}");
        // A 1-second floor refreshes every 0.75 s: about 27 requests in 20 s, not 2,000.
        assert!(
            g.calls() <= max_requests,
            "{body}: {} token requests",
            g.calls()
        );
    }
}

// ---- clock skew ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_token_refused_as_expired_early_teaches_the_skew() {
    // Tokens advertised for 4 s that the server kills after 1 s.
    let g = FakeGrant::with(4, Duration::from_millis(10), []);
    let m = manager(&g);
    let t0 = Instant::now();
    let first = m.bearer().await.unwrap();
    assert_eq!(first.expires_at() - t0, Duration::from_secs(4));
    // A request sent with it after 1 s is refused as expired.
    tokio::time::sleep_until(t0 + Duration::from_secs(1)).await;
    let t1 = Instant::now();
    let sent = m.bearer().await.unwrap();
    assert_eq!(sent.generation(), first.generation());
    let second = m.rejected_with(&sent, Rejection::Expired).await.unwrap();
    // 3 s, decaying by a few microseconds while the replacement was fetched.
    let skew = m.metrics().clock_skew;
    assert!(
        skew > Duration::from_millis(2999) && skew <= Duration::from_secs(3),
        "{skew:?}"
    );
    // Reckoned to live 1 s from its request, so refreshed after 0.75 s, before the server kills it.
    assert_eq!(second.expires_at() - t1, Duration::from_secs(1));
    tokio::time::sleep_until(t1 + Duration::from_millis(760)).await;
    m.bearer().await.unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let third = m.bearer().await.unwrap();
    assert_ne!(
        third.generation(),
        second.generation(),
        "refreshed before 1 s"
    );
    assert_eq!(m.metrics().rejected_refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn revocations_at_random_ages_do_not_shorten_lifetimes() {
    let g = FakeGrant::with(4, Duration::from_millis(10), []);
    let m = manager(&g);
    let mut b = m.bearer().await.unwrap();
    for (i, age_ms) in [2900u64, 100, 1700, 2300, 600, 2950, 1200, 2000]
        .into_iter()
        .enumerate()
    {
        tokio::time::sleep(Duration::from_millis(age_ms)).await;
        let current = m.bearer().await.unwrap();
        current.mark_accepted();
        b = m.rejected_with(&current, Rejection::Other).await.unwrap();
        let skew = m.metrics().clock_skew;
        if i == 0 {
            // The first early death (at 2.91 s: the first token took 10 ms to come) is taken for
            // skew, provisionally: the next token is refreshed 1.09 s earlier (cheap if wrong).
            assert!(skew > Duration::from_millis(1080), "{skew:?}");
        } else {
            // The second, at another age, undoes it, and no single revocation guesses again.
            assert_eq!(skew, Duration::ZERO, "after a revocation at {age_ms} ms");
        }
    }
    assert_eq!(b.held.lifetime(), Duration::from_secs(4));
    // One token per revocation and the first one: the guess cost no extra token request.
    assert_eq!(g.calls(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_token_refused_without_a_reason_teaches_the_skew_from_the_first_wave() {
    // Tokens advertised for 4 s that the server kills after 1 s, refused as `bad.credentials`.
    let g = FakeGrant::with(4, Duration::from_millis(10), []);
    let m = manager(&g);
    let t0 = Instant::now();
    let first = m.bearer().await.unwrap();
    first.mark_accepted();
    tokio::time::sleep_until(t0 + Duration::from_secs(1)).await;
    let t1 = Instant::now();
    let sent = m.bearer().await.unwrap();
    let second = m.rejected_with(&sent, Rejection::Other).await.unwrap();
    let skew = m.metrics().clock_skew;
    assert!(
        skew > Duration::from_millis(2999) && skew <= Duration::from_secs(3),
        "{skew:?}"
    );
    // Reckoned to live 1 s from its request, so refreshed after 0.75 s, before the server would
    // kill it, and so is every later token: no second wave.
    assert_eq!(second.expires_at() - t1, Duration::from_secs(1));
    for k in 1..=6u32 {
        tokio::time::sleep_until(t1 + Duration::from_millis(760) * k).await;
        m.bearer().await.unwrap().mark_accepted();
        settle().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = m.bearer().await.unwrap();
        assert!(
            b.expires_at() - Instant::now() <= Duration::from_secs(1),
            "token {k} is scheduled with the guess"
        );
    }
    assert_eq!(m.metrics().rejected_refreshes, 1);
    // Still the guess, decayed by a few ms over 5 s (it halves in an hour).
    assert!(m.metrics().clock_skew > Duration::from_millis(2990));
}

// ---- the start of a run ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_unreachable_endpoint_at_the_start_of_a_run_fails_within_five_seconds() {
    let g = FakeGrant::with(60, Duration::ZERO, []);
    g.push(std::iter::repeat_n(Step::Unreachable, 1000));
    let m = manager(&g);
    let t = Instant::now();
    let e = m.bearer().await.unwrap_err();
    let waited = Instant::now() - t;
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(matches!(e, Error::TokenEndpointUnavailable { .. }), "{e}");
    assert!(e.to_string().contains("Connection refused"), "{e}");
    assert!(g.calls() >= 3, "retried a little: {}", g.calls());
}

#[tokio::test(start_paused = true)]
async fn during_a_run_an_unreachable_endpoint_keeps_the_full_retry_budget() {
    let g = FakeGrant::with(3600, Duration::ZERO, []);
    let m = manager(&g);
    let b = m.bearer().await.unwrap();
    g.push(std::iter::repeat_n(Step::Unreachable, 1000));
    let t = Instant::now();
    let e = m.rejected(&b).await.unwrap_err();
    assert!(matches!(e, Error::TokenEndpointUnavailable { .. }), "{e}");
    // Eight attempts, backing off 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 s.
    assert_eq!(Instant::now() - t, Duration::from_millis(11_300));
    assert_eq!(g.calls(), 1 + 8);
}

// ---- tokens that are not legal header values ----------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_token_that_is_not_a_legal_header_value_is_refused() {
    let g = FakeGrant::with(60, Duration::ZERO, [Step::Token("tok\r\nX-Injected: yes")]);
    let m = manager(&g);
    let e = m.bearer().await.unwrap_err();
    assert!(matches!(e, Error::TokenDecode { .. }), "{e}");
    assert!(e.to_string().contains("line break"), "{e}");
    assert!(!e.to_string().contains("Injected"), "{e}");

    let m = TokenManager::builder(StaticToken::new(AccessToken::new(
        "static\nX-Injected: yes",
    )))
    .build();
    let e = m.bearer().await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(!e.to_string().contains("Injected"), "{e}");
}
