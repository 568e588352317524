//! Run with `cargo run -p tokenwarden --example export_users`.
//!
//! Exports every user of an organization as JSON Lines while tokens expire every second and the
//! server revokes one now and then: the export does not notice. Offline, against the embedded
//! simulator; for Genesys Cloud, build the endpoint from `Region::parse("eu-west-1")?` instead.

mod common;

use futures::StreamExt as _;
use std::io::Write as _;
use std::time::Duration;
use tokenwarden_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        revoke_every: Some(60),
        latency: Duration::from_millis(20),
        users: 2_000,
        ..SimConfig::default()
    })
    .await?;

    let (client, _) = common::sim_client(&sim)?;

    let mut out = std::io::BufWriter::new(std::fs::File::create("users.jsonl")?);
    let mut users = std::pin::pin!(tokenwarden::paginate::numbered_items(
        &client,
        "/api/v2/users?pageSize=25"
    ));
    let mut n = 0;
    while let Some(user) = users.next().await {
        serde_json::to_writer(&mut out, &user?)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;

    let t = client.tokens().metrics();
    let c = client.metrics();
    println!(
        "{n} users in users.jsonl; {} tokens fetched ({} proactive, {} after a revocation), {} 401s healed",
        t.tokens_fetched, t.proactive_refreshes, t.rejected_refreshes, c.unauthorized_healed
    );
    Ok(())
}
