//! Sinks shared by mistake between agents (a new user's review, session 6): a second agent given
//! the sink of one still running took it over as a "sink an agent left", and at its stop
//! removed the first one's marker, so that the first agent's sink, after a `kill -9`, was no
//! longer recognised.

mod common;

use common::{KEY, Setup, client_for};
use std::path::Path;
use tokenwarden_agent::{Agent, AgentError, AgentKey, AgentOptions, Sink, SinkFormat};
use tokenwarden_sim::SimConfig;

fn sink(path: &Path) -> Sink {
    Sink {
        path: path.to_path_buf(),
        format: SinkFormat::Raw,
    }
}

#[tokio::test]
async fn a_sink_of_a_running_agent_is_refused_to_a_second_one_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = Setup::with(SimConfig::default(), |o| o.sink(sink(&path))).await;
    let marker = sink(&path).marker_path();
    let token = std::fs::read_to_string(&path).unwrap();
    let recorded = std::fs::read_to_string(&marker).unwrap();

    // The second agent, given the same sink while the first runs: refused before it listens.
    let options = AgentOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        AgentKey::from_text(KEY).unwrap(),
    )
    .sink(sink(&path));
    let e = Agent::start(client_for(&first.sim), options)
        .await
        .expect_err("a sink in use is refused");
    assert!(matches!(e, AgentError::Sink { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("in use by another agent running now"),
        "{text}"
    );
    assert!(!text.contains(&token), "no token in the message");

    // The first agent's sink and marker are as they were, and it still removes them at stop.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), recorded);
    first.agent.shutdown().await;
    assert!(!path.exists() && !marker.exists(), "removed at stop");
    assert!(!sink(&path).lock_path().exists(), "the lock file too");

    // Once the first agent is gone, the sink is free again.
    let again = Setup::with(SimConfig::default(), |o| o.sink(sink(&path))).await;
    assert!(path.exists());
    again.agent.shutdown().await;
}

#[test]
fn a_second_claim_is_refused_while_the_first_is_held_and_granted_once_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink(&dir.path().join("token"));
    let held = s.claim().expect("the first claim");
    let e = s
        .claim()
        .expect_err("a second claim while the first is held");
    assert!(e.to_string().contains("in use by another agent"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let mode = std::fs::metadata(s.lock_path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "the lock file is private");
    }
    // Closing the file (as the kernel does for a process killed with -9) frees the sink.
    drop(held);
    s.claim().expect("claimed again once the holder is gone");
}

#[tokio::test]
async fn a_port_in_use_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sim = tokenwarden_sim::Simulator::start(SimConfig::default())
        .await
        .unwrap();
    let options = AgentOptions::new(
        taken.local_addr().unwrap(),
        AgentKey::from_text(KEY).unwrap(),
    );
    let e = Agent::start(client_for(&sim), options)
        .await
        .expect_err("the port is taken");
    let text = e.to_string();
    assert!(
        text.contains("another agent, or another program, listens there")
            && text.contains("127.0.0.1:0"),
        "{text}"
    );
}
