//! The token lifecycle against the simulator, over real HTTP. Requests here use plain reqwest with
//! the manager's token (no 401 healing), so the journal shows exactly what the lifecycle alone does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokenwarden::{
    ClientAuth, ClientCredentials, ClientSecret, RefreshToken, RefreshTokenGrant, TokenEndpoint,
    TokenManager,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

fn grant(sim: &Simulator, secret: &str) -> ClientCredentials {
    ClientCredentials::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(secret),
    )
}

/// Sends GET /api/v2/users/{id} to the API at `base` with the manager's current token; returns the
/// status.
async fn call(http: &reqwest::Client, base: &str, tokens: &TokenManager, i: usize) -> u16 {
    let bearer = tokens.bearer().await.expect("a token");
    http.get(format!(
        "{base}/api/v2/users/{}",
        tokenwarden_sim::data::user_id(i % 100)
    ))
    .header(reqwest::header::AUTHORIZATION, bearer.header_value())
    .send()
    .await
    .expect("simulator answers")
    .status()
    .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_one_second_tokens_sends_no_expired_token() {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        users: 100,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, DEFAULT_CLIENT_SECRET)).build();
    let http = reqwest::Client::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (sim_url, tokens, http, sent) = (
                sim.base_url(),
                tokens.clone(),
                http.clone(),
                Arc::clone(&sent),
            );
            tokio::spawn(async move {
                let mut i = w;
                while tokio::time::Instant::now() < end {
                    assert_eq!(
                        call(&http, &sim_url, &tokens, i).await,
                        200,
                        "request {i} failed"
                    );
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 8;
                    // A steady stream, not a busy loop: about 400 requests/s in all.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let j = sim.journal_counters();
    let m = tokens.metrics();
    assert_eq!(
        j.api_expired_token, 0,
        "requests sent with an expired token"
    );
    assert_eq!(j.api_ok, sent.load(Ordering::Relaxed));
    assert!(j.api_ok > 5_000, "{} requests", j.api_ok);
    // One token per refresh period (0.5 to 0.75 s of a 1 s token, with jitter): 40 to 60 in 30 s.
    assert!(
        (35..=65).contains(&j.tokens_issued),
        "{} tokens for 30 s of 1-second tokens",
        j.tokens_issued
    );
    assert_eq!(j.max_concurrent_token_requests, 1);
    assert_eq!(
        m.reactive_refreshes, 1,
        "callers waited only for the first token: {m:?}"
    );
    assert_eq!(m.tokens_fetched, j.tokens_issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_shorter_than_the_remaining_lifetime_is_invisible() {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(8),
        users: 100,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, DEFAULT_CLIENT_SECRET)).build();
    let http = reqwest::Client::new();
    let start = tokio::time::Instant::now();
    assert_eq!(call(&http, &sim.base_url(), &tokens, 0).await, 200);
    let first = tokens.current().unwrap().generation();
    // The token's refresh window opens at 5 to 6 s; the endpoint is down from 4 s to 7 s.
    sim.update(|c| c.token_outage = true);
    let mut outage_on = true;
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(10) {
        if outage_on && start.elapsed() >= Duration::from_secs(7) {
            sim.update(|c| c.token_outage = false);
            outage_on = false;
        }
        assert_eq!(
            call(&http, &sim.base_url(), &tokens, i).await,
            200,
            "at {:?}",
            start.elapsed()
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let j = sim.journal_counters();
    assert!(j.token_unavailable >= 2, "the outage was hit: {j:?}");
    assert_eq!(j.api_expired_token, 0);
    assert_ne!(
        tokens.current().unwrap().generation(),
        first,
        "refreshed after the outage"
    );
    assert_eq!(tokens.metrics().refresh_failures, 0);
}

#[tokio::test]
async fn a_wrong_secret_fails_fast_with_a_credentials_message_after_one_request() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let tokens = TokenManager::builder(grant(&sim, "not-the-secret")).build();
    let t = tokio::time::Instant::now();
    let e = tokens.bearer().await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(e.is_credentials(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("client id and secret"), "{msg}");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    // Asking again (as a batch's other workers would) does not hammer the endpoint.
    for _ in 0..10 {
        assert!(tokens.bearer().await.is_err());
    }
    assert_eq!(sim.journal_counters().token_requests, 1);
}

#[tokio::test]
async fn form_field_credentials_work_too() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let g = ClientCredentials::new(
        TokenEndpoint::new(&sim.token_url())
            .unwrap()
            .with_client_auth(ClientAuth::FormFields),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(g).build();
    tokens.bearer().await.unwrap();
    assert_eq!(sim.journal_counters().tokens_issued, 1);
}

#[tokio::test]
async fn genesys_token_throttling_and_503s_are_retried() {
    let sim = Simulator::start(SimConfig {
        fail_first_token_requests: 2,
        throttle_token_every: Some(3),
        token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, DEFAULT_CLIENT_SECRET)).build();
    // 503, 503, then the third request is throttled (400 "rate limit exceeded"), the fourth works.
    tokens
        .bearer()
        .await
        .expect("retried through 503s and throttling");
    let j = sim.journal_counters();
    assert_eq!(j.token_unavailable, 2);
    assert_eq!(j.token_throttled, 1);
    assert_eq!(j.tokens_issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_each_is_used_once() {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        users: 100,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let rotated = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&rotated);
    let g = RefreshTokenGrant::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
        RefreshToken::new(sim.issue_refresh_token(DEFAULT_CLIENT_ID)),
    )
    .on_rotate(Arc::new(move |_new| {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    let tokens = TokenManager::builder(g).build();
    let http = reqwest::Client::new();
    let start = tokio::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(call(&http, &sim.base_url(), &tokens, i).await, 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let j = sim.journal_counters();
    assert!(j.refresh_grants >= 5, "{j:?}");
    assert_eq!(j.token_invalid_grant, 0, "a refresh token was reused");
    assert_eq!(rotated.load(Ordering::Relaxed), j.refresh_grants);
    assert_eq!(j.api_expired_token, 0);
}

#[tokio::test]
async fn jwt_exp_is_honoured() {
    let sim = Simulator::start(SimConfig {
        jwt_tokens: true,
        token_ttl: Duration::from_secs(120),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, DEFAULT_CLIENT_SECRET)).build();
    let b = tokens.bearer().await.unwrap();
    assert!(tokenwarden::jwt_expiry(b.access_token().expose_secret()).is_some());
    let left = b
        .expires_at()
        .saturating_duration_since(tokenwarden::Instant::now());
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(100),
        "{left:?}"
    );
}
