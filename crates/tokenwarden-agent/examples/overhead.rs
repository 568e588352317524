//! Run: cargo run --release -p tokenwarden-agent --example overhead [-- REQUESTS CONCURRENCY LATENCY_MS]
//!
//! What the agent costs: the same requests (default 8,000 `GET /api/v2/users/{id}` at concurrency
//! 32, the simulator answering after 20 ms) sent by a plain HTTP client straight to the embedded
//! simulator with the real token, then through the agent with the key. Prints the throughput of
//! each, their ratio, and the latency the agent adds (p50, p99).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_agent::{Agent, AgentKey, AgentOptions};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l[((l.len() as f64 - 1.0) * p).round() as usize]
    }
}

async fn drive(base: &str, bearer: &str, requests: usize, concurrency: usize) -> Run {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, next) = (http.clone(), Arc::clone(&next));
        let (base, bearer) = (base.to_string(), bearer.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return latencies;
                }
                let t = Instant::now();
                let r = http
                    .get(format!("{base}/api/v2/users/user-{:06}", i % 1000))
                    .bearer_auth(&bearer)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Run {
        elapsed: started.elapsed(),
        latencies,
    }
}

/// CPU time this process has used (user + system), from /proc (Linux), in clock ticks of 10 ms.
fn cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some(Duration::from_millis((f.first()? + f.get(1)?) * 10))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let requests = args.first().copied().unwrap_or(8000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let latency = Duration::from_millis(args.get(2).copied().unwrap_or(20) as u64);
    let sim = Simulator::start(SimConfig {
        latency,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let grant = ClientCredentials::new(
        TokenEndpoint::new(&sim.token_url()).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    let real = tokens.bearer().await.unwrap();
    let real = real.access_token().expose_secret().to_string();
    let client = ApiClient::builder(&sim.base_url(), tokens).build().unwrap();
    let key = AgentKey::generate();
    let agent = Agent::start(
        client,
        AgentOptions::new("127.0.0.1:0".parse().unwrap(), key.clone()),
    )
    .await
    .unwrap();

    // A short warm-up of both paths (connections, the agent's pool), not measured.
    drive(&sim.base_url(), &real, 200, concurrency).await;
    drive(&agent.url(), key.expose(), 200, concurrency).await;

    let c0 = cpu();
    let direct = drive(&sim.base_url(), &real, requests, concurrency).await;
    let c1 = cpu();
    let through = drive(&agent.url(), key.expose(), requests, concurrency).await;
    let c2 = cpu();
    println!(
        "{requests} requests, concurrency {concurrency}, server latency {} ms",
        latency.as_millis()
    );
    println!("| path | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, r) in [("direct", &direct), ("through the agent", &through)] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} |",
            r.throughput(),
            ms(r.percentile(0.5)),
            ms(r.percentile(0.99))
        );
    }
    println!(
        "throughput ratio {:.3}; added latency p50 {:.2} ms, p99 {:.2} ms",
        through.throughput() / direct.throughput(),
        ms(through.percentile(0.5)) - ms(direct.percentile(0.5)),
        ms(through.percentile(0.99)) - ms(direct.percentile(0.99)),
    );
    if let (Some(c0), Some(c1), Some(c2)) = (c0, c1, c2) {
        // The simulator, the client and (second run) the agent all run in this process: the
        // difference is the agent's CPU per request.
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        println!(
            "CPU per request (this process): direct {:.0} us, through the agent {:.0} us: the agent costs {:.0} us",
            per(c1 - c0),
            per(c2 - c1),
            per(c2 - c1) - per(c1 - c0)
        );
    }
    let j = sim.journal_counters();
    println!(
        "simulator: {} API requests, {} token requests",
        j.api_requests, j.token_requests
    );
    agent.shutdown().await;
}
