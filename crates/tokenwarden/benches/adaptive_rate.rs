//! Adaptive pacing under a per-token rate limit: 16 workers share one client against the simulator's
//! limit of 200 requests per 1-second window, announced (`inin-ratelimit-*` headers) or not. Reports
//! the share of requests answered 429 and the throughput as a share of the limit, from the
//! simulator's own journal.
//!
//! Run with `cargo bench -p tokenwarden --bench adaptive_rate` (add `-- --seconds 60` for a longer
//! run, `-- --only adaptive` or `-- --only fixed` for one half, `-- --trace` to watch the learned
//! rate every second).

use futures::StreamExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Outcome, SimConfig, Simulator};

const WORKERS: usize = 16;
const LIMIT_PER_SECOND: u32 = 200;

struct Run {
    requests: u64,
    rate_limited: u64,
    ok: u64,
    /// Requests that ended in an error (retries exhausted on 429s).
    failed: u64,
    seconds: f64,
}

async fn run(adaptive: bool, headers: bool, seconds: u64, trace: bool) -> Run {
    let sim = Simulator::start(SimConfig {
        api_rate_limit_per_minute: Some(LIMIT_PER_SECOND),
        rate_limit_window: Duration::from_secs(1),
        rate_limit_headers: headers,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let endpoint = TokenEndpoint::new(&sim.token_url()).expect("token URL");
    let grant = ClientCredentials::new(
        endpoint,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    let client = ApiClient::builder(&sim.base_url(), tokens)
        .adaptive_rate(adaptive)
        .build()
        .expect("client");
    client.tokens().bearer().await.expect("a token");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    // Each worker sends one request after another until the deadline; requests still waiting
    // (a Retry-After, the pacer) at the deadline are dropped with the stream.
    let failed = Arc::new(AtomicU64::new(0));
    let workers = futures::stream::iter(0..WORKERS)
        .map(|w| {
            let client = client.clone();
            let failed = failed.clone();
            async move {
                let mut i = w;
                loop {
                    let path =
                        format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(i % 1000));
                    if client.get(&path).send().await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += WORKERS;
                }
            }
        })
        .buffer_unordered(WORKERS)
        .for_each(|()| async {});
    let watch = {
        let client = client.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if trace {
                    let m = client.metrics();
                    eprintln!(
                        "  learned {:>6.1}/s  429s waited {:>4}  cuts {:>3}  holds {:>3}",
                        client.learned_rate().unwrap_or(f64::NAN),
                        m.rate_limited_waits,
                        m.rate_cuts,
                        m.rate_limit_pauses
                    );
                }
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, futures::future::join(workers, watch)).await;
    let j = sim.journal();
    let api = || j.entries.iter().filter(|e| e.path.starts_with("/api/"));
    let start_ms = api().map(|e| e.at_ms).min().unwrap_or(0);
    let end_ms = start_ms + seconds * 1000;
    let in_run = api().filter(|e| e.at_ms < end_ms);
    let (mut requests, mut rate_limited, mut ok) = (0, 0, 0);
    for e in in_run {
        requests += 1;
        match e.outcome {
            Outcome::RateLimited => rate_limited += 1,
            Outcome::Ok => ok += 1,
            _ => {}
        }
    }
    Run {
        requests,
        rate_limited,
        ok,
        failed: failed.load(Ordering::Relaxed),
        seconds: seconds as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(30);
    let only = arg("--only");
    // Prints the learned rate and the counters every second, to stderr.
    let trace = args.iter().any(|a| a == "--trace");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{WORKERS} workers, limit {LIMIT_PER_SECOND} requests per 1 s window per token, {seconds} s per run"
    );
    println!(
        "{:<10} {:<9} {:>9} {:>7} {:>10} {:>9} {:>11} {:>7}",
        "pacing", "headers", "requests", "429s", "429 share", "ok/s", "% of limit", "failed"
    );
    for adaptive in [false, true] {
        let name = if adaptive { "adaptive" } else { "fixed" };
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for headers in [false, true] {
            let r = rt.block_on(run(adaptive, headers, seconds, trace));
            let ok_per_s = r.ok as f64 / r.seconds;
            println!(
                "{:<10} {:<9} {:>9} {:>7} {:>9.2}% {:>9.1} {:>10.1}% {:>7}",
                name,
                if headers { "sent" } else { "withheld" },
                r.requests,
                r.rate_limited,
                100.0 * r.rate_limited as f64 / r.requests.max(1) as f64,
                ok_per_s,
                100.0 * ok_per_s / f64::from(LIMIT_PER_SECOND),
                r.failed,
            );
        }
    }
}
