//! Lifecycle rules on tokio's paused clock, against a scripted grant that panics if single-flight
//! ever breaks.

use super::*;
use crate::clock::FixedJitter;
use crate::grant::{FetchError, Grant, StaticToken, TokenResponse};
use crate::secret::AccessToken;
use crate::store::MemoryStore;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU32;

#[derive(Debug, Clone, Copy)]
enum Step {
    Ok,
    Transient(Option<Duration>),
    Fatal,
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
            Step::Fatal => Err(FetchError::Fatal(Error::Credentials {
                status: 401,
                code: Some("invalid_client".into()),
                description: None,
                hint: "check the client id and secret".into(),
            })),
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
    let tasks: Vec<_> = (0..250)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.bearer().await.unwrap().generation() })
        })
        .collect();
    let gens: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
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
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.bearer().await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
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
    let shown = format!("{m:?} {b:?} {:?}", b.access_token());
    assert!(!shown.contains("tok-1"), "{shown}");
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
