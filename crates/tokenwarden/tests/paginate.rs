//! Every paging style yields every item exactly once while tokens expire (1-second tokens) and are
//! revoked under it, and an async job outlives many tokens.

mod common;

use common::{client, sim};
use futures::TryStreamExt as _;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokenwarden::{
    Error, JobOptions, analytics_job, paginate_cursor, paginate_pages, paginate_query,
};
use tokenwarden_sim::{JobOutcome, SimConfig};

const QUERY: &str = "/api/v2/analytics/conversations/details/query";
const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
/// The simulator's default conversation interval (a week).
const WEEK: &str = "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z";

/// Short tokens, slow pages, and an occasional revocation: each listing below spans several
/// tokens and heals 401s inside the loop.
fn hostile(n: usize) -> SimConfig {
    SimConfig {
        token_ttl: Duration::from_secs(1),
        latency: Duration::from_millis(120),
        revoke_every: Some(9),
        users: n,
        contacts: n,
        conversations: n,
        ..SimConfig::default()
    }
}

/// Asserts `items` holds `n` distinct values of `key`.
fn assert_each_once(items: &[Value], key: &str, n: usize) {
    assert_eq!(items.len(), n);
    let ids: HashSet<&str> = items.iter().map(|i| i[key].as_str().unwrap()).collect();
    assert_eq!(ids.len(), n, "no item twice");
}

#[tokio::test]
async fn page_number_listing_spans_several_tokens() {
    let sim = sim(hostile(250)).await;
    let client = client(&sim);
    let users: Vec<Value> = paginate_pages(&client, "/api/v2/users?pageSize=10")
        .try_collect()
        .await
        .unwrap();
    assert_each_once(&users, "id", 250);
    let j = sim.journal();
    assert!(j.tokens_issued >= 3, "several tokens: {j:?}");
    assert!(j.api_revoked_token >= 1);
    assert_eq!(j.ok_count("GET", "/api/v2/users"), 25, "each page once");
}

#[tokio::test]
async fn cursor_listing_spans_several_tokens() {
    let sim = sim(hostile(250)).await;
    let client = client(&sim);
    let contacts: Vec<Value> =
        paginate_cursor(&client, "/api/v2/externalcontacts/scan/contacts?limit=10")
            .try_collect()
            .await
            .unwrap();
    assert_each_once(&contacts, "id", 250);
    let j = sim.journal();
    assert!(j.tokens_issued >= 3, "several tokens: {j:?}");
    assert!(j.api_revoked_token >= 1);
}

#[tokio::test]
async fn analytics_query_spans_several_tokens() {
    let sim = sim(hostile(250)).await;
    let client = client(&sim);
    let body = json!({"interval": WEEK, "order": "asc", "paging": {"pageSize": 10}});
    let conversations: Vec<Value> = paginate_query(&client, QUERY, body)
        .try_collect()
        .await
        .unwrap();
    assert_each_once(&conversations, "conversationId", 250);
    let j = sim.journal();
    assert!(j.tokens_issued >= 3, "several tokens: {j:?}");
    assert_eq!(j.ok_count("POST", QUERY), 25, "each page once");
}

#[tokio::test]
async fn analytics_query_is_replayed_after_5xx() {
    let sim = sim(SimConfig {
        conversations: 100,
        error_rate: 0.3,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let body = json!({"interval": WEEK, "paging": {"pageSize": 10}});
    let conversations: Vec<Value> = paginate_query(&client, QUERY, body)
        .try_collect()
        .await
        .unwrap();
    assert_each_once(&conversations, "conversationId", 100);
    assert!(sim.journal().api_server_error > 0);
}

#[tokio::test]
async fn a_ten_second_job_outlives_one_second_tokens() {
    let sim = sim(SimConfig {
        token_ttl: Duration::from_secs(1),
        job_duration: Duration::from_secs(10),
        conversations: 300,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let options = JobOptions::default()
        .poll(Duration::from_millis(300), Duration::from_millis(800))
        .page_size(40);
    let conversations: Vec<Value> =
        analytics_job(&client, JOBS, json!({"interval": WEEK}), options)
            .try_collect()
            .await
            .unwrap();
    assert_each_once(&conversations, "conversationId", 300);
    let j = sim.journal();
    assert!(j.tokens_issued >= 8, "the job outlived many tokens: {j:?}");
    assert_eq!(client.metrics().failures, 0);
}

#[tokio::test]
async fn a_failed_job_is_job_failed() {
    for outcome in [
        JobOutcome::Failed,
        JobOutcome::Cancelled,
        JobOutcome::Expired,
    ] {
        let sim = sim(SimConfig {
            job_duration: Duration::ZERO,
            job_outcome: outcome,
            ..SimConfig::default()
        })
        .await;
        let client = client(&sim);
        let err = analytics_job(
            &client,
            JOBS,
            json!({"interval": WEEK}),
            JobOptions::default(),
        )
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
        match err {
            Error::JobFailed { state, .. } => assert_eq!(state, outcome.as_str()),
            other => panic!("{other:?}"),
        }
    }
}
