//! The record of a run against the simulator: every number the recorder gives matches what the
//! simulator's journal saw, and the series adds up to the totals.

mod common;

use common::*;
use futures::StreamExt as _;
use std::time::Duration;
use tokenwarden::observe::{Class, Recorder, RefreshReason, render_prometheus};
use tokenwarden_sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_refresh_and_heal_is_recorded_as_the_server_saw_it() {
    let sim = sim(SimConfig {
        token_ttl: Duration::from_secs(2),
        revoke_every: Some(50),
        // 40 requests a second per token, unannounced: the client learns it from 429s.
        api_rate_limit_per_minute: Some(40),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: false,
        error_rate: 0.03,
        users: 50,
        seed: 7,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let paths: Vec<String> = (0..120)
        .map(|i| format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(i % 50)))
        .collect();
    let results: Vec<_> = futures::stream::iter(paths)
        .map(|p| {
            let client = client.clone();
            async move { client.get(&p).send().await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(results.iter().all(|r| r.is_ok()), "every request succeeds");

    let j = sim.journal();
    let t = client.recorder().totals();
    let m = client.metrics();
    assert_eq!(t.all_requests(), j.api_requests, "{t:?}");
    assert_eq!(t.requests(Class::Success), j.api_ok);
    assert_eq!(t.requests(Class::RateLimited), j.api_rate_limited);
    assert_eq!(t.requests(Class::ServerError), j.api_server_error);
    assert_eq!(
        t.requests(Class::ClientError),
        j.api_expired_token + j.api_revoked_token + j.api_unknown_token + j.api_missing_token
    );
    assert_eq!(t.requests(Class::Transport), 0);
    assert!(
        j.api_revoked_token > 0 && j.api_rate_limited > 0 && j.api_server_error > 0,
        "revoked {}, 429 {}, 5xx {}",
        j.api_revoked_token,
        j.api_rate_limited,
        j.api_server_error
    );
    // One refresh per token the simulator issued (none failed); each revocation was healed.
    let refreshes: u64 = RefreshReason::ALL.iter().map(|r| t.refreshes(*r)).sum();
    assert_eq!(refreshes, j.tokens_issued);
    assert_eq!(t.refreshes(RefreshReason::OnDemand), 1, "the first token");
    assert!(t.refreshes(RefreshReason::AfterUnauthorized) > 0);
    assert_eq!(t.unauthorized_healed, m.unauthorized_healed);
    assert!(t.unauthorized_healed > 0);
    assert_eq!(t.rate_limited_waits, m.rate_limited_waits);
    assert_eq!(t.rate_limit_pauses, m.rate_limit_pauses);
    // The client's own counters are read from the same events.
    assert_eq!(m.requests, 120);
    assert_eq!(m.failures, 0);
    assert_eq!(m.attempts, t.all_requests());
    assert_eq!(m.throttle_waits, t.paced_waits);
    assert_eq!(m.server_errors_retried, j.api_server_error);
    assert_eq!(
        m.retries,
        j.api_server_error + j.api_rate_limited + j.api_revoked_token + j.api_expired_token
    );
    assert!(t.latency_p50_secs.unwrap() <= t.latency_p99_secs.unwrap());

    let s = client.recorder().series();
    for c in Class::ALL {
        assert_eq!(s.total_requests(c), t.requests(c), "{c:?}");
    }
    for r in RefreshReason::ALL {
        let column: u64 = s.token_requests[r.label()].iter().sum();
        assert_eq!(column, t.refreshes(r), "{r:?}");
    }
    assert_eq!(
        s.unauthorized_healed.iter().sum::<u64>(),
        t.unauthorized_healed
    );
    // After the 429s the pacer learned a rate, and the series shows it.
    assert!(s.allowed_rate.iter().any(Option::is_some), "{s:?}");

    let text = render_prometheus(client.recorder(), client.token_metrics().time_to_expiry);
    assert!(text.contains(&format!(
        "tokenwarden_api_requests_total{{class=\"2xx\"}} {}\n",
        j.api_ok
    )));
    assert!(text.contains(&format!(
        "tokenwarden_api_request_duration_seconds_count {}\n",
        j.api_requests
    )));
    assert!(text.contains("tokenwarden_token_remaining_seconds "));
}

#[tokio::test]
async fn a_recorder_given_to_the_manager_and_the_client_is_one_record() {
    let sim = sim(SimConfig::default()).await;
    let recorder = Recorder::new();
    let tokens =
        tokenwarden::TokenManager::builder(grant(&sim, tokenwarden_sim::DEFAULT_CLIENT_SECRET))
            .recorder(recorder.clone())
            .build();
    let client = builder(&sim, tokens.clone())
        .recorder(recorder.clone())
        .build()
        .unwrap();
    let path = format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(0));
    client.get(&path).send().await.unwrap();
    let t = recorder.totals();
    assert_eq!(t.requests(Class::Success), 1);
    assert_eq!(t.refreshes(RefreshReason::OnDemand), 1);
    assert_eq!(client.recorder().totals(), t);
    assert!(tokens.recorder().is_some());
}
