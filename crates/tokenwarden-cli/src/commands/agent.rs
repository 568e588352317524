//! `tokenwarden agent` and `tokenwarden exec`: the token and an API proxy for every local
//! program (the `tokenwarden-agent` crate), with the connection settings every command takes.

use crate::args::{AgentArgs, AgentServeArgs, ExecArgs, GlobalArgs, SinkFormatArg};
use crate::exit::UsageError;
use crate::ui::{self, Kind};
use anyhow::Result;
use std::net::{Ipv4Addr, SocketAddr};
use tokenwarden::ApiClient;
use tokenwarden_agent::{Agent, AgentError, AgentKey, AgentOptions, KEY_ENV, Sink, SinkFormat};

/// The variables `exec` sets for its command.
pub(crate) const URL_ENV: &str = "TOKENWARDEN_AGENT_URL";

/// The client secret's variable: `exec` does not pass it on (the agent holds the credentials; the
/// command gets the key).
const SECRET_ENV: &str = "GENESYSCLOUD_OAUTHCLIENT_SECRET";

/// `tokenwarden agent`: serves until Ctrl-C or SIGTERM, then removes its sinks.
pub(crate) async fn agent(g: &GlobalArgs, a: AgentArgs, hint: &mut Option<String>) -> Result<u8> {
    check_listen(a.listen)?;
    let key = match (
        &a.key_file,
        std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty()),
    ) {
        (Some(path), _) => AgentKey::load_or_create(path).map_err(usage)?,
        (None, Some(text)) => {
            AgentKey::from_text(&text).map_err(|e| UsageError(format!("{KEY_ENV}: {e}")))?
        }
        (None, None) => {
            return Err(UsageError(format!(
                "the agent needs a key: give --key-file FILE (created 0600 if missing) or set {KEY_ENV}"
            ))
            .into());
        }
    };
    let agent = start(g, &a.serve, a.listen, key, hint).await?;
    // From here on, Ctrl-C and SIGTERM stop the agent cleanly (its sinks removed).
    let mut stop = crate::interrupt::subscribe();
    announce(&agent);
    let _ = stop.wait_for(|s| *s).await;
    agent.shutdown().await;
    ui::note("agent stopped");
    Ok(crate::exit::OK)
}

/// `tokenwarden exec -- CMD ARGS...`: an agent of CMD's own on a free port with a fresh key, for
/// as long as CMD runs; exits with CMD's status.
pub(crate) async fn exec(g: &GlobalArgs, a: ExecArgs, hint: &mut Option<String>) -> Result<u8> {
    let key = AgentKey::generate();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let agent = start(g, &a.serve, listen, key.clone(), hint).await?;
    // Signals are CMD's to handle from here on: they are passed on to it.
    let _stop = crate::interrupt::subscribe();
    let status = run_child(&a.command, &agent, &key).await;
    agent.shutdown().await;
    status
}

async fn start(
    g: &GlobalArgs,
    serve: &AgentServeArgs,
    listen: SocketAddr,
    key: AgentKey,
    hint: &mut Option<String>,
) -> Result<Agent> {
    let format = match serve.sink_format {
        SinkFormatArg::Raw => SinkFormat::Raw,
        SinkFormatArg::Json => SinkFormat::Json,
    };
    let mut options = AgentOptions::new(listen, key);
    for path in &serve.sink {
        let sink = Sink {
            path: path.clone(),
            format,
        };
        sink.check().map_err(usage)?;
        options = options.sink(sink);
    }
    let client: ApiClient = super::connect(g, serve.rate, &serve.pool, None, hint).await?;
    super::observe::otel::start(&serve.otlp, &client)?;
    // The first token before listening: wrong credentials stop the agent at once (exit 3), and a
    // program started next finds a token ready.
    client.tokens().bearer().await?;
    Agent::start(client, options).await.map_err(|e| match e {
        AgentError::Library(e) => anyhow::Error::new(e),
        other => usage(other),
    })
}

/// Refuses a listen address that is not loopback, before any credentials are read.
fn check_listen(listen: SocketAddr) -> Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    Err(UsageError(format!(
        "--listen {listen}: the agent listens on loopback only (127.0.0.1 or [::1]): it speaks plain HTTP, so the key and the API's answers would cross the network in clear text\nhint: in Kubernetes, run it as a sidecar: containers of a pod share 127.0.0.1"
    ))
    .into())
}

fn usage(e: AgentError) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// Says where the agent listens: on stderr, and as a JSON event with `--log-format json`.
fn announce(agent: &Agent) {
    ui::emit(
        Kind::Note,
        &format!("agent listening on {}", agent.url()),
        serde_json::json!({
            "event": "listening",
            "address": agent.local_addr().to_string(),
            "url": agent.url(),
        }),
        true,
    );
}

/// Runs CMD with the agent's variables, passing signals on, and returns its exit status (128 + N
/// for a command killed by signal N, 127 for one that cannot be found, 126 for one that cannot be
/// run).
async fn run_child(command: &[std::ffi::OsString], agent: &Agent, key: &AgentKey) -> Result<u8> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| UsageError("give the command to run after --".into()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env(URL_ENV, agent.url())
        .env(tokenwarden_agent::KEY_ENV, key.expose())
        .env_remove(SECRET_ENV);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            ui::error(&format!(
                "cannot run {}: {e}",
                std::path::Path::new(program).display()
            ));
            return Ok(code);
        }
    };
    let status = wait_forwarding_signals(&mut child).await?;
    Ok(exit_code(status))
}

#[cfg(unix)]
async fn wait_forwarding_signals(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        (SignalKind::interrupt(), rustix::process::Signal::INT),
        (SignalKind::terminate(), rustix::process::Signal::TERM),
        (SignalKind::hangup(), rustix::process::Signal::HUP),
        (SignalKind::quit(), rustix::process::Signal::QUIT),
        (SignalKind::user_defined1(), rustix::process::Signal::USR1),
        (SignalKind::user_defined2(), rustix::process::Signal::USR2),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut listeners = Vec::new();
    for (kind, sig) in kinds {
        let mut stream = signal(kind)?;
        let tx = tx.clone();
        listeners.push(tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        }));
    }
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(sig) = rx.recv() => {
                if let Some(pid) = pid {
                    tracing::debug!(signal = ?sig, "passing the signal on to the command");
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        }
    };
    for l in listeners {
        l.abort();
    }
    status
}

#[cfg(not(unix))]
async fn wait_forwarding_signals(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    child.wait().await
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return code.clamp(0, 255) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return (128 + sig).clamp(0, 255) as u8;
        }
    }
    1
}
