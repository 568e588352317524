//! A bare TCP server that records what reaches it: stands in for another origin (answering
//! `200 {}`) or for a proxy (closing every connection), so a test can show what a client sent to
//! a place the API's token must never go.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

/// How a [`Recorder`] answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `200` with the JSON body `{}`, then closes.
    Ok,
    /// Closes the connection without a word (a proxy that refuses everything).
    Close,
}

/// A bare server on `127.0.0.1` that counts connections and keeps the head (request line and
/// headers) of every request: for a proxy, `CONNECT host:port` for https targets and the whole
/// plain request for http ones. Stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tokenwarden_sim::recorder::{Recorder, Reply};
/// let proxy = Recorder::start(Reply::Close).await;
/// // ... point HTTPS_PROXY at proxy.url() and run something against loopback ...
/// assert_eq!(proxy.connections(), 0);
/// # }
/// ```
#[derive(Debug)]
pub struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicU32>,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The longest request head kept (the rest is not read).
const MAX_HEAD: usize = 64 * 1024;

impl Recorder {
    /// Starts listening on an ephemeral port of `127.0.0.1`.
    ///
    /// # Panics
    /// If no port can be bound (a test environment without loopback).
    pub async fn start(reply: Reply) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(AtomicU32::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (connections.clone(), heads.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    crate::sync::lock(&kept).push(String::from_utf8_lossy(&head).into_owned());
                    if reply == Reply::Ok {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                            .await;
                    }
                });
            }
        });
        Recorder {
            addr,
            connections,
            heads,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::SeqCst)
    }

    /// The head of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        crate::sync::lock(&self.heads).clone()
    }
}
