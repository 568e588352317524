//! The agent driven by plain HTTP clients that know nothing of tokenwarden, against the embedded
//! simulator; what reached the API is read from the simulator's journal.

mod common;

use common::{KEY, Setup};
use std::time::Duration;
use tokenwarden_sim::SimConfig;

fn quick() -> SimConfig {
    SimConfig::default()
}

#[tokio::test]
async fn healthz_token_endpoint_token_and_proxy() {
    let s = Setup::new(quick()).await;
    // No token held yet: 503, and the body says nothing else.
    let h = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 503);
    assert_eq!(h.text().await.unwrap(), r#"{"status":"unavailable"}"#);

    // The token endpoint: Basic, any client id, the key as the secret.
    let t = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("any-client", Some(KEY))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
    assert_eq!(t.headers()["cache-control"], "no-store");
    let body: serde_json::Value = t.json().await.unwrap();
    let local = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(local, s.key.local_credential());
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() >= 86_400);
    // Nothing was asked of the real token endpoint for it.
    assert_eq!(s.sim.journal().token_requests, 0);

    // Form fields work too.
    let t = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "x"),
            ("client_secret", KEY),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);

    // The proxy, with the local credential and with the key.
    for cred in [local.as_str(), KEY] {
        let me = s
            .http
            .get(s.url("/api/v2/tokens/me"))
            .bearer_auth(cred)
            .send()
            .await
            .unwrap();
        let status = me.status();
        assert_eq!(me.headers()["via"], "1.1 tokenwarden-agent");
        let me = me.text().await.unwrap();
        assert_eq!(status, 200, "{me}");
        let me: serde_json::Value = serde_json::from_str(&me).unwrap();
        assert!(me["organization"].is_object(), "{me}");
    }
    let j = s.sim.journal();
    assert_eq!(j.token_requests, 1);
    assert_eq!(j.api_ok, 2);
    assert!(
        j.entries
            .iter()
            .filter(|e| e.path.starts_with("/api"))
            .all(|e| e.token_id.is_some())
    );

    // Now a token is held.
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );

    // GET /token: the real token, the key required.
    let real: serde_json::Value = s.get("/token").await.json().await.unwrap();
    let real = real["access_token"].as_str().unwrap().to_string();
    assert_ne!(real, local);
    assert_eq!(
        s.http.get(s.url("/token")).send().await.unwrap().status(),
        401
    );
    // It is the one the API knows.
    let direct = s
        .http
        .get(format!("{}/api/v2/tokens/me", s.sim.base_url()))
        .bearer_auth(&real)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
}

#[tokio::test]
async fn a_wrong_secret_gets_invalid_client_and_nothing_reaches_the_api() {
    let s = Setup::new(quick()).await;
    for req in [
        s.http
            .post(s.url("/oauth/token"))
            .basic_auth("c", Some("wrong-secret"))
            .form(&[("grant_type", "client_credentials")]),
        s.http.post(s.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "nope"),
        ]),
        s.http
            .post(s.url("/oauth/token"))
            .form(&[("grant_type", "client_credentials")]),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
    }
    // The local credential is no client secret.
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("c", Some(s.key.local_credential()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("c", Some(KEY))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unsupported_grant_type");
    let j = s.sim.journal();
    assert_eq!((j.token_requests, j.api_requests), (0, 0));
}

#[tokio::test]
async fn without_the_key_nothing_is_forwarded() {
    let s = Setup::new(quick()).await;
    let no_key = s.http.get(s.url("/api/v2/users/me")).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    assert!(no_key.headers().contains_key("www-authenticate"));
    for bad in ["wrong", "", &KEY[..KEY.len() - 1]] {
        let r = s
            .http
            .get(s.url("/api/v2/users/me"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }
    // The key in another scheme is no key.
    let r = s
        .http
        .get(s.url("/api/v2/users/me"))
        .basic_auth("x", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let j = s.sim.journal();
    assert_eq!((j.token_requests, j.api_requests), (0, 0));
}

#[tokio::test]
async fn dns_rebinding_origin_proxy_requests_and_other_hosts_are_refused_unforwarded() {
    let s = Setup::new(quick()).await;
    let port = s.agent.local_addr().port();
    let auth = format!("Authorization: Bearer {KEY}\r\n");
    let cases: Vec<(String, &str)> = vec![
        // DNS rebinding: a name that resolves to 127.0.0.1, in the Host header.
        (
            format!("GET /api/v2/users/me HTTP/1.1\r\nHost: evil.example:{port}\r\n{auth}\r\n"),
            "421",
        ),
        (
            format!(
                "GET /api/v2/users/me HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}\r\n",
                port + 1
            ),
            "421",
        ),
        (
            format!("GET /api/v2/users/me HTTP/1.0\r\n{auth}\r\n"),
            "421",
        ),
        // A web page.
        (
            format!(
                "GET /api/v2/users/me HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://evil.example\r\n{auth}\r\n"
            ),
            "403",
        ),
        (
            format!(
                "GET /api/v2/users/me HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: null\r\n{auth}\r\n"
            ),
            "403",
        ),
        // A forward-proxy request.
        (
            format!(
                "GET http://evil.example/api/v2/users/me HTTP/1.1\r\nHost: evil.example\r\n{auth}\r\n"
            ),
            "400",
        ),
        (
            format!(
                "GET http://127.0.0.1:{port}/api/v2/users/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
            ),
            "400",
        ),
        (
            format!("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n{auth}\r\n"),
            "405",
        ),
        // Paths that name another host.
        (
            format!(
                "GET //evil.example/api/v2/users/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
            ),
            "400",
        ),
        (
            format!(
                "GET /\\evil.example/api/v2/users/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
            ),
            "400",
        ),
        // A body larger than accepted, announced.
        (
            format!(
                "POST /api/v2/sim/echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Length: 999999999999\r\n\r\n"
            ),
            "413",
        ),
        // A head larger than accepted.
        (
            format!(
                "GET /api/v2/tokens/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}X-Big: {}\r\n\r\n",
                "a".repeat(80 * 1024)
            ),
            "431",
        ),
    ];
    for (raw, want) in &cases {
        let answer = s.raw(raw.as_bytes()).await;
        let status_line = answer.lines().next().unwrap_or_default().to_string();
        let shown: String = raw.chars().take(90).collect();
        assert!(
            want.split('|').any(|w| status_line.contains(w)),
            "{shown:?}: wanted {want}, got {status_line:?}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("access-control-"),
            "{shown:?}: {answer}"
        );
    }
    // A well-formed request on the same socket address works (the refusals were the requests').
    let ok = s
        .raw(format!("GET /api/v2/tokens/me HTTP/1.1\r\nHost: localhost:{port}\r\n{auth}Connection: close\r\n\r\n").as_bytes())
        .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let j = s.sim.journal();
    let paths: Vec<&str> = j.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        j.api_requests, 1,
        "only the well-formed request reached the API: {paths:?}"
    );
}

#[tokio::test]
async fn no_cors_header_ever_even_when_the_api_sends_them() {
    let s = Setup::new(quick()).await;
    // A preflight from a page is refused like any request with an Origin.
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/api/v2/users/me"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 403);
    assert!(
        pre.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
    assert_eq!(s.sim.journal().api_requests, 0);
}

#[tokio::test]
async fn the_real_token_is_scrubbed_from_answers_that_echo_it() {
    let s = Setup::new(quick()).await;
    for path in [
        "/api/v2/sim/echo?headers=1",
        "/api/v2/sim/echo?headers=1&escape=unicode",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 200);
        let len: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = r.text().await.unwrap();
        assert_eq!(text.len(), len, "Content-Length matches the scrubbed body");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["headers"]["authorization"], "Bearer [REDACTED]",
            "{path}: {v}"
        );
    }
    let real: serde_json::Value = s.get("/token").await.json().await.unwrap();
    let real = real["access_token"].as_str().unwrap().to_string();
    let again = s
        .get("/api/v2/sim/echo?headers=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&real));
    // The key never reached the API: the Authorization it saw is the real token's.
    assert!(!again.contains(KEY));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let s = Setup::new(quick()).await;
    let r = s
        .http
        .get(s.url("/api/v2/sim/echo?headers=1"))
        .bearer_auth(KEY)
        .header("Connection", "keep-alive, x-hop")
        .header("X-Hop", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("TE", "trailers")
        .header("X-Kept", "yes")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let h = v["headers"].as_object().unwrap();
    for gone in ["x-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(!h.contains_key(gone), "{gone} forwarded: {h:?}");
    }
    // The caller's Accept-Encoding is replaced: the agent asks for answers it can scrub.
    assert_eq!(h["accept-encoding"], "identity");
    assert_eq!(h["x-kept"], "yes");
    assert_eq!(h["via"], "1.1 tokenwarden-agent");
}

#[tokio::test]
async fn a_revoked_token_is_healed_once_and_the_call_succeeds() {
    let s = Setup::new(quick()).await;
    assert_eq!(s.get("/api/v2/tokens/me").await.status(), 200);
    s.sim.revoke_all_tokens();
    // A POST too: a 401 proves the API did nothing, so it is sent again.
    let r = s
        .http
        .post(s.url("/api/v2/sim/echo"))
        .bearer_auth(KEY)
        .body(r#"{"a":1}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["json"]["a"], 1);
    let j = s.sim.journal();
    assert_eq!(j.api_revoked_token, 1);
    assert_eq!(j.tokens_issued, 2);
    assert!(s.agent.metrics().contains("tokenwarden_401_healed_total 1"));
}

#[tokio::test]
async fn redirects_are_followed_on_the_api_origin_only() {
    let s = Setup::new(quick()).await;
    let r = s
        .get("/api/v2/sim/redirect?location=/api/v2/tokens/me")
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .get("/api/v2/sim/redirect?location=https://elsewhere.example/x")
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "https://elsewhere.example/x");
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let s = Setup::new(quick()).await;
    // A body over the replay buffer streams to the API.
    let big = vec![b'x'; tokenwarden_agent::REPLAYABLE_BODY + 1000];
    let n = big.len();
    let r = s
        .http
        .post(s.url("/api/v2/sim/echo"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(
            big.chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["bodyLength"], n);
    // An answer over the whole-scrub limit streams back, as it came.
    let want = tokenwarden_agent::SCRUBBED_WHOLE + 12345;
    let r = s.get(&format!("/api/v2/sim/bytes?n={want}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    assert_eq!(r.bytes().await.unwrap().len(), want);
}

#[tokio::test]
async fn short_tokens_revocations_a_rate_limit_and_8_workers_every_call_succeeds() {
    let s = Setup::new(SimConfig {
        token_ttl: Duration::from_secs(2),
        revoke_every: Some(150),
        api_rate_limit_per_minute: Some(100),
        // Unannounced: the agent learns the limit from the 429s it waits out.
        rate_limit_headers: false,
        rate_limit_window: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let http = s.http.clone();
        let url = s.url(&format!("/api/v2/users/user-{w:06}"));
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            while started.elapsed() < Duration::from_millis(2500) {
                let r = http.get(&url).bearer_auth(KEY).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                ok += 1;
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let j = s.sim.journal_counters();
    assert!(total > 50, "{total}");
    assert_eq!(j.max_concurrent_token_requests, 1);
    let seen = (
        total,
        j.api_revoked_token,
        j.api_rate_limited,
        j.tokens_issued,
    );
    assert!(
        j.api_revoked_token > 0 && j.api_rate_limited > 0,
        "{seen:?}"
    );
    // One token per lifetime, give or take the revocations it healed.
    let lifetimes = (started.elapsed().as_secs_f64() / 1.5).ceil() as u64 + 1;
    assert!(
        j.tokens_issued <= lifetimes + j.api_revoked_token,
        "{} tokens for {lifetimes} lifetimes and {} revocations",
        j.tokens_issued,
        j.api_revoked_token
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = Setup::new(quick()).await;
    s.get("/api/v2/tokens/me").await;
    s.get("/api/v2/users/nobody").await;
    let m = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = m.text().await.unwrap();
    for want in [
        "tokenwarden_api_requests_total{class=\"2xx\"} 1",
        "tokenwarden_api_requests_total{class=\"4xx\"} 1",
        "tokenwarden_token_requests_total{reason=\"on_demand\"} 1",
        "tokenwarden_api_request_duration_seconds_count 2",
        "tokenwarden_agent_forwarded_total{class=\"2xx\"} 1",
        "tokenwarden_agent_forwarded_total{class=\"4xx\"} 1",
        "tokenwarden_agent_request_duration_seconds_count 2",
        "# TYPE tokenwarden_token_remaining_seconds gauge",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // Prometheus's own linter has nothing to say (under CI promtool must be there).
    tokenwarden_test_support::prometheus::assert_promtool_clean(&text);
}

#[tokio::test]
async fn a_non_loopback_listen_address_is_refused() {
    let sim = tokenwarden_sim::Simulator::start(quick()).await.unwrap();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8181"] {
        let e = tokenwarden_agent::Agent::start(
            common::client_for(&sim),
            tokenwarden_agent::AgentOptions::new(addr.parse().unwrap(), s_key()),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("not a loopback address"), "{e}");
    }
}

fn s_key() -> tokenwarden_agent::AgentKey {
    tokenwarden_agent::AgentKey::from_text(KEY).unwrap()
}

#[tokio::test]
async fn regression_a_streamed_body_refused_with_401_still_replaces_the_token() {
    // A body over the replay buffer is sent once: after a 401 it cannot be sent again, but the
    // refused token is replaced all the same, so the caller's next request works.
    let s = Setup::new(quick()).await;
    assert_eq!(s.get("/api/v2/tokens/me").await.status(), 200);
    s.sim.revoke_all_tokens();
    let big = vec![b'x'; tokenwarden_agent::REPLAYABLE_BODY + 10];
    let r = s
        .http
        .post(s.url("/api/v2/sim/echo"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from(big)),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "agent.not.replayable");
    assert_eq!(s.get("/api/v2/tokens/me").await.status(), 200);
    let j = s.sim.journal();
    assert_eq!((j.tokens_issued, j.api_revoked_token), (2, 1));
}

// A new user's finding: an agent without a sink let its token expire once nobody asked, and its
// `/healthz` then answered 503 (a monitor saw a healthy idle agent as down, overnight with 24-h
// tokens). It keeps the token fresh now, at one token request per lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_an_idle_agent_keeps_its_token_fresh() {
    let s = Setup::new(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..quick()
    })
    .await;
    let health = async || s.http.get(s.url("/healthz")).send().await.unwrap().status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.sim.journal().token_requests,
        0,
        "an agent nobody used asks for no token"
    );
    assert_eq!(s.get("/api/v2/tokens/me").await.status(), 200);
    // Idle from now on, for three lifetimes: the token is refreshed before it expires all the
    // same (the manager refreshed once by itself, then let the next one expire).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while s.sim.journal().token_requests < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed while idle: {:?}",
            s.sim.journal()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health().await, 200);
    let j = s.sim.journal();
    assert_eq!(j.api_requests, 1, "{j:?}");
    assert_eq!(j.max_concurrent_token_requests, 1);
}

// A new user's finding: a JSON body with the key in it was told "the client secret must be the
// agent key", which sent them to look at the key.
#[tokio::test]
async fn a_token_request_that_is_not_form_encoded_is_told_so() {
    let s = Setup::new(quick()).await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "any",
            "client_secret": KEY,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "{v}");
    let said = v["error_description"].as_str().unwrap();
    assert!(said.contains("application/x-www-form-urlencoded"), "{said}");
    // Form-encoded, with or without the header's parameters: served.
    for content_type in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    ] {
        let r = s
            .http
            .post(s.url("/oauth/token"))
            .header("content-type", content_type)
            .body(format!(
                "grant_type=client_credentials&client_id=any&client_secret={KEY}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{content_type}");
    }
    assert_eq!(s.sim.journal().token_requests, 0);
}
