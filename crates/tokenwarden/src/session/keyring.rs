//! The OS keyring (the `keyring` crate) for refresh tokens, with a deadline on every call.
//!
//! A keyring can block: a locked Secret Service waits for a password prompt nobody sees over SSH,
//! a D-Bus session bus may not answer. Each call runs on a thread of its own (with a small runtime
//! of its own, which the Secret Service client needs) and is given up after [`KEYRING_TIMEOUT`]:
//! the caller gets an error it can report or fall back from, never a hang. A given-up thread
//! finishes (or not) on its own.

use crate::error::Error;
use crate::secret::RefreshToken;
use std::time::Duration;
use zeroize::Zeroizing;

/// The longest a keyring call is waited for.
pub(crate) const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` against the entry `service`/`account` on its own thread, within the deadline.
async fn call<T: Send + 'static>(
    service: &str,
    account: &str,
    what: &'static str,
    f: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let (service, account) = (service.to_string(), account.to_string());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("tokenwarden-keyring".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| keyring::Error::PlatformFailure(Box::new(e)))
                .and_then(|rt| {
                    let _entered = rt.enter();
                    keyring::Entry::new(&service, &account).and_then(|entry| f(&entry))
                });
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(Error::store(format!("starting the keyring thread: {e}")));
    }
    match tokio::time::timeout(KEYRING_TIMEOUT, rx).await {
        Ok(Ok(result)) => result.map_err(|e| {
            Error::store(format!(
                "{what} the OS keyring: {e}; sign in again with the refresh token kept in the file instead (tokenwarden login --no-keyring)"
            ))
        }),
        Ok(Err(_)) => Err(Error::store(format!("{what} the OS keyring: the keyring thread died"))),
        Err(_) => Err(Error::Store {
            detail: format!(
                "{what} the OS keyring: no answer within {KEYRING_TIMEOUT:?} (is it locked, waiting for a password prompt?)"
            ),
            retryable: true,
        }),
    }
}

/// Saves `token` as the entry's password.
pub(crate) async fn set(service: &str, account: &str, token: &RefreshToken) -> Result<(), Error> {
    let token = Zeroizing::new(token.expose_secret().to_string());
    call(service, account, "saving the refresh token in", move |e| {
        e.set_password(&token)
    })
    .await
}

/// The entry's password as a refresh token; `None` when there is no entry.
pub(crate) async fn get(service: &str, account: &str) -> Result<Option<RefreshToken>, Error> {
    call(
        service,
        account,
        "reading the refresh token from",
        |e| match e.get_password() {
            Ok(p) => Ok(Some(RefreshToken::new(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        },
    )
    .await
}

/// Deletes the entry (none is fine).
pub(crate) async fn delete(service: &str, account: &str) -> Result<(), Error> {
    call(
        service,
        account,
        "deleting the refresh token from",
        |e| match e.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        },
    )
    .await
}

/// Whether the keyring answers at all: a probe read of an entry nobody writes. Used to choose
/// between the keyring and the file before a sign-in is stored.
pub(crate) async fn available(service: &str) -> Result<(), Error> {
    get(service, "tokenwarden-probe").await.map(|_| ())
}
