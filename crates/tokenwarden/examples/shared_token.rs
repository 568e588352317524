//! Run with `cargo run -p tokenwarden --example shared_token`.
//!
//! Many workers, one token: 200 tasks hammer the API through clones of one client while tokens
//! live 2 seconds. Genesys rate-limits per token and throttles token creation, so workers must
//! share one token rather than mint one each. The simulator's journal shows how many tokens were
//! issued and that no request carried an expired one.

mod common;

use std::time::Duration;
use tokenwarden_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(2),
        users: 500,
        ..SimConfig::default()
    })
    .await?;
    let (client, _) = common::sim_client(&sim)?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let workers: Vec<_> = (0..200)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut i = w;
                while tokio::time::Instant::now() < deadline {
                    let path = format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(i % 500));
                    client.get(&path).send().await?.error_for_status()?;
                    i += 200;
                }
                Ok::<_, tokenwarden::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let j = sim.journal_counters();
    println!(
        "{} requests by 200 workers in 6 s; {} tokens issued (at most {} at once); {} requests with an expired token",
        j.api_ok, j.tokens_issued, j.max_concurrent_token_requests, j.api_expired_token
    );
    Ok(())
}
