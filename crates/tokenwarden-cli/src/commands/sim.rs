//! `tokenwarden sim`: the embedded simulator, standalone.

use crate::args::{JobOutcomeArg, SignInArg, SimArgs, SimKnobs};
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use tokenwarden_sim::{
    AuthorizeMode, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, JobOutcome, SimClient, SimConfig,
    Simulator,
};

/// Applies the knobs given on the command line to `c`.
pub(crate) fn apply(k: &SimKnobs, c: &mut SimConfig) {
    if let Some(v) = k.token_ttl {
        c.token_ttl = v;
    }
    if let Some(v) = k.clock_skew {
        c.clock_skew = v;
    }
    if k.jwt_tokens {
        c.jwt_tokens = true;
    }
    if k.revoke_every.is_some() {
        c.revoke_every = k.revoke_every;
    }
    if let Some(v) = k.fail_first_token_requests {
        c.fail_first_token_requests = v;
    }
    if k.throttle_token_every.is_some() {
        c.throttle_token_every = k.throttle_token_every;
    }
    if let Some(v) = k.token_latency {
        c.token_latency = v;
    }
    if let Some((n, window)) = k.token_limit {
        c.token_creation_limit = Some(n);
        c.token_creation_window = window;
    }
    if k.rate_limit.is_some() {
        c.api_rate_limit_per_minute = k.rate_limit;
    }
    if let Some(v) = k.rate_limit_window {
        c.rate_limit_window = v;
    }
    if let Some(v) = k.error_rate {
        c.error_rate = v;
    }
    if let Some(v) = k.drop_rate {
        c.drop_rate = v;
    }
    if let Some(v) = k.seed {
        c.seed = v;
    }
    if let Some(v) = k.latency {
        c.latency = v;
    }
    if let Some(v) = k.latency_jitter {
        c.latency_jitter = v;
    }
    if let Some(v) = k.users {
        c.users = v;
    }
    if let Some(v) = k.contacts {
        c.contacts = v;
    }
    if let Some(v) = k.conversations {
        c.conversations = v;
    }
    if let Some(v) = k.job_duration {
        c.job_duration = v;
    }
    if let Some(o) = k.job_outcome {
        c.job_outcome = match o {
            JobOutcomeArg::Fulfilled => JobOutcome::Fulfilled,
            JobOutcomeArg::Failed => JobOutcome::Failed,
            JobOutcomeArg::Cancelled => JobOutcome::Cancelled,
            JobOutcomeArg::Expired => JobOutcome::Expired,
        };
    }
    if let Some(v) = k.max_page_size {
        c.max_page_size = v;
    }
    if k.basic_only {
        c.accept_form_credentials = false;
    }
    let mut clients: Vec<SimClient> = k
        .clients
        .iter()
        .map(|(id, secret)| SimClient::new(id, secret, id))
        .collect();
    if clients.is_empty() && !k.public_clients.is_empty() {
        clients = c.clients.clone();
    }
    clients.extend(k.public_clients.iter().map(|id| SimClient::public(id, id)));
    if !k.redirect_uris.is_empty() {
        clients = if clients.is_empty() {
            c.clients.clone()
        } else {
            clients
        }
        .into_iter()
        .map(|cl| cl.with_redirect_uris(k.redirect_uris.iter().cloned()))
        .collect();
    }
    if !clients.is_empty() {
        c.clients = clients;
    }
    if let Some(how) = k.sign_in {
        c.authorize_mode = match how {
            SignInArg::Page => AuthorizeMode::Page,
            SignInArg::Approve => AuthorizeMode::Approve,
            SignInArg::Deny => AuthorizeMode::Deny,
        };
    }
    if k.session_lifetime.is_some() {
        c.refresh_token_lifetime = k.session_lifetime;
    }
    if !k.forbidden_path.is_empty() {
        c.forbidden_paths = k.forbidden_path.clone();
    }
    if !k.scopes.is_empty() {
        c.scopes = k.scopes.clone();
    }
}

/// Serves until stopped with Ctrl-C or SIGTERM: the way to end a server, so a note and exit 0.
pub(crate) async fn run(a: SimArgs) -> Result<u8> {
    // Before the banner: a Ctrl-C from the moment it is printed is a clean stop.
    let mut stop = crate::interrupt::subscribe();
    let mut config = SimConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, a.port)),
        ..SimConfig::default()
    };
    apply(&a.knobs, &mut config);
    let sim = Simulator::start(config)
        .await
        .with_context(|| format!("starting the simulator on 127.0.0.1:{}", a.port))?;
    {
        let mut out = std::io::stdout().lock();
        out.write_all(banner(&sim.base_url(), &sim.token_url(), &a.knobs.clients).as_bytes())?;
        out.flush()?;
    }
    crate::ui::note("Ctrl-C stops it.");
    // An error: the sender is gone, which it never is (it lives in a static).
    let _ = stop.wait_for(|s| *s).await;
    drop(sim);
    crate::ui::note("simulator stopped");
    Ok(crate::exit::OK)
}

/// What to paste into another shell: the credentials this simulator accepts (the first
/// `--sim-client`, else the default client) and where it listens.
fn banner(base: &str, token_url: &str, clients: &[(String, String)]) -> String {
    let (id, secret) = clients
        .first()
        .map_or((DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), |(i, s)| {
            (i.as_str(), s.as_str())
        });
    format!(
        "tokenwarden simulator listening on {base}
  token endpoint: {token_url}
  client id / secret: {id} / {secret}
  journal: {base}/sim/journal

  export TOKENWARDEN_API_BASE={} TOKENWARDEN_TOKEN_URL={}
  export GENESYSCLOUD_OAUTHCLIENT_ID={} GENESYSCLOUD_OAUTHCLIENT_SECRET={}
  tokenwarden check
",
        shell_word(base),
        shell_word(token_url),
        shell_word(id),
        shell_word(secret)
    )
}

/// `s` as one word for a POSIX shell: bare when safe, else single-quoted.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/@+=,%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_the_banner_exports_the_credentials_this_simulator_accepts() {
        let b = banner(
            "http://h:1",
            "http://h:1/oauth/token",
            &[("me".into(), "pw".into())],
        );
        assert!(
            b.contains("export GENESYSCLOUD_OAUTHCLIENT_ID=me GENESYSCLOUD_OAUTHCLIENT_SECRET=pw"),
            "{b}"
        );
        assert!(!b.contains(DEFAULT_CLIENT_SECRET), "{b}");
        let b = banner("http://h:1", "http://h:1/oauth/token", &[]);
        assert!(b.contains(&format!(
            "GENESYSCLOUD_OAUTHCLIENT_SECRET={DEFAULT_CLIENT_SECRET}"
        )));
        assert!(b.starts_with("tokenwarden simulator listening on http://h:1\n"));
    }

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(shell_word("tw-client"), "tw-client");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(x)"), "'$(x)'");
    }
}
