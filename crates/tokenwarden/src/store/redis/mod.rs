//! [`RedisStore`]: one token, one refresh and one rate budget for a fleet of processes on any
//! number of machines.

mod budget;
mod link;
mod scripts;

pub use budget::RedisBudget;

use super::file::unix_ms;
use super::fingerprint::{FingerprintKey, KEY_LEN, hex, unhex};
use super::{CHANGE_POLL, LockAttempt, StoreLock, StoredToken, TokenKey, TokenStore};
use crate::clock::wall_now;
use crate::error::Error;
use crate::secret::{AccessToken, RefreshToken};
use crate::store::RefreshTokenStore;
use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use link::Link;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a [`RedisStore`] talks to Redis and coordinates the fleet.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The deadline of every Redis call, connecting included (default 500 ms). A call that misses
    /// it counts as Redis being down (see [`RedisStore`]).
    pub timeout: Duration,
    /// How long the refresh lock is held without renewal (default 5 s): a holder renews it while
    /// its refresh runs; one that died frees it after at most this long.
    pub lock_lease: Duration,
    /// How long a refresh waits for another holder's new token before fetching one itself
    /// (default 30 s, as [`DEFAULT_LOCK_TIMEOUT`](crate::store::DEFAULT_LOCK_TIMEOUT)).
    pub lock_wait: Duration,
    /// The first part of every key name (default `tokenwarden`).
    pub prefix: String,
    /// Certificate authorities (PEM) to trust for `rediss://` instead of the system's.
    pub root_certificates: Option<Vec<u8>>,
    /// After a failed call, how long no call is tried (default 1 s): then one call tries again.
    pub retry_after: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(500),
            lock_lease: Duration::from_secs(5),
            lock_wait: crate::store::DEFAULT_LOCK_TIMEOUT,
            prefix: "tokenwarden".into(),
            root_certificates: None,
            retry_after: link::RETRY_AFTER,
        }
    }
}

/// How long a refresh token is kept in Redis after its last rotation (Genesys does not say how
/// long they live; one unused for this long is given up).
const REFRESH_TTL: Duration = Duration::from_secs(30 * 86_400);
const RECORD_VERSION: &str = "1";

/// A token store in Redis, shared by every process (on any machine) configured with the same
/// token URL, client id and scope: the fleet holds **one** token and refreshes it **once**.
///
/// - **Keys** (`PREFIX:{ID}:token`, `:lock`, `:rate`, `:refresh`, `:refresh-lock`; `ID` is
///   [`TokenKey::id`], a hash that names neither the client nor the endpoint) expire with what
///   they hold: the token record when the token expires.
/// - **One refresh per fleet:** the process that finds the token due takes the lock (`SET NX PX`
///   with a random fencing value, renewed while its refresh runs, released only by its owner with
///   a compare-and-delete script); the others keep using the still-valid token, or, when none is
///   valid, poll for the new one for at most [`RedisOptions::lock_wait`], then fetch one
///   themselves. The new token is saved only while its fetcher still holds the lock (or nobody
///   does): a holder whose lease ran out does not overwrite the one that took over.
/// - **Keyed invalidation:** a token the API rejected is removed only if it is still the stored
///   one (compare-and-delete on its SHA-256).
/// - **Rotated refresh tokens:** as a [`RefreshTokenStore`] (for
///   [`RefreshTokenGrant::with_store`](crate::RefreshTokenGrant::with_store)) it keeps the fleet's
///   refresh token, and serialises its rotations with a lock of its own: every process presents
///   the stored one, under the lock, and saves its replacement before the lock is released.
/// - **The client secret** is bound as in [`FileStore`](crate::FileStore): a keyed fingerprint
///   (HMAC-SHA256 under a random key kept in Redis, `PREFIX:fingerprint-key`), never the secret.
/// - **Never a single point of failure:** every call has a deadline ([`RedisOptions::timeout`]).
///   A failed or late call logs one warning per outage; for a second
///   ([`RedisOptions::retry_after`]) no call is tried (the
///   process refreshes its own token and paces its own requests meanwhile), then one call
///   tries again. When Redis answers again the fleet converges on one token at its next refresh.
/// - **A shared rate budget:** [`rate_budget`](Self::rate_budget) paces every process's requests
///   with this token in one GCRA schedule in Redis; [`mint_budget`](Self::mint_budget) spaces
///   the token requests of the whole fleet.
///
/// `redis://` and `rediss://` (TLS with rustls, the system's certificate authorities or
/// [`RedisOptions::root_certificates`]) URLs, with a password (`redis://:PASSWORD@host`) or a
/// user and password (ACL); `#insecure` (no certificate check) is refused.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use std::sync::Arc;
/// use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, store::RedisOptions, store::RedisStore, TokenEndpoint, store::TokenKey, TokenManager, TokenUrl};
///
/// let url = TokenUrl::parse("https://login.mypurecloud.ie/oauth/token")?;
/// let secret = ClientSecret::new("the secret");
/// let grant = ClientCredentials::new(TokenEndpoint::new(&url)?, "my-client", secret.clone());
/// let key = TokenKey::new(&url, "my-client").with_secret(secret);
/// let store = RedisStore::open("rediss://:password@redis.internal:6380", key, RedisOptions::default())?;
/// let budget = Arc::new(store.rate_budget());
/// let tokens = TokenManager::builder(grant).store(store).build();
/// let client = ApiClient::builder("https://api.mypurecloud.ie", tokens)
///     .rate_limit(tokenwarden::RateLimit::per_minute(300)) // for the whole fleet
///     .shared_budget(budget)
///     .build()?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    link: Arc<Link>,
    key: TokenKey,
    options: RedisOptions,
    /// `PREFIX:{ID}:`
    base: String,
    /// The fleet's fingerprint key, once read.
    fingerprint: Arc<tokio::sync::OnceCell<FingerprintKey>>,
    /// guards the fence of the lock this store's holder holds, if any
    held: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.link.shown)
            .field("entry", &self.base)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store of `key`'s token in the Redis at `url`. Nothing is connected yet: the first call
    /// connects, and a Redis that cannot be reached is only warned about.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `redis://` or `rediss://`, one with `#insecure`,
    /// or a certificate that cannot be read.
    pub fn open(url: &str, key: TokenKey, options: RedisOptions) -> Result<Self, Error> {
        let shown = shown_url(url)?;
        let client = match &options.root_certificates {
            Some(pem) => ::redis::Client::build_with_tls(
                url,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => ::redis::Client::open(url),
        }
        .map_err(|e| Error::Config(format!("Redis URL {shown}: {}", link_error(&e))))?;
        let base = format!("{}:{{{}}}:", options.prefix, key.id());
        Ok(Self {
            link: Arc::new(Link::new(
                client,
                shown,
                options.timeout,
                options.retry_after,
            )),
            key,
            options,
            base,
            fingerprint: Arc::default(),
            held: Arc::default(),
        })
    }

    /// The store of token `slot` of a token pool, on the same connection (so that an outage is
    /// warned about once, not once per token).
    pub fn slot(&self, slot: u32) -> Self {
        let key = self.key.clone().with_slot(slot);
        Self {
            base: format!("{}:{{{}}}:", self.options.prefix, key.id()),
            key,
            held: Arc::default(),
            ..self.clone()
        }
    }

    /// The rate budget of this store's token, shared by the fleet (see
    /// [`ApiClientBuilder::shared_budget`](crate::ApiClientBuilder::shared_budget)).
    pub fn rate_budget(&self) -> RedisBudget {
        RedisBudget {
            link: Arc::clone(&self.link),
            key: self.name("rate"),
        }
    }

    /// The schedule of the fleet's token requests for this OAuth client (all scopes and pool
    /// slots), for `manager::MintPacing::shared`.
    pub fn mint_budget(&self) -> RedisBudget {
        let client = TokenKey::new(self.key.token_url(), self.key.client_id());
        RedisBudget {
            link: Arc::clone(&self.link),
            key: format!("{}:{{{}}}:mint", self.options.prefix, client.id()),
        }
    }

    /// How many times Redis was found unreachable (each outage is warned about once, when it
    /// starts), by this store and every store made from it with [`slot`](Self::slot).
    pub fn outages(&self) -> u64 {
        self.link.outages()
    }

    /// The Redis key names of this store's entry, as they appear in Redis (for operators).
    pub fn key_names(&self) -> Vec<String> {
        ["token", "lock", "rate", "refresh", "refresh-lock"]
            .iter()
            .map(|n| self.name(n))
            .collect()
    }

    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.base)
    }

    /// The fleet's fingerprint key, or `None` while Redis cannot be reached.
    async fn fingerprint_key(&self) -> Option<&FingerprintKey> {
        if let Some(k) = self.fingerprint.get() {
            return Some(k);
        }
        let name = format!("{}:fingerprint-key", self.options.prefix);
        let candidate = hex(&rand::random::<[u8; KEY_LEN]>());
        let text: String = self
            .link
            .script(
                "fingerprint key",
                &scripts::FINGERPRINT_KEY,
                &[&name],
                &[&candidate],
            )
            .await?;
        let bytes: [u8; KEY_LEN] = match unhex(&text).and_then(|b| b.try_into().ok()) {
            Some(b) => b,
            None => {
                tracing::warn!(key = %name, "the fleet's fingerprint key in Redis is not one; cached tokens are not used");
                return None;
            }
        };
        let _ = self.fingerprint.set(FingerprintKey::from_bytes(bytes));
        self.fingerprint.get()
    }

    async fn call<T: ::redis::FromRedisValue + Send>(
        &self,
        what: &'static str,
        cmd: ::redis::Cmd,
    ) -> Option<T> {
        let cmd = &cmd;
        self.link
            .call(what, |mut c: ConnectionManager| async move {
                cmd.query_async(&mut c).await
            })
            .await
    }
}

fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// The URL as shown in messages (no user name or password), after checking it.
fn shown_url(url: &str) -> Result<String, Error> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::Config(format!(
            "token store {} is not a URL: {e}",
            crate::error::excerpt(url, 100)
        ))
    })?;
    let mut shown = parsed.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    let shown = shown.to_string();
    match parsed.scheme() {
        "redis" | "rediss" => {}
        other => {
            return Err(Error::Config(format!(
                "token store {shown}: use a redis:// or rediss:// URL, not {other}://"
            )));
        }
    }
    if parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "token store {shown}: a #fragment (such as #insecure, which skips the certificate check) is not accepted; for a private certificate authority give its certificate instead"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("token store {shown} names no host")));
    }
    // redis:// is not a special scheme: its host is never parsed as an IP address by `url`.
    let loopback = parsed.host_str().is_some_and(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map_or(h.eq_ignore_ascii_case("localhost"), |ip| ip.is_loopback())
    });
    if parsed.scheme() == "redis" && !loopback {
        tracing::warn!(redis = %shown, "tokens travel to Redis in clear text over redis://; use rediss:// (TLS) off this machine");
    }
    Ok(shown)
}

fn link_error(e: &::redis::RedisError) -> String {
    crate::redact::terminal_safe(&e.to_string(), 300)
}

/// Holds the refresh lock: renews its lease while held (the lock itself is released by the
/// [`StoreLock`]'s release, a compare-and-delete).
struct Held {
    store: RedisStore,
    fence: String,
    renew: tokio::task::AbortHandle,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renew.abort();
        let mut held = self.store.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_deref() == Some(self.fence.as_str()) {
            *held = None;
        }
    }
}

impl RedisStore {
    /// Releases the lock `what` if `fence` still holds it.
    async fn release(&self, what: &str, fence: &str) {
        let _: Option<i64> = self
            .link
            .script(
                "release the lock",
                &scripts::RELEASE,
                &[&self.name(what)],
                &[fence],
            )
            .await;
    }
}

impl RedisStore {
    /// Tries once to take the lock `what` (`lock`: the access token's, whose fence also guards
    /// [`save`](TokenStore::save); `refresh-lock`: the refresh token's). The lease is renewed
    /// while it is held.
    async fn try_take(&self, what: &'static str, fences_saves: bool) -> Result<LockAttempt, Error> {
        if self.link.resting() {
            return Ok(LockAttempt::Unavailable);
        }
        let fence = hex(&rand::random::<[u8; 16]>());
        let lease = self.options.lock_lease.max(Duration::from_millis(100));
        let mut set = ::redis::cmd("SET");
        set.arg(self.name(what))
            .arg(&fence)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let taken = match self.call::<Option<String>>("lock", set).await {
            None => return Ok(LockAttempt::Unavailable),
            Some(reply) => reply.is_some(),
        };
        if !taken {
            return Ok(LockAttempt::Busy);
        }
        if fences_saves {
            *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(fence.clone());
        }
        let renew = {
            let (store, fence) = (self.clone(), fence.clone());
            tokio::spawn(async move {
                let lease_ms = u64::try_from(lease.as_millis())
                    .unwrap_or(u64::MAX)
                    .to_string();
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let kept: Option<i64> = store
                        .link
                        .script(
                            "renew the lock",
                            &scripts::EXTEND,
                            &[&store.name(what)],
                            &[&fence, &lease_ms],
                        )
                        .await;
                    if kept == Some(0) {
                        tracing::warn!("a lock in Redis expired while this process held it (a pause longer than its lease)");
                        return;
                    }
                }
            })
            .abort_handle()
        };
        let (store, release_fence) = (self.clone(), fence.clone());
        Ok(LockAttempt::Held(StoreLock::with_release(
            Held {
                store: self.clone(),
                fence,
                renew,
            },
            move || async move { store.release(what, &release_fence).await },
        )))
    }
}

impl RedisStore {
    /// Takes the lock `what` (as [`try_take`](Self::try_take)), waiting for another holder at
    /// most [`RedisOptions::lock_wait`]; `None` when Redis cannot be reached.
    async fn take_waiting(
        &self,
        what: &'static str,
        fences_saves: bool,
        shown: &str,
    ) -> Result<Option<StoreLock>, Error> {
        let give_up = crate::clock::Instant::now() + self.options.lock_wait;
        loop {
            match self.try_take(what, fences_saves).await? {
                LockAttempt::Held(lock) => return Ok(Some(lock)),
                LockAttempt::Unavailable => return Ok(None),
                LockAttempt::Busy => {}
            }
            let now = crate::clock::Instant::now();
            if now >= give_up {
                return Err(Error::Store {
                    detail: format!(
                        "gave up after {:?} waiting for {shown} in Redis ({}), held by another process",
                        self.options.lock_wait, self.link.shown
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep((give_up - now).min(CHANGE_POLL)).await;
        }
    }
}

/// The fleet's rotating refresh token in Redis, for
/// [`RefreshTokenGrant::with_store`](crate::RefreshTokenGrant::with_store): made by
/// [`RedisStore::refresh_tokens`].
///
/// Kept under the store's `:refresh` key (for 30 days after its last rotation); rotations are
/// serialised by `:refresh-lock` (renewed while held). Nothing is answered from memory while Redis
/// cannot be reached: the lock and the token are then errors the manager retries, so a refresh
/// token is never presented without the fleet's lock, and never one another process may have
/// used.
#[derive(Debug, Clone)]
pub struct RedisRefreshTokens(RedisStore);

impl RedisStore {
    /// The fleet's rotating refresh token, on this store's entry and connection.
    ///
    /// ```no_run
    /// # async fn run(store: tokenwarden::store::RedisStore, endpoint: tokenwarden::TokenEndpoint) {
    /// use std::sync::Arc;
    /// use tokenwarden::{ClientSecret, RefreshToken, RefreshTokenGrant};
    /// let grant = RefreshTokenGrant::new(endpoint, "my-client", ClientSecret::new("s"), RefreshToken::new("rt"))
    ///     .with_store(Arc::new(store.refresh_tokens()));
    /// # let _ = grant; }
    /// ```
    pub fn refresh_tokens(&self) -> RedisRefreshTokens {
        RedisRefreshTokens(self.clone())
    }
}

#[async_trait]
impl RefreshTokenStore for RedisRefreshTokens {
    async fn lock(&self) -> Result<StoreLock, Error> {
        let this = &self.0;
        this.take_waiting("refresh-lock", false, "the refresh token's lock")
            .await?
            .ok_or_else(|| this.unreachable("take the refresh token's lock"))
    }

    async fn load(&self) -> Result<Option<RefreshToken>, Error> {
        let mut get = ::redis::cmd("GET");
        get.arg(self.0.name("refresh"));
        match self
            .0
            .call::<Option<String>>("load the refresh token", get)
            .await
        {
            Some(token) => Ok(token.map(RefreshToken::new)),
            None => Err(self.0.unreachable("read the refresh token")),
        }
    }

    async fn save(&self, token: &RefreshToken) -> Result<(), Error> {
        let mut set = ::redis::cmd("SET");
        set.arg(self.0.name("refresh"))
            .arg(token.expose_secret())
            .arg("PX")
            .arg(u64::try_from(REFRESH_TTL.as_millis()).unwrap_or(u64::MAX));
        match self
            .0
            .call::<Option<String>>("save the refresh token", set)
            .await
        {
            Some(_) => Ok(()),
            None => Err(self.0.unreachable("save the refresh token")),
        }
    }
}

impl RedisStore {
    /// The error for a refresh-token step Redis cannot take now (retryable).
    fn unreachable(&self, what: &str) -> Error {
        Error::Store {
            detail: format!(
                "cannot {what}: the Redis token store ({}) cannot be reached, and a refresh token is used only under the fleet's lock",
                self.link.shown
            ),
            retryable: true,
        }
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self) -> Result<Option<StoredToken>, Error> {
        let Some((fields, pttl)) = self
            .link
            .script::<(Vec<String>, i64)>("load", &scripts::LOAD, &[&self.name("token")], &[])
            .await
        else {
            return Ok(None);
        };
        let record: HashMap<String, String> = fields
            .chunks_exact(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect();
        if record.is_empty() {
            return Ok(None);
        }
        let field = |k: &str| record.get(k).map(String::as_str);
        if field("v") != Some(RECORD_VERSION) {
            tracing::info!(entry = %self.base, "not using the token in Redis: written by another version");
            return Ok(None);
        }
        let secret_matches = match (self.key.secret(), field("secret_fingerprint")) {
            (None, None) => true,
            (Some(secret), Some(stored)) => match self.fingerprint_key().await {
                Some(k) => k.matches(secret, stored),
                None => false,
            },
            _ => false,
        };
        if !secret_matches {
            tracing::info!(entry = %self.base, "not using the token in Redis: obtained with another client secret");
            return Ok(None);
        }
        let (Some(token), Some(obtained), Some(expires)) = (
            field("access_token"),
            field("obtained_at_ms").and_then(|v| v.parse::<u64>().ok()),
            field("expires_at_ms").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            tracing::warn!(entry = %self.base, "ignoring a damaged token record in Redis");
            return Ok(None);
        };
        if !AccessToken::is_header_value(token) {
            tracing::warn!(entry = %self.base, "ignoring the token in Redis: not a legal header value");
            return Ok(None);
        }
        // When it expires by this machine's clock: what Redis has left of it (the record expires
        // with the token), so that a machine whose clock is off does not misjudge it.
        let lifetime = Duration::from_millis(expires.saturating_sub(obtained));
        let left = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
        if left.is_zero() {
            return Ok(None);
        }
        let expires_at = wall_now() + left;
        Ok(Some(StoredToken {
            access_token: AccessToken::new(token),
            obtained_at: expires_at.checked_sub(lifetime).unwrap_or(expires_at),
            expires_at,
        }))
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        let ttl = token
            .expires_at
            .duration_since(wall_now())
            .unwrap_or_default();
        if ttl.is_zero() {
            return Ok(());
        }
        let fingerprint = match self.key.secret() {
            Some(secret) => match self.fingerprint_key().await {
                Some(k) => Some(k.fingerprint(secret)),
                None => return Ok(()), // Redis is down: warned about already
            },
            None => None,
        };
        let fence = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        let mut fields: Vec<(&str, String)> = vec![
            ("v", RECORD_VERSION.into()),
            (
                "access_token",
                token.access_token.expose_secret().to_string(),
            ),
            (
                "token_sha256",
                sha256_hex(token.access_token.expose_secret()),
            ),
            ("obtained_at_ms", unix_ms(token.obtained_at).to_string()),
            ("expires_at_ms", unix_ms(token.expires_at).to_string()),
        ];
        if let Some(f) = fingerprint {
            fields.push(("secret_fingerprint", f));
        }
        let ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            .to_string();
        let mut args: Vec<&str> = vec![&fence, &ttl_ms];
        for (k, v) in &fields {
            args.extend([*k, v.as_str()]);
        }
        let saved: Option<i64> = self
            .link
            .script(
                "save",
                &scripts::SAVE,
                &[&self.name("token"), &self.name("lock")],
                &args,
            )
            .await;
        if saved == Some(0) {
            tracing::debug!(entry = %self.base, "not publishing the new token: another process holds the refresh lock");
        }
        Ok(())
    }

    async fn lock(&self) -> Result<StoreLock, Error> {
        Ok(self
            .take_waiting("lock", true, "the refresh lock")
            .await?
            .unwrap_or_else(StoreLock::none))
    }

    async fn try_lock(&self) -> Result<LockAttempt, Error> {
        self.try_take("lock", true).await
    }

    async fn changed(&self, max: Duration) {
        tokio::time::sleep(max.min(CHANGE_POLL)).await;
    }

    fn lock_wait(&self) -> Duration {
        self.options.lock_wait
    }

    async fn invalidate(&self, token: &AccessToken) -> Result<(), Error> {
        let digest = sha256_hex(token.expose_secret());
        let removed: Option<i64> = self
            .link
            .script(
                "invalidate",
                &scripts::INVALIDATE,
                &[&self.name("token")],
                &[&digest],
            )
            .await;
        if removed == Some(1) {
            tracing::debug!(entry = %self.base, "withdrew the rejected token from Redis");
        }
        Ok(())
    }
}
