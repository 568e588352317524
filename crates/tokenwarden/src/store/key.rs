//! [`TokenKey`]: what a stored token was issued for.

use crate::secret::ClientSecret;
use crate::transport::TokenUrl;
use sha2::{Digest as _, Sha256};

/// What a stored token was issued for: the token endpoint, the client, the scope, and the client
/// secret it was obtained with. A store bound to a key serves a token only to the same key.
///
/// The token URL is a [`TokenUrl`], compared in its normalised form, the scope as a set (`"b a"` is `"a b"`). The secret is never stored: stores keep a keyed fingerprint of it
/// (see [`FileStore`](crate::FileStore)), so a token cached under an old or another secret is not
/// served to a process that has a different one, and a wrong secret is reported as wrong instead
/// of being hidden by a cached token.
///
/// ```
/// use tokenwarden::{ClientSecret, TokenUrl, store::TokenKey};
///
/// let url = TokenUrl::parse("https://login.mypurecloud.ie/oauth/token")?;
/// let key = TokenKey::new(&url, "my-client")
///     .with_scope("users:readonly analytics:readonly")
///     .with_secret(ClientSecret::new("the secret"));
/// assert_eq!(key.scope(), Some("analytics:readonly users:readonly"));
/// let other = key.clone().with_scope("admin");
/// assert_ne!(key.id(), other.id());
/// # Ok::<(), tokenwarden::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKey {
    token_url: TokenUrl,
    client_id: String,
    /// Sorted, deduplicated, space-separated; `None` for "the client's default scope".
    scope: Option<String>,
    secret: Option<ClientSecret>,
    /// Which token of a pool (0: the first, or the only one).
    slot: u32,
}

impl TokenKey {
    /// The key of tokens from `token_url` for `client_id`, with the client's default scope and no
    /// secret bound (add them with [`with_scope`](Self::with_scope) and
    /// [`with_secret`](Self::with_secret)).
    pub fn new(token_url: &TokenUrl, client_id: impl Into<String>) -> Self {
        Self {
            token_url: token_url.clone(),
            client_id: client_id.into(),
            scope: None,
            secret: None,
            slot: 0,
        }
    }

    /// Tokens requested with these space-separated scopes. An empty list means the client's
    /// default scope, as when no scope is requested.
    pub fn with_scope(mut self, scope: impl AsRef<str>) -> Self {
        let mut scopes: Vec<&str> = scope.as_ref().split_whitespace().collect();
        scopes.sort_unstable();
        scopes.dedup();
        self.scope = (!scopes.is_empty()).then(|| scopes.join(" "));
        self
    }

    /// Tokens obtained with this client secret: a store does not serve them once the secret
    /// differs.
    pub fn with_secret(mut self, secret: ClientSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// The key of token `slot` of a token pool (slot 0 is the key itself): each token of a pool
    /// has its own store entry, lock and rate budget.
    pub fn with_slot(mut self, slot: u32) -> Self {
        self.slot = slot;
        self
    }

    /// Which token of a pool this key is (0 for the first, or only, one).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> &TokenUrl {
        &self.token_url
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The requested scopes, sorted and space-separated; `None` for the client's default.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The client secret the tokens are bound to, if any.
    pub(crate) fn secret(&self) -> Option<&ClientSecret> {
        self.secret.as_ref()
    }

    /// A stable name for this key's store entry (a file name, a Redis key): 32 hex digits of a
    /// SHA-256 over the token URL, client id and scope (and the pool slot, beyond the first). It
    /// does not depend on the secret, so a changed secret replaces the entry instead of leaving
    /// the old one behind.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"tokenwarden token key v1\0");
        for part in [
            Some(self.token_url.as_str()),
            Some(self.client_id.as_str()),
            self.scope.as_deref(),
        ] {
            match part {
                // Length-prefixed, so that no two different keys hash the same bytes.
                Some(p) => {
                    h.update([1]);
                    h.update((p.len() as u64).to_le_bytes());
                    h.update(p.as_bytes());
                }
                None => h.update([0]),
            }
        }
        // Slot 0 hashes as keys did before pools existed, so that their entries stay valid.
        if self.slot > 0 {
            h.update(b"slot");
            h.update(self.slot.to_le_bytes());
        }
        super::fingerprint::hex(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> TokenUrl {
        TokenUrl::parse(s).unwrap()
    }

    #[test]
    fn scope_is_a_set_and_part_of_the_id() {
        let base = TokenKey::new(&url("https://login.example/oauth/token"), "c");
        let a = base.clone().with_scope("users:readonly admin");
        let b = base.clone().with_scope("  admin users:readonly admin ");
        assert_eq!(a, b);
        assert_eq!(a.scope(), Some("admin users:readonly"));
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), base.id());
        assert_ne!(a.id(), base.clone().with_scope("admin").id());
        assert_eq!(base.clone().with_scope(" ").id(), base.id());
    }

    #[test]
    fn id_depends_on_url_client_and_scope_but_not_the_secret() {
        let k = TokenKey::new(&url("https://login.example/oauth/token"), "c");
        assert_eq!(k.id().len(), 32);
        assert!(k.id().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            k.id(),
            k.clone()
                .with_secret(ClientSecret::new("s-1-xxxxxxxx"))
                .id()
        );
        assert_ne!(
            k.id(),
            TokenKey::new(&url("https://login.example/oauth/token"), "d").id()
        );
        assert_ne!(
            k.id(),
            TokenKey::new(&url("https://login.other/oauth/token"), "c").id()
        );
        // Field boundaries matter: ("ab", no scope) is not ("a", "b").
        let k0 = TokenKey::new(&url("https://login.example/oauth/token"), "ab");
        let k1 = TokenKey::new(&url("https://login.example/oauth/token"), "a").with_scope("b");
        assert_ne!(k0.id(), k1.id());
        // Each token of a pool has its own entry; the first is the key's own.
        assert_eq!(k.clone().with_slot(0).id(), k.id());
        assert_ne!(k.clone().with_slot(1).id(), k.id());
        assert_ne!(k.clone().with_slot(1).id(), k.clone().with_slot(2).id());
        // The URL is compared normalised.
        assert_eq!(
            TokenKey::new(&url("HTTPS://Login.Example/oauth/token"), "c").id(),
            k.id()
        );
    }
}

#[cfg(test)]
mod unchanged_ids {
    use super::*;

    /// Store entries (token files, Redis keys) are named by [`TokenKey::id`]: the ids of these
    /// spellings were computed before the token URL became a [`TokenUrl`], and must stay as they
    /// were so that existing caches stay valid.
    #[test]
    fn ids_of_known_spellings_are_unchanged() {
        let id = |url: &str, client: &str, scope: Option<&str>, slot: u32| {
            let mut k = TokenKey::new(&TokenUrl::parse(url).unwrap(), client).with_slot(slot);
            if let Some(s) = scope {
                k = k.with_scope(s);
            }
            k.id()
        };
        let got = [
            id(
                "https://login.mypurecloud.ie/oauth/token",
                "client-a",
                None,
                0,
            ),
            id(
                "HTTPS://Login.MyPureCloud.IE/oauth/token",
                "client-a",
                None,
                0,
            ),
            id(
                "https://login.mypurecloud.ie:443/oauth/token",
                "client-a",
                None,
                0,
            ),
            id("https://login.mypurecloud.ie", "client-a", None, 0),
            id("https://login.mypurecloud.ie/", "client-a", None, 0),
            id("http://127.0.0.1:8080/oauth/token", "client-a", None, 0),
            id("http://LOCALHOST:80/oauth/token", "client-a", None, 0),
            id(
                "https://login.mypurecloud.ie/oauth/token",
                "client-a",
                Some("b a"),
                0,
            ),
            id(
                "https://login.mypurecloud.ie/oauth/token",
                "client-a",
                None,
                3,
            ),
            id(
                "https://login.example.test/oauth/token?x=1",
                "c",
                Some("admin"),
                1,
            ),
        ];
        assert_eq!(
            got,
            [
                "66e1c18035d94f7a781c3527b02c7f83",
                "66e1c18035d94f7a781c3527b02c7f83",
                "66e1c18035d94f7a781c3527b02c7f83",
                "c6d9e98441db958859435c4017921def",
                "c6d9e98441db958859435c4017921def",
                "37550d84301ac6ea5bebf892e52a270c",
                "179141f04d5d770f5b6de5b7b4dd14cd",
                "1d982d4bb9fd05ac155222a3313e37e1",
                "4703c8111edf0921064e295f69b0de82",
                "da48cd737c5bb474f6faf56c77ca117c",
            ]
        );
    }
}
