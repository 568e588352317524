//! Signing in as a person, through the library alone (issue #11): [`AuthorizationCode`] with PKCE
//! against the simulator, the [`LoopbackListener`], and the [`RefreshTokenGrant`] on a
//! [`SessionStore`] (rotations serialised, saved before use, a crash never losing the sign-in).

mod common;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokenwarden::{
    ClientSecret, Error, Grant, RefreshToken, RefreshTokenGrant, TokenEndpoint,
    authorize::AuthorizationCode, authorize::AuthorizationRequest, authorize::Code,
    authorize::LoopbackListener, session::Session, session::SessionStore, store::RefreshTokenStore,
    store::StoreLock,
};
use tokenwarden_sim::{
    AuthorizeMode, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimClient, SimConfig, Simulator,
};
use tokenwarden_test_support::browser;

const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const OTHER_REDIRECT: &str = "http://localhost:8765/callback";

async fn sim() -> Simulator {
    common::sim(SimConfig {
        authorize_mode: AuthorizeMode::Approve,
        refresh_token_reuse_revokes_session: true,
        ..SimConfig::default()
    })
    .await
}

fn flow(sim: &Simulator, redirect: &str) -> AuthorizationCode {
    AuthorizationCode::new(
        &sim.authorize_url(),
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        redirect,
    )
    .unwrap()
    .with_secret(ClientSecret::new(DEFAULT_CLIENT_SECRET))
}

/// Plays the browser: the authorize URL's redirect, handed to the request's callback check.
async fn code_for(request: &AuthorizationRequest) -> Code {
    let resp = browser().get(request.url().as_str()).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let to = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let target = format!("{}?{}", to.path(), to.query().unwrap_or_default());
    request
        .callback(&target)
        .expect("the callback of this request")
}

/// The description of a refused exchange.
fn refused(e: Error) -> String {
    match e {
        Error::Credentials {
            code, description, ..
        } => {
            assert_eq!(code.as_deref(), Some("invalid_grant"));
            description.unwrap_or_default()
        }
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_and_only_with_its_verifier_and_redirect_uri() {
    let sim = sim().await;
    let f = flow(&sim, REDIRECT);
    let request = f.start();
    let code = code_for(&request).await;
    let tokens = f.exchange(&request, &code).await.unwrap();
    assert!(tokens.refresh_token.is_some());

    // Reused code: refused, and the message says why and what to do.
    let e = f.exchange(&request, &code).await.unwrap_err();
    assert!(e.to_string().contains("sign in again"), "{e}");
    assert!(refused(e).contains("already been used"));

    // A wrong PKCE verifier: another request's.
    let request = f.start();
    let code = code_for(&request).await;
    let e = f.exchange(&f.start(), &code).await.unwrap_err();
    assert!(refused(e).contains("code_verifier does not match"));

    // A wrong redirect URI: the code was issued for another one.
    let request = f.start();
    let code = code_for(&request).await;
    let elsewhere = flow(&sim, OTHER_REDIRECT);
    let e = elsewhere
        .exchange(&elsewhere.start(), &code)
        .await
        .unwrap_err();
    assert!(refused(e).contains("redirect_uri does not match"));
    assert_eq!(sim.journal().authorization_code_grants, 1);
}

#[tokio::test]
async fn the_loopback_listener_ignores_other_states_and_returns_the_code() {
    let sim = sim().await;
    let port = tokenwarden_test_support::loopback::free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    sim.update(|c| c.clients = vec![SimClient::default().with_redirect_uris([redirect.as_str()])]);
    let f = flow(&sim, &redirect);
    let listener = LoopbackListener::bind(f.redirect_uri()).await.unwrap();
    let request = f.start();
    let waiting = tokio::spawn({
        let url = request.url().clone();
        let redirect = redirect.clone();
        async move {
            let forged = browser()
                .get(format!("{redirect}?code=x&state=forged"))
                .send()
                .await
                .unwrap();
            assert_eq!(forged.status(), 400);
            let favicon = browser()
                .get(format!("http://127.0.0.1:{port}/favicon.ico"))
                .send()
                .await
                .unwrap();
            assert_eq!(favicon.status(), 404);
            let resp = browser().get(url.as_str()).send().await.unwrap();
            let to = resp.headers()["location"].to_str().unwrap().to_string();
            browser().get(to).send().await.unwrap().status()
        }
    });
    let code = listener
        .wait(&request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(waiting.await.unwrap(), 200);
    f.exchange(&request, &code).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_listener_gives_up_and_counts_what_it_refused() {
    let port = tokenwarden_test_support::loopback::free_port();
    let redirect = format!("http://127.0.0.1:{port}/cb");
    let f = AuthorizationCode::new(
        "https://login.example/oauth/authorize",
        TokenEndpoint::new("https://login.example/oauth/token").unwrap(),
        "c",
        &redirect,
    )
    .unwrap();
    let listener = LoopbackListener::bind(f.redirect_uri()).await.unwrap();
    let e = listener
        .wait(&f.start(), Duration::from_secs(300))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "no sign-in came back within 5 min");
}

/// A sign-in stored in `dir` for the default client, with `rt`.
async fn stored(sim: &Simulator, dir: &std::path::Path, rt: String) -> SessionStore {
    let url = tokenwarden::TokenUrl::parse(&sim.token_url()).unwrap();
    let store = SessionStore::new(dir).bound_to(&url, DEFAULT_CLIENT_ID);
    store
        .write(&Session {
            token_url: url,
            client_id: DEFAULT_CLIENT_ID.into(),
            confidential: true,
            scope: None,
            refresh_token: RefreshToken::new(rt),
            user: None,
            organization: None,
            signed_in_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        })
        .await
        .unwrap();
    store
}

fn grant(
    sim: &Simulator,
    store: Arc<dyn RefreshTokenStore>,
    start: RefreshToken,
) -> RefreshTokenGrant {
    RefreshTokenGrant::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
        start,
    )
    .with_store(store)
}

#[tokio::test]
async fn holders_of_one_sign_in_take_turns_and_never_present_a_refresh_token_twice() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = stored(&sim, tmp.path(), sim.issue_refresh_token(DEFAULT_CLIENT_ID)).await;
    let rt = store.read().await.unwrap().unwrap().refresh_token;
    // Two processes' grants, each starting from the token it read at start-up.
    let a = grant(&sim, Arc::new(store.clone()), rt.clone());
    let b = grant(&sim, Arc::new(SessionStore::new(tmp.path())), rt);
    let tasks: Vec<_> = [Arc::new(a), Arc::new(b)]
        .into_iter()
        .map(|g| {
            tokio::spawn(async move {
                for _ in 0..10 {
                    g.fetch().await.expect("a refresh");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let j = sim.journal();
    assert_eq!(j.refresh_grants, 20);
    assert_eq!(j.refresh_token_reuse, 0);
    assert_eq!(j.token_invalid_grant, 0);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_the_access_token_is_returned() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = stored(&sim, tmp.path(), sim.issue_refresh_token(DEFAULT_CLIENT_ID)).await;
    let g = grant(&sim, Arc::new(store.clone()), RefreshToken::new("stale"));
    let resp = g.fetch().await.unwrap();
    // The process "crashes" here, before using the access token: the store already has the
    // replacement, and a new process goes on with it.
    assert_eq!(
        store.read().await.unwrap().unwrap().refresh_token,
        resp.refresh_token.unwrap()
    );
    drop(g);
    let fresh = store.read().await.unwrap().unwrap().refresh_token;
    grant(&sim, Arc::new(store), fresh).fetch().await.unwrap();
    assert_eq!(sim.journal().token_invalid_grant, 0);
}

/// A store whose saves fail while `broken` is set.
#[derive(Debug)]
struct FlakyDisk {
    inner: SessionStore,
    broken: AtomicBool,
}

#[async_trait]
impl RefreshTokenStore for FlakyDisk {
    async fn lock(&self) -> Result<StoreLock, Error> {
        self.inner.lock().await
    }
    async fn load(&self) -> Result<Option<RefreshToken>, Error> {
        self.inner.load().await
    }
    async fn save(&self, token: &RefreshToken) -> Result<(), Error> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(Error::Store {
                detail: "disk full".into(),
                retryable: false,
            });
        }
        self.inner.save(token).await
    }
}

#[tokio::test]
async fn a_refresh_token_that_cannot_be_saved_is_kept_and_saved_before_the_next_use() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let inner = stored(&sim, tmp.path(), sim.issue_refresh_token(DEFAULT_CLIENT_ID)).await;
    let disk = Arc::new(FlakyDisk {
        inner: inner.clone(),
        broken: AtomicBool::new(true),
    });
    let g = grant(&sim, disk.clone(), RefreshToken::new("stale"));
    // The refresh fails: the access token it got is not handed out.
    let e = g.fetch().await.unwrap_err();
    assert!(format!("{e:?}").contains("could not be saved"), "{e:?}");
    disk.broken.store(false, Ordering::SeqCst);
    // The next refresh saves the held replacement first, then presents it (not the dead one the
    // store still had).
    g.fetch().await.unwrap();
    let j = sim.journal();
    assert_eq!(j.token_invalid_grant, 0);
    assert_eq!(j.refresh_token_reuse, 0);
    assert_eq!(j.refresh_grants, 2);
    assert_eq!(
        inner.read().await.unwrap().unwrap().refresh_token,
        g.current_refresh_token().await
    );
}

#[tokio::test]
async fn a_signed_out_store_asks_for_a_sign_in() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = stored(&sim, tmp.path(), sim.issue_refresh_token(DEFAULT_CLIENT_ID)).await;
    let rt = store.read().await.unwrap().unwrap().refresh_token;
    store.remove().await.unwrap();
    let e = grant(&sim, Arc::new(store), rt).fetch().await.unwrap_err();
    assert!(format!("{e:?}").contains("SignInRequired"), "{e:?}");
    assert_eq!(sim.journal().token_requests, 0, "nothing presented");
}
