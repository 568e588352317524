//! Clock skew learned from the first wave of 401s whatever their code says, and revocations at
//! random ages not mistaken for it, against the simulator over real HTTP (each run about 3 s).
//! The rule itself is proven on tokio's paused clock in `src/manager/skew.rs` and
//! `src/manager/tests.rs`; the full-size runs are `examples/clock_skew.rs` (docs/BENCHMARKS.md).

mod common;

use common::{eight_workers_until, grant};
use std::time::Duration;
use tokenwarden::{ApiClient, TokenManager};
use tokenwarden_sim::{DEFAULT_CLIENT_SECRET, Journal, SimConfig, Simulator};

/// Runs 8 workers through one `ApiClient` for `run`; returns the journal, the manager and how long
/// the run took.
async fn run_workers(cfg: SimConfig, run: Duration) -> (Journal, TokenManager, Duration) {
    let sim = Simulator::start(SimConfig {
        users: 100,
        latency: Duration::from_millis(2),
        ..cfg
    })
    .await
    .unwrap();
    let tokens = TokenManager::builder(grant(&sim, DEFAULT_CLIENT_SECRET)).build();
    let client = ApiClient::builder(&sim.base_url(), tokens.clone())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    eight_workers_until(&client, started + run).await;
    (sim.journal(), tokens, started.elapsed())
}

/// The target on a short run: a server that answers every 401 with `bad.credentials`
/// (Genesys does not promise `credentials.expired`), tokens advertised for 4 s and killed after
/// 1 s. Before, such 401s taught only when four tokens in a row died at the same age: four waves
/// (32 dead-token requests in 6,000). Now the first wave makes a provisional guess that the next
/// tokens confirm by not dying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_only_says_bad_credentials_costs_one_wave() {
    let (j, tokens, _) = run_workers(
        SimConfig {
            token_ttl: Duration::from_secs(4),
            clock_skew: Duration::from_secs(3),
            expired_token_code: "bad.credentials".into(),
            ..SimConfig::default()
        },
        Duration::from_millis(3200),
    )
    .await;
    let m = tokens.metrics();
    assert!(j.tokens_issued >= 3, "the run spans several tokens: {j:?}");
    assert!(
        j.api_expired_token <= 9,
        "{} requests sent with a dead token (one wave is 8): {m:?}",
        j.api_expired_token
    );
    assert_eq!(j.api_revoked_token, 0);
    assert!(m.clock_skew > Duration::from_millis(2500), "{m:?}");
    assert_eq!(m.rejected_refreshes, 1, "{m:?}");
}

/// No skew, but tokens revoked at random ages (`bad.credentials`): the first revocation is taken
/// for skew provisionally, the next one, at another age, undoes it, and no single revocation
/// guesses again. Token requests stay within one per revocation, plus one per refresh period
/// (three quarters of the 2-s lifetime), plus a small constant: no refresh storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_at_random_ages_cause_no_refresh_storm() {
    let lifetime = Duration::from_secs(2);
    let (j, tokens, elapsed) = run_workers(
        SimConfig {
            token_ttl: lifetime,
            // Most tokens are revoked before their refresh (at 1.5 s), at ages spread over 0-2 s.
            revoke_at_random_age: Some(Duration::from_secs(2)),
            seed: 11,
            ..SimConfig::default()
        },
        Duration::from_millis(3200),
    )
    .await;
    let m = tokens.metrics();
    let revoked = j.revoked_tokens();
    let periods = (elapsed.as_secs_f64() / lifetime.mul_f64(0.75).as_secs_f64()).ceil() as u64;
    const SMALL: u64 = 3;
    let bound = revoked.len() as u64 + periods + 1 + SMALL;
    assert!(
        revoked.len() >= 2,
        "the run sees revocations: {revoked:?} {j:?}"
    );
    eprintln!(
        "{} tokens issued, {} revocations, {periods} refresh periods, bound {bound}",
        j.tokens_issued,
        revoked.len()
    );
    assert!(
        j.tokens_issued <= bound,
        "{} tokens for {} revocations and {periods} refresh periods (bound {bound}): {m:?}",
        j.tokens_issued,
        revoked.len()
    );
    assert_eq!(j.api_expired_token, 0, "{j:?}");
    assert_eq!(m.clock_skew, Duration::ZERO, "the guess was undone: {m:?}");
}
