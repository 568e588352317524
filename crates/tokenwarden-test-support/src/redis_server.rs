//! A real `redis-server` for tests: started on a free loopback port in a temporary directory
//! (`--port N --dir D --save '' --appendonly no`), killed by its PID when dropped.
//!
//! Shared by the library's and the CLI's tests and benchmarks. Under CI (the `CI` variable is set, as
//! `.ci/run` does) a missing `redis-server` fails the test; elsewhere the test is skipped with a
//! loud message on stderr.

// A real server process: waiting for it to start is real time, not the test's clock.
#![allow(clippy::disallowed_methods)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, to be restarted) redis-server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

/// The redis-server binary, if there is one.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER").map(PathBuf::from) {
        return Some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

impl RedisServer {
    /// A fresh server, or `None` (after saying so loudly) when redis-server is not installed and
    /// this is not CI.
    ///
    /// # Panics
    /// Under CI without redis-server, or when the server does not start.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "redis-server is not installed, and CI must run the Redis tests: install Debian's redis-server package (.ci/run does)"
                );
            }
            eprintln!(
                "\n*** SKIPPED: redis-server is not installed (apt-get install redis-server); this Redis test did not run ***\n"
            );
            return None;
        };
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir for redis"),
            binary,
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, by its PID): nothing is saved, every key is lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty), and waits until it answers.
    ///
    /// # Panics
    /// When it does not answer within 5 s.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &self.dir.path().display().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not answer within 5 s",
            self.port
        );
    }

    /// Whether the server answers PING.
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one command (RESP) and returns the raw first reply, if the server answers.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
