//! Run: cargo run --release -p tokenwarden-agent --all-features --example overhead [-- REQUESTS CONCURRENCY LATENCY_MS ROUNDS [STAGGER]]
//!
//! What the agent costs: the same requests (default 8,000 `GET /api/v2/users/{id}` at concurrency
//! 32, the simulator answering after 20 ms) sent by a plain HTTP client straight to the simulator
//! with the real token, then through the agent with the key, in interleaved rounds (default 5 of
//! each: direct, agent, direct, agent...).
//!
//! The load generator, the simulator, the agent and a floor are four processes (this program runs
//! itself again as `overhead sim LATENCY_MS`, `overhead agent SIM_URL` and `overhead floor
//! SIM_URL`), so that none of them takes its CPU from another's runtime; each round reads the CPU
//! time of each process from /proc, which gives the agent's own CPU per request, and the context
//! switches of the agent's threads. The floor is the least a proxy can be on this machine: a
//! hyper server passing each request as it is to a hyper-util client (no guard, no token, no
//! scrub), driven with the real token. All paths use one client configuration. Prints each round,
//! then the medians: the throughput ratio, the latency the agent (and the floor) adds (p50, p99),
//! their CPU and context switches per request.
//!
//! The simulator keeps its latency with the OS's high-resolution timer (tokio's millisecond wheel
//! rounded 20 ms up to 20-22 ms and answered the requests of each millisecond together, which
//! made any proxy in front of it look costlier: docs/BENCHMARKS.md). `OVERHEAD_JITTER_MS=J` adds
//! up to J ms more to each answer, drawn afresh: an API whose latency varies.
//!
//! `OVERHEAD_FLOOR=reqwest` makes the floor forward through a plain `reqwest::Client` instead of
//! hyper-util's (what reqwest's layers cost). `STAGGER` 1 starts the load loops spread over the first `LATENCY_MS` instead of all at once (by
//! default they start together, so the requests come in waves of `CONCURRENCY`).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_agent::{Agent, AgentKey, AgentOptions, KEY_ENV};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// `p` of the sorted latencies.
    fn percentile(&self, p: f64) -> Duration {
        self.latencies[((self.latencies.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// The one client configuration both paths are driven with.
fn load_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap()
}

async fn drive(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    requests: usize,
    concurrency: usize,
    stagger: Duration,
) -> Run {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..concurrency {
        let (http, next) = (http.clone(), Arc::clone(&next));
        let (base, bearer) = (base.to_string(), bearer.to_string());
        let start = tokio::time::Instant::from_std(started) + stagger * n as u32;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
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
    let elapsed = started.elapsed();
    latencies.sort();
    Run { elapsed, latencies }
}

/// CPU time a process has used (user + system, all its threads), from /proc (Linux), in clock
/// ticks of 10 ms.
fn cpu(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc (Linux)");
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    Duration::from_millis((f[0] + f[1]) * 10)
}

/// Context switches (voluntary and involuntary) of a process's live threads, from /proc (Linux):
/// each is a thread going to sleep or being preempted, and a wake-up later. Counts, unlike the
/// latencies, hardly depend on how busy the machine is.
fn switches(pid: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc (Linux)");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// This program again, as `role`, with its first stdout line read (the URL it serves); it runs
/// until its stdin closes.
struct Role {
    child: Child,
    url: String,
    out: BufReader<std::process::ChildStdout>,
}

impl Role {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Role {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        out.read_line(&mut url).unwrap();
        assert!(url.starts_with("http://"), "{args:?} said {url:?}");
        Role {
            url: url.trim().to_string(),
            child,
            out,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Closes its stdin and returns what it prints before it exits.
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.out, &mut rest);
        let _ = self.child.wait();
        rest
    }
}

/// Waits until stdin closes (the driver ended or died).
async fn until_stdin_closes() {
    tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await
    .unwrap()
    .unwrap();
}

/// `overhead sim LATENCY_MS`: the simulator (with up to `OVERHEAD_JITTER_MS` more, drawn for each
/// answer); prints its URL, and its journal counters at the end.
async fn sim_role(latency_ms: u64) {
    let jitter = std::env::var("OVERHEAD_JITTER_MS").map_or(0, |v| v.parse().expect("ms"));
    let sim = Simulator::start(SimConfig {
        latency: Duration::from_millis(latency_ms),
        latency_jitter: Duration::from_millis(jitter),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    println!("{}", sim.base_url());
    until_stdin_closes().await;
    let j = sim.journal_counters();
    println!(
        "simulator: {} API requests, {} token requests",
        j.api_requests, j.token_requests
    );
}

/// `overhead agent SIM_URL`: the agent in front of the simulator, the key from
/// `TOKENWARDEN_AGENT_KEY`, logging at the CLI's default level (warnings); prints its URL.
async fn agent_role(sim_url: &str) {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    let grant = ClientCredentials::new(
        TokenEndpoint::new(&format!("{sim_url}/oauth/token")).unwrap(),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    let client = ApiClient::builder(sim_url, tokens).build().unwrap();
    let key = AgentKey::from_text(&std::env::var(KEY_ENV).unwrap()).unwrap();
    let agent = Agent::start(
        client,
        AgentOptions::new("127.0.0.1:0".parse().unwrap(), key),
    )
    .await
    .unwrap();
    println!("{}", agent.url());
    until_stdin_closes().await;
    agent.shutdown().await;
}

/// `overhead floor SIM_URL [CLIENT]`: the least a proxy is, on this machine and runtime: a hyper
/// server (as the agent's) handing each request as it is to a client that streams the answer
/// back; no guard, no token, no scrub. `CLIENT` is `hyper` (hyper-util's legacy client, the
/// default) or `reqwest` (what the agent's hop goes through: the difference is reqwest's layers).
/// Prints its URL.
async fn floor_role(sim_url: &str, with: &str) {
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    type Boxed = http_body_util::combinators::BoxBody<
        bytes::Bytes,
        Box<dyn std::error::Error + Send + Sync>,
    >;
    let upstream: http::Uri = sim_url.parse().unwrap();
    let authority = upstream.authority().unwrap().clone();
    let hyper: Client<_, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    let reqwest = (with == "reqwest").then(reqwest::Client::new);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("http://{}", listener.local_addr().unwrap());
    let serve = async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let (hyper, reqwest, authority) = (hyper.clone(), reqwest.clone(), authority.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let (hyper, reqwest, authority) =
                        (hyper.clone(), reqwest.clone(), authority.clone());
                    async move {
                        let (mut parts, body) = req.into_parts();
                        let mut uri = parts.uri.into_parts();
                        uri.scheme = Some(http::uri::Scheme::HTTP);
                        uri.authority = Some(authority);
                        parts.uri = http::Uri::from_parts(uri).unwrap();
                        parts.headers.remove(http::header::HOST);
                        let answer: http::Response<Boxed> = match reqwest {
                            None => hyper
                                .request(http::Request::from_parts(parts, body))
                                .await
                                .unwrap()
                                .map(|b| b.map_err(|e| e.into()).boxed()),
                            Some(client) => {
                                let body = body.collect().await.unwrap().to_bytes();
                                let req = http::Request::from_parts(parts, body);
                                let req = reqwest::Request::try_from(req).unwrap();
                                let answer = client.execute(req).await.unwrap();
                                http::Response::from(answer)
                                    .map(|b| b.map_err(|e| e.into()).boxed())
                            }
                        };
                        Ok::<_, std::convert::Infallible>(answer)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = until_stdin_closes() => {}
    }
}

/// One path's numbers in a round.
struct Path {
    run: Run,
    cpu_us: f64,
    switches: f64,
}

/// Each process's runtime: tokio's multi-thread one as the CLI builds it; `OVERHEAD_THREADS=N`
/// gives it N workers, and `0` a current-thread runtime (what a runtime's thread hand-offs cost);
/// `OVERHEAD_PROXY_THREADS` does the same for the agent and the floor only.
fn main() {
    let proxy = matches!(std::env::args().nth(1).as_deref(), Some("agent" | "floor"));
    let threads = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let wanted = match proxy {
        true => threads("OVERHEAD_PROXY_THREADS").or_else(|| threads("OVERHEAD_THREADS")),
        false => threads("OVERHEAD_THREADS"),
    };
    let runtime = match wanted {
        Some(0usize) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    runtime.unwrap().block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sim") => return sim_role(args[1].parse().unwrap()).await,
        Some("agent") => return agent_role(&args[1]).await,
        Some("floor") => {
            let with = args.get(2).map_or("hyper", String::as_str);
            return floor_role(&args[1], with).await;
        }
        _ => {}
    }
    let args: Vec<usize> = args.iter().map(|a| a.parse().expect("numbers")).collect();
    let requests = args.first().copied().unwrap_or(8000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let latency_ms = args.get(2).copied().unwrap_or(20);
    let rounds = args.get(3).copied().unwrap_or(5);
    let stagger = match args.get(4).copied().unwrap_or(0) {
        0 => Duration::ZERO,
        _ => Duration::from_millis(latency_ms as u64) / concurrency as u32,
    };

    let sim = Role::start(&["sim", &latency_ms.to_string()], &[]);
    let key = AgentKey::generate();
    let agent = Role::start(&["agent", &sim.url], &[(KEY_ENV, key.expose())]);
    let floor_client = std::env::var("OVERHEAD_FLOOR").unwrap_or_else(|_| "hyper".into());
    let floor = Role::start(&["floor", &sim.url, &floor_client], &[]);
    let http = load_client(concurrency);
    let through_agent = load_client(concurrency);
    let through_floor = load_client(concurrency);
    // The real token, as a script holding it would get it: from the agent's `GET /token`.
    let token: serde_json::Value = http
        .get(format!("{}/token", agent.url))
        .bearer_auth(key.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let real = token["access_token"].as_str().unwrap().to_string();
    // Each path: its client, its base, the credential it is given, and the process that serves
    // it (whose CPU and context switches are its cost).
    let paths = [
        (&http, &sim.url, real.as_str(), None),
        (&through_agent, &agent.url, key.expose(), Some(agent.pid())),
        (&through_floor, &floor.url, real.as_str(), Some(floor.pid())),
    ];

    // A warm-up of every path (connections, the proxies' pools), not measured.
    for (client, base, bearer, _) in &paths {
        drive(client, base, bearer, 500, concurrency, stagger).await;
    }

    println!(
        "{requests} requests a round, concurrency {concurrency}, server latency {latency_ms} ms (+ up to {} ms), {rounds} rounds of each path (direct, agent, floor), interleaved, loops started {}; four processes (the floor over {floor_client})",
        std::env::var("OVERHEAD_JITTER_MS").unwrap_or_else(|_| "0".into()),
        match stagger.is_zero() {
            true => "together".to_string(),
            false => format!("{} µs apart", stagger.as_micros()),
        }
    );
    println!(
        "| round | direct req/s | agent req/s | ratio | direct p50 / p99 ms | agent p50 / p99 ms | added p50 | added p99 | agent CPU µs/req | agent context switches/req | floor added p50 / p99 | floor CPU µs/req | floor switches/req | simulator CPU µs/req (direct / agent) | client CPU µs/req (direct / agent) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let me = std::process::id().to_string();
    let (mut ratios, mut added50, mut added99) = (vec![], vec![], vec![]);
    let (mut agent_cpu, mut agent_switches) = (vec![], vec![]);
    let (mut floor50, mut floor99, mut floor_cpu, mut floor_switches) =
        (vec![], vec![], vec![], vec![]);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    for round in 1..=rounds {
        let mut sim_cpu = vec![];
        let mut client_cpu = vec![];
        let mut measured = vec![];
        for (client, base, bearer, server) in paths.iter().cloned() {
            let (s0, c0) = (cpu(&sim.pid()), cpu(&me));
            let p0 = server.as_deref().map(|p| (cpu(p), switches(p)));
            let run = drive(client, base, bearer, requests, concurrency, stagger).await;
            let (s1, c1) = (cpu(&sim.pid()), cpu(&me));
            let (cpu_us, w) = match (server.as_deref(), p0) {
                (Some(p), Some((a0, w0))) => (
                    per(cpu(p) - a0),
                    (switches(p) - w0) as f64 / requests as f64,
                ),
                _ => (0.0, 0.0),
            };
            sim_cpu.push(per(s1 - s0));
            client_cpu.push(per(c1 - c0));
            measured.push(Path {
                run,
                cpu_us,
                switches: w,
            });
        }
        let [direct, through, floored] = <[Path; 3]>::try_from(measured).ok().unwrap();
        let added = |p: &Path, q: f64| ms(p.run.percentile(q)) - ms(direct.run.percentile(q));
        let ratio = through.run.throughput() / direct.run.throughput();
        let (a50, a99) = (added(&through, 0.5), added(&through, 0.99));
        let (f50, f99) = (added(&floored, 0.5), added(&floored, 0.99));
        println!(
            "| {round} | {:.0} | {:.0} | {ratio:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {a50:.2} ms | {a99:.2} ms | {:.0} | {:.2} | {f50:.2} / {f99:.2} ms | {:.0} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} |",
            direct.run.throughput(),
            through.run.throughput(),
            ms(direct.run.percentile(0.5)),
            ms(direct.run.percentile(0.99)),
            ms(through.run.percentile(0.5)),
            ms(through.run.percentile(0.99)),
            through.cpu_us,
            through.switches,
            floored.cpu_us,
            floored.switches,
            sim_cpu[0],
            sim_cpu[1],
            client_cpu[0],
            client_cpu[1],
        );
        ratios.push(ratio);
        added50.push(a50);
        added99.push(a99);
        agent_cpu.push(through.cpu_us);
        agent_switches.push(through.switches);
        floor50.push(f50);
        floor99.push(f99);
        floor_cpu.push(floored.cpu_us);
        floor_switches.push(floored.switches);
    }
    println!(
        "median of {rounds} rounds: throughput ratio {:.3}; added latency p50 {:.2} ms, p99 {:.2} ms; the agent's CPU {:.0} µs and {:.2} context switches per request; the floor proxy adds p50 {:.2} ms, p99 {:.2} ms, with {:.0} µs CPU and {:.2} context switches per request",
        median(ratios),
        median(added50),
        median(added99),
        median(agent_cpu),
        median(agent_switches),
        median(floor50),
        median(floor99),
        median(floor_cpu),
        median(floor_switches),
    );
    floor.stop();
    agent.stop();
    print!("{}", sim.stop());
}
