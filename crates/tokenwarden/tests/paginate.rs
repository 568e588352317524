//! Every paging style yields every item exactly once while tokens expire (1-second tokens) and are
//! revoked under it, and an async job outlives many tokens.

mod common;

use common::{client, sim};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokenwarden::{
    Error, Page, paginate::JobOptions, paginate::Position, paginate::analytics_job_items,
    paginate::analytics_job_pages, paginate::cursor_items, paginate::cursor_pages,
    paginate::numbered_items, paginate::numbered_pages, paginate::query_items,
    paginate::query_pages,
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
        latency: Duration::from_millis(60),
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
    let users: Vec<Value> = numbered_items(&client, "/api/v2/users?pageSize=10")
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
        cursor_items(&client, "/api/v2/externalcontacts/scan/contacts?limit=10")
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
    let conversations: Vec<Value> = query_items(&client, QUERY, body)
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
    let conversations: Vec<Value> = query_items(&client, QUERY, body)
        .try_collect()
        .await
        .unwrap();
    assert_each_once(&conversations, "conversationId", 100);
    assert!(sim.journal().api_server_error > 0);
}

#[tokio::test]
async fn a_three_second_job_outlives_one_second_tokens() {
    // Three seconds of real time (tests stay under five): the job outlives three 1-s tokens.
    let sim = sim(SimConfig {
        token_ttl: Duration::from_secs(1),
        job_duration: Duration::from_secs(3),
        conversations: 300,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let options = JobOptions::default()
        .poll(Duration::from_millis(300), Duration::from_millis(800))
        .page_size(40);
    let conversations: Vec<Value> =
        analytics_job_items(&client, JOBS, json!({"interval": WEEK}), options)
            .try_collect()
            .await
            .unwrap();
    assert_each_once(&conversations, "conversationId", 300);
    let j = sim.journal();
    assert!(
        j.tokens_issued >= 3,
        "the job outlived several tokens: {j:?}"
    );
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
        let err = analytics_job_items(
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

// ---- resumable positions ------------------------------------------------------------------------

/// Reads `take` pages of `pages` and returns their items and the position after the last one.
async fn read_pages<S>(pages: S, take: usize) -> (Vec<Value>, Option<Position>)
where
    S: futures::Stream<Item = tokenwarden::Result<Page>>,
{
    let mut pages = std::pin::pin!(pages);
    let (mut items, mut next) = (vec![], None);
    for _ in 0..take {
        let Some(page) = pages.try_next().await.unwrap() else {
            break;
        };
        items.extend(page.items);
        next = page.next;
    }
    (items, next)
}

#[tokio::test]
async fn page_number_listing_resumes_from_a_recorded_position() {
    let sim = sim(hostile(95)).await;
    let client = client(&sim);
    let path = "/api/v2/users?pageSize=10";
    let (mut items, next) = read_pages(numbered_pages(&client, path, None), 4).await;
    let next = next.expect("more pages");
    assert!(
        matches!(&next, Position::Url { url } if url.contains("pageNumber=5")),
        "{next:?}"
    );
    // Another process, later: only the position is carried over (as JSON, as a file would).
    let carried: Position = serde_json::from_str(&serde_json::to_string(&next).unwrap()).unwrap();
    let (rest, last) = read_pages(numbered_pages(&client, path, Some(carried)), 100).await;
    assert_eq!(last, None, "the last page says the listing is complete");
    items.extend(rest);
    assert_each_once(&items, "id", 95);
    assert_eq!(
        sim.journal().ok_count("GET", "/api/v2/users"),
        10,
        "no page twice"
    );
    // A page number of one's own choosing works too.
    let from = Some(Position::PageNumber { page_number: 10 });
    let (tail, _) = read_pages(numbered_pages(&client, path, from), 100).await;
    assert_eq!(tail.len(), 5);
}

#[tokio::test]
async fn cursor_listing_resumes_from_a_recorded_position() {
    let sim = sim(hostile(73)).await;
    let client = client(&sim);
    let path = "/api/v2/externalcontacts/scan/contacts?limit=10";
    let (mut items, next) = read_pages(cursor_pages(&client, path, None), 3).await;
    assert!(
        matches!(&next, Some(Position::Url { url }) if url.contains("cursor=")),
        "{next:?}"
    );
    let (rest, last) = read_pages(cursor_pages(&client, path, next), 100).await;
    assert_eq!(last, None);
    items.extend(rest);
    assert_each_once(&items, "id", 73);
    let scans = sim
        .journal()
        .ok_count("GET", "/api/v2/externalcontacts/scan/contacts");
    assert_eq!(scans, 8, "no page twice");
}

#[tokio::test]
async fn analytics_query_resumes_from_a_page_number() {
    let sim = sim(hostile(64)).await;
    let client = client(&sim);
    let body = json!({"interval": WEEK, "paging": {"pageSize": 10}});
    let (mut items, next) = read_pages(query_pages(&client, QUERY, body.clone(), None), 2).await;
    assert_eq!(next, Some(Position::PageNumber { page_number: 3 }));
    let (rest, last) = read_pages(query_pages(&client, QUERY, body, next), 100).await;
    assert_eq!(last, None);
    items.extend(rest);
    assert_each_once(&items, "conversationId", 64);
    assert_eq!(sim.journal().ok_count("POST", QUERY), 7, "no page twice");
}

#[tokio::test]
async fn analytics_job_resumes_with_its_job_id_and_cursor() {
    let sim = sim(SimConfig {
        conversations: 230,
        job_duration: Duration::from_millis(200),
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(7),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let options = || {
        JobOptions::default()
            .poll(Duration::from_millis(50), Duration::from_millis(100))
            .page_size(50)
    };
    let body = json!({"interval": WEEK});
    let mut first = std::pin::pin!(analytics_job_pages(
        &client,
        JOBS,
        body.clone(),
        options(),
        None
    ));
    // The first page announces the submitted job, before any waiting: record it at once.
    let announced = first.try_next().await.unwrap().unwrap();
    assert!(announced.items.is_empty());
    let Some(Position::Job {
        job_id,
        cursor: None,
    }) = announced.next.clone()
    else {
        panic!("{announced:?}")
    };
    let (mut items, next) = read_pages(first, 2).await;
    assert_eq!(items.len(), 100);
    assert!(matches!(&next, Some(Position::Job { job_id: j, cursor: Some(_) }) if *j == job_id));
    // Attaching to the recorded job: nothing is submitted again.
    let (rest, last) = read_pages(
        analytics_job_pages(&client, JOBS, body.clone(), options(), next),
        100,
    )
    .await;
    assert_eq!(last, None);
    items.extend(rest);
    assert_each_once(&items, "conversationId", 230);
    let j = sim.journal();
    assert_eq!(j.ok_count("POST", JOBS), 1, "one job");
    let results = format!("{JOBS}/{job_id}/results");
    assert_eq!(j.ok_count("GET", &results), 5, "no results page twice");
    // A job the API no longer has: 404, so the caller knows to submit again.
    let gone = Some(Position::Job {
        job_id: "no-such-job".into(),
        cursor: None,
    });
    let err = analytics_job_pages(&client, JOBS, body, options(), gone)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err}");
}

#[tokio::test]
async fn a_position_off_the_api_origin_is_refused_without_a_request() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let elsewhere = Some(Position::Url {
        url: "http://127.0.0.1:9/api/v2/users?pageNumber=2".into(),
    });
    let err = numbered_pages(&client, "/api/v2/users", elsewhere)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not on the API's origin"), "{err}");
    assert_eq!(sim.journal_counters().api_requests, 0);
}

// ---- hostile listings ---------------------------------------------------------------------------

fn static_client(base: &str, token: &str) -> tokenwarden::ApiClient {
    let tokens = tokenwarden::TokenManager::builder(tokenwarden::StaticToken::new(
        tokenwarden::AccessToken::new(token),
    ))
    .build();
    tokenwarden::ApiClient::builder(base, tokens)
        .backoff(common::fast_backoff())
        .build()
        .unwrap()
}

/// A listing whose page 2 points back at page 1: A → B → A.
fn a_b_cycle(line: &str, _auth: &str) -> (u16, String) {
    let (id, next) = if line.contains("pageNumber=2") {
        ("b", "/api/v2/users?pageNumber=1")
    } else {
        ("a", "/api/v2/users?pageNumber=2")
    };
    (
        200,
        json!({"entities": [{"id": id}], "nextUri": next}).to_string(),
    )
}

#[tokio::test]
async fn regression_a_page_cycle_is_an_error_not_an_endless_listing() {
    // A → B → A: only a page pointing at itself was caught, so this ran forever.
    let (base, log) = common::scripted_api(a_b_cycle);
    let client = static_client(&base, "TOK-cycle-abcdefghijklmnop");
    let mut pages = std::pin::pin!(numbered_pages(&client, "/api/v2/users?pageNumber=1", None));
    let mut items = 0;
    let mut fetched = 0;
    let err = loop {
        fetched += 1;
        assert!(fetched < 100, "the cycle was not caught");
        match pages.try_next().await {
            Ok(Some(p)) => items += p.items.len(),
            Ok(None) => panic!("a cycle never ends by itself"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("already returned"), "{err}");
    assert_eq!(items, 2, "A and B once each");
    assert_eq!(log.lock().unwrap().len(), 2, "A is not fetched again");
}

#[tokio::test]
async fn regression_a_cycle_through_another_spelling_of_the_first_page_outputs_nothing_twice() {
    // `/users` → `?pageNumber=2` → `?pageNumber=1` (the first page again, spelled otherwise): its
    // items were output a second time before the cycle was caught.
    let (base, log) = common::scripted_api(a_b_cycle);
    let client = static_client(&base, "TOK-spelling-abcdefghijklmnop");
    let got: Vec<Result<Value, Error>> = numbered_items(&client, "/api/v2/users")
        .take(10)
        .collect()
        .await;
    let ids: Vec<&str> = got
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "{got:?}");
    let err = got.last().unwrap().as_ref().unwrap_err();
    assert!(
        err.to_string().contains("same items as an earlier page"),
        "{err}"
    );
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn regression_a_query_answering_every_page_alike_is_an_error_not_an_endless_listing() {
    // Items on every page and no totalHits: the page number grew forever.
    let (base, log) = common::scripted_api(|_, _| {
        (
            200,
            json!({"conversations": [{"conversationId": "c1"}]}).to_string(),
        )
    });
    let client = static_client(&base, "TOK-query-abcdefghijklmnop");
    // Bounded, so that the test fails (not hangs) if the walk does not stop.
    let got: Result<Vec<Value>, _> = query_items(&client, QUERY, json!({"interval": WEEK}))
        .take(100)
        .try_collect()
        .await;
    let Err(err) = got else {
        panic!("the walk did not stop")
    };
    assert!(
        err.to_string().contains("same items as an earlier page"),
        "{err}"
    );
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn regression_a_next_page_or_job_id_carrying_the_token_is_refused() {
    const TOKEN: &str = "TOK-next-abcdefghijklmnop";
    let (base, log) = common::scripted_api(|line, auth| {
        let token = auth.trim_start_matches("Bearer ");
        if line.starts_with("POST") {
            return (200, json!({"jobId": format!("job-{token}")}).to_string());
        }
        let next = format!("/api/v2/users?pageNumber=2&x={token}");
        (
            200,
            json!({"entities": [{"id": 1}], "nextUri": next}).to_string(),
        )
    });
    let client = static_client(&base, TOKEN);
    let mut pages = std::pin::pin!(numbered_pages(&client, "/api/v2/users", None));
    let Err(err) = pages.try_next().await else {
        panic!("the first page's next position is refused")
    };
    assert!(err.to_string().contains("[REDACTED]"), "{err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    // The job id is never recorded or put into a path either.
    let err = analytics_job_items(
        &client,
        JOBS,
        json!({"interval": WEEK}),
        JobOptions::default(),
    )
    .try_collect::<Vec<Value>>()
    .await
    .unwrap_err();
    assert!(err.to_string().contains("jobId"), "{err}");
    let sent = log.lock().unwrap().clone();
    assert!(sent.iter().all(|l| !l.contains(TOKEN)), "{sent:?}");
    assert_eq!(sent.len(), 2, "{sent:?}");
}
