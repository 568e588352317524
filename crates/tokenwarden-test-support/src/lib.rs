//! Helpers the tokenwarden crates' tests and benchmarks share, written once instead of copied
//! into each test file (a dev-dependency only; never published).
//!
//! - [`redis_server`]: a real `redis-server` on a free loopback port;
//! - [`prometheus`]: a real Prometheus server scraping a test's targets, and `promtool check
//!   metrics`;
//! - [`chromium`]: headless Chromium rendering a local page, every request it makes caught;
//! - [`tool`]: a program a test needs from the system (skipped loudly without it, failed under CI);
//! - [`mode`] and [`chmod`]: a file's permission bits, read and set;
//! - [`users`]: the ids of the simulator's first users;
//! - [`RefusedPort`]: a loopback port where every connection is refused, for as long as it lives;
//! - [`loopback`]: servers of a test's own (a scripted API, a fixed answer, a black hole) and a
//!   free port;
//! - [`otlp`]: an OTLP/HTTP receiver's server (an HTTP/1 server on loopback for a handler of
//!   the test's own) and a collector's answer;
//! - [`logs`]: what a test's code logs, captured;
//! - [`browser`]: an HTTP client that, like a test playing the browser needs, does not follow
//!   redirects.

pub mod chromium;
pub mod logs;
pub mod loopback;
pub mod otlp;
pub mod prometheus;
pub mod redis_server;
pub mod tool;

use std::collections::BTreeSet;
use std::path::Path;

/// The permission bits of `p` (`0o7777`: with setuid, setgid and sticky), without following a
/// symbolic link.
///
/// # Panics
/// When `p` cannot be read.
#[cfg(unix)]
#[track_caller]
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets the permission bits of `p`.
///
/// # Panics
/// When they cannot be set.
#[cfg(unix)]
#[track_caller]
pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// The ids of the simulator's users `0..n`.
pub fn users(n: usize) -> BTreeSet<String> {
    (0..n).map(tokenwarden_sim::data::user_id).collect()
}

/// An HTTP client that plays the browser in sign-in tests: it does not follow redirects, so a
/// test sees each one.
///
/// # Panics
/// When the client cannot be built.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// A loopback port where every connection is refused, held for as long as this lives: a socket
/// bound to it that never listens. (A listener bound and dropped frees its port, and the system
/// may hand it to the next test that binds port 0: the "dead" address then answers.)
pub struct RefusedPort {
    socket: tokio::net::TcpSocket,
}

impl RefusedPort {
    /// Binds a fresh loopback port without listening on it.
    ///
    /// # Panics
    /// When no socket can be bound.
    #[track_caller]
    pub fn new() -> RefusedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        RefusedPort { socket }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("a bound socket").port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}
