//! The `reqwest-middleware` middleware (feature `middleware`): same 401 / 403 / 5xx behaviour as
//! the client. Run with `cargo test -p tokenwarden --features middleware --test middleware`.
#![cfg(feature = "middleware")]

mod common;

use common::{fast_backoff, sim, tokens};
use http::Method;
use reqwest_middleware::ClientWithMiddleware;
use tokenwarden::{Error, middleware::AuthMiddleware, middleware::ReplaySafe};
use tokenwarden_sim::{SimConfig, Simulator};

fn client(sim: &Simulator) -> ClientWithMiddleware {
    // Redirects are seen, not followed.
    let http = tokenwarden_test_support::browser();
    let mw = AuthMiddleware::new(&sim.base_url(), tokens(sim))
        .unwrap()
        .backoff(fast_backoff());
    reqwest_middleware::ClientBuilder::new(http)
        .with(mw)
        .build()
}

fn tw_error(e: reqwest_middleware::Error) -> Error {
    match e {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn heals_a_401_once_and_retries_5xx() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let me = format!("{}/api/v2/tokens/me", sim.base_url());
    assert!(client.get(&me).send().await.unwrap().status().is_success());
    assert!(
        client
            .delete(&me)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(client.get(&me).send().await.unwrap().status().is_success());
    let j = sim.journal();
    assert_eq!(j.token_requests, 2);
    assert_eq!(j.api_revoked_token, 1);

    sim.update(|c| c.error_rate = 0.3);
    for _ in 0..50 {
        let r = client.get(&me).send().await.unwrap();
        assert!(r.status().is_success());
    }
    assert!(sim.journal().api_server_error > 0);
}

#[tokio::test]
async fn unmarked_post_5xx_is_returned_marked_post_is_retried() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let echo = format!("{}/api/v2/sim/echo", sim.base_url());
    client.get(&echo).send().await.unwrap();
    sim.update(|c| c.error_rate = 1.0);
    let r = client.post(&echo).body("x").send().await.unwrap();
    assert!(r.status().is_server_error());
    assert_eq!(sim.journal().api_server_error, 1);
    let e = client
        .request(Method::POST, &echo)
        .body("x")
        .with_extension(ReplaySafe)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(tw_error(e), Error::RetriesExhausted { attempts: 8, .. }),
        "budget of 8 attempts"
    );
}

#[tokio::test]
async fn forbidden_is_an_error_without_refresh() {
    let sim = sim(SimConfig {
        forbidden_paths: vec!["/api/v2/users".into()],
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let e = client
        .get(format!("{}/api/v2/users", sim.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(tw_error(e), Error::Forbidden { .. }));
    assert_eq!(sim.journal().token_requests, 1);
}

#[tokio::test]
async fn connection_refused_is_retried_and_its_cause_named() {
    let refused = tokenwarden_test_support::RefusedPort::new();
    let base = refused.url();
    let tokens = tokenwarden::TokenManager::builder(tokenwarden::StaticToken::new(
        tokenwarden::AccessToken::new("middleware-static-token"),
    ))
    .build();
    let mw = AuthMiddleware::new(&base, tokens)
        .unwrap()
        .backoff(tokenwarden::retry::Backoff {
            max_attempts: 3,
            ..fast_backoff()
        });
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw.clone())
        .build();
    let e = client
        .get(format!("{base}/api/v2/users?secret=QUERY"))
        .send()
        .await
        .unwrap_err();
    let e = tw_error(e);
    let Error::RetriesExhausted { attempts, last, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*attempts, 3);
    assert!(last.contains("Connection refused"), "{last}");
    assert!(!last.contains("QUERY"), "{last}");
    let m = mw.metrics();
    assert_eq!((m.requests, m.attempts, m.failures), (1, 3, 1));
    assert_eq!(m.transport_retries, 2);
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_and_a_401_is_not_replayable() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let me = format!("{}/api/v2/tokens/me", sim.base_url());
    client.delete(&me).send().await.unwrap();
    let body = reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        b"once",
    )));
    let e = client
        .post(format!("{}/api/v2/sim/echo", sim.base_url()))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(tw_error(e), Error::NotReplayable(_)));
    assert_eq!(
        sim.journal().api_revoked_token,
        1,
        "sent once, refused once"
    );
}
