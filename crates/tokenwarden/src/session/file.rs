//! [`SessionStore`]: a sign-in kept in a private directory.

use crate::error::Error;
use crate::fs::PrivateDir;
use crate::secret::RefreshToken;
use crate::store::RefreshTokenStore;
use crate::store::file::{RecordHead, blocking, from_unix_ms, lock_with_deadline, unix_ms};
use crate::store::{DEFAULT_LOCK_TIMEOUT, FileStore, StoreLock, TokenKey};
use crate::transport::TokenUrl;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

const RECORD: &str = "session.json";
const LOCK: &str = "session.json.lock";
const MAX_RECORD: usize = 64 * 1024;
const RECORD_VERSION: u32 = 1;

/// Who signed in, as the API described them when the sign-in completed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    /// The user's id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
}

/// A sign-in: the refresh token and what it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The token endpoint the refresh token is presented to.
    pub token_url: TokenUrl,
    /// The OAuth client it was issued to.
    pub client_id: String,
    /// Whether the client authenticates with a secret (confidential) or not (public, PKCE).
    pub confidential: bool,
    /// The scopes asked for at sign-in, if any.
    pub scope: Option<String>,
    /// The current refresh token.
    pub refresh_token: RefreshToken,
    /// Who signed in, if known.
    pub user: Option<SessionUser>,
    /// The organization's name, if known.
    pub organization: Option<String>,
    /// When the sign-in completed.
    pub signed_in_at: SystemTime,
}

/// The record on disk. Strings borrow from the read buffer where they can, so that the refresh
/// token is not copied more than needed.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(flatten, borrow)]
    head: RecordHead<'a>,
    confidential: bool,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
    /// `file` (the token is in `refresh_token`) or `keyring` (in the OS keyring).
    #[serde(borrow)]
    refresh_token_in: Cow<'a, str>,
    #[serde(borrow)]
    refresh_token: Option<Cow<'a, str>>,
    user: Option<SessionUser>,
    #[serde(borrow)]
    organization: Option<Cow<'a, str>>,
    signed_in_at_unix_ms: u64,
    rotated_at_unix_ms: u64,
}

/// A sign-in kept in a private directory of its own (one per profile and endpoint): `session.json`
/// (0600) with the refresh token and who signed in, `session.json.lock`, and, beside them, the
/// cache of the access token it gives ([`access_tokens`](Self::access_tokens)).
///
/// The directory and files get the token cache's hardening (see [`FileStore`]): created 0700 and
/// 0600, refused when another user could read or change them, never written through a symbolic
/// link, written by an atomic rename. As a [`RefreshTokenStore`] it serialises rotations across
/// processes with the lock file, waited for at most [`with_lock_timeout`](Self::with_lock_timeout)
/// (default [`DEFAULT_LOCK_TIMEOUT`]).
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use std::sync::Arc;
/// use tokenwarden::{RefreshTokenGrant, session::SessionStore, TokenEndpoint, TokenManager, TokenUrl};
///
/// let url = TokenUrl::parse("https://login.mypurecloud.ie/oauth/token")?;
/// let store = SessionStore::new("/home/me/.local/share/tokenwarden/sessions/work")
///     .bound_to(&url, "my-public-client");
/// let session = store.read().await?.expect("signed in");
/// let grant = RefreshTokenGrant::public(TokenEndpoint::new(&url)?, "my-public-client", session.refresh_token)
///     .with_store(Arc::new(store.clone()));
/// let tokens = TokenManager::builder(grant).build();
/// let bearer = tokens.bearer().await?; // the refresh token is rotated and saved first
/// # let _ = bearer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
    lock_timeout: Duration,
    /// The endpoint and client the stored sign-in must be for.
    bound: Option<(TokenUrl, String)>,
    /// The keyring service the refresh token goes to, if any.
    #[cfg(feature = "keyring")]
    keyring: Option<String>,
}

impl SessionStore {
    /// The sign-in kept in `dir` (created, 0700, on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            bound: None,
            #[cfg(feature = "keyring")]
            keyring: None,
        }
    }

    /// Waits at most `timeout` for the lock another process holds while it rotates the token.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Serves only a sign-in made at `token_url` for `client_id`: another is
    /// [`Error::SignInRequired`], never presented to this endpoint.
    pub fn bound_to(mut self, token_url: &TokenUrl, client_id: &str) -> Self {
        self.bound = Some((token_url.clone(), client_id.to_string()));
        self
    }

    /// Keeps the refresh token of a new sign-in ([`write`](Self::write)) in the OS keyring
    /// (service `service`, the directory as account) instead of the file, which keeps the rest;
    /// and reads it from there for a sign-in that keeps it there. (Without this, a sign-in kept in
    /// the keyring cannot be used.) Rotations go where the sign-in keeps its token. Every keyring
    /// call runs on its own thread and is given up after a few seconds, so a keyring that hangs
    /// (a locked Secret Service waiting for a prompt) fails instead of hanging the job.
    #[cfg(feature = "keyring")]
    pub fn with_keyring(mut self, service: impl Into<String>) -> Self {
        self.keyring = Some(service.into());
        self
    }

    /// Whether the OS keyring answers (a read of an entry nobody writes, within the deadline):
    /// decide with it between the keyring and the file before a sign-in is stored.
    ///
    /// # Errors
    /// [`Error::Store`] saying why the keyring cannot be used.
    #[cfg(feature = "keyring")]
    pub async fn keyring_available(service: &str) -> Result<(), Error> {
        super::keyring::available(service).await
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record's path (`session.json`).
    pub fn path(&self) -> PathBuf {
        self.dir.join(RECORD)
    }

    /// The cache of the access tokens this sign-in gives, in the same directory, for `key` (the
    /// token URL, client id, and client secret if any): share it between processes so that they
    /// refresh once per token lifetime, not once each.
    pub fn access_tokens(&self, key: TokenKey) -> FileStore {
        FileStore::new(self.dir.clone(), key).with_lock_timeout(self.lock_timeout)
    }

    /// The stored sign-in, if there is one.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory or the file fails the safety checks or cannot be read,
    /// or the keyring cannot be reached; [`Error::SignInRequired`] when the record is damaged, or
    /// is for another endpoint or client than [`bound_to`](Self::bound_to) says.
    pub async fn read(&self) -> Result<Option<Session>, Error> {
        let this = self.clone();
        let Some((session, in_keyring)) = blocking(move || this.read_record()).await? else {
            return Ok(None);
        };
        if !in_keyring {
            return Ok(Some(session));
        }
        let token = self.keyring_get().await?;
        Ok(token.map(|refresh_token| Session {
            refresh_token,
            ..session
        }))
    }

    /// Stores `session`, replacing any other (a new sign-in). Take [`lock`](RefreshTokenStore::lock)
    /// around it when other processes may be rotating.
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be written; what was stored is then unchanged.
    pub async fn write(&self, session: &Session) -> Result<(), Error> {
        let in_keyring = self.keyring_set(&session.refresh_token).await?;
        let (this, session) = (self.clone(), session.clone());
        blocking(move || {
            let dir = PrivateDir::open(&this.dir)?;
            dir.check_existing(RECORD)?;
            write_record(&dir, &session, in_keyring, session.signed_in_at)
        })
        .await
    }

    /// Deletes the stored sign-in (the record, its refresh token in the keyring, and the access
    /// tokens cached beside it). Returns whether there was one.
    ///
    /// # Errors
    /// [`Error::Store`] when something cannot be deleted or fails the safety checks.
    pub async fn remove(&self) -> Result<bool, Error> {
        let this = self.clone();
        // A damaged record is removed all the same; its token is in the keyring only if it says so.
        let in_keyring =
            blocking(move || Ok(this.read_record().ok().flatten().is_some_and(|(_, k)| k))).await?;
        let this = self.clone();
        let existed = blocking(move || {
            let dir = PrivateDir::open(&this.dir)?;
            let mut existed = false;
            for entry in std::fs::read_dir(dir.join(""))
                .map_err(|e| Error::store(format!("listing {}: {e}", this.dir.display())))?
            {
                let entry = entry
                    .map_err(|e| Error::store(format!("listing {}: {e}", this.dir.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // The record and the cached access tokens; locks and the fingerprint key stay
                // (another process may hold a lock).
                if name.ends_with(".json") {
                    dir.check_existing(&name)?;
                    std::fs::remove_file(entry.path()).map_err(|e| {
                        Error::store(format!("deleting {}: {e}", entry.path().display()))
                    })?;
                    existed |= name == RECORD;
                }
            }
            Ok(existed)
        })
        .await?;
        if in_keyring {
            self.keyring_delete().await?;
        }
        Ok(existed)
    }

    /// The record, and whether its refresh token is in the keyring (then the session's token is a
    /// placeholder, filled in by the caller).
    fn read_record(&self) -> Result<Option<(Session, bool)>, Error> {
        let dir = PrivateDir::open(&self.dir)?;
        let path = dir.join(RECORD);
        let Some(bytes) = dir.read(RECORD, MAX_RECORD)? else {
            return Ok(None);
        };
        // Not the parser's message: it may quote a value, and a value may be the token.
        let damaged = || Error::SignInRequired {
            reason: format!(
                "the sign-in stored in {} is damaged or was written by another version of tokenwarden",
                path.display()
            ),
        };
        let record = match serde_json::from_slice::<Record<'_>>(&bytes) {
            Ok(r) if bytes.len() <= MAX_RECORD && r.head.version == RECORD_VERSION => r,
            _ => return Err(damaged()),
        };
        let (head, stored_url) = (&record.head, TokenUrl::parse(&record.head.token_url).ok());
        if let Some((url, client)) = &self.bound
            && (stored_url.as_ref() != Some(url) || head.client_id != **client)
        {
            return Err(Error::SignInRequired {
                reason: format!(
                    "the sign-in stored in {} is for client {:?} at {}, not client {client:?} at {url}",
                    path.display(),
                    head.client_id,
                    head.token_url
                ),
            });
        }
        // A sign-in is only ever stored for a token URL; anything else is not one tokenwarden wrote.
        let Some(token_url) = stored_url else {
            return Err(damaged());
        };
        let in_keyring = record.refresh_token_in == "keyring";
        let token = match (&record.refresh_token, in_keyring) {
            (Some(t), false) if !t.is_empty() => RefreshToken::new(t.as_ref()),
            (_, true) => RefreshToken::new(String::new()),
            _ => return Err(damaged()),
        };
        Ok(Some((
            Session {
                token_url,
                client_id: record.head.client_id.into_owned(),
                confidential: record.confidential,
                scope: record.scope.map(Cow::into_owned),
                refresh_token: token,
                user: record.user,
                organization: record.organization.map(Cow::into_owned),
                signed_in_at: from_unix_ms(record.signed_in_at_unix_ms),
            },
            in_keyring,
        )))
    }

    /// Saves `token` to the keyring if this store uses one for new sign-ins; whether it did.
    async fn keyring_set(&self, token: &RefreshToken) -> Result<bool, Error> {
        #[cfg(feature = "keyring")]
        if self.keyring.is_some() {
            self.keyring_put(token).await?;
            return Ok(true);
        }
        let _ = token;
        Ok(false)
    }

    /// Saves `token` to the keyring of a sign-in that keeps it there.
    #[allow(clippy::unused_async)]
    async fn keyring_put(&self, token: &RefreshToken) -> Result<(), Error> {
        #[cfg(feature = "keyring")]
        if let Some(service) = &self.keyring {
            return super::keyring::set(service, &self.account(), token).await;
        }
        let _ = token;
        Err(self.no_keyring())
    }

    fn no_keyring(&self) -> Error {
        Error::SignInRequired {
            reason: format!(
                "the sign-in in {} keeps its refresh token in the OS keyring, which this build of tokenwarden cannot reach (built without the keyring feature)",
                self.path().display()
            ),
        }
    }

    #[allow(clippy::unused_async)]
    async fn keyring_get(&self) -> Result<Option<RefreshToken>, Error> {
        #[cfg(feature = "keyring")]
        if let Some(service) = &self.keyring {
            return super::keyring::get(service, &self.account()).await;
        }
        Err(self.no_keyring())
    }

    #[allow(clippy::unused_async)]
    async fn keyring_delete(&self) -> Result<(), Error> {
        #[cfg(feature = "keyring")]
        if let Some(service) = &self.keyring {
            return super::keyring::delete(service, &self.account()).await;
        }
        Ok(())
    }

    /// The keyring account of this sign-in: its directory.
    #[cfg(feature = "keyring")]
    fn account(&self) -> String {
        self.dir.display().to_string()
    }
}

#[async_trait]
impl RefreshTokenStore for SessionStore {
    async fn lock(&self) -> Result<StoreLock, Error> {
        let dir = self.dir.clone();
        let file = blocking(move || {
            let dir = PrivateDir::open(&dir)?;
            dir.check_existing(RECORD)?;
            dir.open_lock_file(LOCK)
        })
        .await?;
        lock_with_deadline(file, self.dir.join(LOCK), self.lock_timeout).await
    }

    async fn load(&self) -> Result<Option<RefreshToken>, Error> {
        Ok(self.read().await?.map(|s| s.refresh_token))
    }

    async fn save(&self, token: &RefreshToken) -> Result<(), Error> {
        // The token goes where the sign-in keeps it: the keyring or the file.
        let this = self.clone();
        let Some((session, in_keyring)) = blocking(move || this.read_record()).await? else {
            return Err(Error::SignInRequired {
                reason: format!(
                    "the sign-in in {} was removed while its refresh token was in use (signed out?)",
                    self.path().display()
                ),
            });
        };
        if in_keyring {
            self.keyring_put(token).await?;
        }
        let (this, token) = (self.clone(), token.clone());
        blocking(move || {
            let dir = PrivateDir::open(&this.dir)?;
            let session = Session {
                refresh_token: token,
                ..session
            };
            write_record(&dir, &session, in_keyring, session.signed_in_at)
        })
        .await
    }
}

/// Writes the record of `session` (atomically, 0600).
fn write_record(
    dir: &PrivateDir,
    session: &Session,
    in_keyring: bool,
    signed_in_at: SystemTime,
) -> Result<(), Error> {
    let record = Record {
        head: RecordHead::new(RECORD_VERSION, &session.token_url, &session.client_id),
        confidential: session.confidential,
        scope: session.scope.as_deref().map(Cow::from),
        refresh_token_in: if in_keyring { "keyring" } else { "file" }.into(),
        refresh_token: (!in_keyring).then(|| session.refresh_token.expose_secret().into()),
        user: session.user.clone(),
        organization: session.organization.as_deref().map(Cow::from),
        signed_in_at_unix_ms: unix_ms(signed_in_at),
        rotated_at_unix_ms: unix_ms(crate::clock::wall_now()),
    };
    // Sized up front so that no copy of the token is left in a reallocated buffer.
    let mut body = Zeroizing::new(Vec::with_capacity(
        4096 + session.refresh_token.expose_secret().len(),
    ));
    serde_json::to_writer(&mut *body, &record)
        .map_err(|e| Error::store(format!("encoding the sign-in record: {e}")))?;
    dir.replace(RECORD, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(rt: &str) -> Session {
        Session {
            token_url: TokenUrl::parse("https://login.example/oauth/token").unwrap(),
            client_id: "c".into(),
            confidential: false,
            scope: None,
            refresh_token: RefreshToken::new(rt),
            user: Some(SessionUser {
                id: "u-1".into(),
                name: Some("Ada".into()),
                email: None,
            }),
            organization: Some("Org".into()),
            signed_in_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[tokio::test]
    async fn a_sign_in_round_trips_in_private_files_and_rotations_keep_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        // Bound to another spelling of the endpoint the sign-in was made at: the same endpoint.
        let store = SessionStore::new(tmp.path().join("s")).bound_to(
            &TokenUrl::parse("HTTPS://Login.Example:443/oauth/token").unwrap(),
            "c",
        );
        assert_eq!(store.read().await.unwrap(), None);
        store.write(&session("rt-session-unit-1")).await.unwrap();
        assert_eq!(
            store.read().await.unwrap(),
            Some(session("rt-session-unit-1"))
        );
        let _lock = store.lock().await.unwrap();
        store
            .save(&RefreshToken::new("rt-session-unit-2"))
            .await
            .unwrap();
        assert_eq!(
            store.read().await.unwrap(),
            Some(session("rt-session-unit-2"))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&tmp.path().join("s")), 0o700);
            assert_eq!(mode(&store.path()), 0o600);
        }
        assert!(store.remove().await.unwrap());
        assert_eq!(store.read().await.unwrap(), None);
        assert!(!store.remove().await.unwrap());
    }

    /// A record as tokenwarden 0.x wrote it (`Session::token_url` a `String`, the record's head
    /// written out in it): it loads, and writing it again gives the same bytes but the rotation
    /// time.
    #[tokio::test]
    async fn a_record_in_the_old_format_loads_and_is_written_back_the_same() {
        const OLD: &str = concat!(
            r#"{"version":1,"token_url":"https://login.example/oauth/token","client_id":"c","#,
            r#""confidential":false,"scope":null,"refresh_token_in":"file","#,
            r#""refresh_token":"rt-session-old-1","user":{"id":"u-1","name":"Ada","email":null},"#,
            r#""organization":"Org","signed_in_at_unix_ms":1700000000000,"#,
            r#""rotated_at_unix_ms":1700000000123}"#
        );
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path().join("s"));
        store.write(&session("rt-placeholder")).await.unwrap();
        std::fs::write(store.path(), OLD).unwrap();
        let read = store.read().await.unwrap();
        assert_eq!(read, Some(session("rt-session-old-1")));
        store.write(&read.unwrap()).await.unwrap();
        let again = std::fs::read_to_string(store.path()).unwrap();
        let (head, rotated) = OLD.split_at(OLD.find(r#""rotated_at_unix_ms":"#).unwrap());
        assert!(again.starts_with(head), "{again}");
        let ms = &again[head.len() + rotated.find(':').unwrap() + 1..again.len() - 1];
        assert!(ms.parse::<u64>().is_ok() && again.ends_with('}'), "{again}");
    }

    #[tokio::test]
    async fn a_record_for_something_other_than_a_token_url_asks_for_a_sign_in() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path());
        store.write(&session("rt-session-unit-5")).await.unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let text = text.replace("https://login.example/oauth/token", "login.example");
        std::fs::write(store.path(), text).unwrap();
        let e = store.read().await.unwrap_err();
        assert!(matches!(e, Error::SignInRequired { .. }), "{e}");
        assert!(!e.to_string().contains("rt-session-unit-5"), "{e}");
    }

    #[tokio::test]
    async fn a_sign_in_for_another_endpoint_or_client_is_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        SessionStore::new(tmp.path())
            .write(&session("rt-session-unit-3"))
            .await
            .unwrap();
        for (url, client) in [
            ("https://login.other/oauth/token", "c"),
            ("https://login.example/oauth/token", "d"),
        ] {
            let e = SessionStore::new(tmp.path())
                .bound_to(&TokenUrl::parse(url).unwrap(), client)
                .read()
                .await
                .unwrap_err();
            assert!(matches!(e, Error::SignInRequired { .. }), "{e}");
            assert!(!e.to_string().contains("rt-session-unit-3"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_damaged_record_asks_for_a_sign_in_without_quoting_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path());
        store.write(&session("rt-session-unit-4")).await.unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        std::fs::write(store.path(), &text[..text.len() - 5]).unwrap();
        let e = store.read().await.unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        assert!(!e.to_string().contains("rt-session-unit-4"), "{e}");
    }
}
