//! The authenticated client against the simulator: 401 heal, 403, 429, 5xx, transport failures
//! and what their errors say, replay safety, redirects, proxies, response size limits, fixed and
//! adaptive pacing. Assertions are on the simulator's journal (or on a bare recording server
//! standing in for another origin or a proxy).

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use common::{builder, client, sim, tokens};
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokenwarden::{
    AccessToken, ApiClient, Error, FetchError, Grant, RateLimit, StaticToken, TokenManager,
    TokenResponse, retry::Backoff,
};
use tokenwarden_sim::recorder::{Recorder, Reply};
use tokenwarden_sim::{Outcome, SimConfig};

const ME: &str = "/api/v2/tokens/me";
const ECHO: &str = "/api/v2/sim/echo";

#[tokio::test]
async fn a_revoked_token_is_healed_with_one_token_request() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    client.get_json(ME).await.unwrap();
    // Revoke the token the client holds: the next call gets 401.
    let revoked = client.request(Method::DELETE, ME).send().await.unwrap();
    assert!(revoked.status().is_success(), "{revoked:?}");
    assert_eq!(sim.journal().token_requests, 1);

    let me = client.get_json(ME).await.unwrap();
    assert!(me.is_object());
    let j = sim.journal();
    assert_eq!(j.token_requests, 2, "one refresh for the 401");
    assert_eq!(j.api_revoked_token, 1);
    let m = client.metrics();
    assert_eq!(m.unauthorized_healed, 1);
    assert_eq!(m.failures, 0);
    assert_eq!(client.tokens().metrics().rejected_refreshes, 1);
}

#[tokio::test]
async fn an_unmarked_post_is_replayed_after_a_401() {
    // A 401 proves Genesys did not act, so even a POST goes again, with the new token.
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    client.request(Method::DELETE, ME).send().await.unwrap();
    let resp = client
        .request(Method::POST, ECHO)
        .json(&serde_json::json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: serde_json::Value = resp.json().unwrap();
    assert_eq!(echo["json"]["n"], 1, "the same body was sent again");
    let j = sim.journal();
    assert_eq!(j.token_requests, 2);
    assert_eq!(j.api_revoked_token, 1);
    assert_eq!(j.ok_count("POST", ECHO), 1);
}

/// A grant whose tokens the API never accepts: the token endpoint is happy, the API is not, as
/// with an OAuth client that lacks the role for the call.
#[derive(Debug, Default, Clone)]
struct BogusGrant {
    fetches: Arc<AtomicU32>,
}

#[async_trait]
impl Grant for BogusGrant {
    async fn fetch(&self) -> Result<TokenResponse, FetchError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(TokenResponse {
            access_token: AccessToken::new(format!("never-issued-{n}")),
            expires_in: Some(Duration::from_secs(3600)),
            refresh_token: None,
            token_type: Some("bearer".into()),
        })
    }

    fn name(&self) -> &'static str {
        "bogus"
    }
}

#[tokio::test]
async fn a_second_401_with_a_fresh_token_is_an_unauthorized_error() {
    let sim = sim(SimConfig::default()).await;
    let grant = BogusGrant::default();
    let tokens = TokenManager::builder(grant.clone()).build();
    let client = builder(&sim, tokens).build().unwrap();
    let err = client.get_json(ME).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.is_credentials());
    let msg = err.to_string();
    assert!(msg.contains("role") && msg.contains(ME), "{msg}");
    assert_eq!(
        grant.fetches.load(Ordering::SeqCst),
        2,
        "one refresh, no loop"
    );
    let j = sim.journal();
    assert_eq!(j.api_unknown_token, 2);
    assert_eq!(j.api_requests, 2);
    // The fresh token was refused too: nothing was healed.
    assert_eq!(client.metrics().unauthorized_healed, 0);
}

#[tokio::test]
async fn regression_an_api_refusing_every_token_after_one_use_cannot_make_us_mint_one_per_request()
{
    // Each token was accepted once and then refused: healing bought a token per request, for as
    // long as the job ran (700 tokens for 700 requests).
    let sim = sim(SimConfig {
        revoke_every: Some(2),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let mut outcome = None;
    for i in 0..100 {
        if let Err(e) = client.get_json(ECHO).await {
            outcome = Some((i, e));
            break;
        }
    }
    let (stopped_at, err) = outcome.expect("the client stops replacing tokens");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.is_credentials(), "a batch stops on it: {err}");
    assert!(err.to_string().contains("at most one use"), "{err}");
    let tokens = sim.journal().token_requests;
    assert!(tokens <= 10, "{tokens} tokens for {stopped_at} requests");

    // Tokens revoked after two uses each are revocations in use: healed every time.
    let sim = common::sim(SimConfig {
        revoke_every: Some(3),
        ..SimConfig::default()
    })
    .await;
    let client = common::client(&sim);
    for _ in 0..60 {
        client.get_json(ECHO).await.unwrap();
    }
    assert!(sim.journal().token_requests >= 20);
}

// An attacker's review: once 8 tokens in a row were refused after one use, heals stopped until a
// token was accepted twice: after an outage of the API's token check, the job's dead token was
// never replaced until its own proactive refresh (hours later with 24-hour tokens).
#[tokio::test(start_paused = true)]
async fn regression_the_single_use_stop_lets_one_heal_through_every_five_minutes() {
    let sim = sim(SimConfig {
        revoke_every: Some(2),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let mut stopped = false;
    for _ in 0..100 {
        if client.get_json(ECHO).await.is_err() {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the streak stops the heals");
    let tokens = sim.journal().token_requests;
    // Stopped: no token request for 5 minutes, however many requests are refused.
    for _ in 0..10 {
        let e = client.get_json(ECHO).await.unwrap_err();
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    }
    tokio::time::advance(Duration::from_secs(299)).await;
    client.get_json(ECHO).await.unwrap_err();
    assert_eq!(sim.journal().token_requests, tokens);
    // Then one heal goes through (its token serves the request)...
    tokio::time::advance(Duration::from_secs(1)).await;
    client.get_json(ECHO).await.unwrap();
    assert_eq!(sim.journal().token_requests, tokens + 1);
    // ...and the next refusal stops them for 5 minutes again.
    for _ in 0..10 {
        let _ = client.get_json(ECHO).await;
    }
    assert_eq!(sim.journal().token_requests, tokens + 1);
}

#[tokio::test]
async fn regression_a_token_pool_stops_replacing_tokens_refused_after_one_use_too() {
    // The streak of tokens refused after one use was counted on the pool's first manager
    // whichever token was refused: the others' tokens were replaced for as long as the job ran.
    let sim = sim(SimConfig {
        revoke_every: Some(2),
        ..SimConfig::default()
    })
    .await;
    let client = builder(&sim, tokens(&sim))
        .add_token(tokens(&sim), None)
        .add_token(tokens(&sim), None)
        .build()
        .unwrap();
    let mut stopped = 0;
    for _ in 0..150 {
        if let Err(e) = client.get_json(ECHO).await {
            assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
            stopped += 1;
        }
    }
    let tokens = sim.journal().token_requests;
    assert!(
        stopped > 100,
        "every manager stops replacing: {stopped} refusals, {tokens} tokens"
    );
    // At most 8 single-use tokens in a row per manager, the first ones and the pool's prefetches.
    assert!(tokens <= 3 * 13, "{tokens} tokens for 150 requests");
}

/// A path the simulator answers with 401 whatever token the request carries, while it accepts
/// the same token everywhere else: an API that refuses every token, seen from the client.
const REFUSED: &str = "/api/v2/sim/status/401";

/// Sends `n` requests to `path` at once and checks that each ends in `Error::Unauthorized`.
async fn all_refused(client: &ApiClient, path: &str, n: usize) {
    let results =
        futures::future::join_all((0..n).map(|_| async { client.get(path).send().await })).await;
    for r in results {
        let err = r.expect_err("a 401 for every request");
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert!(err.is_credentials(), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn regression_an_api_answering_401_forever_costs_one_heal_per_window_not_a_token_per_request()
{
    // Each request healed its 401 with a token of its own: 20 requests, 10 more token requests
    // (found through the agent, which forwards whatever it is asked).
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    for _ in 0..20 {
        all_refused(&client, REFUSED, 1).await;
    }
    let j = sim.journal();
    assert_eq!(j.token_requests, 2, "the first token and one heal: {j:?}");
    assert_eq!(
        j.api_requests, 21,
        "each request sent once, the first twice"
    );
    // 20 at once: the 401s of the doubted token are passed back too.
    all_refused(&client, REFUSED, 20).await;
    assert_eq!(sim.journal().token_requests, 2);
    // 20 at once from the start: one token, one heal.
    let other = common::sim(SimConfig::default()).await;
    all_refused(&common::client(&other), REFUSED, 20).await;
    assert_eq!(other.journal().token_requests, 2);

    // Once the 15 s window has passed, one heal, whoever asks for it...
    tokio::time::advance(Duration::from_secs(15)).await;
    all_refused(&client, REFUSED, 20).await;
    assert_eq!(sim.journal().token_requests, 3);
    // ...and the next window is twice as long.
    tokio::time::advance(Duration::from_secs(29)).await;
    all_refused(&client, REFUSED, 5).await;
    assert_eq!(sim.journal().token_requests, 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    all_refused(&client, REFUSED, 5).await;
    assert_eq!(sim.journal().token_requests, 4);

    // A wrong secret still stops at once with a credentials message.
    let sim = common::sim(SimConfig::default()).await;
    let wrong = TokenManager::builder(common::grant(&sim, "wrong-secret")).build();
    let client = builder(&sim, wrong).build().unwrap();
    let err = client.get(REFUSED).send().await.unwrap_err();
    assert!(matches!(err, Error::Credentials { .. }), "{err:?}");
    assert_eq!(sim.journal().token_requests, 1);
}

// An attacker's review: a request that cannot be sent again (a streamed body) replaced the
// token on each 401 and never doubted it, so each upload to an API refusing every token bought
// a token, without end.
#[tokio::test(start_paused = true)]
async fn regression_uploads_that_cannot_be_sent_again_cannot_buy_a_token_each() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let upload = || {
        let body = reqwest::Body::wrap(http_body_util::Full::new(Bytes::from_static(b"once")));
        client
            .request(Method::POST, &format!("{ECHO}?status=401"))
            .body_stream(body)
            .send()
    };
    let mut errors = Vec::new();
    for _ in 0..20 {
        errors.push(upload().await.expect_err("a 401 for every upload"));
    }
    assert!(
        matches!(errors[0], Error::NotReplayable(_)),
        "{:?}",
        errors[0]
    );
    for e in &errors[1..] {
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    }
    let j = sim.journal();
    assert_eq!(j.token_requests, 2, "the first token and one heal: {j:?}");
    assert_eq!(j.api_requests, 20, "each upload sent once");
    // Once the window has passed, one heal again (one token), then refusals.
    tokio::time::advance(Duration::from_secs(15)).await;
    for _ in 0..5 {
        upload().await.unwrap_err();
    }
    assert_eq!(sim.journal().token_requests, 3);
}

// An attacker's review: requests that waited for a heal's token got it as any request does, so
// each one's 401 of that token healed it again (replacing it before the healing request could
// doubt it): an API refusing every token, answering slowly, cost a few tokens per burst instead
// of one heal.
#[tokio::test(start_paused = true)]
async fn regression_requests_that_waited_for_a_heal_do_not_heal_its_token_again() {
    let sim = sim(SimConfig {
        // A slow token endpoint: the burst below arrives while the heal's token is fetched.
        token_latency: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    client.get_json(ME).await.unwrap();
    assert_eq!(sim.journal().token_requests, 1);
    // The first request's 401 comes after 100 ms, its heal's token 200 ms later; the burst asks
    // for a token meanwhile, gets the heal's, and its (quick) 401s come before the replay's.
    let refused = format!("{ECHO}?status=401");
    let slowly = format!("{ECHO}?status=401&delay_ms=100");
    let first = client.get(&slowly).send();
    let burst = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        futures::future::join_all((0..20).map(|_| client.get(&refused).send())).await
    };
    let (first, burst) = futures::future::join(first, burst).await;
    for r in std::iter::once(first).chain(burst) {
        let e = r.expect_err("a 401 for every request");
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    }
    assert_eq!(
        sim.journal().token_requests,
        2,
        "one heal: {:?}",
        sim.journal()
    );
}

#[tokio::test(start_paused = true)]
async fn regression_a_path_answering_401_while_others_accept_the_token_cannot_flood_either() {
    // The token is accepted on /tokens/me, so each 401 on the refusing path looks like a
    // revocation: healing each would buy a token per pair of requests.
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    for _ in 0..20 {
        client.get_json(ME).await.unwrap();
        all_refused(&client, REFUSED, 1).await;
    }
    assert_eq!(sim.journal().token_requests, 2);
    // Concurrently, the same.
    futures::future::join(
        futures::future::join_all((0..10).map(|_| client.get_json(ME))),
        all_refused(&client, REFUSED, 10),
    )
    .await
    .0
    .into_iter()
    .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    assert_eq!(sim.journal().token_requests, 2);
    // After the window: one heal, refused again (the next window is longer).
    tokio::time::advance(Duration::from_secs(15)).await;
    all_refused(&client, REFUSED, 3).await;
    assert_eq!(sim.journal().token_requests, 3);

    // A token revoked once its window is over is healed at once (one token request), and the
    // heal working starts the row of windows again.
    tokio::time::advance(Duration::from_secs(30)).await;
    client.request(Method::DELETE, ME).send().await.unwrap();
    client.get_json(ME).await.unwrap();
    assert_eq!(sim.journal().token_requests, 4);
    assert_eq!(sim.journal().api_revoked_token, 1);
    // The healed token is no doubted one: revoked too, it is healed at once, every time.
    for n in 0..5 {
        client.request(Method::DELETE, ME).send().await.unwrap();
        client.get_json(ME).await.unwrap();
        assert_eq!(sim.journal().token_requests, 5 + n);
    }
    // And the refusing path costs one heal again, then a 15 s window (not 60 s).
    all_refused(&client, REFUSED, 3).await;
    assert_eq!(sim.journal().token_requests, 10);
    tokio::time::advance(Duration::from_secs(15)).await;
    all_refused(&client, REFUSED, 3).await;
    assert_eq!(sim.journal().token_requests, 11);
    assert_eq!(client.metrics().failures, 20 + 10 + 3 + 3 + 3);
}

#[tokio::test]
async fn forbidden_is_an_error_and_never_refreshes() {
    let sim = sim(SimConfig {
        forbidden_paths: vec!["/api/v2/users".into()],
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    client.tokens().bearer().await.unwrap();
    assert_eq!(sim.journal().token_requests, 1);
    let err = client
        .get("/api/v2/users?pageSize=5")
        .send()
        .await
        .unwrap_err();
    let Error::Forbidden { code, message, .. } = &err else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert_eq!(code.as_deref(), Some("missing.any.permissions"));
    assert!(!message.is_empty());
    assert!(err.to_string().contains("permission"), "{err}");
    let j = sim.journal();
    assert_eq!(j.token_requests, 1, "a 403 never causes a token request");
    assert_eq!(j.api_forbidden, 1, "and is not retried");
}

#[tokio::test]
async fn not_found_is_a_response() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let resp = client.get("/api/v2/users/nobody").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(matches!(
        resp.error_for_status().unwrap_err(),
        Error::Status { status: 404, .. }
    ));
    assert_eq!(sim.journal().api_not_found, 1);
}

/// A simulator that allows `per_second` requests per token in each 1-second window, announcing
/// it in `inin-ratelimit-*` headers or not.
async fn limited_sim(per_second: u32, headers: bool) -> tokenwarden_sim::Simulator {
    sim(SimConfig {
        api_rate_limit_per_minute: Some(per_second),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: headers,
        ..SimConfig::default()
    })
    .await
}

/// `GET path` `n` times, one after another, each succeeding.
async fn get_n(client: &ApiClient, path: &str, n: usize) {
    for _ in 0..n {
        client.get_json(path).await.unwrap();
    }
}

#[tokio::test]
async fn a_429_is_waited_out_with_retry_after() {
    let sim = limited_sim(3, true).await;
    // Without the early pause, the 429s come.
    let client = builder(&sim, tokens(&sim))
        .honor_rate_limit_headers(false)
        .build()
        .unwrap();
    get_n(&client, ME, 8).await;
    let j = sim.journal();
    assert!(j.api_rate_limited >= 1, "the limit was hit: {j:?}");
    assert_eq!(j.api_ok, 8);
    let m = client.metrics();
    assert_eq!(m.rate_limited_waits, j.api_rate_limited);
    assert_eq!(m.failures, 0);
    // The waits followed Retry-After: no 429 burst (at most one 429 per window and request).
    assert!(j.api_rate_limited <= 8, "{j:?}");
}

#[tokio::test]
async fn inin_ratelimit_headers_pace_requests_below_the_allowance() {
    let sim = limited_sim(3, true).await;
    let client = client(&sim);
    get_n(&client, ME, 7).await;
    let j = sim.journal();
    assert_eq!(j.api_ok, 7);
    assert_eq!(j.api_rate_limited, 0, "paced instead: {j:?}");
    // 3 per 1-second window, less a margin.
    let rate = client.learned_rate().unwrap();
    assert!((2.8..3.0).contains(&rate), "{rate}");
    // Requests waited for their turn (and for the reset, when a window's allowance was used
    // before it ended).
    assert!(
        client.metrics().throttle_waits >= 1,
        "{:?}",
        client.metrics()
    );
}

#[tokio::test]
async fn without_adaptive_pacing_a_used_up_allowance_still_holds_requests() {
    let sim = limited_sim(3, true).await;
    let client = builder(&sim, tokens(&sim))
        .adaptive_rate(false)
        .build()
        .unwrap();
    get_n(&client, ME, 4).await;
    let j = sim.journal();
    assert_eq!(j.api_ok, 4);
    assert_eq!(j.api_rate_limited, 0, "held instead: {j:?}");
    assert!(client.metrics().rate_limit_pauses >= 1);
    assert_eq!(client.learned_rate(), None);
}

#[tokio::test]
async fn a_429_without_budget_is_retries_exhausted() {
    let sim = sim(SimConfig::default()).await;
    let client = builder(&sim, tokens(&sim))
        .backoff(Backoff {
            max_attempts: 3,
            ..common::fast_backoff()
        })
        .build()
        .unwrap();
    // Retry-After: 0 keeps the test fast; the budget (3 attempts) ends it.
    let err = client
        .get("/api/v2/sim/status/429?retry_after=0")
        .send()
        .await
        .unwrap_err();
    let Error::RetriesExhausted { attempts, last, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(last.contains("429"), "{last}");
    assert_eq!(sim.journal().api_rate_limited, 3);
    // 429s with nothing accepted before them say nothing about a rate: the client is not slowed
    // down for what follows (it used to fall to one request every 10 s).
    assert_eq!(client.learned_rate(), None);
}

#[tokio::test]
async fn ten_percent_5xx_over_2000_gets_all_succeed() {
    let sim = sim(SimConfig {
        error_rate: 0.1,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let ok = futures::stream::iter(0..2000)
        .map(|_| {
            let c = client.clone();
            async move { c.get_json(ECHO).await }
        })
        .buffer_unordered(32)
        .try_fold(0u32, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(ok, 2000);
    let j = sim.journal();
    assert_eq!(j.api_ok, 2000);
    assert!(j.api_server_error > 100, "errors were injected: {j:?}");
    let m = client.metrics();
    assert_eq!(m.server_errors_retried, j.api_server_error);
    assert_eq!(m.requests, 2000);
    assert_eq!(m.attempts, j.api_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_closer_together_than_the_concurrency_are_all_healed() {
    // A token is revoked every 24 calls while 16 requests are in flight: a request healed after
    // one revocation may meet the next. A token the API had already accepted (or that another
    // request already reported) was revoked, not refused, so it is healed again (bounded) instead
    // of stopping as "not allowed". (A token revoked on its very first use is indistinguishable
    // from one the client may not use; the simulator's revoke_every can do that below about
    // twice the concurrency, real revocations are far rarer.)
    let sim = sim(SimConfig {
        revoke_every: Some(24),
        users: 100,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let ok = futures::stream::iter(0..1200)
        .map(|i| {
            let c = client.clone();
            async move {
                c.get_json(&format!(
                    "/api/v2/users/{}",
                    tokenwarden_sim::data::user_id(i % 100)
                ))
                .await
            }
        })
        .buffer_unordered(16)
        .try_fold(0u32, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(ok, 1200);
    let j = sim.journal();
    assert_eq!(j.api_ok, 1200);
    assert!(j.api_revoked_token >= 20, "{j:?}");
    assert_eq!(client.metrics().failures, 0);
}

#[tokio::test]
async fn dropped_connections_are_retried_for_gets() {
    let sim = sim(SimConfig {
        drop_rate: 0.1,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    for _ in 0..150 {
        client.get_json(ECHO).await.unwrap();
    }
    let j = sim.journal();
    assert_eq!(j.api_ok, 150);
    assert!(j.api_dropped > 0, "{j:?}");
    assert_eq!(client.metrics().transport_retries, j.api_dropped);
}

/// The number of echo requests the simulator has received so far (the echo's own counter, which
/// counts arrivals, before any delay), minus this probe.
async fn echo_arrivals(client: &tokenwarden::ApiClient) -> u64 {
    let v = client.get_json(ECHO).await.unwrap();
    v["counter"].as_u64().unwrap() - 1
}

#[tokio::test]
async fn an_unmarked_post_that_timed_out_is_not_replayed() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let err = client
        .request(Method::POST, "/api/v2/sim/echo?delay_ms=2000")
        .json(&serde_json::json!({"create": "something"}))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        echo_arrivals(&client).await,
        1,
        "the POST reached the server once"
    );
    let m = client.metrics();
    assert_eq!(m.retries, 0);
    assert_eq!(m.transport_retries, 0);
}

#[tokio::test]
async fn a_post_marked_replay_safe_is_replayed_after_a_timeout() {
    let sim = sim(SimConfig::default()).await;
    let client = builder(&sim, tokens(&sim))
        .backoff(Backoff {
            max_attempts: 3,
            ..common::fast_backoff()
        })
        .build()
        .unwrap();
    let err = client
        .request(Method::POST, "/api/v2/sim/echo?delay_ms=2000")
        .json(&serde_json::json!({"query": "read only"}))
        .replay_safe()
        .timeout(Duration::from_millis(150))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(echo_arrivals(&client).await, 3);
    assert_eq!(client.metrics().transport_retries, 2);
}

#[tokio::test]
async fn an_unmarked_post_that_got_a_5xx_is_returned_not_replayed() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    client.tokens().bearer().await.unwrap();
    sim.update(|c| c.error_rate = 1.0);
    let resp = client
        .request(Method::POST, ECHO)
        .body(Bytes::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_server_error());
    assert_eq!(sim.journal().api_server_error, 1);

    // The same POST marked safe is retried until the budget runs out.
    let err = client
        .request(Method::POST, ECHO)
        .body(Bytes::from_static(b"x"))
        .replay_safe()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 8, .. }),
        "{err:?}"
    );
    assert_eq!(sim.journal().api_server_error, 9);
}

#[tokio::test]
async fn a_streaming_body_that_must_be_resent_is_not_replayable() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    client.request(Method::DELETE, ME).send().await.unwrap();
    let stream = reqwest::Body::wrap(http_body_util::Full::new(Bytes::from_static(b"once")));
    let err = client
        .request(Method::POST, ECHO)
        .body_stream(stream)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotReplayable(_)), "{err:?}");
    assert!(err.to_string().contains("streaming body"), "{err}");
    // A body made of bytes is fine.
    let ok = client
        .request(Method::POST, ECHO)
        .body_stream(reqwest::Body::from("bytes"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.json::<serde_json::Value>().unwrap()["body"], "bytes");
}

#[tokio::test]
async fn a_cross_origin_redirect_is_not_followed_by_default_and_names_the_target() {
    let api = sim(SimConfig::default()).await;
    let other = sim(SimConfig::default()).await;
    let client = client(&api);
    let target = format!("{}{ECHO}?sig=SECRET-QUERY", other.base_url());
    let err = client
        .get("/api/v2/sim/redirect")
        .query([("location", target.as_str())])
        .send()
        .await
        .unwrap_err();
    let Error::Redirect {
        target: Some(origin),
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*origin, other.base_url().trim_end_matches('/'));
    let msg = err.to_string();
    assert!(
        msg.contains(origin.as_str()) && msg.contains("follow_redirects_across_origins"),
        "{msg}"
    );
    assert!(!msg.contains("SECRET-QUERY"), "only the origin: {msg}");
    assert_eq!(
        other.journal().api_requests,
        0,
        "nothing reached the other host"
    );
    assert_eq!(api.journal().api_redirect, 1);
    assert_eq!(client.metrics().redirects_followed, 0);
}

#[tokio::test]
async fn a_followed_cross_origin_redirect_carries_neither_the_token_nor_caller_headers() {
    let api = sim(SimConfig::default()).await;
    let other = Recorder::start(Reply::Ok).await;
    let client = builder(&api, tokens(&api))
        .follow_redirects_across_origins(true)
        .build()
        .unwrap();
    let target = format!("{}/landing", other.url());
    let resp = client
        .get("/api/v2/sim/redirect")
        .query([("location", target.as_str())])
        .header(
            http::HeaderName::from_static("x-caller-secret"),
            http::HeaderValue::from_static("s3cr3t"),
        )
        .header(
            http::header::COOKIE,
            http::HeaderValue::from_static("session=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = other.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let head = seen[0].to_ascii_lowercase();
    assert!(head.starts_with("get /landing "), "{head}");
    for absent in ["authorization", "x-caller-secret", "cookie"] {
        assert!(!head.contains(absent), "{absent} crossed: {head}");
    }
    assert!(
        head.contains("accept: application/json"),
        "own headers go: {head}"
    );
    // On the API's own origin the caller's header was sent.
    assert_eq!(client.metrics().redirects_followed, 1);
    let a = api.journal();
    assert_eq!(a.api_redirect, 1);
    assert!(a.entries.iter().all(|e| e.authorization_present));
}

#[tokio::test]
async fn a_cross_origin_redirect_back_home_gets_the_token_again() {
    // API → other origin → API: the token goes only to the API's legs.
    let api = sim(SimConfig::default()).await;
    let other = sim(SimConfig::default()).await;
    let client = builder(&api, tokens(&api))
        .follow_redirects_across_origins(true)
        .build()
        .unwrap();
    let home = format!("{}{ECHO}", api.base_url());
    // The other simulator answers its redirect route only with a token: a 401 without one,
    // handed back as it is (not about our token).
    let via_other = format!(
        "{}/api/v2/sim/redirect?location={}",
        other.base_url(),
        percent_encoding::utf8_percent_encode(&home, percent_encoding::NON_ALPHANUMERIC)
    );
    let resp = client
        .get("/api/v2/sim/redirect")
        .query([("location", via_other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let o = other.journal();
    assert_eq!(o.api_requests, 1);
    assert!(!o.entries[0].authorization_present);
    assert_eq!(o.entries[0].outcome, Outcome::MissingToken);
    assert_eq!(
        api.journal().token_requests,
        1,
        "no refresh for someone else's 401"
    );
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_token() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let resp = client
        .get("/api/v2/sim/redirect")
        .query([("location", ECHO)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.url().path().ends_with("/sim/echo"));
    let j = sim.journal();
    assert_eq!(j.api_redirect, 1);
    assert_eq!(j.ok_count("GET", ECHO), 1);
    assert!(j.entries.iter().all(|e| e.authorization_present));
}

#[tokio::test]
async fn redirects_are_bounded() {
    let sim = sim(SimConfig::default()).await;
    let client = builder(&sim, tokens(&sim))
        .max_redirects(1)
        .build()
        .unwrap();
    let second = format!("/api/v2/sim/redirect?location={ECHO}");
    let err = client
        .get("/api/v2/sim/redirect")
        .query([("location", second.as_str())])
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Redirect { .. }), "{err:?}");
    assert_eq!(sim.journal().api_redirect, 2);
}

#[tokio::test]
async fn the_client_side_rate_limit_paces_every_task() {
    let sim = sim(SimConfig::default()).await;
    let client = builder(&sim, tokens(&sim))
        .rate_limit(RateLimit::per_second(20))
        .build()
        .unwrap();
    client.tokens().bearer().await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get_json(ECHO).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let j = sim.journal();
    let times: Vec<u64> = j
        .entries
        .iter()
        .filter(|e| e.path.starts_with(ECHO))
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(times.len(), 10);
    let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
    // 10 requests at 20/s: the last one leaves 450 ms after the first.
    assert!(spread >= 400, "spread {spread} ms: {times:?}");
    assert!(client.metrics().throttle_waits >= 9);
}

#[tokio::test]
async fn http_api_base_is_refused_off_loopback() {
    let sim = sim(SimConfig::default()).await;
    let err = tokenwarden::ApiClient::builder("http://api.example.com", tokens(&sim))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

fn static_tokens(token: &str) -> TokenManager {
    TokenManager::builder(StaticToken::new(AccessToken::new(token))).build()
}

// ---- errors say what happened -------------------------------------------------------------------

#[tokio::test]
async fn connection_refused_names_its_cause() {
    let refused = tokenwarden_test_support::RefusedPort::new();
    let client = ApiClient::builder(&refused.url(), static_tokens("token-for-a-closed-port"))
        .backoff(Backoff {
            max_attempts: 2,
            ..common::fast_backoff()
        })
        .build()
        .unwrap();
    let err = client.get(ME).send().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(msg.contains("Connection refused"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    // An unmarked POST that never connected is retried too (nothing was sent), same message.
    let err = client
        .request(Method::POST, ECHO)
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn an_unresolvable_host_names_its_cause() {
    let client = ApiClient::builder(
        "https://tokenwarden-test.invalid",
        static_tokens("token-for-an-invalid-host"),
    )
    .backoff(Backoff {
        max_attempts: 1,
        ..common::fast_backoff()
    })
    .proxies(tokenwarden::client::ProxyConfig::none())
    .build()
    .unwrap();
    let err = client.get(ME).send().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("dns error"), "{msg}");
    assert!(msg.contains("tokenwarden-test.invalid"), "{msg}");
}

#[tokio::test]
async fn a_tls_failure_names_its_cause() {
    // https to the simulator, which speaks plain http: the handshake fails.
    let sim = sim(SimConfig::default()).await;
    let https = format!("https://{}", sim.addr());
    let client = ApiClient::builder(&https, static_tokens("token-for-a-tls-failure"))
        .backoff(Backoff {
            max_attempts: 1,
            ..common::fast_backoff()
        })
        .build()
        .unwrap();
    let err = client.get(ME).send().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("InvalidContentType"), "{msg}");
}

#[tokio::test]
async fn a_transport_error_prints_its_chain_once() {
    // An unmarked POST that timed out is Error::Transport: the chain is in its message, and not
    // repeated by source() (anyhow's "{:#}" would print it twice).
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let err = client
        .request(Method::POST, "/api/v2/sim/echo?delay_ms=2000")
        .body("x")
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    let Error::Transport { error, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(error.is_timeout());
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(std::error::Error::source(&err).is_none());
}

// ---- proxies ----------------------------------------------------------------------------------

fn proxy_vars(proxy: &str) -> tokenwarden::client::ProxyConfig {
    let proxy = proxy.to_string();
    tokenwarden::client::ProxyConfig::from_vars(move |name| {
        matches!(name, "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY").then(|| proxy.clone())
    })
}

#[tokio::test]
async fn loopback_never_goes_through_a_proxy() {
    let sim = sim(SimConfig::default()).await;
    let proxy = Recorder::start(Reply::Close).await;
    let client = builder(&sim, tokens(&sim))
        .proxies(proxy_vars(&proxy.url()))
        .build()
        .unwrap();
    client.get_json(ME).await.unwrap();
    assert_eq!(proxy.connections(), 0, "{:?}", proxy.requests());
    assert_eq!(sim.journal().api_ok, 1);
}

#[tokio::test]
async fn other_hosts_go_through_the_proxy() {
    // The same settings do send a remote host through the proxy (as a CONNECT tunnel).
    let proxy = Recorder::start(Reply::Close).await;
    let client = ApiClient::builder("https://api.example.test", static_tokens("tunnelled-token"))
        .backoff(Backoff {
            max_attempts: 1,
            ..common::fast_backoff()
        })
        .proxies(proxy_vars(&proxy.url()))
        .build()
        .unwrap();
    client.get(ME).send().await.unwrap_err();
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("CONNECT api.example.test:443 "),
        "{seen:?}"
    );
    assert!(
        !seen[0].contains("tunnelled-token"),
        "the proxy only relays: {seen:?}"
    );
}

#[tokio::test]
async fn plain_http_through_a_proxy_is_refused_unless_allowed() {
    let proxy = Recorder::start(Reply::Ok).await;
    let base = "http://api.example.test";
    let err = ApiClient::builder(base, static_tokens("plain-http-token"))
        .allow_insecure_http(true)
        .proxies(proxy_vars(&proxy.url()))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("plain http") && err.to_string().contains("NO_PROXY"),
        "{err}"
    );
    // Allowed: the proxy gets the whole request, token included (which is why it is refused).
    let client = ApiClient::builder(base, static_tokens("plain-http-token"))
        .allow_insecure_http(true)
        .proxies(proxy_vars(&proxy.url()).allow_plain_http(true))
        .build()
        .unwrap();
    assert_eq!(
        client.get(ME).send().await.unwrap().status(),
        StatusCode::OK
    );
    let seen = proxy.requests();
    assert!(
        seen[0].starts_with("GET http://api.example.test/api/v2/tokens/me "),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_redirect_to_plain_http_through_a_proxy_is_refused() {
    // The API base is loopback (never proxied); a redirect to a remote plain-http host would go
    // through the proxy, so it is refused before anything is sent there.
    let sim = sim(SimConfig::default()).await;
    let proxy = Recorder::start(Reply::Ok).await;
    let client = builder(&sim, tokens(&sim))
        .follow_redirects_across_origins(true)
        .proxies(proxy_vars(&proxy.url()))
        .build()
        .unwrap();
    let err = client
        .get("/api/v2/sim/redirect?location=http://remote.example.test/x")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(proxy.connections(), 0);
}

// ---- bounded answers ----------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_limit_is_an_error_and_is_not_retried() {
    let sim = sim(SimConfig::default()).await;
    let client = builder(&sim, tokens(&sim))
        .max_response_bytes(1 << 20)
        .build()
        .unwrap();
    // Announced by Content-Length: refused before reading.
    let err = client
        .get("/api/v2/sim/bytes?n=5000000")
        .send()
        .await
        .unwrap_err();
    let Error::ResponseTooLarge { limit, length, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*limit, *length), (1 << 20, Some(5_000_000)));
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    // Not announced: cut off once past the limit.
    let err = client
        .get("/api/v2/sim/bytes?n=5000000&chunked=true")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { length: None, .. }),
        "{err:?}"
    );
    // Each was sent once: a larger answer is not a reason to ask again.
    let j = sim.journal();
    assert_eq!(j.api_requests, 2);
    assert_eq!(client.metrics().retries, 0);
    // At the limit exactly is fine.
    let ok = client
        .get(&format!("/api/v2/sim/bytes?n={}&chunked=true", 1 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.body().len(), 1 << 20);
}

// ---- adaptive pacing ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_teaches_every_task_of_the_client_a_rate() {
    // A limit the server does not announce: the first 429 sets a rate that all tasks share.
    let sim = limited_sim(20, false).await;
    let run = |adaptive: bool| {
        let client = builder(&sim, tokens(&sim))
            .adaptive_rate(adaptive)
            .build()
            .unwrap();
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        for _ in 0..4 {
                            c.get_json(ECHO).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            client
        }
    };
    let learned = run(true).await;
    let m = learned.metrics();
    assert_eq!(m.failures, 0);
    assert!(m.rate_limited_waits >= 1, "the limit was met: {m:?}");
    assert!(m.rate_cuts >= 1, "{m:?}");
    let rate = learned.learned_rate().expect("a rate was learned");
    // What the server let through, spread over the time it took plus the Retry-After.
    assert!(rate > 0.0 && rate < 21.0, "{rate}");
    assert!(m.throttle_waits > 0, "tasks waited for their turn: {m:?}");
    // Without it, nothing is learned.
    let fixed = run(false).await;
    assert_eq!(fixed.learned_rate(), None);
    assert_eq!(fixed.metrics().rate_cuts, 0);
}
