//! What the agent's tests share: a simulator, a client for it, an agent in front of it, and raw
//! HTTP for requests no well-behaved client would send.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;
use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_agent::{Agent, AgentKey, AgentOptions};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const KEY: &str = "test-agent-key-0123456789abcdef0123456789abcdef";

pub struct Setup {
    pub sim: Simulator,
    pub agent: Agent,
    pub key: AgentKey,
    pub http: reqwest::Client,
}

impl Setup {
    pub async fn new(config: SimConfig) -> Setup {
        Self::with(config, |o| o).await
    }

    pub async fn with(
        config: SimConfig,
        options: impl FnOnce(AgentOptions) -> AgentOptions,
    ) -> Setup {
        let sim = Simulator::start(config).await.unwrap();
        let client = client_for(&sim);
        let key = AgentKey::from_text(KEY).unwrap();
        let agent = Agent::start(
            client,
            options(AgentOptions::new(
                "127.0.0.1:0".parse().unwrap(),
                key.clone(),
            )),
        )
        .await
        .unwrap();
        // Redirects are seen, not followed.
        let http = tokenwarden_test_support::browser();
        Setup {
            sim,
            agent,
            key,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.agent.url())
    }

    /// `GET path` with the key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
    }

    /// Sends `raw` as it is to the agent and returns the answer's text (status line first).
    pub async fn raw(&self, raw: &[u8]) -> String {
        raw_exchange(self.agent.local_addr(), raw).await
    }
}

pub fn client_for(sim: &Simulator) -> ApiClient {
    let endpoint = TokenEndpoint::new(&sim.token_url()).unwrap();
    let grant = ClientCredentials::new(
        endpoint,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    ApiClient::builder(&sim.base_url(), tokens)
        .backoff(tokenwarden::retry::Backoff {
            initial: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..tokenwarden::retry::Backoff::default()
        })
        .build()
        .unwrap()
}

/// One request written as bytes on a fresh connection; the answer until the server closes or
/// 2 s pass.
pub async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                // One answer is enough: stop at the end of a body of known length.
                if let Some(text) = complete(&out) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    (body.len() >= len).then(|| text.into_owned())
}
