//! Shared simulator state: configuration, token and refresh-token stores, jobs, journal, counters.
//!
//! Locks are `std::sync::Mutex`es held only for a few map operations and never across an
//! `.await`; the token store is sharded so concurrent requests rarely contend.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{JobOutcome, SimConfig};
use crate::data::{mix64, uuidish};
use crate::ids::{random_b64, random_uuid};
use crate::journal::{Journal, JournalState, Record};
use crate::sync::lock;
use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const SHARDS: usize = 16;

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[derive(Debug)]
struct TokenRecord {
    seq: u64,
    client_id: Arc<str>,
    client_name: Arc<str>,
    dies_at: Instant,
    /// When `revoke_at_random_age` revokes it (drawn when it is issued).
    revoked_at: Option<Instant>,
    revoked: bool,
    /// The sign-in the token was issued to, if any (Authorization Code and Refresh Token grants).
    session: Option<crate::session::Grantee>,
    rl_window: u64,
    rl_window_len: u128,
    rl_count: u32,
}

/// The authenticated caller of an API request (a request extension for handlers).
#[derive(Clone, Debug)]
pub(crate) struct AuthCtx {
    pub(crate) token: String,
    pub(crate) seq: u64,
    pub(crate) client_id: Arc<str>,
    pub(crate) client_name: Arc<str>,
    /// The signed-in user the token acts for (`None` for client credentials).
    pub(crate) session: Option<crate::session::Grantee>,
}

/// Per-token rate-limit accounting for one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateInfo {
    pub(crate) count: u32,
    pub(crate) allowed: u32,
    pub(crate) reset_secs: u64,
    pub(crate) limited: bool,
}

/// Result of checking a bearer token.
#[derive(Debug)]
pub(crate) enum TokenCheck {
    Unknown,
    Revoked(u64),
    Expired(u64),
    /// Valid until now, but `revoke_every` picked this call, or the token reached the age
    /// `revoke_at_random_age` drew for it: the token is now revoked.
    RevokedNow(u64),
    Valid(AuthCtx, Option<RateInfo>),
}

/// An issued access token.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) seq: u64,
    pub(crate) expires_in: u64,
}

/// A submitted async analytics job.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) submitted: Instant,
    pub(crate) submitted_wall: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) outcome: JobOutcome,
    /// Conversations that started before the job's interval and were still going at its start
    /// (ascending start), then `range`: those that started in it.
    pub(crate) early: Vec<usize>,
    /// Conversation indices that started in the job's interval.
    pub(crate) range: Range<usize>,
    pub(crate) desc: bool,
    pub(crate) conversations: usize,
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
    pub(crate) users: usize,
}

impl Job {
    /// Number of conversations in the job's results.
    pub(crate) fn len(&self) -> usize {
        self.early.len() + self.range.len()
    }

    /// The `k`-th conversation of the results, in the job's order.
    pub(crate) fn nth(&self, k: usize) -> usize {
        let k = if self.desc { self.len() - 1 - k } else { k };
        match self.early.get(k) {
            Some(i) => *i,
            None => self.range.start + (k - self.early.len()),
        }
    }

    /// The job's state now: `QUEUED`, `PENDING`, or its terminal state.
    pub(crate) fn state(&self, now: Instant) -> &'static str {
        let elapsed = now.saturating_duration_since(self.submitted);
        if elapsed >= self.duration {
            self.outcome.as_str()
        } else if elapsed < self.duration / 2 {
            "QUEUED"
        } else {
            "PENDING"
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ArcSwap<SimConfig>,
    config_write: Mutex<()>,
    pub(crate) start: Instant,
    tokens: Vec<Mutex<HashMap<String, TokenRecord>>>,
    next_token_seq: AtomicU64,
    /// Tokens with a sequence number below this are revoked (`revoke_all_tokens`).
    revoked_below: AtomicU64,
    pub(crate) sessions: crate::session::Sessions,
    pub(crate) jobs: Mutex<HashMap<String, Job>>,
    next_job: AtomicU64,
    journal: Mutex<JournalState>,
    token_in_flight: AtomicU64,
    token_max_in_flight: AtomicU64,
    pub(crate) fail_first_counter: AtomicU64,
    pub(crate) throttle_counter: AtomicU64,
    /// When each client's recent tokens were issued (`token_creation_limit`), oldest first.
    issued_at: Mutex<HashMap<Arc<str>, std::collections::VecDeque<Instant>>>,
    revoke_counter: AtomicU64,
    fate_counter: AtomicU64,
    injected_errors: AtomicU64,
    pub(crate) echo_counter: AtomicU64,
    /// The API's latency, kept by the OS's timer ([`crate::delay`]).
    pub(crate) delays: crate::delay::Delays,
}

/// Decrements the in-flight token request count when dropped.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the fault injector decided for an authenticated API request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Proceed,
    Drop,
    Error(u16),
}

/// A uniform number in [0, 1) for stream `stream`, draw `k`, under `seed`.
fn unit(seed: u64, stream: u64, k: u64) -> f64 {
    (mix64(mix64(seed ^ stream).wrapping_add(k)) >> 11) as f64 / (1u64 << 53) as f64
}

impl Inner {
    pub(crate) fn new(config: SimConfig) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            config_write: Mutex::new(()),
            start: Instant::now(),
            tokens: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_token_seq: AtomicU64::new(0),
            revoked_below: AtomicU64::new(0),
            sessions: crate::session::Sessions::default(),
            jobs: Mutex::new(HashMap::new()),
            next_job: AtomicU64::new(0),
            journal: Mutex::new(JournalState::default()),
            token_in_flight: AtomicU64::new(0),
            token_max_in_flight: AtomicU64::new(0),
            fail_first_counter: AtomicU64::new(0),
            throttle_counter: AtomicU64::new(0),
            issued_at: Mutex::new(HashMap::new()),
            revoke_counter: AtomicU64::new(0),
            fate_counter: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            echo_counter: AtomicU64::new(0),
            delays: crate::delay::Delays::default(),
        }
    }

    pub(crate) fn cfg(&self) -> Arc<SimConfig> {
        self.config.load_full()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut SimConfig)) {
        let _w = lock(&self.config_write);
        let old = self.config.load_full();
        let mut new = (*old).clone();
        f(&mut new);
        if new.fail_first_token_requests != old.fail_first_token_requests {
            self.fail_first_counter.store(0, Ordering::SeqCst);
        }
        if new.throttle_token_every != old.throttle_token_every {
            self.throttle_counter.store(0, Ordering::SeqCst);
        }
        if new.revoke_every != old.revoke_every {
            self.revoke_counter.store(0, Ordering::SeqCst);
        }
        if new.seed != old.seed
            || new.error_rate != old.error_rate
            || new.drop_rate != old.drop_rate
        {
            self.fate_counter.store(0, Ordering::SeqCst);
            self.injected_errors.store(0, Ordering::SeqCst);
        }
        self.config.store(Arc::new(new));
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<String, TokenRecord>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut h);
        &self.tokens[(h.finish() as usize) % SHARDS]
    }

    // ---- tokens -------------------------------------------------------------------------------

    /// Issue an access token for a client (id and display name).
    pub(crate) fn issue_access_token(
        &self,
        client_id: &str,
        client_name: &str,
        cfg: &SimConfig,
    ) -> Issued {
        self.issue_session_access_token(client_id, client_name, cfg, None)
    }

    /// Issue an access token for a client, acting for a signed-in user when `session` is given.
    pub(crate) fn issue_session_access_token(
        &self,
        client_id: &str,
        client_name: &str,
        cfg: &SimConfig,
        session: Option<crate::session::Grantee>,
    ) -> Issued {
        let seq = self.next_token_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        let expires_in = ceil_secs(cfg.token_ttl).max(1);
        let token = if cfg.jwt_tokens {
            let iat = crate::time::unix_ms(SystemTime::now()) / 1000;
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let claims = serde_json::json!({
                "exp": iat + expires_in,
                "iat": iat,
                "sub": session.map_or_else(|| client_id.to_owned(), |g| crate::data::user_id(g.user)),
                "jti": random_uuid(),
            });
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{header}.{payload}.{}", random_b64(32))
        } else {
            random_b64(30)
        };
        let record = TokenRecord {
            seq,
            client_id: client_id.into(),
            client_name: client_name.into(),
            dies_at: now + cfg.token_ttl.saturating_sub(cfg.clock_skew),
            revoked_at: cfg
                .revoke_at_random_age
                .map(|within| now + within.mul_f64(unit(cfg.seed, 0x5E40_CA7E, seq))),
            revoked: false,
            session,
            rl_window: u64::MAX,
            rl_window_len: 0,
            rl_count: 0,
        };
        lock(self.shard(&token)).insert(token.clone(), record);
        Issued {
            token,
            seq,
            expires_in,
        }
    }

    /// Whether `client_id` may be issued a token now under `token_creation_limit`; if so, the
    /// issue is counted (the caller issues it).
    pub(crate) fn take_token_creation(&self, client_id: &str, cfg: &SimConfig) -> bool {
        let Some(limit) = cfg.token_creation_limit else {
            return true;
        };
        let now = Instant::now();
        let mut map = lock(&self.issued_at);
        let recent = map.entry(client_id.into()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= cfg.token_creation_window)
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            return false;
        }
        recent.push_back(now);
        true
    }

    /// Check a bearer token for an API call; applies `revoke_at_random_age`, `revoke_every` and the
    /// rate limit.
    pub(crate) fn check_api_token(&self, token: &str, cfg: &SimConfig, now: Instant) -> TokenCheck {
        let mut shard = lock(self.shard(token));
        let Some(rec) = shard.get_mut(token) else {
            return TokenCheck::Unknown;
        };
        if rec.revoked || rec.seq < self.revoked_below.load(Ordering::SeqCst) {
            return TokenCheck::Revoked(rec.seq);
        }
        if now >= rec.dies_at {
            return TokenCheck::Expired(rec.seq);
        }
        if rec.revoked_at.is_some_and(|at| now >= at) {
            rec.revoked = true;
            return TokenCheck::RevokedNow(rec.seq);
        }
        if let Some(every) = cfg.revoke_every.filter(|n| *n > 0) {
            let n = self.revoke_counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of(every) {
                rec.revoked = true;
                return TokenCheck::RevokedNow(rec.seq);
            }
        }
        let rate = cfg.api_rate_limit_per_minute.map(|allowed| {
            let len = cfg.rate_limit_window.max(Duration::from_millis(1));
            let elapsed = now.saturating_duration_since(self.start);
            let window = (elapsed.as_nanos() / len.as_nanos()) as u64;
            if rec.rl_window != window || rec.rl_window_len != len.as_nanos() {
                rec.rl_window = window;
                rec.rl_window_len = len.as_nanos();
                rec.rl_count = 0;
            }
            rec.rl_count = rec.rl_count.saturating_add(1);
            let window_end = len.as_nanos() * (u128::from(window) + 1);
            let left = Duration::from_nanos((window_end - elapsed.as_nanos()) as u64);
            RateInfo {
                count: rec.rl_count,
                allowed,
                reset_secs: ceil_secs(left).max(1),
                limited: rec.rl_count > allowed,
            }
        });
        TokenCheck::Valid(
            AuthCtx {
                token: token.to_owned(),
                seq: rec.seq,
                client_id: rec.client_id.clone(),
                client_name: rec.client_name.clone(),
                session: rec.session,
            },
            rate,
        )
    }

    /// Revoke one access token (`DELETE /api/v2/tokens/me`).
    pub(crate) fn revoke_token(&self, token: &str) {
        if let Some(rec) = lock(self.shard(token)).get_mut(token) {
            rec.revoked = true;
        }
    }

    /// Revoke every access and refresh token issued so far.
    pub(crate) fn revoke_all(&self) {
        let next = self.next_token_seq.load(Ordering::SeqCst) + 1;
        self.revoked_below.fetch_max(next, Ordering::SeqCst);
        self.sessions.revoke_all();
    }

    /// Revoke a sign-in: its refresh tokens and every access token issued to it.
    pub(crate) fn revoke_session(&self, session: u64) {
        self.sessions.revoke(session);
        for shard in &self.tokens {
            for rec in lock(shard).values_mut() {
                if rec.session.is_some_and(|g| g.session == session) {
                    rec.revoked = true;
                }
            }
        }
    }

    /// Issue a refresh token for a client (stands in for an Authorization Code login): a new
    /// session of `cfg.sign_in_user`.
    pub(crate) fn issue_refresh_token(&self, client_id: &str) -> String {
        let cfg = self.cfg();
        let grantee = self.sessions.open(client_id, cfg.sign_in_user, &cfg);
        self.sessions.issue_refresh_token(grantee.session).0
    }

    /// Start tracking an in-flight token request.
    pub(crate) fn token_request_started(&self) -> InFlight<'_> {
        let now = self.token_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.token_max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&self.token_in_flight)
    }

    // ---- fault injection ----------------------------------------------------------------------

    /// Decide the fate of the next authenticated API request (`drop_rate`, `error_rate`).
    pub(crate) fn fate(&self, cfg: &SimConfig) -> Fate {
        if cfg.drop_rate <= 0.0 && cfg.error_rate <= 0.0 {
            return Fate::Proceed;
        }
        let k = self.fate_counter.fetch_add(1, Ordering::SeqCst);
        if cfg.drop_rate > 0.0 && unit(cfg.seed, 0xD50F, k) < cfg.drop_rate {
            return Fate::Drop;
        }
        if cfg.error_rate > 0.0 && unit(cfg.seed, 0xE550, k) < cfg.error_rate {
            let j = self.injected_errors.fetch_add(1, Ordering::SeqCst);
            return Fate::Error([500, 502, 503, 504][(j % 4) as usize]);
        }
        Fate::Proceed
    }

    // ---- jobs ---------------------------------------------------------------------------------

    pub(crate) fn new_job_id(&self) -> String {
        let n = self.next_job.fetch_add(1, Ordering::SeqCst) + 1;
        let a = mix64(n ^ 0x10B5_0000_0000);
        uuidish(a, mix64(a ^ rand::random::<u64>()))
    }

    // ---- journal ------------------------------------------------------------------------------

    pub(crate) fn record(&self, r: Record<'_>, capacity: usize) {
        lock(&self.journal).record(r, capacity);
    }

    pub(crate) fn journal(&self, with_entries: bool) -> Journal {
        let mut j = lock(&self.journal).snapshot(with_entries);
        j.max_concurrent_token_requests = self.token_max_in_flight.load(Ordering::SeqCst);
        j
    }

    pub(crate) fn reset_journal(&self) {
        lock(&self.journal).reset();
        self.token_max_in_flight.store(
            self.token_in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }
}
