//! Shared setup for the client and pagination tests: a simulator, a token manager for its default
//! client, and an API client with a fast retry budget.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;
use tokenwarden::{
    ApiClient, ApiClientBuilder, Backoff, ClientCredentials, ClientSecret, TokenEndpoint,
    TokenManager,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

pub async fn sim(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

pub fn tokens(sim: &Simulator) -> TokenManager {
    let endpoint = TokenEndpoint::new(&sim.token_url()).expect("token URL");
    let grant = ClientCredentials::new(
        endpoint,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    TokenManager::builder(grant).build()
}

/// Retries quickly: the simulator answers in microseconds.
pub fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(2),
        multiplier: 2.0,
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        max_attempts: 8,
        max_elapsed: Duration::from_secs(30),
    }
}

pub fn builder(sim: &Simulator, tokens: TokenManager) -> ApiClientBuilder {
    ApiClient::builder(&sim.base_url(), tokens)
        .backoff(fast_backoff())
        .request_timeout(Duration::from_secs(10))
}

pub fn client(sim: &Simulator) -> ApiClient {
    builder(sim, tokens(sim)).build().expect("client")
}
