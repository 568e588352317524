//! The knobs that say how tokens die: the code of an expired token's 401
//! (`expired_token_code`) and revocation at random ages (`revoke_at_random_age`).

use std::time::Duration;

use reqwest::Client;
use serde_json::Value;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

async fn token(sim: &Simulator, c: &Client) -> String {
    let body: Value = c
        .post(sim.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn call(sim: &Simulator, c: &Client, tok: &str) -> (u16, Value) {
    let resp = c
        .get(format!("{}/api/v2/users/user-000000", sim.base_url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_expired_token_is_refused_with_the_configured_code() {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_millis(1000),
        clock_skew: Duration::from_millis(950),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new();
    let said_expired = token(&sim, &c).await;
    sim.update(|c| c.expired_token_code = "bad.credentials".into());
    let said_bad = token(&sim, &c).await;
    // Both die 50 ms after they were issued (real time: the simulator's clock is the OS clock).
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, body) = call(&sim, &c, &said_bad).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "bad.credentials", "{body}");
    assert_eq!(body["message"], "Invalid login credentials.", "{body}");
    sim.update(|c| c.expired_token_code = "credentials.expired".into());
    let (status, body) = call(&sim, &c, &said_expired).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "credentials.expired", "{body}");
    // The journal tells the truth whatever the code said.
    let j = sim.journal();
    assert_eq!(j.api_expired_token, 2, "{j:?}");
    assert_eq!(j.api_revoked_token, 0, "{j:?}");
}

#[tokio::test]
async fn tokens_are_revoked_at_random_ages() {
    let cfg = SimConfig {
        token_ttl: Duration::from_secs(60),
        revoke_at_random_age: Some(Duration::from_millis(400)),
        seed: 7,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let c = Client::new();
    let mut tokens = Vec::new();
    for _ in 0..12 {
        tokens.push(token(&sim, &c).await);
    }
    // Every token is revoked within 400 ms of its issue: after 450 ms, all are refused as revoked.
    tokio::time::sleep(Duration::from_millis(450)).await;
    for t in &tokens {
        let (status, body) = call(&sim, &c, t).await;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "bad.credentials", "{body}");
    }
    let j = sim.journal();
    assert_eq!(j.api_revoked_token, 12, "{j:?}");
    assert_eq!(j.revoked_tokens().len(), 12);

    // The ages are spread over the range (not one age for all, as a clock skew would give): probe
    // each token every 20 ms.
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(60),
        revoke_at_random_age: Some(Duration::from_millis(400)),
        seed: 7,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut alive: Vec<_> = Vec::new();
    for _ in 0..12 {
        alive.push(token(&sim, &c).await);
    }
    let started = std::time::Instant::now();
    let mut ages = Vec::new();
    while !alive.is_empty() && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut still = Vec::new();
        for t in alive {
            if call(&sim, &c, &t).await.0 == 401 {
                ages.push(started.elapsed());
            } else {
                still.push(t);
            }
        }
        alive = still;
    }
    assert!(alive.is_empty(), "every token revoked within 400 ms");
    let (lo, hi) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
    assert!(*hi - *lo >= Duration::from_millis(100), "{ages:?}");
}
