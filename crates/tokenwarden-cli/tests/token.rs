//! `tokenwarden token` and its cache, attacked (issue #8 items 4 and 5, issue #7's bounded lock):
//! the built binary against a simulator, each test in a fresh sandbox.

#![cfg(unix)]

mod common;

use common::{Sandbox, run};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokenwarden_sim::SimConfig;
use tokenwarden_test_support::{chmod, mode};

/// The sandbox's token cache directory (`TOKENWARDEN_CACHE_DIR/tokens`).
fn cache_dir(sb: &Sandbox) -> PathBuf {
    sb.path("tw-cache").join("tokens")
}

/// The one token file in the cache.
#[track_caller]
fn cache_file(sb: &Sandbox) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(cache_dir(sb))
        .expect("cache dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// Runs the binary with `args`: it must fail with exit 4, print nothing on stdout, and say `why`
/// on stderr.
async fn refused(cmd: std::process::Command, args: &[&str], why: &str) -> common::Run {
    let r = run(cmd, args).await;
    r.expect_code(4);
    assert_eq!(r.stdout, "", "{args:?}: nothing printed");
    assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
    r
}

/// A first `token` run: the cache now holds a token. Returns it.
async fn cached_token(sb: &Sandbox) -> String {
    let r = run(sb.tw(), &["token"]).await;
    r.ok();
    r.stdout.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cache_is_created_private() {
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let dir = cache_dir(&sb);
    assert_eq!(mode(&dir), 0o700, "cache dir");
    assert_eq!(mode(dir.parent().unwrap()), 0o700, "its missing parent too");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scope_is_part_of_the_cache_key() {
    // Before: `token --scope users:readonly` then `token --scope admin` printed the same token.
    let sb = Sandbox::start(SimConfig::default()).await;
    let readonly = run(sb.tw(), &["--scope", "users:readonly", "token"]).await;
    readonly.ok();
    let admin = run(sb.tw(), &["--scope", "admin", "token"]).await;
    admin.ok();
    assert_ne!(readonly.stdout, admin.stdout);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
    // Each scope keeps its own cached token.
    let again = run(sb.tw(), &["token", "--scope", "users:readonly"]).await;
    again.ok();
    assert_eq!(again.stdout, readonly.stdout);
    let unscoped = run(sb.tw(), &["token"]).await;
    unscoped.ok();
    assert_ne!(unscoped.stdout, readonly.stdout);
    assert_eq!(sb.sim.journal_counters().token_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_a_changed_secret_fails_instead_of_serving_the_cached_token() {
    // Before: `GENESYSCLOUD_OAUTHCLIENT_SECRET=WRONG tokenwarden token` printed the cached token
    // and exited 0.
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let wrong = run(sb.tw_with_secret("WRONG"), &["token"]).await;
    wrong.expect_code(3);
    assert_eq!(wrong.stdout, "", "no token printed");
    assert!(wrong.stderr.contains("invalid_client"), "{}", wrong.stderr);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
    assert_eq!(sb.sim.journal_counters().token_bad_credentials, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_a_symlinked_cache_file() {
    // Before: a planted cache file was read through a symlink and its token printed.
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let file = cache_file(&sb);
    let planted = sb.path("planted.json");
    std::fs::rename(&file, &planted).unwrap();
    std::os::unix::fs::symlink(&planted, &file).unwrap();

    let r = refused(sb.tw(), &["token"], "symbolic link").await;
    assert!(
        r.stderr.contains(&format!("rm {}", file.display())),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::symlink_metadata(&file).unwrap().is_symlink(),
        "refused, not silently replaced"
    );
    assert_eq!(
        sb.sim.journal_counters().token_requests,
        1,
        "nothing fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_a_cache_file_others_can_read() {
    // Before: a cache file was trusted whatever its mode.
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let file = cache_file(&sb);
    chmod(&file, 0o644);
    refused(sb.tw(), &["token"], "mode 0644").await;
    assert_eq!(mode(&file), 0o644, "left for the person to look at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_a_fingerprint_key_others_can_read() {
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let key = cache_dir(&sb).join("fingerprint.key");
    chmod(&key, 0o644);
    refused(sb.tw(), &["token"], "fingerprint.key").await;
    assert_eq!(
        sb.sim.journal_counters().token_requests,
        1,
        "nothing fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_a_cache_dir_others_can_write_to_and_names_the_fix() {
    // Before: a world-writable cache directory was used.
    let sb = Sandbox::start(SimConfig::default()).await;
    let dir = cache_dir(&sb);
    std::fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o777);
    let canonical = dir.canonicalize().unwrap();
    let fix = format!("chmod 700 {}", canonical.display());
    refused(sb.tw(), &["token"], &fix).await;
    assert_eq!(sb.sim.journal_counters().token_requests, 0);
    // The fix works.
    chmod(&dir, 0o700);
    run(sb.tw(), &["token"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_gives_up_on_a_lock_held_by_another_process() {
    // Before: a lock held by a stuck process made `token` wait forever.
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let lock_path = PathBuf::from(format!("{}.lock", cache_file(&sb).display()));
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();
    let r = refused(
        sb.tw(),
        &["token", "--lock-timeout", "300ms"],
        "gave up after 300ms",
    )
    .await;
    assert!(r.stderr.contains(".lock"), "{}", r.stderr);
    assert!(!r.stderr.contains("credentials"), "{}", r.stderr);
    drop(held);
    run(sb.tw(), &["token"]).await.ok();
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_to_print_a_token_that_would_inject_headers() {
    // `curl -H "Authorization: Bearer $(tokenwarden token)"` must not get a second header.
    let sb = Sandbox::start(SimConfig::default()).await;
    for args in [
        &["token"][..],
        &["token", "--json"],
        &["token", "--no-cache"],
    ] {
        let mut cmd = sb.connected();
        cmd.env("GENESYSCLOUD_ACCESS_TOKEN", "tok-abc\r\nX-Injected: 1");
        // The token manager refuses the token given (a configuration error, 3) before any use.
        let r = run(cmd, args).await;
        r.expect_code(3);
        assert_eq!(r.stdout, "", "{args:?}: nothing printed");
        assert!(
            r.stderr.contains("not allowed in an HTTP header"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("X-Injected"), "{}", r.stderr);
    }
    let mut ok = sb.connected();
    ok.env("GENESYSCLOUD_ACCESS_TOKEN", "tok-abc.def_ghi~jkl+/=");
    assert_eq!(
        run(ok, &["token"]).await.ok().stdout,
        "tok-abc.def_ghi~jkl+/=\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_does_not_serve_a_cached_token_with_crlf_and_repairs_the_cache() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let good = cached_token(&sb).await;
    let file = cache_file(&sb);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(&good, "evil\\r\\nX-Injected: 1")).unwrap();
    let r = run(sb.tw(), &["token"]).await;
    r.ok();
    let fresh = r.stdout.trim();
    assert!(!r.stdout.contains("X-Injected"), "{}", r.stdout);
    assert_ne!(fresh, good);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
    assert!(std::fs::read_to_string(&file).unwrap().contains(fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_ignores_a_damaged_cache_with_a_warning_and_repairs_it() {
    let sb = Sandbox::start(SimConfig::default()).await;
    cached_token(&sb).await;
    let file = cache_file(&sb);
    std::fs::write(&file, "{ torn").unwrap();
    let r = run(sb.tw(), &["token"]).await;
    r.ok();
    assert!(r.stderr.contains("damaged token cache"), "{}", r.stderr);
    let again = run(sb.tw(), &["token"]).await;
    again.ok();
    assert_eq!(again.stdout, r.stdout, "repaired: the new token is cached");
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
}

// ---- printing and caching a token ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_token_invocations_share_one_token_request() {
    // A shell loop run in parallel: the cache's file lock lets one process fetch while the others
    // wait and then adopt its token.
    let sb = Sandbox::start(SimConfig {
        token_latency: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let runs = futures::future::join_all((0..8).map(|_| run(sb.tw(), &["token"]))).await;
    let tokens: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|r| {
            r.ok();
            r.stdout.trim().to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every process printed the same token");
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_token_and_the_second_run_reuses_the_cache() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let first = run(sb.tw(), &["token"]).await;
    first.ok();
    let token = first.stdout.trim().to_string();
    assert!(token.len() >= 20 && !token.contains(' '), "{token:?}");
    assert!(!first.stderr.contains(&token), "token leaked to stderr");

    let second = run(sb.tw(), &["token"]).await;
    second.ok();
    assert_eq!(second.stdout.trim(), token, "the cached token is reused");
    assert_eq!(sb.sim.journal_counters().token_requests, 1);

    // The cache holds a secret: only its owner may read it.
    let dir = sb.path("tw-cache").join("tokens");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        let mode = mode(&files[0]);
        assert_eq!(mode & 0o777, 0o600, "cache file mode {mode:o}");
    }

    let json = run(sb.tw(), &["token", "--json"]).await;
    json.ok();
    let v: Value = serde_json::from_str(json.stdout.trim()).expect("--json prints JSON");
    assert_eq!(v["access_token"], token.as_str());
    assert_eq!(v["token_type"], "bearer");
    assert!(v["expires_in"].as_u64().unwrap() > 80_000, "{v}");
    assert!(
        v["expires_at_unix"].as_u64().unwrap() > 1_700_000_000,
        "{v}"
    );
    assert_eq!(sb.sim.journal_counters().token_requests, 1);

    // --no-cache fetches a fresh one.
    let fresh = run(sb.tw(), &["token", "--no-cache"]).await;
    fresh.ok();
    assert_ne!(fresh.stdout.trim(), token);
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
}
