//! A real Prometheus server scrapes the agent's `GET /metrics` while requests go through it (a
//! 404, a 401 healed after a revocation, 429s waited out), and the values read back through
//! Prometheus's query API are what the simulator's journal says happened; `promtool check
//! metrics` finds nothing to say about the exposition.

mod common;

use common::*;
use std::time::{Duration, SystemTime};
use tokenwarden_sim::SimConfig;
use tokenwarden_test_support::prometheus::{Prometheus, assert_promtool_clean};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_agent_and_reads_back_what_the_journal_says() {
    let s = Setup::new(SimConfig {
        // 4 requests per token and 1-s window, unannounced: a quick burst gets 429s, each waited
        // out (Retry-After: 1) and sent again.
        api_rate_limit_per_minute: Some(4),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: false,
        ..SimConfig::default()
    })
    .await;
    // Prometheus first: its first scrape comes about 5 s after it starts (its discovery tick),
    // and the requests go through the agent meanwhile.
    let target = s.agent.local_addr().to_string();
    let Some(prom) = Prometheus::start(&[&target]) else {
        return;
    };

    // What the agent's callers got, by status.
    let mut answered = std::collections::BTreeMap::<u16, u64>::new();
    let mut call = async |path: &str| {
        let status = s.get(path).await.status().as_u16();
        *answered.entry(status).or_default() += 1;
        status
    };
    assert_eq!(call("/api/v2/tokens/me").await, 200);
    assert_eq!(call("/api/v2/users/nobody").await, 404);
    // A revocation: the next call's 401 is healed with a new token (a fresh rate window).
    s.sim.revoke_all_tokens();
    assert_eq!(call("/api/v2/users/user-000001").await, 200);
    // 10 calls on that token within at most two windows: one window sees more than 4.
    for i in 0..9 {
        assert_eq!(call(&format!("/api/v2/users/user-{i:06}")).await, 200);
    }
    let done = SystemTime::now();

    let j = s.sim.journal_counters();
    assert_eq!(j.api_revoked_token, 1, "{j:?}");
    assert!(j.api_rate_limited >= 1, "no 429: {j:?}");

    // The exposition itself: promtool has nothing to say.
    let m = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    assert_promtool_clean(&m.text().await.unwrap());

    // What a scrape after the last call reads is what the simulator saw.
    prom.scraped_since(done, Duration::from_secs(10)).await;
    let class = async |c: &str| {
        prom.value(&format!("tokenwarden_api_requests_total{{class=\"{c}\"}}"))
            .await
    };
    let client_errors = j.api_not_found
        + j.api_revoked_token
        + j.api_expired_token
        + j.api_unknown_token
        + j.api_missing_token
        + j.api_forbidden
        + j.api_client_error;
    let by_class = [
        ("2xx", j.api_ok),
        ("3xx", j.api_redirect),
        ("4xx", client_errors),
        ("429", j.api_rate_limited),
        ("5xx", j.api_server_error),
        ("transport", j.api_dropped),
    ];
    for (c, want) in by_class {
        assert_eq!(
            class(c).await,
            want as f64,
            "API requests of class {c}: {j:?}"
        );
    }
    let sum = async |q: &str| prom.value(&format!("sum({q})")).await;
    assert_eq!(
        sum("tokenwarden_api_requests_total").await,
        j.api_requests as f64
    );
    assert_eq!(
        prom.value("tokenwarden_api_request_duration_seconds_count")
            .await,
        j.api_requests as f64
    );
    // Token requests by reason: the first on demand, one after the revoked token's 401.
    let reason = async |r: &str| {
        prom.value(&format!(
            "tokenwarden_token_requests_total{{reason=\"{r}\"}}"
        ))
        .await
    };
    assert_eq!(
        sum("tokenwarden_token_requests_total").await,
        j.token_requests as f64
    );
    assert_eq!(reason("after_401").await, j.api_revoked_token as f64);
    assert_eq!(
        reason("on_demand").await,
        (j.token_requests - j.api_revoked_token) as f64
    );
    assert_eq!(reason("proactive").await, 0.0);
    assert_eq!(
        prom.value("tokenwarden_401_healed_total").await,
        j.api_revoked_token as f64
    );
    assert_eq!(
        prom.value("tokenwarden_429_total").await,
        j.api_rate_limited as f64
    );
    assert_eq!(
        prom.value("tokenwarden_429_waits_total").await,
        j.api_rate_limited as f64
    );
    assert!(prom.value("tokenwarden_token_remaining_seconds").await > 0.0);
    // The agent's own count: what its callers got.
    let forwarded = async |c: &str| {
        prom.value(&format!(
            "tokenwarden_agent_forwarded_total{{class=\"{c}\"}}"
        ))
        .await
    };
    assert_eq!(forwarded("2xx").await, answered[&200] as f64);
    assert_eq!(forwarded("4xx").await, answered[&404] as f64);
    assert_eq!(
        sum("tokenwarden_agent_forwarded_total").await,
        answered.values().sum::<u64>() as f64
    );
}
