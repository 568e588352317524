//! A temporary file that a killed process left in the token cache holds a token until it expires:
//! the next process to use the cache removes it, when it is older than the lock timeout and the
//! user's own, and leaves everything else alone.

#![cfg(unix)]

use std::fs::{File, FileTimes};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokenwarden::{
    AccessToken, ClientSecret, FileStore, TokenStore, store::StoredToken, store::TokenKey,
};

fn key() -> TokenKey {
    TokenKey::new(
        &tokenwarden::TokenUrl::parse("https://login.example.test/oauth/token").unwrap(),
        "client-a",
    )
    .with_secret(ClientSecret::new("stale-temps-client-secret-51d0"))
}

/// Writes `contents` to `path`, last modified `age` before it was written (the file system's own
/// clock: the time it stamped on the new file).
fn plant(path: &Path, contents: &str, age: Duration) {
    std::fs::write(path, contents).unwrap();
    let written = std::fs::metadata(path).unwrap().modified().unwrap();
    let f = File::options().write(true).open(path).unwrap();
    f.set_times(FileTimes::new().set_modified(written - age))
        .unwrap();
}

#[tokio::test]
async fn stale_temporary_files_are_removed_on_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tokens");
    // A first process saves a token; its name tells what a temporary file beside it looks like.
    let first = FileStore::new(&dir, key());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    first
        .save(&StoredToken {
            access_token: AccessToken::new("the-cached-token-value"),
            obtained_at: now,
            expires_at: now + Duration::from_secs(3600),
        })
        .await
        .unwrap();
    let name = first
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    // What a process killed between writing and renaming leaves: `.NAME.XXXXXX.tmp`.
    let stale = dir.join(format!(".{name}.a1b2c3.tmp"));
    let young = dir.join(format!(".{name}.d4e5f6.tmp"));
    let not_temp = dir.join("notes.txt");
    let outside = tmp.path().join("elsewhere.tmp");
    let link = dir.join(".link.tmp");
    plant(
        &stale,
        "{\"access_token\":\"leaked-by-a-killed-process\"}",
        Duration::from_secs(120),
    );
    plant(&young, "being written right now", Duration::ZERO);
    plant(&not_temp, "not ours to judge", Duration::from_secs(120));
    plant(&outside, "outside the cache", Duration::from_secs(120));
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    // The next process, with a 30 s lock timeout (the default), uses the cache.
    let next = FileStore::new(&dir, key()).with_lock_timeout(Duration::from_secs(30));
    let loaded = next.load().await.unwrap().expect("the cached token");
    assert_eq!(
        loaded.access_token.expose_secret(),
        "the-cached-token-value"
    );
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(
        young.exists(),
        "a temporary file younger than the lock timeout is left"
    );
    assert!(not_temp.exists(), "only temporary files are removed");
    assert!(
        link.symlink_metadata().is_ok() && outside.exists(),
        "a symbolic link is neither followed nor removed"
    );
    assert!(next.path().exists(), "the token file itself stays");

    // Once per store: a stale file appearing later is left for the next start (no directory scan
    // per token request).
    let later = dir.join(format!(".{name}.g7h8i9.tmp"));
    plant(&later, "later", Duration::from_secs(120));
    next.load().await.unwrap();
    assert!(later.exists());
    // The lock is a start too (a refresh before any load).
    let third = FileStore::new(&dir, key());
    drop(third.lock().await.unwrap());
    assert!(!later.exists());
}
