//! End-to-end tests of the simulator over real HTTP (reqwest as a plain client).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokenwarden_sim::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, JobOutcome, Journal, Outcome, SimClient, SimConfig,
    Simulator, data,
};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg).await.unwrap()
}

async fn token_response(sim: &Simulator, c: &Client) -> reqwest::Response {
    c.post(sim.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn token(sim: &Simulator, c: &Client) -> String {
    let resp = token_response(sim, c).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(sim: &Simulator, c: &Client, path: &str, tok: &str) -> reqwest::Response {
    c.get(format!("{}{path}", sim.base_url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
}

async fn get_json(sim: &Simulator, c: &Client, path: &str, tok: &str) -> (StatusCode, Value) {
    let resp = get(sim, c, path, tok).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn assert_genesys_error(body: &Value, status: u16, code: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["contextId"].is_string(), "{body}");
    assert_eq!(body["details"], json!([]), "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
}

#[tokio::test]
async fn client_credentials_basic_form_and_errors() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    // Basic.
    let resp = token_response(&sim, &c).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86399);
    let t1 = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t1.len(), 40);
    assert!(body.get("refresh_token").is_none());
    // Form fields.
    let resp = c
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t2 = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(t1, t2);
    // Bad secret, unknown client.
    for (id, secret) in [(DEFAULT_CLIENT_ID, "nope"), ("who", DEFAULT_CLIENT_SECRET)] {
        let resp = c
            .post(sim.token_url())
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(body["description"].is_string() && body["error_description"].is_string());
    }
    // Unsupported grant.
    let resp = c
        .post(sim.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Form credentials refused when disabled.
    sim.update(|c| c.accept_form_credentials = false);
    let resp = c
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Both tokens work.
    for t in [&t1, &t2] {
        assert_eq!(
            get(&sim, &c, "/api/v2/users/user-000001", t).await.status(),
            200
        );
    }
    let j = sim.journal();
    assert_eq!(j.token_requests, 6);
    assert_eq!(j.tokens_issued, 2);
    assert_eq!(j.token_bad_credentials, 3);
    assert_eq!(j.token_bad_request, 1);
    assert_eq!(j.api_ok, 2);
    let issued: Vec<_> = j
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::TokenIssued)
        .collect();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0].token_id.as_deref(), Some("tok-1"));
    // Never the token itself in the journal.
    let json = serde_json::to_string(&j).unwrap();
    assert!(!json.contains(&t1) && !json.contains(&t2));
}

#[tokio::test]
async fn multiple_clients_and_tokens_me() {
    let sim = start(SimConfig {
        clients: vec![
            SimClient::default(),
            SimClient::new("other", "s3cret", "Other app"),
        ],
        scopes: vec!["users:readonly".into()],
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let resp = c
        .post(sim.token_url())
        .basic_auth("other", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let tok = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, me) = get_json(&sim, &c, "/api/v2/tokens/me", &tok).await;
    assert_eq!(status, 200);
    assert_eq!(me["OAuthClient"]["id"], "other");
    assert_eq!(me["OAuthClient"]["name"], "Other app");
    assert_eq!(me["authorizedScope"], json!(["users:readonly"]));
    assert!(me["organization"]["id"].is_string());
    assert!(me["homeOrganization"]["name"].is_string());
    // HEAD: same status, no body.
    let resp = c
        .head(format!("{}/api/v2/tokens/me", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().is_empty());
    // DELETE revokes the calling token.
    let resp = c
        .delete(format!("{}/api/v2/tokens/me", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = get_json(&sim, &c, "/api/v2/tokens/me", &tok).await;
    assert_eq!(status, 401);
    assert_genesys_error(&body, 401, "bad.credentials");
    let j = sim.journal();
    assert_eq!(j.api_ok, 3);
    assert_eq!(j.api_revoked_token, 1);
    assert_eq!(j.ok_count("HEAD", "/api/v2/tokens/me"), 1);
    assert_eq!(j.ok_count("DELETE", "/api/v2/tokens/me"), 1);
}

#[tokio::test]
async fn missing_unknown_forbidden_not_found() {
    let sim = start(SimConfig {
        forbidden_paths: vec!["/api/v2/externalcontacts".into()],
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let resp = c
        .get(format!("{}/api/v2/users/user-000001", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_genesys_error(&resp.json().await.unwrap(), 401, "authentication.required");
    let (s, b) = get_json(&sim, &c, "/api/v2/users/user-000001", "forged").await;
    assert_eq!(s, 401);
    assert_genesys_error(&b, 401, "bad.credentials");
    let tok = token(&sim, &c).await;
    let (s, b) = get_json(&sim, &c, "/api/v2/externalcontacts/scan/contacts", &tok).await;
    assert_eq!(s, 403);
    assert_genesys_error(&b, 403, "missing.any.permissions");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("missing the required permission")
    );
    let (s, b) = get_json(&sim, &c, "/api/v2/users/user-001000", &tok).await;
    assert_eq!(s, 404);
    assert_genesys_error(&b, 404, "not.found");
    let (s, b) = get_json(&sim, &c, "/api/v2/nope", &tok).await;
    assert_eq!(s, 404);
    assert_genesys_error(&b, 404, "not.found");
    let resp = c
        .put(format!("{}/api/v2/users/user-000001", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let j = sim.journal();
    assert_eq!(j.api_requests, 6);
    assert_eq!(j.api_missing_token, 1);
    assert_eq!(j.api_unknown_token, 1);
    assert_eq!(j.api_forbidden, 1);
    assert_eq!(j.api_not_found, 2);
    assert_eq!(j.api_client_error, 1);
    let missing = j
        .entries
        .iter()
        .find(|e| e.outcome == Outcome::MissingToken)
        .unwrap();
    assert!(!missing.authorization_present);
    assert_eq!(missing.token_id, None);
}

#[tokio::test]
async fn refresh_token_rotation() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let refresh = |rt: String| {
        let c = c.clone();
        let url = sim.token_url();
        async move {
            let resp = c
                .post(url)
                .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let rt1 = sim.issue_refresh_token(DEFAULT_CLIENT_ID);
    let (s, b) = refresh(rt1.clone()).await;
    assert_eq!(s, 200);
    assert!(b["access_token"].is_string());
    let rt2 = b["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    // Second use of the same refresh token fails.
    let (s, b) = refresh(rt1).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "invalid_grant");
    // The rotated one works once.
    let (s, b) = refresh(rt2.clone()).await;
    assert_eq!(s, 200);
    let rt3 = b["refresh_token"].as_str().unwrap().to_owned();
    // Admin route issues refresh tokens too.
    let resp = c
        .post(format!(
            "{}/sim/refresh-token?client_id={DEFAULT_CLIENT_ID}",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    let rt4 = resp.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // revoke_all_tokens revokes refresh tokens and access tokens.
    let access = b["access_token"].as_str().unwrap().to_owned();
    sim.revoke_all_tokens();
    assert_eq!(refresh(rt3).await.0, 400);
    assert_eq!(refresh(rt4).await.0, 400);
    let (s, _) = get_json(&sim, &c, "/api/v2/tokens/me", &access).await;
    assert_eq!(s, 401);
    let fresh = token(&sim, &c).await;
    assert_eq!(
        get(&sim, &c, "/api/v2/tokens/me", &fresh).await.status(),
        200
    );
    let j = sim.journal();
    assert_eq!(j.refresh_grants, 2);
    assert_eq!(j.token_invalid_grant, 3);
    assert_eq!(j.tokens_issued, 3);
    assert_eq!(j.api_revoked_token, 1);
}

#[tokio::test]
async fn ttl_expiry_and_skew() {
    let sim = start(SimConfig {
        token_ttl: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let resp = token_response(&sim, &c).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 1, "sub-second TTL rounds up to 1");
    let tok = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-000000", &tok)
            .await
            .status(),
        200
    );
    // Skew: advertised 2 s, dies after 2 s - 1.8 s = 200 ms.
    sim.update(|c| {
        c.token_ttl = Duration::from_secs(2);
        c.clock_skew = Duration::from_millis(1800);
    });
    let body: Value = token_response(&sim, &c).await.json().await.unwrap();
    assert_eq!(body["expires_in"], 2);
    let skewed = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(350)).await;
    for t in [&tok, &skewed] {
        let (s, b) = get_json(&sim, &c, "/api/v2/users/user-000000", t).await;
        assert_eq!(s, 401);
        assert_genesys_error(&b, 401, "credentials.expired");
    }
    let j = sim.journal();
    assert_eq!(j.api_expired_token, 2);
    assert_eq!(j.api_ok, 1);
}

#[tokio::test]
async fn jwt_tokens() {
    use base64::Engine;
    let sim = start(SimConfig {
        jwt_tokens: true,
        token_ttl: Duration::from_secs(300),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let t1 = token(&sim, &c).await;
    let t2 = token(&sim, &c).await;
    assert_ne!(t1, t2);
    let parts: Vec<&str> = t1.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], DEFAULT_CLIENT_ID);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    assert!(claims["jti"].is_string());
    assert_eq!(get(&sim, &c, "/api/v2/tokens/me", &t1).await.status(), 200);
}

#[tokio::test]
async fn revoke_every_nth_call() {
    let sim = start(SimConfig {
        revoke_every: Some(3),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(
            get(&sim, &c, "/api/v2/users/user-000001", &tok)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 401, 401]);
    let tok2 = token(&sim, &c).await;
    // Calls counted so far with a valid token: 3. The 4th was revoked (not valid, not counted).
    let mut statuses = vec![];
    for _ in 0..3 {
        statuses.push(
            get(&sim, &c, "/api/v2/users/user-000001", &tok2)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 401]);
    let j = sim.journal();
    assert_eq!(j.api_revoked_token, 3);
    assert_eq!(j.api_ok, 4);
    assert_eq!(j.per_token_requests["tok-1"], 4);
    assert_eq!(j.per_token_requests["tok-2"], 3);
}

#[tokio::test]
async fn fail_first_outage_and_throttle() {
    let sim = start(SimConfig {
        fail_first_token_requests: 2,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    for _ in 0..2 {
        let resp = token_response(&sim, &c).await;
        assert_eq!(resp.status(), 503);
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["code"], "service.unavailable");
        assert_eq!(b["error"], "temporarily_unavailable");
    }
    assert_eq!(token_response(&sim, &c).await.status(), 200);
    // Outage on/off at runtime.
    sim.update(|c| c.token_outage = true);
    assert_eq!(token_response(&sim, &c).await.status(), 503);
    sim.update(|c| c.token_outage = false);
    assert_eq!(token_response(&sim, &c).await.status(), 200);
    // Throttling: every 2nd request, Genesys shape.
    sim.update(|c| c.throttle_token_every = Some(2));
    let mut statuses = vec![];
    for _ in 0..4 {
        let resp = token_response(&sim, &c).await;
        let status = resp.status().as_u16();
        if status == 400 {
            let b: Value = resp.json().await.unwrap();
            assert_eq!(
                b,
                json!({
                    "error": "invalid_request",
                    "description": "rate limit exceeded; retry in a few seconds",
                    "error_description": "rate limit exceeded; retry in a few seconds",
                })
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 400, 200, 400]);
    // Re-arming fail_first counts from the change.
    sim.update(|c| {
        c.throttle_token_every = None;
        c.fail_first_token_requests = 1;
    });
    assert_eq!(token_response(&sim, &c).await.status(), 503);
    assert_eq!(token_response(&sim, &c).await.status(), 200);
    let j = sim.journal();
    assert_eq!(j.token_requests, 11);
    assert_eq!(j.token_unavailable, 4);
    assert_eq!(j.token_throttled, 2);
    assert_eq!(j.tokens_issued, 5);
}

#[tokio::test]
async fn token_creation_is_limited_per_client_in_a_sliding_window() {
    let sim = start(SimConfig {
        token_creation_limit: Some(2),
        token_creation_window: Duration::from_secs(3600),
        clients: vec![
            tokenwarden_sim::SimClient::default(),
            tokenwarden_sim::SimClient::new("other", "other-secret", "other"),
        ],
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let mut statuses = vec![];
    for _ in 0..3 {
        statuses.push(token_response(&sim, &c).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 400]);
    let resp = token_response(&sim, &c).await;
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request");
    assert_eq!(
        b["description"],
        "rate limit exceeded; retry in a few seconds"
    );
    // Another client has its own count.
    let other = c
        .post(sim.token_url())
        .basic_auth("other", Some("other-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // Refused requests are not counted: once the window has passed, tokens come again.
    sim.update(|c| c.token_creation_window = Duration::ZERO);
    assert_eq!(token_response(&sim, &c).await.status(), 200);
    let j = sim.journal();
    assert_eq!(j.token_throttled, 2);
    assert_eq!(j.tokens_issued, 4);
}

#[tokio::test]
async fn token_latency_and_max_concurrency() {
    let sim = start(SimConfig {
        token_latency: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let reqs: Vec<_> = (0..5).map(|_| token_response(&sim, &c)).collect();
    let started = std::time::Instant::now();
    for r in futures::future::join_all(reqs).await {
        assert_eq!(r.status(), 200);
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    let j = sim.journal();
    assert_eq!(j.tokens_issued, 5);
    assert!(
        j.max_concurrent_token_requests >= 3,
        "{}",
        j.max_concurrent_token_requests
    );
    sim.reset_journal();
    assert_eq!(sim.journal().max_concurrent_token_requests, 0);
}

#[tokio::test]
async fn the_api_latency_is_never_short_and_its_jitter_varies_it() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(2),
        latency_jitter: Duration::from_millis(40),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut took = Vec::new();
    for i in 0..12 {
        let t = std::time::Instant::now();
        let r = get(&sim, &c, &format!("/api/v2/users/user-{i:06}"), &tok).await;
        assert_eq!(r.status(), 200);
        took.push(t.elapsed());
    }
    assert!(
        took.iter().all(|t| *t >= Duration::from_millis(2)),
        "{took:?}"
    );
    // Twelve uniform draws over 40 ms all within 8 ms of each other: about 1 in 10^6.
    let spread = *took.iter().max().unwrap() - *took.iter().min().unwrap();
    assert!(spread > Duration::from_millis(8), "{took:?}");
}

#[tokio::test]
async fn rate_limit_429_shape_and_window() {
    let sim = start(SimConfig {
        api_rate_limit_per_minute: Some(3),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    for n in 1..=3 {
        let resp = get(&sim, &c, "/api/v2/users/user-000001", &tok).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["inin-ratelimit-count"], n.to_string().as_str());
        assert_eq!(h["inin-ratelimit-allowed"], "3");
        let reset: u64 = h["inin-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    let resp = get(&sim, &c, "/api/v2/users/user-000001", &tok).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let b: Value = resp.json().await.unwrap();
    assert_genesys_error(&b, 429, "too.many.requests.retry.after");
    assert_eq!(
        b["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{retry}] seconds")
    );
    // Per token: another token has its own budget.
    let tok2 = token(&sim, &c).await;
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-000001", &tok2)
            .await
            .status(),
        200
    );
    // Short windows.
    sim.update(|c| {
        c.api_rate_limit_per_minute = Some(1);
        c.rate_limit_window = Duration::from_millis(300);
    });
    let tok3 = token(&sim, &c).await;
    let mut saw_429 = false;
    for _ in 0..3 {
        let resp = get(&sim, &c, "/api/v2/users/user-000001", &tok3).await;
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            saw_429 = true;
        }
    }
    assert!(saw_429);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-000001", &tok3)
            .await
            .status(),
        200
    );
    let j = sim.journal();
    assert!(j.api_rate_limited >= 2);
}

async fn error_sequence(seed: u64) -> (Vec<u16>, Journal) {
    let sim = start(SimConfig {
        error_rate: 0.3,
        seed,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut out = vec![];
    for i in 0..60 {
        let resp = get(
            &sim,
            &c,
            &format!("/api/v2/users/{}", data::user_id(i)),
            &tok,
        )
        .await;
        let status = resp.status().as_u16();
        if status >= 500 {
            let b: Value = resp.json().await.unwrap();
            let code = match status {
                500 => "internal.server.error",
                502 => "bad.gateway",
                503 => "service.unavailable",
                504 => "request.timeout",
                _ => panic!("unexpected {status}"),
            };
            assert_genesys_error(&b, status, code);
        }
        out.push(status);
    }
    (out, sim.journal())
}

#[tokio::test]
async fn error_rate_is_deterministic() {
    let (a, ja) = error_sequence(7).await;
    let (b, _) = error_sequence(7).await;
    let (c, _) = error_sequence(8).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let errors: Vec<u16> = a.iter().copied().filter(|s| *s >= 500).collect();
    assert!((5..=35).contains(&errors.len()), "{errors:?}");
    // Injected errors cycle 500, 502, 503, 504.
    for (i, s) in errors.iter().enumerate() {
        assert_eq!(*s, [500, 502, 503, 504][i % 4]);
    }
    assert_eq!(ja.api_server_error as usize, errors.len());
    assert_eq!(ja.api_ok as usize, 60 - errors.len());
}

#[tokio::test]
async fn dropped_connections_http1_and_http2() {
    let sim = start(SimConfig {
        drop_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let err = c
        .get(format!("{}/api/v2/users/user-000001", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    // HTTP/1: the connection is closed before any byte of a response.
    assert!(format!("{err:?}").contains("IncompleteMessage"), "{err:?}");
    let j = sim.journal();
    assert_eq!(j.api_dropped, 1);
    let e = j
        .entries
        .iter()
        .find(|e| e.outcome == Outcome::Dropped)
        .unwrap();
    assert_eq!(e.status, 0);
    // HTTP/2: the stream is reset, the connection survives for other requests.
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    let err = h2
        .get(format!("{}/api/v2/users/user-000001", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    sim.update(|c| c.drop_rate = 0.0);
    let resp = h2
        .get(format!("{}/api/v2/users/user-000001", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    // Partial drop rate: some succeed, some fail, the server keeps serving.
    sim.update(|c| c.drop_rate = 0.5);
    let (mut ok, mut dropped) = (0, 0);
    for _ in 0..20 {
        match c
            .get(format!("{}/api/v2/users/user-000002", sim.base_url()))
            .bearer_auth(&tok)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => panic!("unexpected {}", r.status()),
            Err(_) => dropped += 1,
        }
    }
    assert!(ok > 0 && dropped > 0, "ok={ok} dropped={dropped}");
    let j = sim.journal();
    assert_eq!(j.api_dropped, 2 + dropped);
}

#[tokio::test]
async fn users_page_number_walk() {
    let sim = start(SimConfig {
        users: 1003,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut next = Some("/api/v2/users?pageSize=100&pageNumber=1".to_owned());
    let mut seen = HashSet::new();
    let mut pages = 0;
    while let Some(uri) = next {
        let (s, b) = get_json(&sim, &c, &uri, &tok).await;
        assert_eq!(s, 200);
        pages += 1;
        assert_eq!(b["total"], 1003);
        assert_eq!(b["pageCount"], 11);
        assert_eq!(b["pageSize"], 100);
        assert_eq!(b["pageNumber"], pages);
        assert_eq!(b["selfUri"], uri);
        assert_eq!(b["firstUri"], "/api/v2/users?pageSize=100&pageNumber=1");
        assert_eq!(b["lastUri"], "/api/v2/users?pageSize=100&pageNumber=11");
        for u in b["entities"].as_array().unwrap() {
            for k in ["id", "name", "email", "state", "version", "selfUri"] {
                assert!(!u[k].is_null(), "{k} in {u}");
            }
            assert!(seen.insert(u["id"].as_str().unwrap().to_owned()));
        }
        next = b["nextUri"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 11);
    assert_eq!(seen.len(), 1003);
    assert!(seen.contains("user-001002"));
    let (s, b) = get_json(&sim, &c, "/api/v2/users?pageSize=501", &tok).await;
    assert_eq!(s, 400);
    assert_genesys_error(&b, 400, "bad.request");
    let (s, b) = get_json(&sim, &c, "/api/v2/users?pageSize=100&pageNumber=12", &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b["entities"], json!([]));
    assert!(b.get("nextUri").is_none());
    // Single user.
    let (s, b) = get_json(&sim, &c, "/api/v2/users/user-000042", &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b, data::user(42));
    let j = sim.journal();
    assert_eq!(j.ok_count("GET", "/api/v2/users"), 12);
    assert_eq!(j.ok_count("GET", "/api/v2/users/user-000042"), 1);
}

#[tokio::test]
async fn huge_lazy_data() {
    let sim = start(SimConfig {
        users: 1_000_000,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-999999", &tok)
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-1000000", &tok)
            .await
            .status(),
        404
    );
    let (_, b) = get_json(&sim, &c, "/api/v2/users?pageSize=500&pageNumber=2000", &tok).await;
    assert_eq!(b["entities"].as_array().unwrap().len(), 500);
    assert!(b.get("nextUri").is_none());
}

#[tokio::test]
async fn contacts_cursor_walk() {
    let sim = start(SimConfig {
        contacts: 257,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut next = Some("/api/v2/externalcontacts/scan/contacts?limit=50".to_owned());
    let mut seen = HashSet::new();
    let mut pages = 0;
    while let Some(uri) = next {
        let (s, b) = get_json(&sim, &c, &uri, &tok).await;
        assert_eq!(s, 200, "{b}");
        pages += 1;
        for e in b["entities"].as_array().unwrap() {
            assert!(seen.insert(e["id"].as_str().unwrap().to_owned()));
        }
        next = b["nextUri"].as_str().map(str::to_owned);
        match &next {
            Some(n) => assert!(n.ends_with(b["cursors"]["after"].as_str().unwrap())),
            None => assert!(b["cursors"].get("after").is_none()),
        }
    }
    assert_eq!(pages, 6);
    assert_eq!(seen.len(), 257);
    let (s, b) = get_json(
        &sim,
        &c,
        "/api/v2/externalcontacts/scan/contacts?cursor=garbage!",
        &tok,
    )
    .await;
    assert_eq!(s, 400);
    assert_genesys_error(&b, 400, "bad.request");
}

async fn post_json(
    sim: &Simulator,
    c: &Client,
    path: &str,
    tok: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let resp = c
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(tok)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = resp.status();
    (s, resp.json().await.unwrap_or(Value::Null))
}

const QUERY: &str = "/api/v2/analytics/conversations/details/query";
const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

#[tokio::test]
async fn analytics_query_walk() {
    let sim = start(SimConfig {
        conversations: 1000,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    // Two of the seven days: conversations 0..286 (start_i < 2/7 of the span).
    let interval = "2024-01-01T00:00:00.000Z/2024-01-03T00:00:00.000Z";
    let expected = (0..1000)
        .filter(|i| {
            data::conversation_start_ms(*i, 1000, 1_704_067_200_000, 1_704_672_000_000)
                < 1_704_240_000_000
        })
        .count();
    for order in ["asc", "desc"] {
        let mut all = vec![];
        for page in 1.. {
            let (s, b) = post_json(
                &sim,
                &c,
                QUERY,
                &tok,
                &json!({"interval": interval, "order": order, "orderBy": "conversationStart",
                        "paging": {"pageSize": 50, "pageNumber": page}}),
            )
            .await;
            assert_eq!(s, 200);
            assert_eq!(b["totalHits"], expected);
            let Some(convs) = b.get("conversations") else {
                break;
            };
            for conv in convs.as_array().unwrap() {
                assert!(conv["participants"].as_array().unwrap().len() >= 2);
                assert!(conv["conversationEnd"].is_string());
                all.push((
                    conv["conversationStart"].as_str().unwrap().to_owned(),
                    conv["conversationId"].as_str().unwrap().to_owned(),
                ));
            }
        }
        assert_eq!(all.len(), expected);
        let ids: HashSet<_> = all.iter().map(|x| x.1.clone()).collect();
        assert_eq!(ids.len(), expected);
        let mut sorted = all.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(all, sorted);
        assert!(
            all.iter()
                .all(|(start, _)| start.as_str() >= "2024-01-01" && start.as_str() < "2024-01-03")
        );
    }
    for bad in [
        json!({"interval": "yesterday"}),
        json!({}),
        json!({"interval": "2024-01-02T00:00:00Z/2024-01-01T00:00:00Z"}),
    ] {
        let (s, b) = post_json(&sim, &c, QUERY, &tok, &bad).await;
        assert_eq!(s, 400);
        assert_genesys_error(&b, 400, "bad.request");
    }
    // An interval with no conversations: no `conversations` key.
    let (s, b) = post_json(
        &sim,
        &c,
        QUERY,
        &tok,
        &json!({"interval": "2020-01-01T00:00:00Z/2020-01-02T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"totalHits": 0}));
}

#[tokio::test]
async fn async_job_lifecycle() {
    let sim = start(SimConfig {
        conversations: 700,
        job_duration: Duration::from_millis(1000),
        max_page_size: 100,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let interval = json!({"interval": "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z"});
    let (s, b) = post_json(&sim, &c, JOBS, &tok, &interval).await;
    assert_eq!(s, 202);
    let job = b["jobId"].as_str().unwrap().to_owned();
    let (s, b) = get_json(&sim, &c, &format!("{JOBS}/{job}"), &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b["state"], "QUEUED");
    assert!(b["submissionDate"].is_string() && b["expirationDate"].is_string());
    let (s, b) = get_json(&sim, &c, &format!("{JOBS}/{job}/results"), &tok).await;
    assert_eq!(s, 400);
    assert_genesys_error(&b, 400, "bad.request");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get_json(&sim, &c, &format!("{JOBS}/{job}"), &tok).await.1["state"],
        "PENDING"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        get_json(&sim, &c, &format!("{JOBS}/{job}"), &tok).await.1["state"],
        "FULFILLED"
    );
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &cursor {
            None => format!("{JOBS}/{job}/results?pageSize=100"),
            Some(cur) => format!("{JOBS}/{job}/results?pageSize=100&cursor={cur}"),
        };
        let (s, b) = get_json(&sim, &c, &uri, &tok).await;
        assert_eq!(s, 200, "{b}");
        pages += 1;
        for conv in b["conversations"].as_array().unwrap() {
            assert!(ids.insert(conv["conversationId"].as_str().unwrap().to_owned()));
        }
        match b.get("cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(ids.len(), 700);
    let resp = c
        .delete(format!("{}{JOBS}/{job}", sim.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        get(&sim, &c, &format!("{JOBS}/{job}"), &tok).await.status(),
        404
    );
    // Terminal failure states.
    for outcome in [
        JobOutcome::Failed,
        JobOutcome::Cancelled,
        JobOutcome::Expired,
    ] {
        sim.update(|c| {
            c.job_duration = Duration::ZERO;
            c.job_outcome = outcome;
        });
        let (_, b) = post_json(&sim, &c, JOBS, &tok, &interval).await;
        let job = b["jobId"].as_str().unwrap();
        let (_, b) = get_json(&sim, &c, &format!("{JOBS}/{job}"), &tok).await;
        assert_eq!(b["state"], outcome.as_str());
        assert_eq!(
            get(&sim, &c, &format!("{JOBS}/{job}/results"), &tok)
                .await
                .status(),
            400
        );
    }
}

/// All results of a fulfilled job with `body`, by conversation id.
async fn job_ids(sim: &Simulator, c: &Client, tok: &str, body: Value) -> Vec<String> {
    let (_, b) = post_json(sim, c, JOBS, tok, &body).await;
    let job = b["jobId"].as_str().unwrap().to_owned();
    let mut ids = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            None => format!("{JOBS}/{job}/results?pageSize=100"),
            Some(cur) => format!("{JOBS}/{job}/results?pageSize=100&cursor={cur}"),
        };
        let (s, b) = get_json(sim, c, &uri, tok).await;
        assert_eq!(s, 200, "{b}");
        for conv in b["conversations"].as_array().into_iter().flatten() {
            ids.push(conv["conversationId"].as_str().unwrap().to_owned());
        }
        match b.get("cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn jobs_hold_every_conversation_whose_lifetime_overlaps_the_interval() {
    let n = 2000;
    let sim = start(SimConfig {
        conversations: n,
        job_duration: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let (week_start, week_end) = (1_704_067_200_000u64, 1_704_672_000_000u64);
    // 2024-01-03T10:00Z .. 2024-01-04T00:00Z
    let (from, to) = (week_start + 58 * 3_600_000, week_start + 72 * 3_600_000);
    let interval = "2024-01-03T10:00:00Z/2024-01-04T00:00:00Z";
    let start = |i: usize| data::conversation_start_ms(i, n, week_start, week_end);
    let overlapping: Vec<String> = (0..n)
        .filter(|i| start(*i) < to && data::conversation_end_ms(*i, start(*i)) > from)
        .map(data::conversation_id)
        .collect();
    let started_in: Vec<String> = (0..n)
        .filter(|i| (from..to).contains(&start(*i)))
        .map(data::conversation_id)
        .collect();
    assert!(overlapping.len() > started_in.len(), "some began before");
    let got = job_ids(&sim, &c, &tok, json!({"interval": interval})).await;
    assert_eq!(
        got, overlapping,
        "ascending by start, those still going first"
    );
    let mut desc = job_ids(
        &sim,
        &c,
        &tok,
        json!({"interval": interval, "order": "desc"}),
    )
    .await;
    desc.reverse();
    assert_eq!(desc, overlapping);
    // startOfDayIntervalMatching: only those that began on the interval's first day (UTC), and
    // a day-aligned interval is then exactly the conversations that started in it.
    let day = json!({"interval": "2024-01-03T00:00:00Z/2024-01-04T00:00:00Z",
                     "startOfDayIntervalMatching": true});
    let got = job_ids(&sim, &c, &tok, day).await;
    let day_from = week_start + 48 * 3_600_000;
    let same_day: Vec<String> = (0..n)
        .filter(|i| (day_from..to).contains(&start(*i)))
        .map(data::conversation_id)
        .collect();
    assert_eq!(got, same_day);
    // The query keeps matching on the start.
    let (_, b) = post_json(&sim, &c, QUERY, &tok, &json!({"interval": interval})).await;
    assert_eq!(b["totalHits"], started_in.len());
}

#[tokio::test]
async fn echo_token_in_items_puts_the_callers_token_in_every_item() {
    let sim = start(SimConfig {
        users: 3,
        echo_token_in_items: true,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let (_, b) = get_json(&sim, &c, "/api/v2/users", &tok).await;
    for u in b["entities"].as_array().unwrap() {
        assert_eq!(u["echoedAuthorization"], format!("Bearer {tok}"));
    }
    sim.update(|c| c.echo_token_in_items = false);
    let (_, b) = get_json(&sim, &c, "/api/v2/users", &tok).await;
    assert!(b["entities"][0].get("echoedAuthorization").is_none());
}

#[tokio::test]
async fn echo_status_redirect_and_timeouts() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&sim, &c).await;
    let resp = c
        .request(
            Method::PATCH,
            format!("{}/api/v2/sim/echo?x=1", sim.base_url()),
        )
        .bearer_auth(&tok)
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["method"], "PATCH");
    assert_eq!(b["json"], json!({"hello": "world"}));
    assert_eq!(b["query"]["x"], "1");
    assert_eq!(b["counter"], 1);
    let resp = c
        .get(format!(
            "{}/api/v2/sim/status/429?retry_after=3",
            sim.base_url()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let (s, b) = get_json(&sim, &c, "/api/v2/sim/status/503", &tok).await;
    assert_eq!(s, 503);
    assert_genesys_error(&b, 503, "service.unavailable");
    let resp = get(
        &sim,
        &c,
        "/api/v2/sim/redirect?location=https://example.invalid/x",
        &tok,
    )
    .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://example.invalid/x");
    // A client that times out: the server still finishes and journals the request.
    let err = c
        .post(format!("{}/api/v2/sim/echo?delay_ms=300", sim.base_url()))
        .bearer_auth(&tok)
        .body("abc")
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let j = sim.journal();
    assert_eq!(j.ok_count("POST", "/api/v2/sim/echo"), 1);
    let last = j.entries.last().unwrap();
    assert_eq!(last.path, "/api/v2/sim/echo?delay_ms=300");
    assert_eq!(last.body_len, 3);
    assert_eq!(last.token_id.as_deref(), Some("tok-1"));
    assert!(last.authorization_present);
    assert_eq!(j.api_rate_limited, 1);
    assert_eq!(j.api_server_error, 1);
    assert_eq!(j.api_redirect, 1);
}

#[tokio::test]
async fn admin_routes_and_journal_reset() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&sim, &c).await;
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-000001", &tok)
            .await
            .status(),
        200
    );
    let j: Journal = c
        .get(format!("{}/sim/journal", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j, sim.journal());
    assert_eq!(j.entries.len(), 2);
    assert_eq!(j.entries[0].seq + 1, j.entries[1].seq);
    let resp = c
        .patch(format!("{}/sim/config", sim.base_url()))
        .json(&json!({"token_ttl_ms": 5000, "api_rate_limit_per_minute": 10, "job_outcome": "FAILED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cfg = sim.config();
    assert_eq!(cfg.token_ttl, Duration::from_secs(5));
    assert_eq!(cfg.api_rate_limit_per_minute, Some(10));
    assert_eq!(cfg.job_outcome, JobOutcome::Failed);
    let resp = c
        .patch(format!("{}/sim/config", sim.base_url()))
        .json(&json!({"api_rate_limit_per_minute": null, "nonsense": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    c.patch(format!("{}/sim/config", sim.base_url()))
        .json(&json!({"api_rate_limit_per_minute": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.config().api_rate_limit_per_minute, None);
    c.post(format!("{}/sim/journal/reset", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.journal(), Journal::default());
    c.post(format!("{}/sim/revoke-all", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&sim, &c, "/api/v2/users/user-000001", &tok)
            .await
            .status(),
        401
    );
    let j = sim.journal();
    assert_eq!(j.api_revoked_token, 1);
    assert_eq!(j.entries.len(), 1);
    assert_eq!(j.entries[0].seq, 3);
    // The entry list is bounded; counters are not.
    sim.update(|c| c.journal_capacity = 2);
    for _ in 0..5 {
        get(&sim, &c, "/api/v2/users/user-000001", &tok).await;
    }
    let j = sim.journal();
    assert_eq!(j.api_requests, 6);
    assert_eq!(j.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8]);
}

#[tokio::test]
async fn concurrent_load_smoke() {
    let sim = start(SimConfig {
        api_rate_limit_per_minute: Some(1_000_000),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let mut tasks = vec![];
    for w in 0..16 {
        let c = c.clone();
        let tok = tok.clone();
        let base = sim.base_url();
        tasks.push(tokio::spawn(async move {
            for i in 0..125 {
                let r = c
                    .get(format!(
                        "{base}/api/v2/users/{}",
                        data::user_id((w * 125 + i) % 1000)
                    ))
                    .bearer_auth(&tok)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let j = sim.journal_counters();
    assert_eq!(j.api_ok, 2000);
    assert_eq!(j.per_resource_ok.len(), 1000);
    assert!(j.per_resource_ok.values().all(|n| *n == 2));
    assert!(j.entries.is_empty());
}

#[test]
fn public_types_are_thread_safe_and_serializable() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Simulator>();
    send_sync::<Journal>();
    send_sync::<SimConfig>();
    let j = Journal::default();
    let back: Journal = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
    assert_eq!(j, back);
}

#[tokio::test]
async fn issued_access_tokens_and_drop_stops() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = sim.issue_access_token(DEFAULT_CLIENT_ID);
    let (s, me) = get_json(&sim, &c, "/api/v2/tokens/me", &tok).await;
    assert_eq!(s, 200);
    assert_eq!(me["OAuthClient"]["name"], "tokenwarden demo");
    assert_eq!(sim.journal().token_requests, 0);
    let addr = sim.addr();
    drop(sim);
    // The accept loop ends on its next poll; give the runtime a moment to run it.
    let mut closed = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(closed);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    assert_eq!(
        sim.token_url(),
        format!("http://127.0.0.1:{}/oauth/token", addr.port())
    );
    sim.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Throughput report (run with `cargo test -p tokenwarden-sim --release -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark-style report, not a correctness test"]
async fn throughput_report() {
    let sim = start(SimConfig::default()).await;
    let c = Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let tok = token(&sim, &c).await;
    let started = std::time::Instant::now();
    let n_workers = 32;
    let per_worker = 1000;
    let mut tasks = vec![];
    for _ in 0..n_workers {
        let c = c.clone();
        let tok = tok.clone();
        let url = format!("{}/api/v2/users/user-000042", sim.base_url());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = n_workers * per_worker;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} requests in {secs:.2} s: {:.0} req/s (client and server sharing the CPUs)",
        n as f64 / secs
    );
    assert_eq!(sim.journal_counters().api_ok, n as u64);
}

#[tokio::test]
async fn rate_limit_headers_can_be_suppressed() {
    let sim = start(SimConfig {
        api_rate_limit_per_minute: Some(1),
        rate_limit_headers: false,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&sim, &c).await;
    let ok = get(&sim, &c, "/api/v2/users/user-000001", &tok).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("inin-ratelimit-count").is_none());
    // The limit is still enforced, and the 429 still says when to come back.
    let limited = get(&sim, &c, "/api/v2/users/user-000001", &tok).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert!(limited.headers().get("inin-ratelimit-allowed").is_none());
    sim.update(|c| c.rate_limit_headers = true);
    let tok2 = token(&sim, &c).await;
    let announced = get(&sim, &c, "/api/v2/users/user-000001", &tok2).await;
    assert_eq!(announced.headers()["inin-ratelimit-allowed"], "1");
}

#[tokio::test]
async fn sim_bytes_streams_n_bytes_with_or_without_length() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&sim, &c).await;
    let sized = get(&sim, &c, "/api/v2/sim/bytes?n=200000", &tok).await;
    assert_eq!(sized.headers()["content-length"], "200000");
    let body = sized.bytes().await.unwrap();
    assert_eq!(body.len(), 200_000);
    assert!(body.iter().all(|b| *b == b'x'));
    let chunked = get(&sim, &c, "/api/v2/sim/bytes?n=70000&chunked=true", &tok).await;
    assert!(chunked.headers().get("content-length").is_none());
    assert_eq!(chunked.bytes().await.unwrap().len(), 70_000);
    let bad = get(&sim, &c, "/api/v2/sim/bytes?n=-1", &tok).await;
    assert_eq!(bad.status(), 400);
}
