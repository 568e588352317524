//! Shared setup for the library's tests against the simulator: a simulator, the grant and a token
//! manager for its default client, an API client with a fast retry budget, eight workers keeping
//! it busy, and a scripted API for answers the simulator does not give.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;
use tokenwarden::{
    ApiClient, ApiClientBuilder, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager,
    retry::Backoff,
};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

pub async fn sim(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

/// The client credentials grant of the simulator's default client, with `secret`.
pub fn grant(sim: &Simulator, secret: &str) -> ClientCredentials {
    ClientCredentials::new(
        TokenEndpoint::new(&sim.token_url()).expect("token URL"),
        DEFAULT_CLIENT_ID,
        ClientSecret::new(secret),
    )
}

/// A token manager for the simulator's default client.
pub fn tokens(sim: &Simulator) -> TokenManager {
    TokenManager::builder(grant(sim, DEFAULT_CLIENT_SECRET)).build()
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

/// Eight workers sending GETs of the simulator's users 0..100 through `client`, one after the
/// other, until `end`; panics on the first request that fails.
pub async fn eight_workers_until(client: &ApiClient, end: tokio::time::Instant) {
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut i = w;
                while tokio::time::Instant::now() < end {
                    let path = format!("/api/v2/users/{}", tokenwarden_sim::data::user_id(i % 100));
                    client.get(&path).send().await?.error_for_status()?;
                    i += 8;
                }
                Ok::<_, tokenwarden::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap().unwrap();
    }
}

#[allow(unused_imports)] // Not every test file uses it.
pub use tokenwarden_test_support::loopback::scripted_api;
