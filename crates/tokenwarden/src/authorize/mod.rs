//! The Authorization Code flow with PKCE: how a person signs in and a refresh token is obtained.
//!
//! [`AuthorizationCode`] builds the authorize URL (PKCE `S256` always, a fresh `state`), checks the
//! callback the browser brings back ([`AuthorizationRequest::callback`]) and exchanges the code for
//! tokens ([`AuthorizationCode::exchange`]). [`LoopbackListener`] is the one-shot listener on a
//! loopback redirect URI that receives that callback (RFC 8252 §7.3). None of it needs the command
//! line: a desktop program can sign its user in with these three steps.

mod callback;
mod loopback;

pub use crate::error::{AuthorizationError, CallbackProblem, SignInFailure};
pub use callback::MAX_CALLBACK_HEAD;
pub use loopback::LoopbackListener;

use crate::error::Error;
use crate::grant::{FetchError, TokenEndpoint, TokenResponse};
use crate::secret::ClientSecret;
use base64::Engine as _;
use url::Url;
use zeroize::Zeroizing;

/// The Authorization Code grant with PKCE for one OAuth client and redirect URI.
///
/// A confidential client ([`with_secret`](Self::with_secret)) also authenticates with its secret
/// when exchanging the code; a public client sends its `client_id` alone. PKCE (`S256`) is used
/// either way.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden::Error> {
/// use std::time::Duration;
/// use tokenwarden::{authorize::AuthorizationCode, authorize::LoopbackListener, TokenEndpoint};
///
/// let flow = AuthorizationCode::new(
///     "https://login.mypurecloud.ie/oauth/authorize",
///     TokenEndpoint::new("https://login.mypurecloud.ie/oauth/token")?,
///     "my-client-id",
///     "http://127.0.0.1:8765/callback", // registered on the OAuth client
/// )?;
/// let listener = LoopbackListener::bind(flow.redirect_uri()).await?;
/// let request = flow.start();
/// println!("open {} in a browser", request.url()); // holds no secret
/// let code = listener.wait(&request, Duration::from_secs(300)).await?;
/// let tokens = flow.exchange(&request, &code).await?;
/// let refresh_token = tokens.refresh_token.expect("a refresh token");
/// # let _ = refresh_token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizationCode {
    authorize_url: Url,
    endpoint: TokenEndpoint,
    client_id: String,
    secret: Option<ClientSecret>,
    redirect_uri: Url,
    scope: Option<String>,
}

impl std::fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.endpoint.url().as_str())
            .field("client_id", &self.client_id)
            .field("confidential", &self.secret.is_some())
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("scope", &self.scope)
            .finish()
    }
}

/// A code the authorization server sent back: short-lived and single use, but a credential until
/// exchanged, so it is kept in a buffer wiped when dropped and never printed.
pub struct Code(Zeroizing<String>);

impl Code {
    /// The code itself.
    ///
    /// **Security:** only to be sent to the token endpoint.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code([redacted])")
    }
}

/// One sign-in in progress: the URL to open, and the `state` and PKCE verifier that the callback
/// and the exchange are checked against. Start a new one for each attempt.
pub struct AuthorizationRequest {
    url: Url,
    redirect_uri: Url,
    state: Zeroizing<String>,
    verifier: Zeroizing<String>,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequest {
    /// The URL to open in the person's browser. It holds the client id, the redirect URI, the
    /// scope, the `state` and the PKCE challenge: no secret (the verifier never leaves the process).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The redirect URI the callback must come to.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Checks a callback, given as the request target the browser asked the redirect URI for
    /// (`/callback?code=...&state=...`): the path must be the redirect URI's and the `state` this
    /// request's (compared in constant time), then the code (or the authorization server's
    /// error) is taken.
    ///
    /// # Errors
    /// [`CallbackProblem::NotTheCallback`] (another path: a favicon request), and
    /// [`CallbackProblem::WrongState`] (not the answer to this request: ignore it and keep
    /// waiting); [`CallbackProblem::Refused`] when the server answered with an error
    /// (`access_denied` when the person refused).
    pub fn callback(&self, target: &str) -> Result<Code, CallbackProblem> {
        callback::check(self, target)
    }
}

/// 32 random bytes, base64url: 43 characters, as RFC 7636 recommends for a verifier.
fn random_token() -> Zeroizing<String> {
    let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

/// The S256 challenge of `verifier`: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
fn challenge(verifier: &str) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

impl AuthorizationCode {
    /// The flow for public client `client_id` (add a secret for a confidential one), signing in
    /// at `authorize_url` and exchanging codes at `endpoint`, with `redirect_uri` as registered
    /// on the client.
    ///
    /// # Errors
    /// [`Error::Config`] when a URL does not parse, the authorize URL is plain `http://` to a
    /// host other than loopback, or the redirect URI is not `http(s)`.
    pub fn new(
        authorize_url: &str,
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        redirect_uri: &str,
    ) -> Result<Self, Error> {
        let authorize_url = Url::parse(authorize_url).map_err(|e| {
            Error::Config(format!("authorize URL {authorize_url:?} is not a URL: {e}"))
        })?;
        crate::transport::check_scheme(&authorize_url, false, "authorize URL")?;
        let redirect_uri = Url::parse(redirect_uri).map_err(|e| {
            Error::Config(format!("redirect URI {redirect_uri:?} is not a URL: {e}"))
        })?;
        if !matches!(redirect_uri.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "redirect URI {redirect_uri} is not http(s)"
            )));
        }
        Ok(Self {
            authorize_url,
            endpoint,
            client_id: client_id.into(),
            secret: None,
            redirect_uri,
            scope: None,
        })
    }

    /// Like [`new`](Self::new), but accepts a plain `http://` authorize URL to any host.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn allow_insecure_http(
        authorize_url: &str,
        endpoint: TokenEndpoint,
        client_id: impl Into<String>,
        redirect_uri: &str,
    ) -> Result<Self, Error> {
        let parsed = Url::parse(authorize_url).map_err(|e| {
            Error::Config(format!("authorize URL {authorize_url:?} is not a URL: {e}"))
        })?;
        let mut flow = Self::new("http://127.0.0.1/", endpoint, client_id, redirect_uri)?;
        flow.authorize_url = parsed;
        Ok(flow)
    }

    /// A confidential client: the code exchange authenticates with `secret` too.
    pub fn with_secret(mut self, secret: ClientSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Asks for these space-separated scopes.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The redirect URI.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the client authenticates with a secret.
    pub fn is_confidential(&self) -> bool {
        self.secret.is_some()
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// Starts a sign-in: a fresh `state` and PKCE verifier, and the URL to open.
    pub fn start(&self) -> AuthorizationRequest {
        let state = random_token();
        let verifier = random_token();
        let mut url = self.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.redirect_uri.as_str())
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(s) = &self.scope {
                q.append_pair("scope", s);
            }
        }
        AuthorizationRequest {
            url,
            redirect_uri: self.redirect_uri.clone(),
            state,
            verifier,
        }
    }

    /// Exchanges `code` (from `request`'s callback) for tokens: `grant_type=authorization_code`
    /// with the redirect URI and PKCE verifier, and the client's secret when it is confidential.
    /// Each code works once: retrying a failed exchange is pointless, so nothing is retried.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the endpoint refuses (a used or expired code, a wrong verifier
    /// or redirect URI, a wrong secret: its description says which);
    /// [`Error::TokenEndpointUnavailable`] for a transient failure, [`Error::TokenDecode`] for an
    /// answer that is not a token.
    pub async fn exchange(
        &self,
        request: &AuthorizationRequest,
        code: &Code,
    ) -> Result<TokenResponse, Error> {
        let params = [
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", request.redirect_uri.as_str()),
            ("code_verifier", &request.verifier),
        ];
        self.endpoint
            .request(
                &self.client_id,
                self.secret.as_ref(),
                &params,
                "authorization_code",
            )
            .await
            .map_err(|e| match e {
                FetchError::Fatal(e) => e,
                FetchError::Transient { reason, .. } | FetchError::Unreachable { reason } => {
                    Error::TokenEndpointUnavailable {
                        attempts: 1,
                        elapsed: std::time::Duration::ZERO,
                        last: reason,
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> AuthorizationCode {
        AuthorizationCode::new(
            "https://login.example/oauth/authorize",
            TokenEndpoint::new("https://login.example/oauth/token").unwrap(),
            "client-1",
            "http://127.0.0.1:8765/callback",
        )
        .unwrap()
        .with_scope("users:readonly")
    }

    #[test]
    fn the_url_carries_pkce_s256_and_a_fresh_state_and_no_secret() {
        let f = flow().with_secret(ClientSecret::new("authorize-unit-secret"));
        let (a, b) = (f.start(), f.start());
        let q: std::collections::HashMap<_, _> = a.url().query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "client-1");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8765/callback");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], challenge(&a.verifier));
        assert_eq!(q["state"].as_str(), a.state.as_str());
        assert_eq!(q["scope"], "users:readonly");
        assert_eq!(q["state"].len(), 43);
        assert_ne!(a.state.as_str(), b.state.as_str());
        assert_ne!(a.verifier.as_str(), b.verifier.as_str());
        let shown = format!("{} {a:?} {f:?}", a.url());
        assert!(!shown.contains(a.verifier.as_str()), "{shown}");
        assert!(!shown.contains("authorize-unit-secret"), "{shown}");
    }

    #[test]
    fn s256_is_the_rfc_7636_example() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn urls_are_checked() {
        let ep = || TokenEndpoint::new("https://login.example/oauth/token").unwrap();
        assert!(AuthorizationCode::new("nope", ep(), "c", "http://127.0.0.1:1/cb").is_err());
        assert!(
            AuthorizationCode::new("http://login.example/a", ep(), "c", "http://127.0.0.1:1/cb")
                .is_err()
        );
        assert!(AuthorizationCode::new("https://l.example/a", ep(), "c", "ftp://x/cb").is_err());
        assert!(
            AuthorizationCode::allow_insecure_http(
                "http://login.example/a",
                ep(),
                "c",
                "http://127.0.0.1:1/cb"
            )
            .is_ok()
        );
    }
}
