//! Run with `cargo bench -p tokenwarden-cli --bench fleet` (needs redis-server).
//!
//! Two measurements of `tokenwarden batch` processes sharing tokens through a real redis-server,
//! against the embedded simulator:
//!
//! 1. **Token requests per refresh period**: 4 processes, each one shard of the job, 1-second
//!    tokens, a fleet-wide rate: token requests for the whole fleet, per 0.625–0.75 s period.
//! 2. **Token pool throughput**: one process with `--tokens K` (K = 1, 2, 4) against a per-token
//!    limit of `LIMIT` requests per 1-s window the simulator enforces (and announces): requests
//!    per second and the share of 429s.
//!
//! `-- --records N` changes the size of the pool runs (default 2,000), `-- --limit N` the
//! per-token limit (default 100).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch(sim: &Simulator, dir: &std::path::Path, store: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .env("TOKENWARDEN_CACHE_DIR", dir.join("cache"))
        .args([
            "--api-base",
            &sim.base_url(),
            "--token-url",
            &sim.token_url(),
        ])
        .args([
            "--token-store",
            store,
            "-q",
            "batch",
            "--no-progress",
            "--ids",
        ])
        .arg(dir.join("ids.txt"))
        .args(["--path-template", "/api/v2/users/{id}"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    c
}

fn write_ids(dir: &std::path::Path, n: usize) {
    let ids: Vec<String> = (0..n).map(tokenwarden_sim::data::user_id).collect();
    std::fs::write(dir.join("ids.txt"), ids.join("\n") + "\n").unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(redis) = tokenwarden_test_support::redis_server::RedisServer::start() else {
        eprintln!("fleet benchmark: redis-server is required");
        std::process::exit(1);
    };
    let records = arg("--records", 2_000);
    let limit = arg("--limit", 100);

    // 1. Token requests per period for 4 processes.
    let dir = tempfile::tempdir().unwrap();
    let per_shard = 5_000;
    write_ids(dir.path(), 4 * per_shard);
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        users: 4 * per_shard,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let out = dir.path().join(format!("out-{i}.jsonl"));
            batch(
                &sim,
                dir.path(),
                &redis.url(),
                &[
                    "--rate",
                    "4000/s",
                    "-c",
                    "16",
                    "--shard",
                    &format!("{i}/4"),
                    "--output",
                ],
            )
            .arg(out)
            .spawn()
            .unwrap()
        })
        .collect();
    let ok = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .all(|mut c| c.wait().unwrap().success())
    })
    .await
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let j = sim.journal_counters();
    println!(
        "fleet of 4, 1-s tokens: {} records in {secs:.1} s ({}), {} token requests ({} tokens) = {:.2} per 0.7-s period, at most {} in flight",
        j.api_ok,
        if ok {
            "all shards ok"
        } else {
            "A SHARD FAILED"
        },
        j.token_requests,
        j.tokens_issued,
        j.token_requests as f64 / (secs / 0.7),
        j.max_concurrent_token_requests
    );
    drop(sim);

    // 2. Token pool throughput.
    println!("token pool, per-token limit {limit}/s, {records} records, concurrency 32:");
    println!(
        "| K | requests/s (whole run) | × K=1 | requests/s (whole seconds after the first) | × K=1 | 429 share | tokens |"
    );
    let mut steady_base = None;
    let mut base = None;
    for k in [1usize, 2, 4] {
        redis.command(&["FLUSHALL"]);
        let dir = tempfile::tempdir().unwrap();
        write_ids(dir.path(), records);
        let sim = Simulator::start(SimConfig {
            api_rate_limit_per_minute: Some(u32::try_from(limit).unwrap()),
            rate_limit_window: Duration::from_secs(1),
            users: records,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let started = Instant::now();
        let out = dir.path().join("out.jsonl");
        let k_text = k.to_string();
        let mut child = batch(
            &sim,
            dir.path(),
            &redis.url(),
            &[
                "--tokens",
                &k_text,
                "--token-spacing",
                "200ms",
                "-c",
                "32",
                "--output",
            ],
        )
        .arg(out)
        .spawn()
        .unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let j = sim.journal();
        let rate = j.api_ok as f64 / secs;
        let base = *base.get_or_insert(rate);
        // Steady state: the answers after the first second (the pool's tokens are minted one at
        // a time, and each token's allowance is learned from its first answers).
        let ok_at: Vec<u64> = j
            .entries
            .iter()
            .filter(|e| e.outcome == tokenwarden_sim::Outcome::Ok)
            .map(|e| e.at_ms)
            .collect();
        // Whole seconds after the first, the last (partial) one left out.
        let first = ok_at[0];
        let mut per_second = vec![0u64; 1 + ((ok_at[ok_at.len() - 1] - first) / 1000) as usize];
        for t in &ok_at {
            per_second[((t - first) / 1000) as usize] += 1;
        }
        let middle = &per_second[1..per_second.len().saturating_sub(1).max(1)];
        let steady = middle.iter().sum::<u64>() as f64 / middle.len().max(1) as f64;
        let steady_base = *steady_base.get_or_insert(steady);
        println!(
            "| {k} | {rate:.0} | {:.2} | {steady:.0} | {:.2} | {:.2}% | {} |{}",
            rate / base,
            steady / steady_base,
            100.0 * j.api_rate_limited as f64 / j.api_requests.max(1) as f64,
            j.tokens_issued,
            if status.success() { "" } else { " FAILED" }
        );
    }
}
