//! Shared setup for the client and pagination tests: a simulator, a token manager for its default
//! client, and an API client with a fast retry budget.

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

/// A hostile or careless API on loopback, answering each request with `answer(request line,
/// Authorization header value)` → (status, JSON body). Every request line it received is kept in
/// the returned log. Returns its base URL.
pub fn scripted_api(
    answer: impl Fn(&str, &str) -> (u16, String) + Send + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn);
            let (mut line, mut auth, mut length) = (String::new(), String::new(), 0usize);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                match name.trim().to_ascii_lowercase().as_str() {
                    "authorization" => auth = value.trim().to_string(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let line = line.trim().to_string();
            seen.lock().unwrap().push(line.clone());
            let (status, text) = answer(&line, &auth);
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (base, log)
}
