//! No secret (client secret, access token, refresh token) in logs at TRACE, in `Debug` output or
//! in error messages, through a whole run with refreshes, revocations and failures.

mod common;

use common::grant;
use std::collections::BTreeSet;
use std::time::Duration;
use tokenwarden::{
    ApiClient, ClientSecret, RefreshToken, RefreshTokenGrant, TokenEndpoint, TokenManager,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimClient, SimConfig, Simulator};

const SECRET: &str = "Sup3r-Secret-Value-0xC0FFEE";

#[tokio::test]
async fn nothing_secret_reaches_logs_debug_or_errors_at_trace() {
    let (capture, _guard) = tokenwarden_test_support::logs::capture();

    let sim = Simulator::start(SimConfig {
        clients: vec![SimClient::new(DEFAULT_CLIENT_ID, SECRET, "secret test")],
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(7),
        error_rate: 0.05,
        users: 50,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, SECRET)).build();
    let client = ApiClient::builder(&sim.base_url(), tokens.clone())
        .build()
        .unwrap();
    let mut seen_tokens = BTreeSet::new();
    let mut shown = String::new();
    let start = tokio::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let r = client
            .get(&format!(
                "/api/v2/users/{}",
                tokenwarden_sim::data::user_id(i % 50)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        shown += &format!("{r:?}\n");
        if let Some(b) = tokens.current() {
            seen_tokens.insert(b.access_token().expose_secret().to_string());
            shown += &format!("{b:?} {:?} {}\n", b.access_token(), b.access_token());
        }
        i += 1;
    }
    shown += &format!("{tokens:?}\n{client:?}\n");
    // Failures, too: a 403, a wrong secret, a revoked refresh token.
    sim.update(|c| c.forbidden_paths = vec!["/api/v2/users".into()]);
    let e = client
        .get("/api/v2/users/user-000001")
        .send()
        .await
        .unwrap_err();
    shown += &format!("{e} {e:?}\n");
    let bad = TokenManager::builder(grant(&sim, &format!("{SECRET}-wrong"))).build();
    let e = bad.bearer().await.unwrap_err();
    shown += &format!("{e} {e:?}\n");
    let rt = sim.issue_refresh_token(DEFAULT_CLIENT_ID);
    let rgrant = RefreshTokenGrant::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(SECRET),
        RefreshToken::new(rt.clone()),
    );
    shown += &format!("{rgrant:?}\n");
    let rtm = TokenManager::builder(rgrant).build();
    let fresh = rtm.bearer().await.unwrap();
    seen_tokens.insert(fresh.access_token().expose_secret().to_string());
    sim.revoke_all_tokens();
    let again = rtm.rejected(&fresh).await.unwrap_err();
    shown += &format!("{again} {again:?}\n");

    let logs = capture.text();
    assert!(
        logs.len() > 1000,
        "TRACE logging captured: {} bytes",
        logs.len()
    );
    assert!(
        seen_tokens.len() >= 3,
        "several tokens were issued: {}",
        seen_tokens.len()
    );
    for (what, text) in [("logs", &logs), ("Debug/Display/errors", &shown)] {
        assert!(!text.contains(SECRET), "client secret in {what}");
        assert!(!text.contains(&rt), "refresh token in {what}");
        for t in &seen_tokens {
            assert!(!text.contains(t.as_str()), "an access token in {what}");
        }
        assert!(
            !text.contains("access_token\":"),
            "a token response body in {what}"
        );
    }
}

#[tokio::test]
async fn a_hostile_token_endpoint_cannot_inject_headers_or_exhaust_memory() {
    let sim = Simulator::start(SimConfig {
        clients: vec![SimClient::new(DEFAULT_CLIENT_ID, SECRET, "secret test")],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let manager = || TokenManager::builder(grant(&sim, SECRET)).build();
    // A token with a line break: `curl -H "Authorization: Bearer $(tokenwarden token)"` would
    // send the attacker's header.
    sim.update(|c| {
        c.token_body_template = Some(
            r#"{"access_token":"{access_token}\r\nX-Injected: yes","token_type":"bearer","expires_in":3600}"#
                .into(),
        )
    });
    let e = manager().bearer().await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, tokenwarden::Error::TokenDecode { .. }), "{msg}");
    assert!(msg.contains("line break"), "{msg}");
    assert!(!msg.contains("X-Injected"), "{msg}");

    // An answer of 10 MiB is not read whole, and not echoed.
    let filler = "A".repeat(10 * 1024 * 1024);
    sim.update(|c| {
        c.token_body_template = Some(format!(
            r#"{{"access_token":"{{access_token}}","expires_in":3600,"filler":"{filler}"}}"#
        ))
    });
    let e = manager().bearer().await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, tokenwarden::Error::TokenDecode { .. }), "{msg}");
    assert!(msg.contains("more than 64 KiB"), "{msg}");
    assert!(!msg.contains("AAAAAAAA"), "the body is not echoed");
    assert!(!msg.contains(SECRET));
}
