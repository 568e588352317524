//! `tokenwarden.Auth`'s core: one `TokenManager`, asked for a token without leaving the GIL
//! while the token is fresh, and waited for with the GIL released when it is not.

use crate::{errors, runtime};
use futures::FutureExt as _;
use pyo3::prelude::*;
use tokenwarden::{
    AccessToken, Bearer, ClientCredentials, ClientSecret, StaticToken, TokenEndpoint, TokenManager,
    grant::ClientAuth,
};
use tokenwarden_config::{Credentials, Flags, Inputs, ReadError, Settings};

/// The token of a bearer, as Python receives it.
fn text(b: &Bearer) -> String {
    b.access_token().expose_secret().to_owned()
}

/// Keeps a valid access token for one client: refreshed ahead of expiry in the background, one
/// token request at a time however many threads and tasks ask, a refused token replaced once.
#[pyclass(frozen, module = "tokenwarden._tokenwarden")]
pub(crate) struct Auth {
    pub(crate) tokens: TokenManager,
    token_url: String,
    client_id: Option<String>,
    pub(crate) api_base: String,
    pub(crate) allow_insecure_http: bool,
    origin: String,
}

impl Auth {
    fn build(
        tokens: TokenManager,
        token_url: String,
        client_id: Option<String>,
        api_base: String,
        allow_insecure_http: bool,
    ) -> PyResult<Auth> {
        let origin = url::Url::parse(&api_base)
            .map_err(|e| errors::argument(format!("API base '{api_base}' is not a URL: {e}")))?
            .origin()
            .ascii_serialization();
        Ok(Auth {
            tokens,
            token_url,
            client_id,
            api_base,
            allow_insecure_http,
            origin,
        })
    }

    /// The token without waiting: `Some` on the fast path (also in the refresh window, which starts
    /// a background refresh), `None` when a token must first be fetched.
    fn now(&self) -> PyResult<Option<String>> {
        // A background refresh is spawned from here: on the module's runtime.
        runtime::check_fork()?;
        let _rt = runtime::get().enter();
        match self.tokens.bearer().now_or_never() {
            Some(Ok(b)) => Ok(Some(text(&b))),
            Some(Err(e)) => Err(errors::library(e)),
            None => Ok(None),
        }
    }
}

#[pymethods]
impl Auth {
    /// Client credentials at `token_url`.
    #[new]
    #[pyo3(signature = (token_url, client_id, client_secret, scope=None, api_base=None, client_auth="basic", allow_insecure_http=false))]
    fn new(
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
        api_base: Option<&str>,
        client_auth: &str,
        allow_insecure_http: bool,
    ) -> PyResult<Auth> {
        let how = match client_auth.to_ascii_lowercase().as_str() {
            "basic" => ClientAuth::Basic,
            "form" => ClientAuth::FormFields,
            other => {
                return Err(errors::argument(format!(
                    "client_auth '{other}': use 'basic' or 'form'"
                )));
            }
        };
        if client_id.trim().is_empty() {
            return Err(errors::argument("client_id is empty"));
        }
        if client_secret.trim().is_empty() {
            return Err(errors::argument("client_secret is empty"));
        }
        let endpoint = if allow_insecure_http {
            TokenEndpoint::allow_insecure_http(token_url)
        } else {
            TokenEndpoint::new(token_url)
        }
        .map_err(errors::library)?
        .with_client_auth(how);
        let api_base = match api_base {
            Some(a) => a.trim_end_matches('/').to_owned(),
            None => tokenwarden_config::api_base_for(endpoint.url()),
        };
        let mut grant =
            ClientCredentials::new(endpoint, client_id.trim(), ClientSecret::new(client_secret));
        if let Some(s) = scope.filter(|s| !s.trim().is_empty()) {
            grant = grant.with_scope(s.trim());
        }
        let tokens = TokenManager::builder(grant).build();
        Auth::build(
            tokens,
            token_url.to_owned(),
            Some(client_id.trim().to_owned()),
            api_base,
            allow_insecure_http,
        )
    }

    /// Settings as the command line reads them; returns the core and the warnings to show.
    #[staticmethod]
    #[pyo3(signature = (profile=None))]
    fn from_env(profile: Option<String>) -> PyResult<(Auth, Vec<String>)> {
        let flags = Flags {
            profile,
            ..Flags::default()
        };
        let mut warnings = Vec::new();
        // Files are read here (small, local): no need to leave the GIL for it.
        let resolved = {
            let inputs = Inputs::from_system(&flags, &tokenwarden_config::process_env);
            let mut no_stdin = || {
                Err(ReadError::Io(std::io::Error::other(
                    "standard input is not read from Python",
                )))
            };
            tokenwarden_config::resolve(&inputs, &mut no_stdin, &mut warnings)
        };
        let mut shown: Vec<String> = warnings.into_iter().map(|w| w.text).collect();
        let settings = resolved.map_err(errors::config)?;
        let auth = from_settings(settings, &mut shown)?;
        Ok((auth, shown))
    }

    /// A valid token, waiting (GIL released) only when none is at hand.
    fn token(&self, py: Python<'_>) -> PyResult<String> {
        if let Some(t) = self.now()? {
            return Ok(t);
        }
        let tokens = self.tokens.clone();
        runtime::wait(py, async move { tokens.bearer().await })?
            .map(|b| text(&b))
            .map_err(errors::library)
    }

    /// The token if one is at hand now (no waiting), else `None`.
    fn token_nowait(&self) -> PyResult<Option<String>> {
        self.now()
    }

    /// An awaitable of a valid token.
    fn token_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        runtime::for_asyncio()?;
        let tokens = self.tokens.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            tokens
                .bearer()
                .await
                .map(|b| text(&b))
                .map_err(errors::library)
        })
    }

    /// Reports that the API refused `token` (a 401) and returns the token to retry with.
    fn rejected(&self, py: Python<'_>, token: &str) -> PyResult<String> {
        let tokens = self.tokens.clone();
        let token = token.to_owned();
        runtime::wait(py, async move { rejected(&tokens, &token).await })?.map_err(errors::library)
    }

    /// An awaitable of [`rejected`](Self::rejected).
    fn rejected_async<'py>(&self, py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyAny>> {
        runtime::for_asyncio()?;
        let tokens = self.tokens.clone();
        let token = token.to_owned();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            rejected(&tokens, &token).await.map_err(errors::library)
        })
    }

    /// Notes that the API accepted `token` (any answer but 401), for [`may_heal_again`].
    ///
    /// [`may_heal_again`]: Self::may_heal_again
    fn accepted(&self, token: &str) {
        if let Some(c) = self.tokens.current()
            && c.access_token().expose_secret() == token
        {
            c.mark_accepted();
        }
    }

    /// The library's rule for a 401 right after a heal: heal again only when the token it
    /// carried was revoked meanwhile (the API had accepted it, or it was already replaced);
    /// otherwise the client is not allowed, and refreshing again would loop.
    fn may_heal_again(&self, token: &str) -> bool {
        match self.tokens.current() {
            Some(c) if c.access_token().expose_secret() == token => c.was_accepted(),
            _ => true,
        }
    }

    /// The token endpoint.
    #[getter]
    fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The OAuth client id (`None` for a static token).
    #[getter]
    fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The API base URL the token is for.
    #[getter]
    fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The API's origin (`scheme://host[:port]`): the only one the token is sent to.
    #[getter]
    fn origin(&self) -> &str {
        &self.origin
    }

    /// The grant: `client_credentials` or `static`.
    #[getter]
    fn grant(&self) -> &'static str {
        self.tokens.grant_name()
    }

    /// Counters: tokens fetched, token requests, refreshes by reason, failures.
    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let m = self.tokens.metrics();
        vec![
            ("tokens_fetched", m.tokens_fetched),
            ("token_requests", m.token_requests),
            ("proactive_refreshes", m.proactive_refreshes),
            ("reactive_refreshes", m.reactive_refreshes),
            ("rejected_refreshes", m.rejected_refreshes),
            ("refresh_failures", m.refresh_failures),
        ]
    }
}

/// Keyed on the refused token: if it is still the current one, it is withdrawn and one refresh
/// starts (however many callers report it); if it was already replaced, the current token is the
/// answer and nothing is fetched.
async fn rejected(tokens: &TokenManager, token: &str) -> Result<String, tokenwarden::Error> {
    match tokens.current() {
        Some(current) if current.access_token().expose_secret() == token => {
            tokens.rejected(&current).await.map(|b| text(&b))
        }
        _ => tokens.bearer().await.map(|b| text(&b)),
    }
}

/// The core for resolved settings; what Python cannot use is said in `warnings` or refused.
fn from_settings(s: Settings, warnings: &mut Vec<String>) -> PyResult<Auth> {
    if let Some(store) = s.token_store.as_ref().filter(|n| n.value != "memory") {
        warnings.push(format!(
            "token_store '{}' ({}) is not used from Python: this process keeps its own token",
            tokenwarden_config::masked(&store.value),
            store.place
        ));
    }
    let (token_url, shown_url) = (
        s.require_token_url().cloned(),
        s.token_url_text().to_string(),
    );
    let (grant_tokens, client_id) = match s.credentials {
        Credentials::Client { id, secret } => {
            let url = token_url.map_err(errors::config)?;
            let endpoint = if s.allow_insecure_http {
                TokenEndpoint::allow_insecure_http(url)
            } else {
                TokenEndpoint::new(url)
            }
            .map_err(errors::library)?
            .with_client_auth(s.client_auth);
            let mut grant = ClientCredentials::new(endpoint, id.clone(), secret);
            if let Some(scope) = &s.scope {
                grant = grant.with_scope(scope.clone());
            }
            (TokenManager::builder(grant).build(), Some(id))
        }
        Credentials::Static(token) => (static_manager(token), None),
        Credentials::User { .. } => {
            return Err(errors::argument(format!(
                "profile '{}' acts as the signed-in person (grant = user, or --as-user): not supported from Python; use client credentials (GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET)",
                s.profile
            )));
        }
    };
    Auth::build(
        grant_tokens,
        shown_url,
        client_id,
        s.api_base,
        s.allow_insecure_http,
    )
}

fn static_manager(token: AccessToken) -> TokenManager {
    TokenManager::builder(StaticToken::new(token)).build()
}
