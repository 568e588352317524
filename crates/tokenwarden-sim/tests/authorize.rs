//! The Authorization Code grant over real HTTP: `/oauth/authorize`, codes bound to client,
//! redirect URI and PKCE challenge, sessions with rotating refresh tokens (issue #11).

use std::time::Duration;

use base64::Engine as _;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokenwarden_sim::{
    AuthorizeMode, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Outcome, SimClient, SimConfig,
    Simulator, data,
};

const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn start(mode: AuthorizeMode) -> Simulator {
    Simulator::start(SimConfig {
        authorize_mode: mode,
        clients: vec![SimClient::default(), SimClient::public("pub", "public app")],
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// `GET /oauth/authorize` for `client_id` with PKCE; the answer.
async fn authorize(sim: &Simulator, client_id: &str, redirect: &str) -> reqwest::Response {
    client()
        .get(sim.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", "st-1"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
}

/// The query of the redirect an answer carries.
fn redirected(resp: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = resp.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(REDIRECT), "{to}");
    url::Url::parse(to)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// Exchanges `code`; status and body.
async fn exchange(
    sim: &Simulator,
    secret: Option<&str>,
    client_id: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
    ];
    let mut req = client().post(sim.token_url());
    match secret {
        Some(s) => req = req.basic_auth(client_id, Some(s)),
        None => form.push(("client_id", client_id)),
    }
    let resp = req.form(&form).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn code(sim: &Simulator, client_id: &str) -> String {
    let q = redirected(&authorize(sim, client_id, REDIRECT).await);
    assert_eq!(param(&q, "state"), Some("st-1"));
    param(&q, "code").unwrap().to_owned()
}

async fn refresh(sim: &Simulator, rt: &str) -> (StatusCode, Value) {
    let resp = client()
        .post(sim.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn get(sim: &Simulator, path: &str, token: &str) -> (StatusCode, Value) {
    let resp = client()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_code_signs_the_user_in_once_with_its_verifier_and_redirect_uri() {
    let sim = start(AuthorizeMode::Approve).await;
    let secret = Some(DEFAULT_CLIENT_SECRET);
    let c = code(&sim, DEFAULT_CLIENT_ID).await;
    let (s, b) = exchange(&sim, secret, DEFAULT_CLIENT_ID, &c, REDIRECT, VERIFIER).await;
    assert_eq!(s, 200, "{b}");
    let access = b["access_token"].as_str().unwrap();
    assert!(b["refresh_token"].is_string());
    // The token acts for the signed-in user.
    let (s, me) = get(&sim, "/api/v2/users/me", access).await;
    assert_eq!(s, 200);
    assert_eq!(me["id"], data::user_id(1));

    // Single use: the second exchange fails, and revokes what the first gave.
    let (s, b) = exchange(&sim, secret, DEFAULT_CLIENT_ID, &c, REDIRECT, VERIFIER).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "invalid_grant");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("already been used")
    );
    assert_eq!(get(&sim, "/api/v2/users/me", access).await.0, 401);

    // Wrong verifier, wrong redirect URI, another client: each refused with its reason.
    for (verifier, redirect, says) in [
        ("not-the-verifier", REDIRECT, "code_verifier does not match"),
        (
            VERIFIER,
            "http://localhost:8765/callback",
            "redirect_uri does not match",
        ),
    ] {
        let c = code(&sim, DEFAULT_CLIENT_ID).await;
        let (s, b) = exchange(&sim, secret, DEFAULT_CLIENT_ID, &c, redirect, verifier).await;
        assert_eq!(s, 400, "{b}");
        assert!(
            b["error_description"].as_str().unwrap().contains(says),
            "{b}"
        );
        // ... and the code is spent.
        let (s, _) = exchange(&sim, secret, DEFAULT_CLIENT_ID, &c, REDIRECT, VERIFIER).await;
        assert_eq!(s, 400);
    }
    let c = code(&sim, DEFAULT_CLIENT_ID).await;
    let (s, b) = exchange(&sim, None, "pub", &c, REDIRECT, VERIFIER).await;
    assert_eq!(s, 400);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("another client")
    );
    assert_eq!(sim.journal().authorization_code_grants, 1);
}

#[tokio::test]
async fn a_code_expires() {
    let sim = start(AuthorizeMode::Approve).await;
    sim.update(|c| c.authorization_code_ttl = Duration::ZERO);
    let c = code(&sim, DEFAULT_CLIENT_ID).await;
    let (s, b) = exchange(
        &sim,
        Some(DEFAULT_CLIENT_SECRET),
        DEFAULT_CLIENT_ID,
        &c,
        REDIRECT,
        VERIFIER,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        b["error_description"].as_str().unwrap().contains("expired"),
        "{b}"
    );
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_gets_an_error_page_not_a_redirect() {
    let sim = start(AuthorizeMode::Approve).await;
    let resp = authorize(&sim, DEFAULT_CLIENT_ID, "http://127.0.0.1:9999/callback").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    let page = resp.text().await.unwrap();
    assert!(page.contains("redirect_uri_mismatch"), "{page}");
    assert!(
        page.contains("is not registered for OAuth client"),
        "{page}"
    );
    let resp = authorize(&sim, "nobody", REDIRECT).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("invalid_client"));
}

#[tokio::test]
async fn denied_consent_goes_back_as_access_denied_with_the_state() {
    let sim = start(AuthorizeMode::Deny).await;
    let q = redirected(&authorize(&sim, DEFAULT_CLIENT_ID, REDIRECT).await);
    assert_eq!(param(&q, "error"), Some("access_denied"));
    assert_eq!(param(&q, "state"), Some("st-1"));
    assert_eq!(param(&q, "code"), None);
}

#[tokio::test]
async fn the_sign_in_page_posts_back_a_decision() {
    let sim = start(AuthorizeMode::Page).await;
    let resp = authorize(&sim, DEFAULT_CLIENT_ID, REDIRECT).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains(r#"name="decision" value="allow""#), "{page}");
    let post = |decision: &'static str| {
        client()
            .post(sim.authorize_url())
            .form(&[
                ("response_type", "code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("state", "st-1"),
                ("code_challenge", &challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
                ("user", "user-000007"),
                ("decision", decision),
            ])
            .send()
    };
    let q = redirected(&post("deny").await.unwrap());
    assert_eq!(param(&q, "error"), Some("access_denied"));
    let q = redirected(&post("allow").await.unwrap());
    let c = param(&q, "code").unwrap();
    let (s, b) = exchange(
        &sim,
        Some(DEFAULT_CLIENT_SECRET),
        DEFAULT_CLIENT_ID,
        c,
        REDIRECT,
        VERIFIER,
    )
    .await;
    assert_eq!(s, 200);
    let (_, me) = get(
        &sim,
        "/api/v2/users/me",
        b["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(me["id"], "user-000007");
}

#[tokio::test]
async fn a_public_client_needs_pkce_and_no_secret_and_cannot_use_client_credentials() {
    let sim = start(AuthorizeMode::Approve).await;
    let c = code(&sim, "pub").await;
    let (s, b) = exchange(&sim, None, "pub", &c, REDIRECT, VERIFIER).await;
    assert_eq!(s, 200, "{b}");
    // Without a challenge the request goes back refused.
    let resp = client()
        .get(sim.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", "pub"),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let q = redirected(&resp);
    assert_eq!(param(&q, "error"), Some("invalid_request"));
    // A secret is not accepted from it, nor is client_credentials.
    let (s, _) = exchange(
        &sim,
        Some("x"),
        "pub",
        &code(&sim, "pub").await,
        REDIRECT,
        VERIFIER,
    )
    .await;
    assert_eq!(s, 401);
    let resp = client()
        .post(sim.token_url())
        .form(&[("grant_type", "client_credentials"), ("client_id", "pub")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A confidential client must send its secret.
    let (s, _) = exchange(
        &sim,
        None,
        DEFAULT_CLIENT_ID,
        &code(&sim, DEFAULT_CLIENT_ID).await,
        REDIRECT,
        VERIFIER,
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn refresh_tokens_rotate_are_journaled_by_id_and_a_reuse_can_revoke_the_session() {
    let sim = start(AuthorizeMode::Approve).await;
    sim.update(|c| c.refresh_token_reuse_revokes_session = true);
    let c = code(&sim, DEFAULT_CLIENT_ID).await;
    let (_, b) = exchange(
        &sim,
        Some(DEFAULT_CLIENT_SECRET),
        DEFAULT_CLIENT_ID,
        &c,
        REDIRECT,
        VERIFIER,
    )
    .await;
    let rt1 = b["refresh_token"].as_str().unwrap().to_owned();
    let (s, b) = refresh(&sim, &rt1).await;
    assert_eq!(s, 200);
    let rt2 = b["refresh_token"].as_str().unwrap().to_owned();
    let access2 = b["access_token"].as_str().unwrap().to_owned();
    let j = sim.journal();
    let grants: Vec<_> = j
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::TokenIssued)
        .collect();
    assert_eq!(grants[0].refresh_token_issued.as_deref(), Some("rt-1"));
    assert_eq!(grants[1].refresh_token_presented.as_deref(), Some("rt-1"));
    assert_eq!(grants[1].refresh_token_issued.as_deref(), Some("rt-2"));
    assert_eq!(j.refresh_token_reuse, 0);
    // rt-1 again: refused, counted, and the whole sign-in is revoked.
    let (s, b) = refresh(&sim, &rt1).await;
    assert_eq!(s, 400);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("already been used")
    );
    assert_eq!(sim.journal().refresh_token_reuse, 1);
    assert_eq!(refresh(&sim, &rt2).await.0, 400);
    assert_eq!(get(&sim, "/api/v2/users/me", &access2).await.0, 401);
}

#[tokio::test]
async fn a_sign_in_has_an_optional_absolute_lifetime_and_logout_revokes_it() {
    let sim = start(AuthorizeMode::Approve).await;
    sim.update(|c| c.refresh_token_lifetime = Some(Duration::ZERO));
    let rt = sim.issue_refresh_token(DEFAULT_CLIENT_ID);
    let (s, b) = refresh(&sim, &rt).await;
    assert_eq!(s, 400);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{b}"
    );

    sim.update(|c| c.refresh_token_lifetime = None);
    let rt = sim.issue_refresh_token(DEFAULT_CLIENT_ID);
    let (_, b) = refresh(&sim, &rt).await;
    let (access, rt2) = (
        b["access_token"].as_str().unwrap(),
        b["refresh_token"].as_str().unwrap(),
    );
    let resp = client()
        .delete(format!("{}/api/v2/tokens/me", sim.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        refresh(&sim, rt2).await.0,
        400,
        "logout revokes the refresh token"
    );
}

#[tokio::test]
async fn users_me_needs_a_user() {
    let sim = start(AuthorizeMode::Approve).await;
    let resp = client()
        .post(sim.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    let (s, body) = get(
        &sim,
        "/api/v2/users/me",
        b["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(body["message"].as_str().unwrap().contains("user context"));
}
