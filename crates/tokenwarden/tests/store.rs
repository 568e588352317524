//! The token cache cannot be subverted (issue #8 items 4 and 5, issue #7's bounded lock): every
//! guarantee of `FileStore` listed in SECURITY.md, attacked from the file system.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokenwarden::{
    AccessToken, ClientCredentials, ClientSecret, Error, FileStore, MemoryStore, TokenEndpoint,
    TokenManager, TokenStore, store::StoredToken, store::TokenKey,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};
use tokenwarden_test_support::{chmod, mode};

const URL: &str = "https://login.example.test/oauth/token";
const SECRET: &str = "store-test-client-secret-8f2c";

fn key() -> TokenKey {
    TokenKey::new(&tokenwarden::TokenUrl::parse(URL).unwrap(), "client-a")
        .with_secret(ClientSecret::new(SECRET))
}

fn token(value: &str) -> StoredToken {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    StoredToken {
        access_token: AccessToken::new(value),
        obtained_at: now,
        expires_at: now + Duration::from_secs(3600),
    }
}

/// A fresh private directory and the cache directory inside it (not created yet).
fn sandbox() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cache").join("tokens");
    (tmp, dir)
}

#[track_caller]
fn store_error(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(e @ Error::Store { .. }) => {
            assert!(!e.is_retryable(), "a safety refusal is not retryable: {e}");
            assert!(!e.is_credentials(), "{e}");
            e.to_string()
        }
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// The token value `store` serves, if any.
async fn loaded(store: &dyn TokenStore) -> Option<String> {
    let t = store.load().await.expect("load");
    t.map(|t| t.access_token.expose_secret().to_string())
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn saved_token_round_trips_in_private_files() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    assert_eq!(store.load().await.unwrap(), None);
    let guard = store.lock().await.unwrap();
    store.save(&token("round-trip-token-1")).await.unwrap();
    drop(guard);
    assert_eq!(loaded(&store).await.as_deref(), Some("round-trip-token-1"));
    // Missing directories are created 0700, every file 0600.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&store.path()), 0o600);
    assert_eq!(mode(&store.lock_path()), 0o600);
    assert_eq!(mode(&dir.join("fingerprint.key")), 0o600);
    // Nothing else is left behind (no temporary file).
    let id = key().id();
    assert_eq!(
        names(&dir),
        [
            format!("{id}.json"),
            format!("{id}.json.lock"),
            "fingerprint.key".into()
        ]
    );
}

#[tokio::test]
async fn save_does_not_write_through_a_symlink_planted_at_a_temporary_name() {
    // The old cache wrote `<file>.tmp<pid>` without O_EXCL/O_NOFOLLOW: a symlink planted there
    // received the token.
    let (tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.lock().await.unwrap();
    let victim = tmp.path().join("victim");
    let planted = [
        format!("{}.tmp{}", store.path().display(), std::process::id()),
        format!("{}.tmp", store.path().display()),
    ];
    for p in &planted {
        std::os::unix::fs::symlink(&victim, p).unwrap();
    }
    store.save(&token("planted-symlink-token")).await.unwrap();
    assert!(!victim.exists(), "the token went through a planted symlink");
    for p in &planted {
        assert!(std::fs::symlink_metadata(p).unwrap().is_symlink());
    }
    let md = std::fs::symlink_metadata(store.path()).unwrap();
    assert!(md.is_file());
    assert_eq!(
        loaded(&store).await.as_deref(),
        Some("planted-symlink-token")
    );
}

#[tokio::test]
async fn symlinked_cache_file_is_refused_not_read_and_not_replaced() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("token-behind-a-symlink")).await.unwrap();
    // The same valid record, now reached through a symbolic link.
    let elsewhere = dir.join("elsewhere.json");
    std::fs::rename(store.path(), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, store.path()).unwrap();

    let e = store_error(store.load().await);
    assert!(e.contains("symbolic link"), "{e}");
    assert!(e.contains(&store.path().display().to_string()), "{e}");
    assert!(store_error(store.lock().await).contains("symbolic link"));
    assert!(store_error(store.save(&token("replacement-token")).await).contains("symbolic link"));
    assert!(
        std::fs::symlink_metadata(store.path())
            .unwrap()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&elsewhere)
            .unwrap()
            .contains("token-behind-a-symlink")
    );
}

#[tokio::test]
async fn cache_file_others_can_read_is_refused() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("world-readable-token")).await.unwrap();
    for m in [0o644, 0o640, 0o604, 0o620] {
        chmod(&store.path(), m);
        let e = store_error(store.load().await);
        assert!(e.contains(&format!("mode {m:04o}")), "{e}");
        assert!(e.contains("rm "), "the fix is named: {e}");
        store_error(store.lock().await);
        store_error(store.save(&token("another-token")).await);
    }
    chmod(&store.path(), 0o400);
    assert_eq!(
        loaded(&store).await.as_deref(),
        Some("world-readable-token"),
        "stricter than 0600 is fine"
    );
}

#[tokio::test]
async fn a_cache_file_that_is_not_a_regular_file_is_refused() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.lock().await.unwrap();
    std::fs::create_dir(store.path()).unwrap();
    assert!(store_error(store.load().await).contains("not a regular file"));
    assert!(store_error(store.lock().await).contains("not a regular file"));
}

#[tokio::test]
async fn a_cache_file_of_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: changing a file's owner needs root (CI runs as root)");
        return;
    }
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("someone-elses-token")).await.unwrap();
    std::os::unix::fs::chown(store.path(), Some(4242), None).unwrap();
    let e = store_error(store.load().await);
    assert!(e.contains("belongs to uid 4242"), "{e}");
    std::os::unix::fs::chown(store.path(), Some(0), None).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
    let e = store_error(store.load().await);
    assert!(e.contains("belongs to uid 4242"), "{e}");
}

#[tokio::test]
async fn a_cache_directory_others_can_write_to_is_refused_with_the_fix() {
    let (tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("token-in-an-open-dir")).await.unwrap();
    let canonical = dir.canonicalize().unwrap();
    for m in [0o777, 0o770, 0o730, 0o1777] {
        chmod(&dir, m);
        let e = store_error(store.lock().await);
        assert!(
            e.contains(&format!("chmod 700 {}", canonical.display())),
            "{e}"
        );
        assert!(e.contains(&format!("mode {m:04o}")), "{e}");
        store_error(store.load().await);
        store_error(store.save(&token("another-token")).await);
    }
    chmod(&dir, 0o755);
    assert!(store.load().await.unwrap().is_some(), "readable is fine");

    // A directory above that others can write to could swap the cache directory...
    chmod(&dir, 0o700);
    let parent = dir.parent().unwrap();
    chmod(parent, 0o777);
    let e = store_error(store.lock().await);
    assert!(e.contains("chmod go-w"), "{e}");
    // ...unless it is sticky, like /tmp.
    chmod(parent, 0o1777);
    assert!(store.load().await.unwrap().is_some());
    chmod(parent, 0o700);
    drop(tmp);
}

#[tokio::test]
async fn lock_file_planted_as_a_symlink_or_open_to_others_is_refused() {
    let (tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.lock().await.unwrap();
    std::fs::remove_file(store.lock_path()).unwrap();
    let target = tmp.path().join("target");
    std::os::unix::fs::symlink(&target, store.lock_path()).unwrap();
    assert!(store_error(store.lock().await).contains("symbolic link"));
    assert!(
        !target.exists(),
        "the lock was not created through the link"
    );
    std::fs::remove_file(store.lock_path()).unwrap();
    std::fs::write(store.lock_path(), "").unwrap();
    chmod(&store.lock_path(), 0o666);
    assert!(store_error(store.lock().await).contains("mode 0666"));
}

#[tokio::test]
async fn fingerprint_key_open_to_others_is_refused() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("token-with-open-key")).await.unwrap();
    chmod(&dir.join("fingerprint.key"), 0o644);
    assert!(store_error(store.load().await).contains("fingerprint.key"));
    assert!(store_error(store.save(&token("t2-token")).await).contains("fingerprint.key"));
    assert!(store_error(store.lock().await).contains("fingerprint.key"));
    std::fs::remove_file(dir.join("fingerprint.key")).unwrap();
    std::os::unix::fs::symlink(store.path(), dir.join("fingerprint.key")).unwrap();
    assert!(store_error(store.lock().await).contains("symbolic link"));
    assert!(store_error(store.load().await).contains("symbolic link"));
}

#[tokio::test]
async fn a_record_for_another_token_url_client_or_scope_is_not_served() {
    let (_tmp, dir) = sandbox();
    let mine = FileStore::new(&dir, key());
    mine.save(&token("token-for-client-a")).await.unwrap();
    let secret = || ClientSecret::new(SECRET);
    let others = [
        TokenKey::new(
            &tokenwarden::TokenUrl::parse("https://login.other.test/oauth/token").unwrap(),
            "client-a",
        )
        .with_secret(secret()),
        TokenKey::new(&tokenwarden::TokenUrl::parse(URL).unwrap(), "client-b")
            .with_secret(secret()),
        TokenKey::new(&tokenwarden::TokenUrl::parse(URL).unwrap(), "client-a")
            .with_scope("admin")
            .with_secret(secret()),
    ];
    for other in others {
        let theirs = FileStore::new(&dir, other.clone());
        assert_ne!(theirs.path(), mine.path(), "{other:?} has its own entry");
        assert_eq!(theirs.load().await.unwrap(), None);
        // Even a copy of my record under their name is not served to them.
        std::fs::copy(mine.path(), theirs.path()).unwrap();
        assert_eq!(theirs.load().await.unwrap(), None, "{other:?}");
    }
    assert_eq!(loaded(&mine).await.as_deref(), Some("token-for-client-a"));
}

#[tokio::test]
async fn the_scope_is_part_of_the_key() {
    let (_tmp, dir) = sandbox();
    let readonly = FileStore::new(&dir, key().with_scope("users:readonly"));
    let admin = FileStore::new(&dir, key().with_scope("admin"));
    readonly.save(&token("readonly-token")).await.unwrap();
    assert_eq!(admin.load().await.unwrap(), None);
    admin.save(&token("admin-token")).await.unwrap();
    assert_eq!(loaded(&readonly).await.as_deref(), Some("readonly-token"));
    assert_eq!(loaded(&admin).await.as_deref(), Some("admin-token"));
    // The same scopes, repeated or reordered, are the same key.
    let again = FileStore::new(&dir, key().with_scope("users:readonly  users:readonly"));
    assert_eq!(loaded(&again).await.as_deref(), Some("readonly-token"));
}

#[tokio::test]
async fn a_token_cached_under_another_secret_is_not_served() {
    let (_tmp, dir) = sandbox();
    let first = FileStore::new(&dir, key());
    first.save(&token("token-under-secret-1")).await.unwrap();
    let rotated = TokenKey::new(&tokenwarden::TokenUrl::parse(URL).unwrap(), "client-a")
        .with_secret(ClientSecret::new("WRONG-secret-x"));
    let second = FileStore::new(&dir, rotated);
    assert_eq!(second.path(), first.path(), "one entry per client");
    assert_eq!(second.load().await.unwrap(), None);
    assert_eq!(
        FileStore::new(
            &dir,
            TokenKey::new(&tokenwarden::TokenUrl::parse(URL).unwrap(), "client-a")
        )
        .load()
        .await
        .unwrap(),
        None,
        "a key without a secret does not match a record bound to one"
    );
    assert_eq!(
        loaded(&first).await.as_deref(),
        Some("token-under-secret-1")
    );
    // The new secret's token replaces the old one.
    second.save(&token("token-under-secret-2")).await.unwrap();
    assert_eq!(first.load().await.unwrap(), None);
}

#[tokio::test]
async fn the_record_holds_a_keyed_fingerprint_never_the_secret() {
    let (tmp, dir) = sandbox();
    let a = FileStore::new(&dir, key());
    let b = FileStore::new(tmp.path().join("other-cache"), key());
    a.save(&token("fingerprinted-token")).await.unwrap();
    b.save(&token("fingerprinted-token")).await.unwrap();
    let record = |s: &FileStore| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(s.path()).unwrap()).unwrap()
    };
    let (ra, rb) = (record(&a), record(&b));
    assert_eq!(ra["token_url"], URL);
    assert_eq!(ra["client_id"], "client-a");
    let fa = ra["secret_fingerprint"].as_str().unwrap();
    let fb = rb["secret_fingerprint"].as_str().unwrap();
    assert!(fa.starts_with("hmac-sha256:"), "{fa}");
    assert_ne!(fa, fb, "each cache has its own key");
    for dir in [dir.as_path(), b.dir()] {
        for name in names(dir) {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            assert!(!text.contains(SECRET), "the secret is in {name}");
        }
    }
    // Not a plain hash of the secret either: the fingerprint is the HMAC under the cache's key.
    let plain = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(SECRET.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(!fa.contains(&plain));
}

#[tokio::test]
async fn a_damaged_record_is_ignored_and_repaired_by_the_next_save() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("token-before-damage")).await.unwrap();
    for damage in ["{ torn", "", "null", "{\"version\":1}", "\u{0}\u{1}"] {
        std::fs::write(store.path(), damage).unwrap();
        assert_eq!(store.load().await.unwrap(), None, "{damage:?}");
    }
    std::fs::write(store.path(), "x".repeat(100 * 1024)).unwrap();
    assert_eq!(store.load().await.unwrap(), None, "oversized");
    store.save(&token("token-after-repair")).await.unwrap();
    assert_eq!(loaded(&store).await.as_deref(), Some("token-after-repair"));
    // A damaged fingerprint key is replaced too (the token is then fetched again).
    std::fs::write(dir.join("fingerprint.key"), "not a key").unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    store.save(&token("token-after-new-key")).await.unwrap();
    assert_eq!(loaded(&store).await.as_deref(), Some("token-after-new-key"));
}

#[tokio::test]
async fn a_cached_token_that_is_not_a_header_value_is_not_served() {
    let (_tmp, dir) = sandbox();
    let store = FileStore::new(&dir, key());
    store.save(&token("header-safe-token")).await.unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    for bad in [
        "tok\\r\\nX-Injected: 1",
        "tok\\nX",
        "tok en",
        "tok\\u0000",
        "t\\u00f6k",
        "",
    ] {
        std::fs::write(store.path(), text.replace("header-safe-token", bad)).unwrap();
        assert_eq!(store.load().await.unwrap(), None, "{bad:?}");
    }
}

/// Holds the lock through one handle while another waits for it, on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn lock_held_by_another_handle_times_out_with_a_retryable_store_error() {
    let (_tmp, dir) = sandbox();
    let holder = FileStore::new(&dir, key());
    let _held = holder.lock().await.unwrap();
    let waiter = FileStore::new(&dir, key()).with_lock_timeout(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let e = match waiter.lock().await {
        Err(e) => e,
        Ok(_) => panic!("two handles held the lock at once"),
    };
    let waited = started.elapsed();
    assert!(matches!(e, Error::Store { .. }), "{e:?}");
    assert!(e.is_retryable(), "a busy lock is worth another try: {e}");
    assert!(!e.is_credentials(), "{e}");
    let text = e.to_string();
    assert!(text.contains("30s"), "{text}");
    assert!(
        text.contains(
            &waiter
                .lock_path()
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
        "{text}"
    );
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn regression_a_lock_timeout_past_what_an_instant_holds_waits_instead_of_panicking() {
    // `started + timeout` overflowed (`--lock-timeout 10000000000000000000`): a panic.
    let (_tmp, dir) = sandbox();
    let holder = FileStore::new(&dir, key());
    let held = holder.lock().await.unwrap();
    let waiter = FileStore::new(&dir, key()).with_lock_timeout(Duration::MAX);
    let waiting = tokio::spawn(async move { waiter.lock().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!waiting.is_finished(), "still waiting after an hour");
    drop(held);
    let got = tokio::time::timeout(Duration::from_secs(60), waiting).await;
    got.expect("taken once released")
        .expect("no panic")
        .expect("locked");
}

#[tokio::test(start_paused = true)]
async fn lock_is_taken_as_soon_as_the_holder_releases_it() {
    let (_tmp, dir) = sandbox();
    let holder = FileStore::new(&dir, key());
    let held = holder.lock().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(held);
    });
    let started = tokio::time::Instant::now();
    let _mine = FileStore::new(&dir, key()).lock().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    release.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn memory_store_lock_is_bounded_too() {
    let store = MemoryStore::new().with_lock_timeout(Duration::from_secs(3));
    let _held = store.lock().await.unwrap();
    let e = match store.lock().await {
        Err(e) => e,
        Ok(_) => panic!("two holders"),
    };
    assert!(
        matches!(e, Error::Store { .. }) && e.is_retryable(),
        "{e:?}"
    );
}

// ---- with a token manager and the simulator --------------------------------------------------

fn manager(sim: &Simulator, dir: &Path, secret: &str, scope: Option<&str>) -> TokenManager {
    let endpoint = TokenEndpoint::new(&sim.token_url()).unwrap();
    let mut grant = ClientCredentials::new(endpoint, DEFAULT_CLIENT_ID, ClientSecret::new(secret));
    let mut key = TokenKey::new(
        &tokenwarden::TokenUrl::parse(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
    )
    .with_secret(ClientSecret::new(secret));
    if let Some(s) = scope {
        grant = grant.with_scope(s);
        key = key.with_scope(s);
    }
    TokenManager::builder(grant)
        .store(FileStore::new(dir, key).with_lock_timeout(Duration::from_millis(200)))
        .build()
}

#[tokio::test]
async fn a_changed_secret_is_reported_instead_of_serving_the_cached_token() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (_tmp, dir) = sandbox();
    let good = manager(&sim, &dir, DEFAULT_CLIENT_SECRET, None);
    let first = good.bearer().await.unwrap();
    // Another process with the same secret adopts it...
    let same = manager(&sim, &dir, DEFAULT_CLIENT_SECRET, None);
    assert_eq!(
        same.bearer().await.unwrap().access_token(),
        first.access_token()
    );
    assert_eq!(sim.journal_counters().token_requests, 1);
    // ...one with a wrong secret is told so.
    let wrong = manager(&sim, &dir, "WRONG", None);
    let e = wrong.bearer().await.unwrap_err();
    assert!(e.is_credentials(), "{e}");
    assert_eq!(sim.journal_counters().token_requests, 2);
}

#[tokio::test]
async fn managers_with_different_scopes_do_not_share_a_token() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (_tmp, dir) = sandbox();
    let readonly = manager(&sim, &dir, DEFAULT_CLIENT_SECRET, Some("users:readonly"));
    let admin = manager(&sim, &dir, DEFAULT_CLIENT_SECRET, Some("admin"));
    let r = readonly.bearer().await.unwrap();
    let a = admin.bearer().await.unwrap();
    assert_ne!(r.access_token(), a.access_token());
    assert_eq!(sim.journal_counters().token_requests, 2);
}

#[tokio::test]
async fn a_lock_timeout_is_not_remembered_as_a_permanent_failure() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (_tmp, dir) = sandbox();
    let tokens = manager(&sim, &dir, DEFAULT_CLIENT_SECRET, None);
    let key = TokenKey::new(
        &tokenwarden::TokenUrl::parse(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
    )
    .with_secret(ClientSecret::new(DEFAULT_CLIENT_SECRET));
    let held = FileStore::new(&dir, key).lock().await.unwrap();
    let e = tokens.bearer().await.unwrap_err();
    assert!(
        matches!(e, Error::Store { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(sim.journal_counters().token_requests, 0);
    drop(held);
    tokens.bearer().await.expect("the next call refreshes");
    assert_eq!(sim.journal_counters().token_requests, 1);
}

#[tokio::test]
async fn two_handles_of_one_key_share_the_token() {
    // Two stores of one key in one directory behave as one: what one saves the other loads.
    let (_tmp, dir) = sandbox();
    let a: Arc<dyn TokenStore> = Arc::new(FileStore::new(&dir, key()));
    let b: Arc<dyn TokenStore> = Arc::new(FileStore::new(&dir, key()));
    a.save(&token("shared-token-xyz")).await.unwrap();
    assert_eq!(loaded(&*b).await.as_deref(), Some("shared-token-xyz"));
}
