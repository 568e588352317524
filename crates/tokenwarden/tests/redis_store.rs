//! The Redis token store against a real redis-server (see `tokenwarden_test_support::redis_server`) and the
//! simulator: one token and one refresh for a fleet, fenced locks, keyed invalidation, rotated
//! refresh tokens, a shared rate budget, and Redis that is down, slow or restarted.
//!
//! Each `RedisStore` built here stands for one process of a fleet: stores built separately share
//! nothing but Redis.

mod common;

use std::sync::Arc;
use std::time::Duration;
use tokenwarden::{
    ClientSecret, RefreshToken, RefreshTokenGrant, TokenEndpoint, TokenManager, TokenStore,
    client::SharedBudget, store::LockAttempt, store::RedisOptions, store::RedisStore,
    store::RefreshTokenStore, store::StoredToken, store::TokenKey,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};
use tokenwarden_test_support::redis_server::{self, RedisServer};

fn key(sim: &Simulator) -> TokenKey {
    TokenKey::new(
        &tokenwarden::TokenUrl::parse(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
    )
    .with_secret(ClientSecret::new(DEFAULT_CLIENT_SECRET))
}

fn fast() -> RedisOptions {
    let mut o = RedisOptions::default();
    o.timeout = Duration::from_millis(300);
    o.retry_after = Duration::from_millis(100);
    o.lock_wait = Duration::from_secs(3);
    o
}

/// One "process": its own store (own connection) for the fleet's entry.
fn store(redis: &str, sim: &Simulator) -> RedisStore {
    RedisStore::open(redis, key(sim), fast()).expect("store")
}

fn manager(sim: &Simulator, store: RedisStore) -> TokenManager {
    TokenManager::builder(common::grant(sim, DEFAULT_CLIENT_SECRET))
        .backoff(common::fast_backoff())
        .store(store)
        .build()
}

/// A "process" signed in with `initial` (used up by the first refresh of any of them), keeping
/// the fleet's refresh token in `store`.
fn rotating(sim: &Simulator, initial: &RefreshToken, store: &RedisStore) -> RefreshTokenGrant {
    RefreshTokenGrant::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
        initial.clone(),
    )
    .with_store(Arc::new(store.refresh_tokens()))
}

/// The refresh token a sign-in gave the fleet, saved once in Redis.
async fn signed_in(sim: &Simulator, redis: &str) -> RefreshToken {
    let initial = RefreshToken::new(sim.issue_refresh_token(DEFAULT_CLIENT_ID));
    store(redis, sim)
        .refresh_tokens()
        .save(&initial)
        .await
        .unwrap();
    initial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_starting_together_mint_one_token() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let managers: Vec<_> = (0..8)
        .map(|_| manager(&sim, store(&redis.url(), &sim)))
        .collect();
    let bearers = futures::future::join_all(managers.iter().map(|m| m.bearer())).await;
    let tokens: std::collections::BTreeSet<String> = bearers
        .into_iter()
        .map(|b| b.unwrap().access_token().expose_secret().to_string())
        .collect();
    let j = sim.journal_counters();
    assert_eq!(j.tokens_issued, 1, "one token for the fleet: {j:?}");
    assert_eq!(j.max_concurrent_token_requests, 1);
    assert_eq!(tokens.len(), 1, "every process uses the same token");
    let adopted: u64 = managers
        .iter()
        .map(|m| m.metrics().adopted_from_store)
        .sum();
    assert_eq!(adopted, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_per_period_for_the_fleet_while_tokens_expire() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let client_of = |_| {
        common::builder(&sim, manager(&sim, store(&redis.url(), &sim)))
            .build()
            .unwrap()
    };
    let clients: Vec<_> = (0..4).map(client_of).collect();
    let started = tokio::time::Instant::now();
    let run = Duration::from_millis(2500);
    let workers = clients.iter().map(|c| async move {
        while started.elapsed() < run {
            c.get("/api/v2/users/user-000001")
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
    });
    futures::future::join_all(workers).await;
    let j = sim.journal_counters();
    // A 1-s token is refreshed after 0.625 to 0.75 s: about 4 tokens in 2.5 s for the whole
    // fleet, where four processes on their own would mint about 16.
    let periods = (started.elapsed().as_secs_f64() / 0.625).ceil() as u64;
    assert!(
        j.tokens_issued <= periods + 1,
        "{} tokens in {:?}",
        j.tokens_issued,
        started.elapsed()
    );
    assert_eq!(j.max_concurrent_token_requests, 1);
    assert_eq!(j.api_expired_token, 0);
    assert!(j.api_ok > 100, "{j:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_fenced_and_only_its_holder_releases_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let (a, b) = (store(&redis.url(), &sim), store(&redis.url(), &sim));
    let LockAttempt::Held(held) = a.try_lock().await.unwrap() else {
        panic!("a free lock is taken")
    };
    assert!(matches!(b.try_lock().await.unwrap(), LockAttempt::Busy));
    // The lease runs out (simulated: the key is deleted) and b takes the lock.
    let lock_key = a
        .key_names()
        .into_iter()
        .find(|k| k.ends_with(":lock"))
        .unwrap();
    redis.command(&["DEL", &lock_key]);
    let LockAttempt::Held(b_held) = b.try_lock().await.unwrap() else {
        panic!("b takes the free lock")
    };
    // a, whose lease ran out, neither overwrites b's token nor releases b's lock.
    #[allow(clippy::disallowed_methods)] // stored tokens carry wall-clock times
    let wall = std::time::SystemTime::now();
    let token = |t: &str| StoredToken {
        access_token: tokenwarden::AccessToken::new(t),
        obtained_at: wall,
        expires_at: wall + Duration::from_secs(60),
    };
    b.save(&token("fenced-token-of-b")).await.unwrap();
    a.save(&token("fenced-token-of-a")).await.unwrap();
    let stored = b.load().await.unwrap().expect("b's token");
    assert_eq!(stored.access_token.expose_secret(), "fenced-token-of-b");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await; // the release runs on a task
    assert!(
        matches!(a.try_lock().await.unwrap(), LockAttempt::Busy),
        "b still holds it"
    );
    drop(b_held);
    let mut free = false;
    for _ in 0..50 {
        if let LockAttempt::Held(_) = a.try_lock().await.unwrap() {
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(free, "b's release freed the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_withdrawn_fleet_wide_and_replaced_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let (a, b) = (
        manager(&sim, store(&redis.url(), &sim)),
        manager(&sim, store(&redis.url(), &sim)),
    );
    let first_a = a.bearer().await.unwrap();
    let first_b = b.bearer().await.unwrap();
    assert_eq!(first_a.access_token(), first_b.access_token());
    // The API refuses the token: a reports it first, then b (same token).
    let new_a = a.rejected(&first_a).await.unwrap();
    let new_b = b.rejected(&first_b).await.unwrap();
    assert_ne!(new_a.access_token(), first_a.access_token());
    assert_eq!(
        new_a.access_token(),
        new_b.access_token(),
        "b adopted a's new token"
    );
    assert_eq!(sim.journal_counters().tokens_issued, 2);
    // A 401 for a token already replaced in the store does not remove the new one.
    let s = store(&redis.url(), &sim);
    s.invalidate(first_a.access_token()).await.unwrap();
    let stored = s.load().await.unwrap().expect("the new token stays");
    assert_eq!(&stored.access_token, new_a.access_token());
    s.invalidate(new_a.access_token()).await.unwrap();
    assert!(
        s.load().await.unwrap().is_none(),
        "compare-and-delete of the current one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_tokens_are_never_presented_twice() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let initial = signed_in(&sim, &redis.url()).await;
    let process = || {
        TokenManager::builder(rotating(&sim, &initial, &store(&redis.url(), &sim)))
            .backoff(common::fast_backoff())
            .store(store(&redis.url(), &sim))
            .build()
    };
    let (a, b, c) = (process(), process(), process());
    // Each process in turn needs a new token: each presents the newest refresh token, never the
    // one it was started with once another process used it.
    let ta = a.bearer().await.unwrap();
    let tb = b.rejected(&b.bearer().await.unwrap()).await.unwrap();
    let tc = c.rejected(&c.bearer().await.unwrap()).await.unwrap();
    // a's token was replaced meanwhile: a adopts the fleet's newest instead of refreshing.
    let ta2 = a.rejected(&ta).await.unwrap();
    assert_eq!(ta2.access_token(), tc.access_token());
    // When a must refresh, it presents the newest refresh token, not the one it rotated first
    // (which b used).
    store(&redis.url(), &sim)
        .invalidate(tc.access_token())
        .await
        .unwrap();
    let ta3 = a.rejected(&ta2).await.unwrap();
    let j = sim.journal_counters();
    assert_eq!(
        j.token_invalid_grant, 0,
        "a used refresh token was presented: {j:?}"
    );
    assert_eq!(j.refresh_grants, 4);
    assert_eq!(j.max_concurrent_token_requests, 1);
    let distinct: std::collections::BTreeSet<_> = [&ta, &tb, &tc, &ta3]
        .iter()
        .map(|t| t.access_token().expose_secret().to_string())
        .collect();
    assert_eq!(distinct.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_and_records_reveal_neither_the_client_nor_the_secret() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let m = manager(&sim, store(&redis.url(), &sim));
    let bearer = m.bearer().await.unwrap();
    let keys = redis.command(&["KEYS", "*"]).unwrap();
    assert!(
        !keys.contains(DEFAULT_CLIENT_ID) && !keys.contains("127.0.0.1"),
        "{keys}"
    );
    let names = store(&redis.url(), &sim).key_names();
    let token_key = names.iter().find(|k| k.ends_with(":token")).unwrap();
    let record = redis.command(&["HGETALL", token_key]).unwrap();
    assert!(record.contains(bearer.access_token().expose_secret()));
    assert!(record.contains("hmac-sha256:"), "{record}");
    assert!(!record.contains(DEFAULT_CLIENT_SECRET) && !record.contains(DEFAULT_CLIENT_ID));
    // The record expires with the token (86399 s).
    let pttl: i64 = redis.command(&["PTTL", token_key]).unwrap()[1..]
        .trim()
        .parse()
        .unwrap();
    assert!((86_000_000..=86_399_000).contains(&pttl), "{pttl}");
    // Another secret does not get the fleet's token.
    let other = RedisStore::open(
        &redis.url(),
        TokenKey::new(
            &tokenwarden::TokenUrl::parse(&sim.token_url()).unwrap(),
            DEFAULT_CLIENT_ID,
        )
        .with_secret(ClientSecret::new("another-secret-1")),
        fast(),
    )
    .unwrap();
    assert!(other.load().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_budget_is_one_schedule_for_every_process() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let (a, b) = (
        store(&redis.url(), &sim).rate_budget(),
        store(&redis.url(), &sim).rate_budget(),
    );
    let interval = Duration::from_millis(100);
    let mut waits = vec![];
    for i in 0..6 {
        let budget: &dyn SharedBudget = if i % 2 == 0 { &a } else { &b };
        waits.push(
            budget
                .reserve(interval, Duration::ZERO)
                .await
                .expect("reachable"),
        );
    }
    // Six reservations at once from two processes: slots 0, 100, ... 500 ms out (less the few
    // milliseconds the calls took).
    for (i, w) in waits.iter().enumerate() {
        let slot = interval * i as u32;
        assert!(
            *w <= slot && *w + Duration::from_millis(50) >= slot,
            "{i}: {w:?}"
        );
    }
    // A hold moves the schedule for everyone.
    a.hold(Duration::from_secs(2)).await;
    let w = b.reserve(interval, Duration::ZERO).await.unwrap();
    assert!(w > Duration::from_millis(1900), "{w:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn redis_down_from_the_start_means_local_refreshes_and_one_warning() {
    let sim = common::sim(SimConfig {
        token_ttl: Duration::from_millis(1200),
        ..SimConfig::default()
    })
    .await;
    let nowhere = format!("redis://127.0.0.1:{}", redis_server::free_port());
    let s = store(&nowhere, &sim);
    let m = manager(&sim, s.clone());
    let mut previous = None;
    for _ in 0..3 {
        let b = m.bearer().await.unwrap();
        if let Some(p) = previous.replace(b.clone()) {
            assert_ne!(p.access_token(), b.access_token());
        }
        // The next one is a refresh after a 401.
        m.rejected(&b).await.unwrap();
    }
    assert!(sim.journal_counters().tokens_issued >= 3);
    assert_eq!(s.outages(), 1, "one warning for the outage");
}

#[tokio::test(flavor = "current_thread")]
async fn a_redis_that_never_answers_is_timed_out_not_waited_for() {
    // Accepts connections and never answers: every call times out.
    let silent = tokenwarden_test_support::loopback::black_hole();
    let url = format!("redis://{}", silent.addr);
    let sim = common::sim(SimConfig::default()).await;
    let s = store(&url, &sim);
    let m = manager(&sim, s.clone());
    let started = tokio::time::Instant::now();
    let b = m.bearer().await.unwrap();
    // One call's deadline (300 ms), then the store is left alone.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    m.rejected(&b).await.unwrap();
    assert_eq!(sim.journal_counters().tokens_issued, 2);
    assert_eq!(s.outages(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_fleet_converges_on_one_token_again() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let (a_store, b_store) = (store(&redis.url(), &sim), store(&redis.url(), &sim));
    let (a, b) = (
        manager(&sim, a_store.clone()),
        manager(&sim, b_store.clone()),
    );
    let t = a.bearer().await.unwrap();
    assert_eq!(b.bearer().await.unwrap().access_token(), t.access_token());
    redis.kill();
    // While Redis is down each process gets its own token.
    let ta = a.rejected(&t).await.unwrap();
    let tb = b.rejected(&t).await.unwrap();
    assert_ne!(ta.access_token(), tb.access_token());
    redis.restart();
    // Once the store is tried again (after `retry_after`), the next refreshes share one token.
    let mut converged = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let na = a.rejected(&a.bearer().await.unwrap()).await.unwrap();
        let nb = b.rejected(&b.bearer().await.unwrap()).await.unwrap();
        if na.access_token() == nb.access_token() {
            converged = true;
            break;
        }
    }
    assert!(converged, "the processes share one token again");
    // Down again soon after it came back: the same outage, not a second warning.
    let warned = (a_store.outages(), b_store.outages());
    redis.kill();
    a.rejected(&a.bearer().await.unwrap()).await.unwrap();
    b.rejected(&b.bearer().await.unwrap()).await.unwrap();
    assert_eq!((a_store.outages(), b_store.outages()), warned);
    assert!(warned.0 <= 1 && warned.1 <= 1, "{warned:?}");
}

#[tokio::test]
async fn a_password_in_the_url_is_never_shown_and_insecure_tls_is_refused() {
    let sim = common::sim(SimConfig::default()).await;
    let s = store("redis://user:hunter2-redis-password@127.0.0.1:1/0", &sim);
    let shown = format!("{s:?} {:?}", s.rate_budget());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
    for bad in [
        "rediss://127.0.0.1:6380/#insecure",
        "http://127.0.0.1:6379",
        "redis://",
        "not a url",
    ] {
        let e = RedisStore::open(bad, key(&sim), fast()).unwrap_err();
        assert!(matches!(e, tokenwarden::Error::Config(_)), "{bad}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_saved_by_a_machine_whose_clock_is_off_is_judged_by_what_redis_has_left() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let (a, b) = (store(&redis.url(), &sim), store(&redis.url(), &sim));
    #[allow(clippy::disallowed_methods)] // stored tokens carry wall-clock times
    let now = std::time::SystemTime::now();
    // Saved by a machine whose clock runs an hour behind: by its times the token expired long
    // ago, but it has 60 s left.
    let hour = Duration::from_secs(3600);
    a.save(&StoredToken {
        access_token: tokenwarden::AccessToken::new("token-from-a-slow-clock"),
        obtained_at: now - hour,
        expires_at: now + Duration::from_secs(60),
    })
    .await
    .unwrap();
    let token_key = a
        .key_names()
        .into_iter()
        .find(|k| k.ends_with(":token"))
        .unwrap();
    let past = |d: Duration| {
        (now - d)
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string()
    };
    redis.command(&[
        "HSET",
        &token_key,
        "obtained_at_ms",
        &past(hour + Duration::from_secs(60)),
        "expires_at_ms",
        &past(hour),
    ]);
    let loaded = b
        .load()
        .await
        .unwrap()
        .expect("still valid by Redis's clock");
    let left = loaded.expires_at.duration_since(now).unwrap();
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(61),
        "{left:?}"
    );
    let lifetime = loaded
        .expires_at
        .duration_since(loaded.obtained_at)
        .unwrap();
    assert_eq!(lifetime, Duration::from_secs(60));
}

#[tokio::test(flavor = "current_thread")]
async fn regression_the_lock_is_given_back_before_the_token_is_handed_out() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let s = store(&redis.url(), &sim);
    let lock_key = s
        .key_names()
        .into_iter()
        .find(|k| k.ends_with(":lock"))
        .unwrap();
    let m = manager(&sim, s);
    m.bearer().await.unwrap();
    // Read at once, without yielding to the runtime: a release left to a task would not have run
    // yet, and a process that exits now (`tokenwarden token`) would leave the lock to expire.
    assert_eq!(redis.command(&["EXISTS", &lock_key]).unwrap(), ":0\r\n");
}

#[tokio::test(flavor = "current_thread")]
async fn without_redis_no_refresh_token_is_presented() {
    let sim = common::sim(SimConfig::default()).await;
    let nowhere = format!("redis://127.0.0.1:{}", redis_server::free_port());
    let initial = RefreshToken::new(sim.issue_refresh_token(DEFAULT_CLIENT_ID));
    let m = TokenManager::builder(rotating(&sim, &initial, &store(&nowhere, &sim)))
        .backoff(tokenwarden::retry::Backoff {
            max_attempts: 2,
            ..common::fast_backoff()
        })
        .build();
    let e = m.bearer().await.unwrap_err();
    assert!(e.to_string().contains("fleet's lock"), "{e}");
    assert_eq!(
        sim.journal_counters().token_requests,
        0,
        "nothing presented"
    );
}

/// Processes that share only the refresh token (each keeps its own access token) and all refresh
/// at once: the refresh token's lock in Redis makes them take turns, each presenting the one its
/// predecessor saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_take_turns_fleet_wide() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let initial = signed_in(&sim, &redis.url()).await;
    let managers: Vec<_> = (0..4)
        .map(|_| {
            TokenManager::builder(rotating(&sim, &initial, &store(&redis.url(), &sim)))
                .backoff(common::fast_backoff())
                .build()
        })
        .collect();
    for bearer in futures::future::join_all(managers.iter().map(|m| m.bearer())).await {
        bearer.unwrap();
    }
    let j = sim.journal_counters();
    assert_eq!(j.refresh_grants, 4, "{j:?}");
    assert_eq!(
        j.token_invalid_grant, 0,
        "a used refresh token was presented: {j:?}"
    );
    assert_eq!(j.max_concurrent_token_requests, 1, "{j:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn regression_the_refresh_tokens_lock_is_given_back_before_the_token_is_handed_out() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = common::sim(SimConfig::default()).await;
    let s = store(&redis.url(), &sim);
    let lock_key = s
        .key_names()
        .into_iter()
        .find(|k| k.ends_with(":refresh-lock"))
        .unwrap();
    let initial = signed_in(&sim, &redis.url()).await;
    let m = TokenManager::builder(rotating(&sim, &initial, &s))
        .backoff(common::fast_backoff())
        .build();
    m.bearer().await.unwrap();
    // Read at once, without yielding to the runtime: a release left to a task would not have run
    // yet, and a process that exits now would make the next one wait out the lock's lease.
    assert_eq!(redis.command(&["EXISTS", &lock_key]).unwrap(), ":0\r\n");
}
