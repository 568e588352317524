//! `tokenwarden sim`: the embedded simulator, standalone.

use crate::args::{JobOutcomeArg, SimArgs, SimKnobs};
use anyhow::{Context as _, Result};
use std::net::{Ipv4Addr, SocketAddr};
use tokenwarden_sim::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, JobOutcome, SimClient, SimConfig, Simulator,
};

/// Applies the knobs given on the command line to `c`.
pub(crate) fn apply(k: &SimKnobs, c: &mut SimConfig) {
    if let Some(v) = k.token_ttl {
        c.token_ttl = v;
    }
    if let Some(v) = k.clock_skew {
        c.clock_skew = v;
    }
    if k.jwt_tokens {
        c.jwt_tokens = true;
    }
    if k.revoke_every.is_some() {
        c.revoke_every = k.revoke_every;
    }
    if let Some(v) = k.fail_first_token_requests {
        c.fail_first_token_requests = v;
    }
    if k.throttle_token_every.is_some() {
        c.throttle_token_every = k.throttle_token_every;
    }
    if let Some(v) = k.token_latency {
        c.token_latency = v;
    }
    if k.rate_limit.is_some() {
        c.api_rate_limit_per_minute = k.rate_limit;
    }
    if let Some(v) = k.rate_limit_window {
        c.rate_limit_window = v;
    }
    if let Some(v) = k.error_rate {
        c.error_rate = v;
    }
    if let Some(v) = k.drop_rate {
        c.drop_rate = v;
    }
    if let Some(v) = k.seed {
        c.seed = v;
    }
    if let Some(v) = k.latency {
        c.latency = v;
    }
    if let Some(v) = k.users {
        c.users = v;
    }
    if let Some(v) = k.contacts {
        c.contacts = v;
    }
    if let Some(v) = k.conversations {
        c.conversations = v;
    }
    if let Some(v) = k.job_duration {
        c.job_duration = v;
    }
    if let Some(o) = k.job_outcome {
        c.job_outcome = match o {
            JobOutcomeArg::Fulfilled => JobOutcome::Fulfilled,
            JobOutcomeArg::Failed => JobOutcome::Failed,
            JobOutcomeArg::Cancelled => JobOutcome::Cancelled,
            JobOutcomeArg::Expired => JobOutcome::Expired,
        };
    }
    if let Some(v) = k.max_page_size {
        c.max_page_size = v;
    }
    if k.basic_only {
        c.accept_form_credentials = false;
    }
    let clients: Vec<SimClient> = k
        .clients
        .iter()
        .filter_map(|s| s.split_once(':'))
        .map(|(id, secret)| SimClient::new(id, secret, id))
        .collect();
    if !clients.is_empty() {
        c.clients = clients;
    }
    if !k.forbidden_path.is_empty() {
        c.forbidden_paths = k.forbidden_path.clone();
    }
    if !k.scopes.is_empty() {
        c.scopes = k.scopes.clone();
    }
}

pub(crate) async fn run(a: SimArgs) -> Result<u8> {
    if let Some(bad) = a.knobs.clients.iter().find(|c| !c.contains(':')) {
        return Err(crate::ConfigError(format!("--sim-client {bad:?}: use ID:SECRET")).into());
    }
    let mut config = SimConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, a.port)),
        ..SimConfig::default()
    };
    apply(&a.knobs, &mut config);
    let sim = Simulator::start(config)
        .await
        .with_context(|| format!("starting the simulator on 127.0.0.1:{}", a.port))?;
    let base = sim.base_url();
    println!("tokenwarden simulator listening on {base}");
    println!("  token endpoint: {}", sim.token_url());
    if a.knobs.clients.is_empty() {
        println!("  client id / secret: {DEFAULT_CLIENT_ID} / {DEFAULT_CLIENT_SECRET}");
    }
    println!("  journal: {base}/sim/journal");
    println!();
    println!(
        "  export GENESYSCLOUD_OAUTHCLIENT_ID={DEFAULT_CLIENT_ID} GENESYSCLOUD_OAUTHCLIENT_SECRET={DEFAULT_CLIENT_SECRET}"
    );
    println!(
        "  tokenwarden --api-base {base} --token-url {} check",
        sim.token_url()
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(crate::exit::OK)
}
