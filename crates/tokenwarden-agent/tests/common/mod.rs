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

/// A token manager for the simulator's default client.
pub fn tokens_for(sim: &Simulator) -> TokenManager {
    let endpoint = TokenEndpoint::new(&sim.token_url()).unwrap();
    let grant = ClientCredentials::new(
        endpoint,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    TokenManager::builder(grant).build()
}

pub fn client_for(sim: &Simulator) -> ApiClient {
    ApiClient::builder(&sim.base_url(), tokens_for(sim))
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
    read_answer(&mut s).await
}

/// One answer read from `s` (a keep-alive connection stays open): up to the end of a body of
/// known length, or what came until the connection closed or 2 s passed.
pub async fn read_answer(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(text) = complete(&out) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `s` receives until the agent closes it, if it does within `within` (`None`: still open
/// then). A reset counts as a close.
pub async fn closed_within(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
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

/// The real token of the agents in front of a [`raw_api`]: a static one, so that a test can look
/// for it in what callers get.
pub const REAL_TOKEN: &str = "real-token-of-the-scripted-api-0123456789";

/// An agent in front of the API at `base` (a [`raw_api`]) with the static [`REAL_TOKEN`], its
/// client and options as the test sets them.
pub async fn agent_for(
    base: &str,
    client: impl FnOnce(tokenwarden::ApiClientBuilder) -> tokenwarden::ApiClientBuilder,
    options: impl FnOnce(AgentOptions) -> AgentOptions,
) -> Agent {
    let tokens = TokenManager::builder(tokenwarden::StaticToken::new(
        tokenwarden::AccessToken::new(REAL_TOKEN),
    ))
    .build();
    agent_with(base, tokens, client, options).await
}

/// An agent in front of the API at `base` (a [`raw_api`]) whose tokens come from `tokens`.
pub async fn agent_with(
    base: &str,
    tokens: TokenManager,
    client: impl FnOnce(tokenwarden::ApiClientBuilder) -> tokenwarden::ApiClientBuilder,
    options: impl FnOnce(AgentOptions) -> AgentOptions,
) -> Agent {
    let client = client(ApiClient::builder(base, tokens)).build().unwrap();
    Agent::start(
        client,
        options(AgentOptions::new(
            "127.0.0.1:0".parse().unwrap(),
            AgentKey::from_text(KEY).unwrap(),
        )),
    )
    .await
    .unwrap()
}

/// What a [`raw_api`] writes for a request, in order.
pub enum Piece {
    /// Bytes, as they are.
    Bytes(Vec<u8>),
    /// A pause: a slow API.
    Pause(Duration),
    /// Runs the function (which may block, waiting for the test) before writing on.
    Until(Box<dyn FnOnce() + Send>),
}

/// `HTTP/1.1 status` with `headers` and `connection: close`, the blank line included.
pub fn head(status: u16, headers: &[(&str, &str)]) -> Piece {
    let mut h = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str("\r\n");
    Piece::Bytes(h.into_bytes())
}

/// A request a [`raw_api`] received: its request line and headers (names in lower case).
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback API of the test's own that writes, for each request (one per connection, each on a
/// thread of its own), the pieces `answer` gives, then closes the connection.
pub struct RawApi {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request received.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<RawRequest>>>,
    /// One message per request, once its head has been read (before it is answered).
    pub received: std::sync::mpsc::Receiver<()>,
}

pub fn raw_api(answer: impl Fn(&RawRequest) -> Vec<Piece> + Send + Sync + 'static) -> RawApi {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&log);
    let (tx, received) = std::sync::mpsc::channel();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (seen, tx, answer) = (
                std::sync::Arc::clone(&seen),
                tx.clone(),
                std::sync::Arc::clone(&answer),
            );
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.split_once(':') {
                        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let request = RawRequest {
                    line: line.trim().to_string(),
                    headers,
                };
                let length = request
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0usize);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap().push(request.clone());
                let _ = tx.send(());
                let conn = reader.get_mut();
                for piece in answer(&request) {
                    match piece {
                        Piece::Bytes(b) => {
                            if conn.write_all(&b).and_then(|()| conn.flush()).is_err() {
                                return;
                            }
                        }
                        Piece::Pause(d) => std::thread::sleep(d),
                        Piece::Until(wait) => wait(),
                    }
                }
            });
        }
    });
    RawApi {
        base,
        log,
        received,
    }
}
