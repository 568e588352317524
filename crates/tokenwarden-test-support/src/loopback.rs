//! Servers of a test's own on 127.0.0.1, for what the simulator does not do: an API that answers
//! as a script says, one that answers every request the same way, one that never answers, and a
//! free port for a listener the code under test opens itself.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// A free loopback port, for a listener the code under test binds itself (a sign-in's redirect
/// URI): bound, then released. The system may hand it to another test's server in between, so
/// use a [`RefusedPort`](crate::RefusedPort) for an address that must stay dead.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound listener").port()
}

/// A hostile or careless API on loopback, answering each request with `answer(request line,
/// Authorization header value)` → (status, JSON body), then closing the connection. Every request
/// line it received is kept in the returned log. Returns its base URL.
///
/// # Panics
/// When no port can be bound.
pub fn scripted_api(
    answer: impl Fn(&str, &str) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let base = format!(
        "http://{}",
        listener.local_addr().expect("a bound listener")
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
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
            seen.lock().expect("the request log").push(line.clone());
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

/// A local server that answers every request with `status` and `body` (JSON), then closes: a
/// careless server. Returns its base URL.
///
/// # Panics
/// When no port can be bound.
pub fn fixed_answer(status: u16, body: &'static str) -> String {
    scripted_api(move |_, _| (status, body.to_string())).0
}

/// A local port that accepts connections and never answers: a request sent there hangs. Each
/// accepted connection is announced on `accepted` (and kept open).
pub struct BlackHole {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// One message per connection accepted.
    pub accepted: std::sync::mpsc::Receiver<()>,
}

/// Starts a [`BlackHole`] on 127.0.0.1.
///
/// # Panics
/// When no port can be bound.
pub fn black_hole() -> BlackHole {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound listener");
    let (tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            held.push(conn);
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    BlackHole {
        base: format!("http://{addr}"),
        addr,
        accepted,
    }
}
