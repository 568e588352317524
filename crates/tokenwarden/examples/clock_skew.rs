//! Run with `cargo run --release -p tokenwarden --example clock_skew [-- REQUESTS CONCURRENCY [SERVER]]`.
//!
//! SERVER is one of:
//! - `expired` (the default): a server whose clock runs ahead. The simulator advertises 4-second
//!   tokens (`expires_in: 4`) but kills each one after 1 second (`clock_skew: 3s`), and says so:
//!   401 `credentials.expired`.
//! - `bad-credentials`: the same server, but every 401 says `bad.credentials` (as Genesys may: the
//!   code is not to be relied on, only the status).
//! - `revocations`: no skew; the server revokes each 4-second token at a random age within 6 s
//!   (401 `bad.credentials`), so about half of them die before their refresh.
//!
//! 6,000 requests at concurrency 8 go through an `ApiClient`, with 5 ms of server time each; the
//! simulator's journal counts the requests that arrived with a dead token and the token requests.
//! Without skew learning every token dies in the hands of the workers (one wave of up to 8 dead
//! requests per token); with it, the first wave teaches the manager to refresh 3 s earlier and later
//! tokens are replaced before the server kills them, whatever the 401 said. Against revocations,
//! the token requests stay within the revocations plus one per lifetime plus a small constant: a
//! wrong guess is undone, not repeated.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokenwarden_sim::{SimConfig, Simulator};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map_or(Ok(6_000), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let server = args.next().unwrap_or_else(|| "expired".into());
    let (clock_skew, code, revoke) = match server.as_str() {
        "expired" => (Duration::from_secs(3), "credentials.expired", None),
        "bad-credentials" => (Duration::from_secs(3), "bad.credentials", None),
        "revocations" => (
            Duration::ZERO,
            "bad.credentials",
            Some(Duration::from_secs(6)),
        ),
        other => {
            return Err(format!(
                "unknown server {other:?}: expired, bad-credentials or revocations"
            )
            .into());
        }
    };

    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(4),
        clock_skew,
        expired_token_code: code.into(),
        revoke_at_random_age: revoke,
        users: 500,
        // A little server time per request, so that the run spans several token lifetimes on a
        // fast machine as on a slow one (about 1,600 requests/s at concurrency 8).
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await?;
    let (client, tokens) = common::sim_client(&sim)?;

    let next = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return Ok::<_, tokenwarden::Error>(());
                    }
                    let path = format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(i % 500));
                    client.get(&path).send().await?.error_for_status()?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed();
    let j = sim.journal();
    let m = tokens.metrics();
    // Tokens the server revoked while in use (each costs one token request, whatever the client).
    let revoked = j.revoked_tokens();
    let lifetimes = (elapsed.as_secs_f64() / 4.0).ceil() as usize;
    println!(
        "server {server}: {requests} requests at concurrency {concurrency} in {:.1} s: {} ok, \
         {} tokens issued ({} proactive, {} after a 401; {} tokens revoked, {lifetimes} lifetimes), \
         clock skew at the end: {:.2} s; requests sent with a dead token: {} expired, {} revoked",
        elapsed.as_secs_f64(),
        j.api_ok,
        j.tokens_issued,
        m.proactive_refreshes,
        m.rejected_refreshes,
        revoked.len(),
        m.clock_skew.as_secs_f64(),
        j.api_expired_token,
        j.api_revoked_token,
    );
    Ok(())
}
