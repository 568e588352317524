//! `tokenwarden agent` and `tokenwarden exec`: the token and an API proxy for every local
//! program (the `tokenwarden-agent` crate), with the connection settings every command takes.

use crate::args::{AgentArgs, AgentServeArgs, ExecArgs, GlobalArgs, SinkFormatArg};
use crate::exit::UsageError;
use crate::ui::{self, Kind};
use anyhow::Result;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use tokenwarden::ApiClient;
use tokenwarden_agent::{Agent, AgentError, AgentKey, AgentOptions, KEY_ENV, Sink, SinkFormat};

/// The variables `exec` sets for its command.
pub(crate) const URL_ENV: &str = "TOKENWARDEN_AGENT_URL";

/// The variables `exec` removes from its command's environment: every variable tokenwarden
/// itself reads that carries a credential of the organisation (the agent holds them; the command
/// gets its agent's URL and key, nothing else). Kept in step with `tokenwarden-config`'s settings
/// table (its `secret` rows and the token store) and the agent's key:
/// - `GENESYSCLOUD_OAUTHCLIENT_SECRET`: the client secret;
/// - `GENESYSCLOUD_ACCESS_TOKEN`: a token supplied directly;
/// - `TOKENWARDEN_TOKEN_STORE`: a `redis://user:password@...` URL holds the Redis password (and
///   the store holds the organisation's token);
/// - `TOKENWARDEN_AGENT_KEY`: a parent agent's key (replaced by the command's fresh key).
///
/// The refresh token of `login` lives in a file or the keyring, never in a variable. Variables
/// tokenwarden does not read (a `GITHUB_TOKEN` the command needs) are the user's business and
/// are passed on, as are the standard ones the command's own tools read too (`HTTPS_PROXY`,
/// `OTEL_EXPORTER_OTLP_*`).
pub(crate) const CREDENTIAL_ENV: &[&str] = &[
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    "GENESYSCLOUD_ACCESS_TOKEN",
    "TOKENWARDEN_TOKEN_STORE",
    KEY_ENV,
];

/// `tokenwarden agent`: serves until Ctrl-C, SIGTERM or SIGHUP, then removes its sinks.
/// SIGUSR1 and SIGUSR2 are ignored (their default action would kill it with its sinks left).
pub(crate) async fn agent(g: &GlobalArgs, a: AgentArgs, hint: &mut Option<String>) -> Result<u8> {
    raise_open_files_limit();
    check_listen(a.listen)?;
    check_sinks(&a.serve.sink, a.key_file.as_deref())?;
    // From here on SIGHUP, SIGUSR1 and SIGUSR2 no longer kill the process: a hangup during the
    // start stops the agent as soon as it has started.
    let mut other_signals = OtherSignals::listen()?;
    let key = match (
        &a.key_file,
        std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty()),
    ) {
        (Some(path), _) => {
            check_key_dir(path)?;
            let existed = std::fs::symlink_metadata(path).is_ok();
            let key = AgentKey::load_or_create(path).map_err(usage)?;
            if !existed {
                // Said at every verbosity but -q: a typo'd path makes a new key, and programs
                // reading the old file then get 401.
                ui::emit(
                    Kind::Note,
                    &format!(
                        "created a new agent key in {} (0600): programs using the agent need this key",
                        path.display()
                    ),
                    serde_json::json!({"event": "key_created", "path": path.display().to_string()}),
                    false,
                );
            }
            key
        }
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
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        name = other_signals.hangup() => ui::note(&format!("{name}: stopping the agent")),
    }
    agent.shutdown().await;
    ui::note("agent stopped");
    Ok(crate::exit::OK)
}

/// `tokenwarden exec -- CMD ARGS...`: an agent of CMD's own on a free port with a fresh key, for
/// as long as CMD runs; exits with CMD's status.
pub(crate) async fn exec(g: &GlobalArgs, a: ExecArgs, hint: &mut Option<String>) -> Result<u8> {
    raise_open_files_limit();
    check_sinks(&a.serve.sink, None)?;
    let key = AgentKey::generate();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let agent = start(g, &a.serve, listen, key.clone(), hint).await?;
    // Signals are CMD's to handle from here on: none makes tokenwarden exit while CMD runs
    // (said first, so that `main` never exits on one once CMD may have started), and they are
    // listened for before CMD starts and passed on to it.
    crate::interrupt::pass_on_to_command();
    let forwarder = Forwarder::listen()?;
    let status = run_child(&a.command, &agent, &key, forwarder).await;
    agent.shutdown().await;
    status
}

/// Raises the soft limit of open files to the hard one: each of the agent's connections is a file
/// descriptor, and the usual soft limit (1024) is close to its connection cap
/// ([`tokenwarden_agent::MAX_CONNECTIONS`]) plus the API's connections and files. (`exec`'s
/// command inherits the raised limit, as under systemd's `LimitNOFILE=`.) A failure is only
/// logged: the cap still holds.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        let raised = match (before.current, before.maximum) {
            (Some(soft), hard) if hard.is_none_or(|h| h > soft) => setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: hard,
                    maximum: hard,
                },
            )
            .map_err(|e| tracing::debug!(error = %e, "could not raise the open files limit"))
            .is_ok(),
            _ => false,
        };
        let now = getrlimit(Resource::Nofile);
        let shown = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        tracing::debug!(
            soft = %shown(now.current),
            hard = %shown(now.maximum),
            raised,
            "open files limit"
        );
    }
}

/// Refuses a `--sink` that is the agent's key file (the key would be overwritten with the token,
/// then deleted when the agent stops) or that names the same file as another `--sink`, before
/// anything is created or asked.
fn check_sinks(sinks: &[PathBuf], key_file: Option<&Path>) -> Result<()> {
    for (i, sink) in sinks.iter().enumerate() {
        if let Some(key) = key_file.filter(|k| same_file(sink, k)) {
            return Err(UsageError(format!(
                "--sink {}: is the agent's key file ({}): the key would be overwritten with the token\nhint: give the sink a file of its own",
                sink.display(),
                key.display()
            ))
            .into());
        }
        if let Some(earlier) = sinks[..i].iter().find(|e| same_file(sink, e)) {
            return Err(UsageError(format!(
                "--sink {}: the same file as --sink {}: give each sink once",
                sink.display(),
                earlier.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Whether two paths name one file: the same path once made canonical (links followed, `.` and
/// `..` resolved; a file not there yet by its directory's canonical path), or, both existing,
/// the same device and inode (a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    if canonical(a) == canonical(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
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

/// Refuses a key file whose directory does not exist, saying so (rather than the error of the
/// temporary file the key would have been written to).
fn check_key_dir(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(UsageError(format!(
        "--key-file {}: its directory {} does not exist: create it (mkdir -p, mode 0700) or give a path in an existing directory",
        path.display(),
        dir.display()
    ))
    .into())
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

/// The signals `agent` handles besides Ctrl-C and SIGTERM (which `main` and [`crate::interrupt`]
/// handle): SIGHUP stops it the same clean way; SIGUSR1 and SIGUSR2 are ignored. Without a
/// handler, each of them would end the process at once, its sinks left behind.
struct OtherSignals {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    user1: tokio::signal::unix::Signal,
    #[cfg(unix)]
    user2: tokio::signal::unix::Signal,
}

impl OtherSignals {
    /// Handles the signals from now on (not from the first poll).
    fn listen() -> Result<OtherSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(OtherSignals {
                hangup: signal(SignalKind::hangup())?,
                user1: signal(SignalKind::user_defined1())?,
                user2: signal(SignalKind::user_defined2())?,
            })
        }
        #[cfg(not(unix))]
        Ok(OtherSignals {})
    }

    /// Resolves at the first SIGHUP, with its name; notes each SIGUSR1 or SIGUSR2 meanwhile.
    async fn hangup(&mut self) -> &'static str {
        #[cfg(unix)]
        loop {
            let ignored = tokio::select! {
                _ = self.hangup.recv() => return "SIGHUP",
                _ = self.user1.recv() => "SIGUSR1",
                _ = self.user2.recv() => "SIGUSR2",
            };
            ui::note(&format!(
                "{ignored} ignored: the agent stops on Ctrl-C, SIGTERM or SIGHUP"
            ));
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

/// Runs CMD with the agent's variables, passing signals on, and returns its exit status (128 + N
/// for a command killed by signal N, 127 for one that cannot be found, 126 for one that cannot be
/// run).
async fn run_child(
    command: &[std::ffi::OsString],
    agent: &Agent,
    key: &AgentKey,
    forwarder: Forwarder,
) -> Result<u8> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| UsageError("give the command to run after --".into()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for name in CREDENTIAL_ENV {
        cmd.env_remove(name);
    }
    // Set after the removals: the command's own key replaces a parent agent's.
    cmd.env(URL_ENV, agent.url()).env(KEY_ENV, key.expose());
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
    // If tokenwarden is killed, the watchdog sends CMD SIGTERM.
    #[cfg(target_os = "linux")]
    let watchdog = child.id().and_then(crate::watchdog::Watchdog::start);
    let status = forwarder.wait(&mut child).await?;
    #[cfg(target_os = "linux")]
    if let Some(w) = watchdog {
        w.release().await;
    }
    Ok(exit_code(status))
}

/// The signals `exec` passes on to its command, listened for from before it starts (so that none
/// is missed or takes its default action in between).
#[cfg(unix)]
struct Forwarder {
    received: tokio::sync::mpsc::UnboundedReceiver<rustix::process::Signal>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

#[cfg(unix)]
impl Forwarder {
    fn listen() -> std::io::Result<Forwarder> {
        use rustix::process::Signal;
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            (SignalKind::interrupt(), Signal::INT),
            (SignalKind::terminate(), Signal::TERM),
            (SignalKind::hangup(), Signal::HUP),
            (SignalKind::quit(), Signal::QUIT),
            (SignalKind::user_defined1(), Signal::USR1),
            (SignalKind::user_defined2(), Signal::USR2),
        ];
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
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
        Ok(Forwarder {
            received,
            listeners,
        })
    }

    /// Waits for the command, passing signals on to it; whatever comes, only its end ends this.
    async fn wait(
        mut self,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<std::process::ExitStatus> {
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(sig) = self.received.recv() => {
                    let Some(pid) = pid else { continue };
                    if passed_on(sig, in_terminal_foreground) {
                        tracing::debug!(signal = ?sig, "passing the signal on to the command");
                        let _ = rustix::process::kill_process(pid, sig);
                    } else {
                        tracing::debug!(signal = ?sig, "not passed on: typed in the terminal, which sent it to the command too");
                    }
                }
            }
        };
        for l in self.listeners {
            l.abort();
        }
        status
    }
}

/// Whether a signal tokenwarden received is passed on to its command. The command is in
/// tokenwarden's process group, so a Ctrl-C (SIGINT) or Ctrl-\ (SIGQUIT) typed in the terminal
/// whose foreground group that is has reached it already: passed on, it would get it twice. Every
/// other signal, and SIGINT/SIGQUIT when tokenwarden is not the terminal's foreground (then they
/// came from `kill`), was sent to tokenwarden alone and is passed on. (A `kill -INT` to
/// tokenwarden while it is the terminal's foreground is not: it cannot be told from a Ctrl-C.)
#[cfg(unix)]
fn passed_on(sig: rustix::process::Signal, in_terminal_foreground: impl FnOnce() -> bool) -> bool {
    use rustix::process::Signal;
    if sig == Signal::INT || sig == Signal::QUIT {
        return !in_terminal_foreground();
    }
    true
}

/// Whether tokenwarden's process group is the foreground group of its controlling terminal
/// (`/dev/tty`, whatever its standard streams are redirected to). No terminal: no.
#[cfg(unix)]
fn in_terminal_foreground() -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|fg| fg == rustix::process::getpgrp())
}

#[cfg(not(unix))]
struct Forwarder;

#[cfg(not(unix))]
impl Forwarder {
    fn listen() -> std::io::Result<Forwarder> {
        Ok(Forwarder)
    }

    async fn wait(
        self,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<std::process::ExitStatus> {
        child.wait().await
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_in_a_missing_directory_names_the_directory_not_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodir").join("agent.key");
        let e = check_key_dir(&path).unwrap_err().to_string();
        assert!(
            e.contains("its directory") && e.contains("nodir") && e.contains("does not exist"),
            "{e}"
        );
        assert!(!e.contains(".agent.key."), "no temporary file named: {e}");
        check_key_dir(&dir.path().join("agent.key")).expect("an existing directory");
        check_key_dir(std::path::Path::new("agent.key")).expect("the current directory");
    }

    #[test]
    fn regression_a_sink_that_is_the_key_file_or_another_sink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        let key = d.join("agent.key");
        let refused = |sinks: &[PathBuf], key: Option<&Path>| {
            let e = check_sinks(sinks, key).expect_err("refused");
            assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
            e.to_string()
        };
        // The key file not created yet, then existing: the same name however it is spelt.
        for _ in 0..2 {
            for spelling in [
                key.clone(),
                d.join("./agent.key"),
                d.join("sub/../agent.key"),
            ] {
                let e = refused(&[d.join("token"), spelling], Some(key.as_path()));
                assert!(e.contains("is the agent's key file"), "{e}");
            }
            std::fs::write(&key, "k").unwrap();
        }
        // A hard link to the key file, a symlink to it.
        std::fs::hard_link(&key, d.join("hard")).unwrap();
        std::os::unix::fs::symlink(&key, d.join("soft")).unwrap();
        for other in ["hard", "soft"] {
            let e = refused(&[d.join(other)], Some(key.as_path()));
            assert!(e.contains("is the agent's key file"), "{e}");
        }
        // One sink twice, with or without the file there.
        for twice in [d.join("sub/../token"), d.join("./hard")] {
            let first = d.join(twice.file_name().unwrap());
            let e = refused(&[first, d.join("other"), twice], None);
            assert!(e.contains("the same file as --sink"), "{e}");
        }
        // Distinct files are fine, with a key file or without one.
        let sinks = [d.join("token"), d.join("sub/token"), d.join("token.json")];
        check_sinks(&sinks, Some(key.as_path())).unwrap();
        check_sinks(&sinks, None).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn regression_int_and_quit_typed_in_the_terminal_are_not_passed_on_twice() {
        use rustix::process::Signal;
        for sig in [Signal::INT, Signal::QUIT] {
            // The terminal sent it to the whole foreground group, the command included.
            assert!(!passed_on(sig, || true));
            // Not the terminal's foreground: it came from `kill`, to tokenwarden alone.
            assert!(passed_on(sig, || false));
        }
        for sig in [Signal::TERM, Signal::HUP, Signal::USR1, Signal::USR2] {
            assert!(passed_on(sig, || true));
            assert!(passed_on(sig, || false));
        }
    }
}
