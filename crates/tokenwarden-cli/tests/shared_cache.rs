//! One token cache for every command: the user's private file cache is the default store of
//! `request`, `paginate`, `export`, `check` and `batch`, as it was of `token`, so a shell loop of
//! commands with the same credentials makes one token request (Genesys throttles token creation
//! per client). `--token-store memory` and `--no-cache` opt out on every command.

mod common;

use common::{Sandbox, run, user_batch};
use tokenwarden_sim::SimConfig;

/// The six commands of the issue, in a row.
async fn six_commands(sb: &Sandbox, extra: &[&str]) {
    for path in [
        "/api/v2/users/user-000003",
        "/api/v2/users/user-000001",
        "/api/v2/users/user-000002",
        "/api/v2/tokens/me",
    ] {
        let mut args = vec!["request", "GET", path];
        args.extend_from_slice(extra);
        run(sb.tw(), &args).await.ok();
    }
    let mut args = vec!["paginate", "/api/v2/users?pageSize=100"];
    args.extend_from_slice(extra);
    run(sb.tw(), &args).await.ok();
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    run(sb.tw(), &args).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_commands_in_a_row_make_one_token_request() {
    let sb = Sandbox::start(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await;
    six_commands(&sb, &[]).await;
    let j = sb.sim.journal_counters();
    assert_eq!(j.token_requests, 1, "{j:?}");
    assert!(j.api_ok >= 7, "{j:?}");
    // `token` shares the same entry (the key is the same: token URL, client, scope, secret).
    let t = run(sb.tw(), &["token"]).await;
    t.ok();
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
    // A batch too.
    let ids = sb.write("ids.txt", "user-000001\nuser-000002\n");
    let out = sb.path("batch.jsonl");
    run(user_batch(sb.tw(), &ids, &out), &["--no-progress"])
        .await
        .ok();
    assert_eq!(sb.sim.journal_counters().token_requests, 1);
    // Another scope is another entry.
    run(sb.tw(), &["--scope", "users:readonly", "check"])
        .await
        .ok();
    assert_eq!(sb.sim.journal_counters().token_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_and_no_cache_make_their_own_token_requests() {
    let sb = Sandbox::start(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await;
    six_commands(&sb, &["--token-store", "memory"]).await;
    assert_eq!(sb.sim.journal_counters().token_requests, 6);
    six_commands(&sb, &["--no-cache"]).await;
    assert_eq!(sb.sim.journal_counters().token_requests, 12);
    // Neither wrote the cache: the next command without a flag fetches, and the one after it
    // shares.
    let cache = sb.path("tw-cache").join("tokens");
    let cached = std::fs::read_dir(&cache).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count()
    });
    assert_eq!(cached, 0, "nothing cached in {}", cache.display());
    run(sb.tw(), &["check"]).await.ok();
    run(sb.tw(), &["request", "GET", "/api/v2/users/user-000001"])
        .await
        .ok();
    assert_eq!(sb.sim.journal_counters().token_requests, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_the_default_store_and_the_opt_outs() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw(), &["config"]).await;
    r.ok();
    let line = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("token_store"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(line.contains("file") && line.contains("default"), "{line}");
    let dir = sb.path("tw-cache").join("tokens");
    assert!(line.contains(dir.to_str().unwrap()), "{line}");
    let r = run(sb.tw(), &["config", "--json"]).await;
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["settings"]["token_store"]["value"], "file", "{v}");
    assert_eq!(v["settings"]["token_store"]["source"], "default", "{v}");
    let r = run(sb.tw(), &["config", "--json", "--no-cache"]).await;
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["settings"]["token_store"]["value"], "memory", "{v}");
    assert_eq!(v["settings"]["token_store"]["source"], "--no-cache", "{v}");
}
