//! `tokenwarden demo`: the embedded simulator with short tokens, revocations, a rate limit and
//! server errors, and a realistic batch through the library. The README's first command.

use crate::args::{DemoArgs, GlobalArgs};
use crate::exit::UsageError;
use crate::progress::Mode;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;
use tokenwarden::jobs::batch::{BatchOptions, Input, InputFormat};
use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Simulator};

pub(crate) async fn run(a: DemoArgs, g: &GlobalArgs) -> Result<u8> {
    if let Some(out) = &a.output {
        check_output_dir(out)?;
    }
    let users = a.requests.max(1) as usize;
    let sim = Simulator::start(SimConfig {
        token_ttl: a.token_ttl,
        revoke_every: Some(a.revoke_every).filter(|n| *n > 0),
        api_rate_limit_per_minute: Some(a.rate_limit_per_second).filter(|n| *n > 0),
        rate_limit_window: Duration::from_secs(1),
        error_rate: a.error_rate,
        users,
        ..SimConfig::default()
    })
    .await
    .context("starting the embedded simulator")?;

    let endpoint = TokenEndpoint::new(&sim.token_url())?;
    let grant = ClientCredentials::new(
        endpoint,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    let client = ApiClient::builder(&sim.base_url(), tokens).build()?;
    let observing =
        super::observe::start(&a.observe, "demo", &client, a.output.as_deref(), &[], false).await?;

    let dir = TempDir::create()?;
    let input = dir.0.join("demo-input.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        for i in 0..a.requests {
            let user = tokenwarden_sim::data::user_id(i as usize % users);
            writeln!(
                f,
                "{{\"id\":\"req-{i}\",\"method\":\"GET\",\"path\":\"/api/v2/users/{user}\"}}"
            )?;
        }
        f.flush()?;
    }
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| dir.0.join("demo-output.jsonl"));
    if !g.quiet {
        crate::ui::note(&format!(
            "tokenwarden demo: {} requests against the embedded simulator at {}",
            a.requests,
            sim.base_url()
        ));
        let mut adversity = vec![format!("{:?} tokens", a.token_ttl)];
        if a.revoke_every > 0 {
            adversity.push(format!("a revocation every {} calls", a.revoke_every));
        }
        if a.rate_limit_per_second > 0 {
            adversity.push(format!("{} requests/s per token", a.rate_limit_per_second));
        }
        if a.error_rate > 0.0 {
            adversity.push(format!("{:.1}% server errors", a.error_rate * 100.0));
        }
        crate::ui::note(&format!("  adversity: {}", adversity.join(", ")));
    }
    let options = BatchOptions {
        format: InputFormat::Jsonl,
        concurrency: a.concurrency.max(1) as usize,
        overwrite: true,
        ..BatchOptions::new(client.api_base())
    };
    let report = super::batch::execute(
        &client,
        &Input::Path(input),
        &output,
        &options,
        false,
        Mode::pick(a.no_progress, g.quiet),
        &Default::default(),
    )
    .await
    .map_err(super::batch::explain)?;
    let j = sim.journal();
    let t = client.token_metrics();
    let c = client.metrics();
    let revoked = revocations(&j);
    {
        // stdout is locked only while the summary is written (the lock is not Send).
        let mut out = std::io::stdout().lock();
        writeln!(out, "tokenwarden demo summary")?;
        writeln!(
            out,
            "  requests ok / failed:          {} / {}   ({:.1} s, {:.0} requests/s)",
            report.ok,
            report.failed,
            report.run.elapsed.as_secs_f64(),
            (report.ok + report.failed) as f64 / report.run.elapsed.as_secs_f64().max(0.001)
        )?;
        writeln!(
            out,
            "  tokens fetched:                {} ({} proactive, {} after a 401, {} on demand)",
            t.tokens_fetched, t.proactive_refreshes, t.rejected_refreshes, t.reactive_refreshes
        )?;
        writeln!(
            out,
            "  tokens revoked by the server:  {}{}   (requests refused with a revoked token: {})",
            revoked.tokens,
            if revoked.complete { "" } else { " or more" },
            j.api_revoked_token
        )?;
        writeln!(
            out,
            "  401s healed by a new token:    {}",
            c.unauthorized_healed
        )?;
        writeln!(
            out,
            "  429s waited / 5xx retried:     {} / {}",
            c.rate_limited_waits, c.server_errors_retried
        )?;
        writeln!(
            out,
            "  requests sent with an expired token: {}   (server journal; must be 0)",
            j.api_expired_token
        )?;
        if a.output.is_some() {
            writeln!(out, "  output: {}", output.display())?;
        }
        out.flush()?;
    }
    observing.finish(&super::batch::summary_json(&report, &client), false)?;
    sim.shutdown().await;
    if let Some(stop) = &report.stopped {
        crate::ui::error(&format!("stopped early: {stop}"));
    }
    // As a batch would exit; and a request sent with an expired token fails the demo's promise.
    Ok(match super::batch::outcome_code(&report) {
        crate::exit::OK if j.api_expired_token > 0 => crate::exit::FAILED,
        code => code,
    })
}

/// How many distinct tokens the server revoked, from its journal: one revocation answers 401 to
/// every request that carried that token, so counting 401s overstates it.
struct Revocations {
    tokens: usize,
    /// Whether the journal still holds every entry (it keeps the most recent ones).
    complete: bool,
}

fn revocations(j: &tokenwarden_sim::Journal) -> Revocations {
    Revocations {
        tokens: j.revoked_tokens().len(),
        complete: j.entries.len() as u64 == j.api_requests + j.token_requests,
    }
}

/// `--output` in a directory that does not exist is a usage error (exit 2), not created silently.
fn check_output_dir(out: &Path) -> Result<()> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(d) if !d.is_dir() => Err(UsageError(format!(
            "--output {}: directory {} does not exist",
            out.display(),
            d.display()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// The demo's scratch directory, removed when dropped (also when Ctrl-C drops the demo).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn create() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d =
            std::env::temp_dir().join(format!("tokenwarden-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
