//! What an attacker's review of the agent found (issue #18), each answered by a test that fails
//! without its fix: sinks that clobber a user's file, encoded answers that escape the scrubber,
//! requests dropped at shutdown, Basic secrets with `+` or `%`, two agents creating the key file
//! at once, and answers too large or too slow for a whole-request timeout. Then (session 7) the
//! slow connections of a local user without the key (slowloris: trickled bodies and heads, idle
//! connections, a flood past the file descriptor limit), a key file in a directory others can
//! write to, a transfer coding the scrubber cannot read, and an API answering 401 to everything,
//! which bought a token per forwarded request.

mod common;

use common::{
    KEY, Piece, REAL_TOKEN, Setup, agent_for, agent_with, closed_within, head, raw_api,
    read_answer, tokens_for,
};
use std::path::Path;
use std::time::Duration;
use tokenwarden_agent::{AgentKey, AgentOptions, Limits, Sink, SinkFormat};
use tokenwarden_sim::SimConfig;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

fn sink(path: &Path) -> Sink {
    Sink {
        path: path.to_path_buf(),
        format: SinkFormat::Raw,
    }
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// M1: `--sink ~/.bashrc` overwrote the file with the token and deleted it on stop.

#[cfg(unix)]
#[tokio::test]
async fn a_sink_never_takes_a_file_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let bashrc = dir.path().join(".bashrc");
    std::fs::write(&bashrc, "export PATH=~/bin:$PATH\n").unwrap();
    let linked = dir.path().join("linked");
    for (mode, what) in [(0o644, "mode 0644"), (0o600, "no marker")] {
        chmod(&bashrc, mode);
        let e = sink(&bashrc).check().unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains(what), "{e}");
        assert!(e.contains("give a path where nothing is"), "{e}");
        // Nor does an agent started with it (whatever the CLI checked before).
        let sim = tokenwarden_sim::Simulator::start(SimConfig::default())
            .await
            .unwrap();
        let e = tokenwarden_agent::Agent::start(
            common::client_for(&sim),
            AgentOptions::new(
                "127.0.0.1:0".parse().unwrap(),
                AgentKey::from_text(KEY).unwrap(),
            )
            .sink(sink(&bashrc)),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(sim.journal().token_requests, 0, "refused before a token");
    }
    // A second link to it: not a sink either, even with a marker that names it.
    std::fs::hard_link(&bashrc, &linked).unwrap();
    let marker = sink(&bashrc).marker_path();
    let id = tokenwarden::fs::FileId::at(&bashrc).unwrap().unwrap();
    std::fs::write(
        &marker,
        format!(
            r#"{{"tokenwarden_sink":1,"format":"raw","files":[{{"dev":{},"ino":{}}}]}}"#,
            id.dev(),
            id.ino()
        ),
    )
    .unwrap();
    chmod(&marker, 0o600);
    let e = sink(&bashrc).check().unwrap_err().to_string();
    assert!(e.contains("2 hard links"), "{e}");
    std::fs::remove_file(&linked).unwrap();
    // A marker that names another file: the sink was replaced.
    std::fs::write(
        &marker,
        r#"{"tokenwarden_sink":1,"format":"raw","files":[{"dev":1,"ino":2}]}"#,
    )
    .unwrap();
    let e = sink(&bashrc).check().unwrap_err().to_string();
    assert!(e.contains("replaced"), "{e}");
    // A symlink and a directory.
    let link = dir.path().join("token-link");
    std::os::unix::fs::symlink(&bashrc, &link).unwrap();
    assert!(
        sink(&link)
            .check()
            .unwrap_err()
            .to_string()
            .contains("symlink")
    );
    assert!(
        sink(dir.path())
            .check()
            .unwrap_err()
            .to_string()
            .contains("not a regular file")
    );
    assert_eq!(
        std::fs::read_to_string(&bashrc).unwrap(),
        "export PATH=~/bin:$PATH\n"
    );
}

#[tokio::test]
async fn a_sink_holds_the_token_when_start_returns_and_a_stale_one_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let s = Setup::with(SimConfig::default(), |o| o.sink(sink(&path))).await;
    // Written before `start` returned: a program started next finds a token.
    let written = std::fs::read_to_string(&path).expect("the sink is written at start");
    let real: serde_json::Value = s.get("/token").await.json().await.unwrap();
    assert_eq!(written, real["access_token"].as_str().unwrap());
    let marker = sink(&path).marker_path();
    let recorded = std::fs::read_to_string(&marker).unwrap();
    assert!(!recorded.contains(&written), "no secret in the marker");

    // A kill -9 leaves the sink and its marker: kept aside (renamed: the same files) while
    // this agent stops, then put back.
    let aside = tempfile::tempdir_in(dir.path()).unwrap();
    std::fs::rename(&path, aside.path().join("token")).unwrap();
    std::fs::rename(&marker, aside.path().join("marker")).unwrap();
    s.agent.shutdown().await;
    std::fs::rename(aside.path().join("token"), &path).unwrap();
    std::fs::rename(aside.path().join("marker"), &marker).unwrap();

    // The restarted agent takes its own leftover over, rewrites it, and removes it at stop.
    sink(&path)
        .check()
        .expect("a stale sink of an agent is ours");
    let again = Setup::with(SimConfig::default(), |o| o.sink(sink(&path))).await;
    let real: serde_json::Value = again.get("/token").await.json().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        real["access_token"].as_str().unwrap()
    );
    again.agent.shutdown().await;
    assert!(!path.exists() && !marker.exists(), "removed at stop");
}

#[tokio::test]
async fn a_file_put_in_the_sinks_place_is_left_alone_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let s = Setup::with(SimConfig::default(), |o| o.sink(sink(&path))).await;
    assert!(path.exists());
    // Someone puts a file of their own at the path (a rename over it, as editors save).
    let theirs = dir.path().join("theirs");
    std::fs::write(&theirs, "mine").unwrap();
    std::fs::rename(&theirs, &path).unwrap();
    s.agent.shutdown().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    assert!(!sink(&path).marker_path().exists(), "the marker is removed");
}

// M4: the proxy removed Accept-Encoding, but an API may compress all the same, and the token in
// a compressed answer is not scrubbed.

#[tokio::test]
async fn an_encoded_answer_is_refused_and_identity_is_asked_for() {
    // An API that gzips whatever it is asked (the body: gzip's magic, then bytes no scrubber
    // can read, as the token would be).
    let api = raw_api(|r| {
        let coding = if r.line.contains("plain") {
            "identity"
        } else {
            "gzip"
        };
        let body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03compressed".to_vec();
        vec![
            head(
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", coding),
                    ("content-length", &body.len().to_string()),
                ],
            ),
            Piece::Bytes(body),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/v2/users/me", agent.url()))
        .bearer_auth(KEY)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("content-encoding").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "agent.api.encoded");
    assert_eq!(v["status"], 502);
    assert!(v["message"].as_str().unwrap().contains("gzip"), "{v}");
    let seen = api.log.lock().unwrap()[0].clone();
    assert_eq!(seen.header("accept-encoding"), Some("identity"), "{seen:?}");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {REAL_TOKEN}").as_str())
    );
    // `identity` is no encoding.
    let r = http
        .get(format!("{}/api/v2/plain", agent.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    agent.shutdown().await;
}

// M2: `shutdown` returned while connections were still answering; the process then exits and
// the answers are lost.

#[test]
fn a_request_in_flight_at_shutdown_gets_its_whole_answer() {
    let body = format!(r#"{{"done":true,"pad":"{}"}}"#, "x".repeat(1000));
    let answer = body.clone();
    let api = raw_api(move |_| {
        vec![
            // A slow API: the answer comes well after the stop.
            Piece::Pause(Duration::from_millis(400)),
            head(
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-length", &answer.len().to_string()),
                ],
            ),
            Piece::Bytes(answer.as_bytes().to_vec()),
        ]
    });
    let stop = stop_during_a_request(&api, "/api/v2/slow", |o| o);
    let got = String::from_utf8_lossy(&stop.answer).into_owned();
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(got.ends_with(&body), "the whole answer: {got:?}");
    assert!(
        stop.took < tokenwarden_agent::DRAIN_TIMEOUT,
        "{:?}",
        stop.took
    );
}

/// What a caller got when the agent stopped during its request.
struct Stopped {
    /// How long `shutdown` took.
    took: Duration,
    /// The caller's read to the end: `Ok` or the error's kind; what it read; how long it waited.
    read: Result<usize, std::io::ErrorKind>,
    answer: Vec<u8>,
    waited: Duration,
}

/// Starts an agent (with `options`) in front of `api` on a runtime of its own, sends `GET path`
/// with the key from a plain socket, stops the agent once the request has reached the API, then
/// drops the runtime right after `shutdown` returns, as a process that exits then.
fn stop_during_a_request(
    api: &common::RawApi,
    path: &'static str,
    options: impl FnOnce(AgentOptions) -> AgentOptions,
) -> Stopped {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let agent = runtime.block_on(agent_for(&api.base, |b| b, options));
    let addr = agent.local_addr();
    let caller = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        )
        .unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        (read.map_err(|e| e.kind()), out, started.elapsed())
    });
    api.received
        .recv_timeout(Duration::from_secs(3))
        .expect("the request reached the API");
    let started = std::time::Instant::now();
    runtime.block_on(agent.shutdown());
    let took = started.elapsed();
    drop(runtime);
    let (read, answer, waited) = caller.join().unwrap();
    Stopped {
        took,
        read,
        answer,
        waited,
    }
}

// The other half of the drain: a request whose answer never comes does not hold the stop for
// ever. Its connection is closed at the drain timeout, and the caller sees the connection end
// without an answer (never a made-up one).

#[test]
fn a_request_still_unanswered_at_the_drain_timeout_has_its_connection_closed() {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(Some(held));
    let api = raw_api(move |_| {
        let held = held.lock().unwrap().take();
        vec![
            // An API that never answers (until the test ends).
            Piece::Until(Box::new(move || {
                if let Some(h) = held {
                    let _ = h.recv();
                }
            })),
            head(200, &[("content-length", "2")]),
            Piece::Bytes(b"{}".to_vec()),
        ]
    });
    let drain = Duration::from_millis(300);
    let Stopped {
        took,
        read,
        answer: out,
        waited,
    } = stop_during_a_request(&api, "/api/v2/never", |o| {
        with_limits(
            o,
            Limits {
                drain_timeout: drain,
                ..Limits::default()
            },
        )
    });
    drop(release);
    assert!(took >= drain, "the stop waited for the request: {took:?}");
    assert!(took < Duration::from_secs(2), "then closed it: {took:?}");
    assert!(
        out.is_empty(),
        "no answer: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        read.is_ok() || read == Err(std::io::ErrorKind::ConnectionReset),
        "the connection ended (not the caller's 3-s timeout): {read:?}"
    );
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}

// L8: RFC 6749 §2.3.1 form-encodes the secret before Basic; requests and curl do not.

#[tokio::test]
async fn basic_auth_takes_the_key_raw_or_form_encoded() {
    let key_text = "k+ey/with%2Bplus+slash/and%25percent0123456789";
    let key = AgentKey::from_text(key_text).unwrap();
    let sim = tokenwarden_sim::Simulator::start(SimConfig::default())
        .await
        .unwrap();
    let agent = tokenwarden_agent::Agent::start(
        common::client_for(&sim),
        AgentOptions::new("127.0.0.1:0".parse().unwrap(), key.clone()),
    )
    .await
    .unwrap();
    let url = format!("{}/oauth/token", agent.url());
    let http = reqwest::Client::new();
    let token = |id: String, secret: String| {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        http.post(&url)
            .header("authorization", format!("Basic {basic}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let encoded: String = url::form_urlencoded::byte_serialize(key_text.as_bytes()).collect();
    assert_ne!(encoded, key_text);
    for (what, secret) in [("raw", key_text.to_string()), ("form-encoded", encoded)] {
        let r = token("my+client".into(), secret).await.unwrap();
        assert_eq!(r.status(), 200, "{what}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["access_token"], key.local_credential(), "{what}");
    }
    // What decoding a raw key gives (`+` as a space, `%2B` as `+`) is not the key.
    for wrong in [
        key_text.replace('+', " "),
        key_text.replace("%2B", "+"),
        key_text[1..].to_string(),
    ] {
        let r = token("c".into(), wrong.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
    assert_eq!(sim.journal().token_requests, 0);
    agent.shutdown().await;
}

// L9: two agents creating the key file at once: the loser failed, or read an empty file.

#[cfg(unix)]
#[test]
fn agents_creating_the_key_file_at_once_all_hold_the_same_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = dir.path().join(format!("agent-{round}.key"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    AgentKey::load_or_create(&path).map(|k| k.expose().to_string())
                })
            })
            .collect();
        let keys: Vec<String> = threads
            .into_iter()
            .map(|t| t.join().unwrap().expect("every agent gets a key"))
            .collect();
        assert!(
            keys.iter().all(|k| k == &keys[0]),
            "round {round}: {keys:?}"
        );
        assert_eq!(keys[0].len(), 64);
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            keys[0].as_str()
        );
    }
    // Nothing but the key files is left (no temporary file).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 20);
}

// L5: an answer was cut by the whole-request timeout while it was still coming, and nothing
// bounded its size.

#[tokio::test]
async fn a_long_answer_that_keeps_coming_outlives_the_request_timeout_and_a_stall_does_not() {
    let api = raw_api(|r| {
        let piece = vec![b'x'; 100];
        let mut pieces = vec![head(
            200,
            &[
                ("content-type", "application/octet-stream"),
                ("content-length", "1000"),
            ],
        )];
        if r.line.contains("stall") {
            pieces.push(Piece::Bytes(piece));
            pieces.push(Piece::Pause(Duration::from_millis(1200)));
        } else {
            // 1000 bytes over 1 s: each read well within the timeout, the whole well past it.
            for _ in 0..10 {
                pieces.push(Piece::Bytes(piece.clone()));
                pieces.push(Piece::Pause(Duration::from_millis(100)));
            }
        }
        pieces
    });
    let timeout = Duration::from_millis(400);
    let agent = agent_for(&api.base, |b| b.request_timeout(timeout), |o| o).await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let r = http
        .get(format!("{}/api/v2/download", agent.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);
    assert!(started.elapsed() > timeout * 2, "{:?}", started.elapsed());
    // A body that stops coming fails after the timeout, not never.
    let started = std::time::Instant::now();
    let r = http
        .get(format!("{}/api/v2/stall", agent.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "agent.api.unreachable", "{v}");
    assert!(
        started.elapsed() < Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );
    agent.shutdown().await;
}

fn with_limits(mut options: AgentOptions, limits: Limits) -> AgentOptions {
    options.limits = limits;
    options
}

/// An agent in front of the simulator with `limits`.
async fn setup_with(limits: Limits) -> Setup {
    Setup::with(SimConfig::default(), |o| with_limits(o, limits)).await
}

fn with_max_response(options: AgentOptions, max: u64) -> AgentOptions {
    with_limits(
        options,
        Limits {
            max_response: Some(max),
            ..Limits::default()
        },
    )
}

#[tokio::test]
async fn an_answer_over_max_response_is_refused_when_announced_and_cut_when_streamed() {
    const SMALL: u64 = 1000;
    let api = raw_api(|r| {
        let n: usize = r
            .line
            .split("n=")
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let announced = n.to_string();
        let mut headers = vec![("content-type", "application/octet-stream")];
        if r.line.contains("announced") {
            headers.push(("content-length", &announced));
        }
        // Without a length the answer ends when the connection closes.
        vec![head(200, &headers), Piece::Bytes(vec![b'x'; n])]
    });
    let agent = agent_for(&api.base, |b| b, |o| with_max_response(o, SMALL)).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{}{path}", agent.url()))
            .bearer_auth(KEY)
            .send()
    };
    // Within the limit: passed on whole.
    for kind in ["announced", "streamed"] {
        let r = get(format!("/api/v2/{kind}?n={SMALL}")).await.unwrap();
        assert_eq!(r.status(), 200, "{kind}");
        assert_eq!(r.bytes().await.unwrap().len() as u64, SMALL, "{kind}");
    }
    // Over it, announced or found out before anything was sent: refused.
    for kind in ["announced", "streamed"] {
        let r = get(format!("/api/v2/{kind}?n={}", SMALL + 1))
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{kind}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "agent.api.too.large", "{kind}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("--max-response-bytes")
        );
    }
    agent.shutdown().await;

    // Past the limit once the answer is streaming (beyond what is scrubbed whole): cut, never a
    // shorter answer that looks complete.
    let max = tokenwarden_agent::SCRUBBED_WHOLE as u64 + (256 << 10);
    let agent = agent_for(&api.base, |b| b, |o| with_max_response(o, max)).await;
    let r = http
        .get(format!(
            "{}/api/v2/streamed?n={}",
            agent.url(),
            max + (512 << 10)
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the head was sent before the size was known"
    );
    assert!(r.bytes().await.is_err(), "the answer is cut, not ended");
    // One that announces its size is refused before a byte.
    let r = http
        .get(format!("{}/api/v2/announced?n={}", agent.url(), max + 1))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_streamed_answer_is_refused_to_an_http_1_0_caller_whose_answer_end_is_the_close() {
    // Without chunked encoding an answer cut short (past the limit, or the API gone) ends like a
    // whole one; HTTP/1.0 has none, so what must stream is refused it.
    let n = tokenwarden_agent::SCRUBBED_WHOLE + 1000;
    let api = raw_api(move |_| {
        vec![
            head(200, &[("content-type", "application/octet-stream")]),
            Piece::Bytes(vec![b'x'; n]),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let addr = agent.local_addr();
    let request = |version: &str| {
        format!(
            "GET /api/v2/big {version}\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
        )
    };
    let old = common::raw_exchange(addr, request("HTTP/1.0").as_bytes()).await;
    assert!(
        old.starts_with("HTTP/1.0 505"),
        "{}",
        &old[..old.len().min(300)]
    );
    assert!(
        old.contains("agent.http.version"),
        "{}",
        &old[..old.len().min(300)]
    );
    // HTTP/1.1 gets it, chunked.
    let new = common::raw_exchange(addr, request("HTTP/1.1").as_bytes()).await;
    assert!(
        new.starts_with("HTTP/1.1 200"),
        "{}",
        &new[..new.len().min(300)]
    );
    assert!(
        new.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    agent.shutdown().await;
}

// Slowloris (Medium, session 7): without the key, a local user held connections and tasks for
// ever (a token request's body one byte a minute, heads never finished, idle keep-alive
// connections), and 1,100 of them under a 1024 file descriptor limit made `accept` fail for the
// callers with the key.

#[tokio::test]
async fn a_token_request_body_that_trickles_is_cut_at_the_deadline_and_its_connection_closed() {
    let deadline = Duration::from_millis(300);
    let s = setup_with(Limits {
        token_body_timeout: deadline,
        ..Limits::default()
    })
    .await;
    let addr = s.agent.local_addr();
    let (mut rx, mut tx) = TcpStream::connect(addr).await.unwrap().into_split();
    tx.write_all(
        format!(
            "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\ncontent-type: \
             application/x-www-form-urlencoded\r\ncontent-length: 200\r\n\r\ngrant_type="
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    // The attacker's pace: a byte every 50 ms, so that no single read ever waits long.
    let trickle = tokio::spawn(async move {
        for b in b"client_credentials&client_secret=not-the-key-at-all" {
            if tx.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Then nothing more, the connection left open.
        std::future::pending::<()>().await;
    });
    let got = closed_within(&mut rx, Duration::from_secs(3))
        .await
        .expect("the connection is closed at the deadline");
    let took = started.elapsed();
    trickle.abort();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains(r#""error":"invalid_request""#), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert!(
        took >= deadline && took < Duration::from_secs(2),
        "{took:?}"
    );
    // The agent still answers the next caller.
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_secret", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.agent.shutdown().await;
}

#[tokio::test]
async fn a_head_that_never_completes_and_an_idle_connection_are_closed_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let s = setup_with(Limits {
        head_timeout: deadline,
        ..Limits::default()
    })
    .await;
    let addr = s.agent.local_addr();
    let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for case in ["nothing sent", "half a head", "idle after an answer"] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        match case {
            "half a head" => c
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: ")
                .await
                .unwrap(),
            "idle after an answer" => {
                c.write_all(healthz.as_bytes()).await.unwrap();
                let answer = read_answer(&mut c).await;
                assert!(answer.starts_with("HTTP/1.1 "), "{case}: {answer}");
                assert!(!answer.contains("connection: close"), "{case}: {answer}");
            }
            _ => {}
        }
        let started = std::time::Instant::now();
        let got = closed_within(&mut c, Duration::from_secs(2)).await;
        let took = started.elapsed();
        assert!(got.is_some(), "{case}: still open after {took:?}");
        assert!(took >= deadline / 2, "{case}: closed after {took:?} only");
    }
    s.agent.shutdown().await;
}

#[tokio::test]
async fn at_the_connection_cap_slow_connections_without_the_key_make_room_for_callers_with_it() {
    const CAP: usize = 8;
    let idle = Duration::from_millis(1500);
    // On this (current) thread, the runtime's: the agent's events too.
    let (logs, _guard) = tokenwarden_test_support::logs::capture();
    let s = setup_with(Limits {
        max_connections: CAP,
        head_timeout: idle,
        ..Limits::default()
    })
    .await;
    let addr = s.agent.local_addr();
    // CAP connections without the key, each served once (so each is surely open) and then
    // sending a head that never ends.
    let mut slow = Vec::new();
    for _ in 0..CAP {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert!(read_answer(&mut c).await.starts_with("HTTP/1.1 "));
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: ")
            .await
            .unwrap();
        slow.push(c);
    }
    // A caller with the key gets in: the oldest of them is closed to make room.
    let r = s.get("/token").await;
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut slow[0], Duration::from_secs(1))
            .await
            .is_some()
    );
    assert!(started.elapsed() < idle, "evicted, not timed out");
    // More callers with the key (on connections of their own, kept open) take the others'
    // places, one each; the first caller's connection, idle in its pool, is kept.
    let keyed_request =
        format!("GET /token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\r\n");
    let mut keyed = Vec::new();
    for _ in 1..CAP {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(keyed_request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut c).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        keyed.push(c);
    }
    for (i, c) in slow.iter_mut().enumerate().skip(1) {
        assert!(
            closed_within(c, Duration::from_secs(1)).await.is_some(),
            "slow connection {i} evicted"
        );
    }
    // Every connection open has shown the key: a new one is told so and closed, at once.
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let got = closed_within(&mut refused, Duration::from_secs(1))
        .await
        .expect("closed at once");
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("agent.connections.full"), "{got}");
    // 9 connections past the cap, one warning.
    let text = logs.text();
    assert_eq!(
        text.matches("connections at the cap").count(),
        1,
        "once per burst: {text}"
    );
    // Once the callers' connections end (their idle deadline), the agent serves again.
    for c in &mut keyed {
        assert!(closed_within(c, Duration::from_secs(3)).await.is_some());
    }
    let answer = common::raw_exchange(
        addr,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(!answer.contains("agent.connections.full"), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    s.agent.shutdown().await;
}

#[tokio::test]
async fn a_forwarded_body_that_stops_arriving_is_cut_after_the_stall_timeout() {
    let api = raw_api(|_| {
        vec![
            head(200, &[("content-length", "2")]),
            Piece::Bytes(b"{}".to_vec()),
        ]
    });
    let stall = Duration::from_millis(300);
    let agent = agent_for(
        &api.base,
        |b| b,
        |o| {
            with_limits(
                o,
                Limits {
                    body_stall: Some(stall),
                    ..Limits::default()
                },
            )
        },
    )
    .await;
    let addr = agent.local_addr();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!(
            "POST /api/v2/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\
             content-length: 1000\r\n\r\n{{\"a\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let got = closed_within(&mut c, Duration::from_secs(3))
        .await
        .expect("answered and closed");
    let took = started.elapsed();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("agent.body.stalled"), "{got}");
    assert!(took >= stall && took < Duration::from_secs(2), "{took:?}");
    assert!(api.log.lock().unwrap().is_empty(), "nothing forwarded");
    agent.shutdown().await;

    // Past what is read whole, the body streams to the API (here the simulator's echo, which
    // reads it all): a stall there fails the forwarded request, after the same timeout.
    let s = setup_with(Limits {
        body_stall: Some(stall),
        ..Limits::default()
    })
    .await;
    let addr = s.agent.local_addr();
    let whole = tokenwarden_agent::REPLAYABLE_BODY;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!(
            "POST /api/v2/sim/echo HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\
             content-length: {}\r\n\r\n",
            whole + 100_000
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    c.write_all(&vec![b'x'; whole + 1000]).await.unwrap();
    let started = std::time::Instant::now();
    let got = closed_within(&mut c, Duration::from_secs(3))
        .await
        .expect("answered and closed");
    let took = started.elapsed();
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
    assert!(
        took >= stall && took < Duration::from_secs(2),
        "{took:?} {got}"
    );
    s.agent.shutdown().await;
}

// A key file in a directory others can write to: they could replace it, and so choose the key.

#[cfg(unix)]
#[test]
fn a_key_file_in_a_directory_others_can_write_to_is_refused_unless_it_is_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let inner = shared.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let path = shared.join("agent.key");
    // Created while the directory is private; then it is opened to others.
    let key = AgentKey::load_or_create(&path).unwrap();
    let canonical = std::fs::canonicalize(&shared).unwrap();
    for mode in [0o777, 0o770, 0o702] {
        chmod(&shared, mode);
        for (what, file) in [
            ("existing", path.clone()),
            ("to create", inner.join("agent.key")),
        ] {
            let e = AgentKey::load_or_create(&file).unwrap_err().to_string();
            assert!(e.starts_with("agent key: file "), "{what} {mode:o}: {e}");
            assert!(
                e.contains(&format!(
                    "{}, which other users can write to",
                    canonical.display()
                )),
                "{what} {mode:o}: {e}"
            );
            assert!(
                e.contains(&format!("chmod go-w {}", canonical.display())),
                "{e}"
            );
            assert!(!e.contains(key.expose()), "{e}");
        }
        assert!(!inner.join("agent.key").exists(), "nothing created");
    }
    // Sticky (as /tmp is): only an entry's owner may rename or remove it.
    chmod(&shared, 0o1777);
    assert_eq!(
        AgentKey::load_or_create(&path).unwrap().expose(),
        key.expose()
    );
    tokenwarden::fs::check_parent_dirs(&inner.join("agent.key")).unwrap();
    chmod(&shared, 0o700);
}

// An answer with `Transfer-Encoding: gzip, chunked`: the HTTP client undoes `chunked` only, the
// hop-by-hop strip removed the header, and the caller got gzip bytes the scrubber never read.

#[tokio::test]
async fn an_answer_with_a_transfer_coding_other_than_chunked_is_refused() {
    let api = raw_api(|r| {
        let coding = if r.line.contains("plain") {
            "chunked"
        } else {
            "gzip, chunked"
        };
        let data = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03compressed";
        let mut body = format!("{:x}\r\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        vec![
            head(
                200,
                &[
                    ("content-type", "application/json"),
                    ("transfer-encoding", coding),
                ],
            ),
            Piece::Bytes(body),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", agent.url()))
            .bearer_auth(KEY)
            .send()
    };
    let r = get("/api/v2/gzipped").await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "agent.api.encoded", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Transfer-Encoding gzip, chunked"),
        "{v}"
    );
    // `chunked` alone is undone by the client: passed on.
    let r = get("/api/v2/plain").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().ends_with(b"compressed"));
    agent.shutdown().await;
}

// An API that answers 401 to every request, whatever token it carries: each forwarded request
// healed its 401 with a token of its own (20 calls took the token endpoint from 2 requests to 11),
// a flood of the token endpoint that Genesys rate-limits for the whole client.

#[tokio::test]
async fn an_api_answering_401_forever_does_not_cost_a_token_per_forwarded_request() {
    let login = tokenwarden_sim::Simulator::start(SimConfig::default())
        .await
        .unwrap();
    let body = br#"{"message":"Invalid login credentials.","code":"bad.credentials","status":401}"#;
    let api = raw_api(move |_| {
        vec![
            head(
                401,
                &[
                    ("content-type", "application/json"),
                    ("content-length", &body.len().to_string()),
                ],
            ),
            Piece::Bytes(body.to_vec()),
        ]
    });
    let agent = agent_with(&api.base, tokens_for(&login), |b| b, |o| o).await;
    let http = reqwest::Client::new();
    let call = || {
        http.get(format!("{}/api/v2/users/me", agent.url()))
            .bearer_auth(KEY)
            .send()
    };
    for _ in 0..20 {
        let r = call().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "agent.token.refused", "{v}");
    }
    let j = login.journal();
    assert_eq!(j.token_requests, 2, "the first token and one heal: {j:?}");
    // 20 at once: the same.
    let answers = futures::future::join_all((0..20).map(|_| call())).await;
    for r in answers {
        assert_eq!(r.unwrap().status(), 401);
    }
    assert_eq!(login.journal().token_requests, 2);
    assert_eq!(
        api.log.lock().unwrap().len(),
        41,
        "each call sent once, the first twice"
    );
    agent.shutdown().await;
}
