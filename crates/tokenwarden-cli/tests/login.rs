//! End-to-end tests of `tokenwarden login`, `logout`, `whoami` and `--as-user` (issue #11): the
//! built binary against an in-process simulator, the browser played by an HTTP client that follows
//! the sign-in's redirect to the binary's loopback listener. Assertions are on exit codes, files and
//! the simulator's journal (which records every refresh token presented, by id).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokenwarden_sim::data::user_id;
use tokenwarden_sim::{AuthorizeMode, DEFAULT_CLIENT_ID, Journal, Outcome, SimClient, SimConfig};
use tokenwarden_test_support::browser;
use tokenwarden_test_support::loopback::free_port;
use tokenwarden_test_support::users;

/// A sandbox whose simulator signs `user-000001` in at once, with `users` users and access tokens
/// of `ttl`; the default client has exactly `redirect` registered.
async fn sandbox(redirect: &str, ttl: Duration, users: usize) -> Sandbox {
    Sandbox::start(SimConfig {
        authorize_mode: AuthorizeMode::Approve,
        token_ttl: ttl,
        users,
        refresh_token_reuse_revokes_session: true,
        clients: vec![SimClient::default().with_redirect_uris([redirect])],
        ..SimConfig::default()
    })
    .await
}

fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/callback")
}

/// A login in progress: the child, the sign-in URL it printed, and its stderr.
struct Login {
    child: Child,
    url: String,
    printed: Vec<String>,
    tail: std::thread::JoinHandle<String>,
}

/// `tokenwarden login --no-browser` started with stderr piped, once it printed the sign-in URL.
fn start_login(sb: &Sandbox, redirect: &str, extra: &[&str]) -> Login {
    let mut cmd = sb.tw();
    cmd.args(["login", "--no-browser", "--redirect-uri", redirect])
        .args(extra);
    read_url(cmd, sb)
}

/// Spawns `cmd` (a login) and reads its stderr up to the sign-in URL.
fn read_url(mut cmd: Command, sb: &Sandbox) -> Login {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn login");
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut printed = Vec::new();
    let url = loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("read stderr") == 0 {
            panic!("login ended without printing a URL: {printed:?}");
        }
        printed.push(line.clone());
        if let Some(at) = line.find(&sb.sim.authorize_url()) {
            break line[at..].trim().to_string();
        }
    };
    let tail = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    Login {
        child,
        url,
        printed,
        tail,
    }
}

/// Waits for a login; its exit code and its whole stderr.
async fn finish_login(login: Login) -> Run {
    tokio::task::spawn_blocking(move || {
        let out = login.child.wait_with_output().expect("wait login");
        let tail = login.tail.join().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: format!("{}{tail}", login.printed.concat()),
            elapsed: Duration::ZERO,
        }
    })
    .await
    .unwrap()
}

/// What a browser does with the sign-in URL: the authorization server answers with a redirect to
/// the loopback listener, which is then followed. Returns the listener's status and page.
async fn complete_in_browser(url: &str) -> (u16, String) {
    let resp = browser()
        .get(url)
        .send()
        .await
        .expect("GET the authorize URL");
    assert_eq!(
        resp.status(),
        302,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    let back = browser().get(&to).send().await.expect("GET the callback");
    (back.status().as_u16(), back.text().await.unwrap())
}

/// Signs in through the binary; panics unless it succeeds.
async fn sign_in(sb: &Sandbox, redirect: &str) -> Run {
    let login = start_login(sb, redirect, &[]);
    let (status, page) = complete_in_browser(&login.url).await;
    assert_eq!(status, 200, "{page}");
    let run = finish_login(login).await;
    run.ok();
    run
}

/// The refresh-token grants of the journal, in order: (presented, issued).
fn refresh_chain(j: &Journal) -> Vec<(String, String)> {
    j.entries
        .iter()
        .filter(|e| e.path.starts_with("/oauth/token") && e.outcome == Outcome::TokenIssued)
        .filter_map(|e| {
            Some((
                e.refresh_token_presented.clone()?,
                e.refresh_token_issued.clone()?,
            ))
        })
        .collect()
}

/// Runs `cmd` as `--as-user batch` over `ids` into `out` with `extra` options; panics unless it
/// succeeds.
async fn batch_as_user(
    mut cmd: Command,
    ids: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> Run {
    cmd.arg("--as-user");
    let mut cmd = user_batch(cmd, ids, out);
    cmd.arg("--no-progress");
    let r = run(cmd, extra).await;
    r.ok();
    r
}

/// Asserts that every refresh grant presented the refresh token the previous one issued, starting
/// from the sign-in's (`rt-1`).
fn assert_rotated_each_time(chain: &[(String, String)]) {
    let mut expected = "rt-1".to_string();
    for (presented, issued) in chain {
        assert_eq!(presented, &expected, "{chain:?}");
        expected = issued.clone();
    }
}

/// A file of the ids of users `0..n`, one per line.
fn user_ids(sb: &Sandbox, n: usize) -> std::path::PathBuf {
    sb.write(
        "ids.txt",
        &(0..n)
            .map(|i| format!("{}\n", user_id(i)))
            .collect::<String>(),
    )
}

/// The one sign-in directory under the sandbox's data dir.
fn session_dir(sb: &Sandbox) -> std::path::PathBuf {
    let root = sb.path("data/tokenwarden/sessions");
    let dirs = dir_names(&root);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    root.join(&dirs[0])
}

fn stored_refresh_token(sb: &Sandbox) -> String {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(session_dir(sb).join("session.json")).unwrap(),
    )
    .unwrap();
    v["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_a_2000_record_batch_as_the_user_rotates_the_refresh_token_each_time_and_never_twice()
 {
    const N: usize = 2000;
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(1), N).await;
    let login = sign_in(&sb, &redirect).await;
    assert!(login.stderr.contains("signed in as"), "{}", login.stderr);
    let j = sb.sim.journal();
    assert_eq!(j.authorization_code_grants, 1);
    let first_rt = stored_refresh_token(&sb);

    let ids = user_ids(&sb, N);
    let out = sb.path("out.jsonl");
    // Long enough for several 1-second tokens, however fast the machine.
    let r = batch_as_user(
        sb.tw(),
        &ids,
        &out,
        &["--concurrency", "8", "--rate", "1000/s"],
    )
    .await;
    let lines = read_jsonl(&out);
    let want = users(N);
    assert_exactly_once(&lines, "id", &want);
    assert!(lines.iter().all(|l| l["status"] == 200), "every record ok");

    let j = sb.sim.journal();
    assert_eq!(
        j.api_ok as usize,
        N + 2,
        "the batch, and login's users/me and tokens/me"
    );
    let chain = refresh_chain(&j);
    assert!(
        chain.len() >= 2,
        "1-second tokens over a 2-second job are refreshed: {chain:?}"
    );
    // Rotated each time: every grant presented the refresh token the previous one issued, starting
    // from the sign-in's; so none was presented twice (the simulator also counts reuses).
    assert_rotated_each_time(&chain);
    let presented: BTreeSet<&String> = chain.iter().map(|(p, _)| p).collect();
    assert_eq!(presented.len(), chain.len());
    assert_eq!(j.refresh_token_reuse, 0);
    assert_eq!(j.token_invalid_grant, 0);
    assert_eq!(
        j.api_expired_token, 0,
        "no request went out with a dead token"
    );
    // The stored refresh token is the last one issued: the next command uses it.
    assert_ne!(stored_refresh_token(&sb), first_rt);
    run(sb.tw(), &["whoami"]).await.ok();
    // No token reaches the output.
    let rt = stored_refresh_token(&sb);
    for text in [&login.stderr, &login.stdout, &r.stderr, &r.stdout] {
        assert!(!text.contains(&rt) && !text.contains(&first_rt));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_the_wrong_state_is_refused_and_the_login_keeps_waiting() {
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(3600), 10).await;
    let login = start_login(&sb, &redirect, &[]);
    // A forged or stale callback: refused, with a page saying so.
    let forged = browser()
        .get(format!("{redirect}?code=forged-code&state=not-this-one"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("does not belong to the sign-in in progress")
    );
    // Nothing was exchanged for it.
    assert_eq!(sb.sim.journal_counters().token_requests, 0);
    // The real one still completes the login.
    let (status, _) = complete_in_browser(&login.url).await;
    assert_eq!(status, 200);
    finish_login(login).await.ok();
    assert_eq!(sb.sim.journal_counters().authorization_code_grants, 1);
    // The listener is gone: one valid callback only.
    assert!(browser().get(&redirect).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_redirect_uri_is_explained_with_what_to_register_where() {
    let registered = redirect_uri(free_port());
    let ours = redirect_uri(free_port());
    let sb = sandbox(&registered, Duration::from_secs(3600), 10).await;
    let login = start_login(&sb, &ours, &["--timeout", "1s"]);
    // The authorization server shows an error page instead of redirecting back.
    let resp = browser().get(&login.url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("redirect_uri_mismatch"));
    let run = finish_login(login).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("no sign-in came back within 1 s"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("register exactly {ours} on OAuth client")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Authorized redirect URIs"),
        "{}",
        run.stderr
    );
    assert!(
        !sb.path("data/tokenwarden/sessions").exists() || dir_names(&session_dir(&sb)).is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_consent_is_explained_and_exits_3() {
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(3600), 10).await;
    sb.sim.update(|c| c.authorize_mode = AuthorizeMode::Deny);
    let login = start_login(&sb, &redirect, &[]);
    let (status, page) = complete_in_browser(&login.url).await;
    assert_eq!(status, 400);
    assert!(page.contains("denied"), "{page}");
    let run = finish_login(login).await;
    run.expect_code(3);
    assert!(
        run.stderr.contains("the sign-in was denied"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("allow access"), "{}", run.stderr);
    run_whoami_not_signed_in(&sb).await;
}

async fn run_whoami_not_signed_in(sb: &Sandbox) {
    let r = run(sb.tw(), &["whoami"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("not signed in"), "{}", r.stderr);
    assert!(r.stderr.contains("tokenwarden login"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sign_in_stops_the_batch_with_exit_3_and_login_then_resume_finishes_it() {
    const N: usize = 600;
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(1), N).await;
    // Refresh tokens die before the first refresh (after ~0.75 s of the first 1-s token).
    sb.sim
        .update(|c| c.refresh_token_lifetime = Some(Duration::from_millis(300)));
    sign_in(&sb, &redirect).await;
    let ids = user_ids(&sb, N);
    let out = sb.path("out.jsonl");
    let args = [
        "batch",
        "--as-user",
        "--ids",
        ids.to_str().unwrap(),
        "--path-template",
        "/api/v2/users/{id}",
        "--output",
        out.to_str().unwrap(),
        "--rate",
        "300/s",
        "--no-progress",
    ];
    let r = run(sb.tw(), &args).await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("run `tokenwarden login` again"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--resume"), "{}", r.stderr);
    let done = read_jsonl(&out).len();
    assert!(done > 0 && done < N, "{done} records before the stop");

    sb.sim.update(|c| c.refresh_token_lifetime = None);
    sign_in(&sb, &redirect).await;
    let mut resumed: Vec<&str> = args.to_vec();
    resumed.push("--resume");
    run(sb.tw(), &resumed).await.ok();
    let lines = read_jsonl(&out);
    assert_exactly_once(&lines, "id", &users(N));
    assert!(lines.iter().all(|l| l["status"] == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_as_one_user_take_turns_and_never_present_a_refresh_token_twice() {
    const N: usize = 400;
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(1), N).await;
    sign_in(&sb, &redirect).await;
    let ids = user_ids(&sb, N);
    let job = |out: &str| {
        let mut c = sb.tw();
        c.arg("--as-user");
        let mut c = user_batch(c, &ids, sb.path(out));
        c.args(["--rate", "200/s", "--no-progress"]);
        c
    };
    let (a, b) = tokio::join!(run(job("a.jsonl"), &[]), run(job("b.jsonl"), &[]));
    a.ok();
    b.ok();
    let j = sb.sim.journal();
    assert_eq!(
        j.refresh_token_reuse, 0,
        "a refresh token was presented twice"
    );
    assert_eq!(j.token_invalid_grant, 0);
    assert!(refresh_chain(&j).len() >= 2, "both jobs outlived a token");
    for out in ["a.jsonl", "b.jsonl"] {
        assert_exactly_once(&read_jsonl(&sb.path(out)), "id", &users(N));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_shows_the_user_and_logout_revokes_and_deletes_the_sign_in() {
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(3600), 10).await;
    sign_in(&sb, &redirect).await;
    let dir = session_dir(&sb);
    #[cfg(unix)]
    {
        use tokenwarden_test_support::mode;
        assert_eq!(mode(&dir), 0o700);
        for name in dir_names(&dir) {
            assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
        }
    }
    let w = run(sb.tw(), &["whoami"]).await;
    w.ok();
    assert!(w.stdout.contains("user-000001"), "{}", w.stdout);
    assert!(
        w.stdout.contains("Tokenwarden Simulated Org"),
        "{}",
        w.stdout
    );
    assert!(w.stdout.contains("users:readonly"), "{}", w.stdout);
    let w = run(sb.tw(), &["whoami", "--json"]).await;
    let v: Value = serde_json::from_str(w.stdout.trim()).unwrap();
    assert_eq!(v["user"]["id"], "user-000001");
    // whoami used the access token cached at login: no refresh.
    assert_eq!(sb.sim.journal_counters().refresh_grants, 0);

    let rt = stored_refresh_token(&sb);
    let r = run(sb.tw(), &["logout"]).await;
    r.ok();
    assert!(r.stderr.contains("signed out"), "{}", r.stderr);
    assert!(!dir.join("session.json").exists());
    assert!(
        dir_names(&dir).iter().all(|n| !n.ends_with(".json")),
        "{:?}",
        dir_names(&dir)
    );
    // Revoked on the server: the old refresh token no longer works.
    let resp = browser()
        .post(sb.sim.token_url())
        .basic_auth(
            DEFAULT_CLIENT_ID,
            Some(tokenwarden_sim::DEFAULT_CLIENT_SECRET),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    run_whoami_not_signed_in(&sb).await;
    // Logging out again is not an error.
    run(sb.tw(), &["logout"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_signs_in_without_a_secret() {
    let redirect = redirect_uri(free_port());
    let sb = Sandbox::start(SimConfig {
        authorize_mode: AuthorizeMode::Approve,
        clients: vec![
            SimClient::public("pkce-app", "PKCE app").with_redirect_uris([redirect.as_str()]),
        ],
        ..SimConfig::default()
    })
    .await;
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", "pkce-app").args([
        "login",
        "--no-browser",
        "--redirect-uri",
        &redirect,
    ]);
    let login = read_url(cmd, &sb);
    let (status, _) = complete_in_browser(&login.url).await;
    assert_eq!(status, 200);
    finish_login(login).await.ok();
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", "pkce-app");
    let r = run(cmd, &["--as-user", "request", "GET", "/api/v2/users/me"]).await;
    r.ok();
    assert!(r.stdout.contains("user-000001"));
}

/// The session bus of the OS keyring the test was started with (`.ci/run` starts one with
/// `dbus-run-session` and an unlocked gnome-keyring); the test fails without one: it is run
/// explicitly, never skipped in silence.
fn session_bus() -> String {
    std::env::var("DBUS_SESSION_BUS_ADDRESS").expect(
        "this test needs a Secret Service on a session bus: run it as .ci/keyring-tests does \
         (dbus-run-session with an unlocked gnome-keyring-daemon)",
    )
}

/// The password of the keyring entry `service`/`account`, read as another program would, on a
/// thread with a runtime of its own (the Secret Service client needs one).
fn keyring_password(service: &str, account: &str) -> Option<String> {
    let (service, account) = (service.to_string(), account.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        match keyring::Entry::new(&service, &account)
            .unwrap()
            .get_password()
        {
            Ok(p) => Some(p),
            Err(keyring::Error::NoEntry) => None,
            Err(e) => panic!("reading the keyring: {e}"),
        }
    })
    .join()
    .unwrap()
}

/// Every file under `dir`, concatenated (what another process could read of the sign-in).
fn all_file_text(dir: &std::path::Path) -> String {
    dir_names(dir)
        .iter()
        .filter_map(|n| std::fs::read(dir.join(n)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// Needs a Secret Service (see [`session_bus`]): `.ci/keyring-tests` runs it, `cargo test` skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Secret Service on a session bus; run by .ci/keyring-tests"]
async fn login_keeps_the_refresh_token_in_the_os_keyring_rotates_it_there_and_logout_deletes_it() {
    const N: usize = 300;
    let bus = session_bus();
    let redirect = redirect_uri(free_port());
    let sb = sandbox(&redirect, Duration::from_secs(1), N).await;
    let with_bus = |mut c: Command| {
        c.env("DBUS_SESSION_BUS_ADDRESS", &bus);
        c
    };
    let mut cmd = with_bus(sb.tw());
    cmd.args(["login", "--no-browser", "--redirect-uri", &redirect]);
    let login = read_url(cmd, &sb);
    let (status, page) = complete_in_browser(&login.url).await;
    assert_eq!(status, 200, "{page}");
    let login = finish_login(login).await;
    login.ok();
    assert!(
        login
            .stderr
            .contains("the refresh token is in the OS keyring"),
        "{}",
        login.stderr
    );

    // The file says where the token is and does not hold it; the keyring holds the one issued.
    let dir = session_dir(&sb);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(record["refresh_token_in"], "keyring", "{record}");
    assert!(record["refresh_token"].is_null(), "{record}");
    let account = dir.display().to_string();
    let first = keyring_password("tokenwarden", &account).expect("the sign-in's refresh token");
    assert!(first.len() >= 16, "a refresh token, not a placeholder");

    // A batch as the user with 1-second tokens: each rotation goes to the keyring before use.
    let ids = user_ids(&sb, N);
    let out = sb.path("out.jsonl");
    let r = batch_as_user(
        with_bus(sb.tw()),
        &ids,
        &out,
        &["--concurrency", "4", "--rate", "200/s"],
    )
    .await;
    let want = users(N);
    assert_exactly_once(&read_jsonl(&out), "id", &want);
    let j = sb.sim.journal();
    let chain = refresh_chain(&j);
    assert!(!chain.is_empty(), "{chain:?}");
    assert_rotated_each_time(&chain);
    assert_eq!(j.refresh_token_reuse, 0);
    // The keyring holds the rotated token; it is the one the server issued last (any older one
    // would be a reuse, which revokes the whole sign-in: whoami would fail).
    let last = keyring_password("tokenwarden", &account).expect("the rotated refresh token");
    assert_ne!(last, first, "rotations were saved to the keyring");
    run(with_bus(sb.tw()), &["whoami"]).await.ok();
    assert_eq!(sb.sim.journal().refresh_token_reuse, 0);
    // No refresh token reached a file of the sign-in, nor any output.
    let files = all_file_text(&dir);
    for token in [&first, &last] {
        assert!(!files.contains(token.as_str()), "a refresh token in a file");
        for text in [&login.stderr, &login.stdout, &r.stderr, &r.stdout] {
            assert!(!text.contains(token.as_str()));
        }
    }

    // Without the keyring the sign-in cannot be used, and says why (never a silent new sign-in).
    let w = run(sb.tw(), &["whoami"]).await;
    assert_ne!(w.code, 0, "{}", w.stderr);
    assert!(w.stderr.contains("keyring"), "{}", w.stderr);

    // logout revokes, deletes the record and the keyring entry.
    run(with_bus(sb.tw()), &["logout"]).await.ok();
    assert!(!dir.join("session.json").exists());
    assert_eq!(keyring_password("tokenwarden", &account), None);
    // Revoked on the server too.
    let resp = browser()
        .post(sb.sim.token_url())
        .basic_auth(
            DEFAULT_CLIENT_ID,
            Some(tokenwarden_sim::DEFAULT_CLIENT_SECRET),
        )
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &last)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
