//! Deciding: the winning value of each setting, checked, turned into [`Settings`].

use super::endpoint::{self, UrlProblem};
use super::layers::{Layers, problem};
use super::secret::{self, MAX_SECRET_BYTES, ReadError};
use super::source::{Given, Value};
use super::table::{ENV_ACCESS_TOKEN, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REGION, Key};
use super::{Credentials, Settings};
use crate::Result;
use crate::error::ConfigError;
use tokenwarden::{AccessToken, ClientSecret, Region, TokenUrl, grant::ClientAuth};
use zeroize::Zeroizing;

/// Reads standard input for `--client-secret-stdin` (injected for tests).
pub(crate) type Stdin<'a> = &'a mut dyn FnMut() -> Result<Zeroizing<String>, ReadError>;

/// An endpoint URL and where it came from.
pub(crate) struct Endpoint<U = String> {
    pub(crate) url: U,
    pub(crate) from: String,
}

/// The token URL (`None` when none is used) and where it came from.
pub(crate) type TokenEndpoint = Endpoint<Option<TokenUrl>>;

/// The token URL and API base URL, from the first source that says where the API is.
pub(crate) fn endpoints(l: &Layers) -> Result<(TokenEndpoint, Endpoint)> {
    let Some((key, given)) = l.first(&[Key::TokenUrl, Key::Region]) else {
        return Err(ConfigError(format!(
            "no region or token URL: set --region (or {ENV_REGION}, e.g. eu-west-1 or mypurecloud.ie), or --token-url for another OAuth provider or the simulator"
        ))
        .into());
    };
    let (token_url, from) = match key {
        Key::TokenUrl => (
            TokenUrl::try_from(url(given, "token URL", l.allow_insecure_http)?),
            given.place(),
        ),
        _ => (
            TokenUrl::parse(&region(given)?.token_url()),
            format!("region, from {}", given.place()),
        ),
    };
    let token_url = token_url.map_err(|e| ConfigError(e.to_string()))?;
    let api = match l.first(&[Key::ApiBase, Key::Region, Key::TokenUrl]) {
        Some((Key::ApiBase, g)) => Endpoint {
            url: url(g, "API base", l.allow_insecure_http)?
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            from: g.place(),
        },
        Some((Key::Region, g)) => Endpoint {
            url: region(g)?.api_base(),
            from: format!("region, from {}", g.place()),
        },
        // The token URL was given at a rank above any API base or region: the API is beside it.
        _ => Endpoint {
            url: endpoint::api_base_for(&token_url),
            from: format!("derived from the token URL ({from})"),
        },
    };
    let token = Endpoint {
        url: Some(token_url),
        from,
    };
    Ok((token, api))
}

/// For a static access token given without a region or token URL: the API base alone (the token
/// URL is not used, and says so).
fn api_only(l: &Layers) -> Result<(TokenEndpoint, Endpoint)> {
    let Some((_, g)) = l.first(&[Key::ApiBase]) else {
        return Err(ConfigError(format!(
            "no region or API base for the access token in {ENV_ACCESS_TOKEN}: set --region (or {ENV_REGION}, e.g. eu-west-1), or --api-base"
        ))
        .into());
    };
    let api = Endpoint {
        url: url(g, "API base", l.allow_insecure_http)?
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        from: g.place(),
    };
    let token = Endpoint {
        url: None,
        from: "not needed".into(),
    };
    Ok((token, api))
}

/// The region a value names.
pub(crate) fn region(g: &Given) -> Result<Region> {
    let place = (!g.from.is_typed()).then(|| g.place());
    endpoint::region(g.text(), place.as_deref()).map_err(|m| problem(&g.from, m))
}

fn url(g: &Given, what: &str, insecure_ok: bool) -> Result<url::Url> {
    endpoint::check_url(g.text(), insecure_ok).map_err(|p| {
        let m = match p {
            UrlProblem::Invalid(why) => format!(
                "{what} '{}' ({}) is not usable: {why}\nhint: give a full URL such as {}",
                endpoint::masked(g.text()),
                g.place(),
                if what == "token URL" {
                    "https://login.mypurecloud.ie/oauth/token"
                } else {
                    "https://api.mypurecloud.ie"
                }
            ),
            UrlProblem::Insecure => format!(
                "{what} {} ({}) is plain http to a host other than loopback: the client secret and tokens would travel in clear text\nhint: use https, or add --allow-insecure-http if you must",
                endpoint::masked(g.text()),
                g.place()
            ),
        };
        problem(&g.from, m)
    })
}

/// Turns the layers into settings, reading a secret file or standard input only for the secret
/// that wins.
pub(crate) fn settings(mut l: Layers, stdin: Stdin<'_>) -> Result<Settings> {
    // A client id or secret from a flag or the environment means client credentials, which can
    // refresh; otherwise a token in the environment beats credentials from a profile.
    let direct_client = l
        .given
        .iter()
        .any(|(k, g)| matches!(k, Key::ClientId | Key::ClientSecret) && g.from.rank() <= 1);
    let grant = grant(&l)?;
    // A static access token needs no token endpoint: only where the API is.
    let static_token = l.first(&[Key::AccessToken]).is_some() && !direct_client && grant.is_none();
    let (token, api) = match endpoints(&l) {
        Err(_) if static_token && l.first(&[Key::TokenUrl, Key::Region]).is_none() => api_only(&l)?,
        r => r?,
    };
    let mut sources = vec![("token URL", token.from), ("API base", api.from)];

    let access_token = l.take_first(Key::AccessToken);
    // A token in the environment beats a profile's `grant = "user"`, not `--as-user`.
    let as_user = grant.as_ref().is_some_and(|rank| {
        !access_token
            .as_ref()
            .is_some_and(|tok| !direct_client && tok.from.rank() < *rank)
    });
    let credentials = match access_token {
        _ if as_user => {
            let Some(id) = l.first(&[Key::ClientId]).map(|(_, g)| g.clone()) else {
                return Err(ConfigError(format!(
                    "no client id to sign in with: set {ENV_CLIENT_ID} or --client-id, or put client_id in the profile (the OAuth client whose Authorization Code grant you sign in through)"
                ))
                .into());
            };
            sources.push(("client id", id.place()));
            let secret = match l.take_first(Key::ClientSecret) {
                Some(secret) => {
                    sources.push(("client secret", secret.place()));
                    Some(load_secret(secret, stdin)?)
                }
                None => None,
            };
            Credentials::User {
                id: id.text().to_string(),
                secret,
            }
        }
        Some(tok) if !direct_client => {
            sources.push(("access token", tok.place()));
            Credentials::Static(AccessToken::new(tok.value.as_str()))
        }
        _ => {
            let id = l.first(&[Key::ClientId]).map(|(_, g)| g.clone());
            let secret = l.take_first(Key::ClientSecret);
            match (id, secret) {
                (Some(id), Some(secret)) => {
                    sources.push(("client id", id.place()));
                    sources.push(("client secret", secret.place()));
                    Credentials::Client {
                        id: id.text().to_string(),
                        secret: load_secret(secret, stdin)?,
                    }
                }
                (Some(id), None) => {
                    return Err(ConfigError(format!(
                        "no client secret for client id '{}' (from {}): set {ENV_CLIENT_SECRET}, use --client-secret-file or --client-secret-stdin, or put client_secret in the profile",
                        id.text(),
                        id.place()
                    ))
                    .into());
                }
                (None, Some(secret)) => {
                    return Err(ConfigError(format!(
                        "no client id to go with the client secret from {}: set {ENV_CLIENT_ID} or --client-id, or put client_id in the profile",
                        secret.place()
                    ))
                    .into());
                }
                (None, None) => {
                    return Err(ConfigError(format!(
                        "no credentials: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (or --client-id and a secret option, or a profile), or {ENV_ACCESS_TOKEN}"
                    ))
                    .into());
                }
            }
        }
    };
    let client_auth = match l.first(&[Key::ClientAuth]) {
        None => ClientAuth::Basic,
        Some((_, g)) => match g.text().to_ascii_lowercase().as_str() {
            "basic" => ClientAuth::Basic,
            "form" => ClientAuth::FormFields,
            other => {
                return Err(problem(
                    &g.from,
                    format!("client_auth '{other}' ({}): use basic or form", g.place()),
                ));
            }
        },
    };
    let scope = l.first(&[Key::Scope]).map(|(_, g)| g.text().to_string());
    let authorize_url = match l.first(&[Key::AuthorizeUrl, Key::TokenUrl, Key::Region]) {
        Some((Key::AuthorizeUrl, g)) => {
            Some(url(g, "authorize URL", l.allow_insecure_http)?.to_string())
        }
        // Beside the token endpoint, as Genesys has it: login.X/oauth/token → login.X/oauth/authorize.
        _ => token
            .url
            .as_ref()
            .and_then(|u| endpoint::authorize_url_for(u.as_str())),
    };
    let redirect_uri = l
        .first(&[Key::RedirectUri])
        .map_or(super::DEFAULT_REDIRECT_URI, |(_, g)| g.text())
        .to_string();
    let token_store = l.first(&[Key::TokenStore]).map(|(_, g)| super::Named {
        value: g.text().to_string(),
        place: g.place(),
        typed: g.from.is_typed(),
    });
    Ok(Settings {
        token_url: token.url,
        api_base: api.url,
        credentials,
        client_auth,
        scope,
        token_store,
        allow_insecure_http: l.allow_insecure_http,
        profile: l.profile.0.clone(),
        authorize_url,
        redirect_uri,
        sources: sources
            .into_iter()
            .map(|(what, from)| (what.to_string(), from))
            .collect(),
    })
}

/// The rank of the source that says to act as the signed-in person, if one does (the first source
/// giving `grant` decides).
///
/// # Errors
/// A `grant` other than `user` or `client_credentials`.
fn grant(l: &Layers) -> Result<Option<u8>> {
    let Some((_, g)) = l.first(&[Key::Grant]) else {
        return Ok(None);
    };
    match g.text().to_ascii_lowercase().as_str() {
        super::GRANT_USER => Ok(Some(g.from.rank())),
        "client_credentials" => Ok(None),
        other => Err(problem(
            &g.from,
            format!(
                "grant '{other}' ({}): use user (act as the person signed in with `tokenwarden login`) or client_credentials",
                g.place()
            ),
        )),
    }
}

/// The secret a value gives: moved out of a wiped buffer into a `ClientSecret`.
fn load_secret(g: Given, stdin: Stdin<'_>) -> Result<ClientSecret> {
    let cannot = |e: &dyn std::fmt::Display, path: &str| {
        problem(
            &g.from,
            format!(
                "cannot read the client secret ({}) from {path}: {e}",
                g.place()
            ),
        )
    };
    let text = match &g.value {
        Value::Secret(_) | Value::Text(_) => return Ok(ClientSecret::new(g.value.as_str())),
        Value::SecretFile(p) => secret::read_file(p, MAX_SECRET_BYTES)
            .map_err(|e| cannot(&e, &p.display().to_string()))?,
        Value::SecretStdin => stdin().map_err(|e| cannot(&e, "standard input"))?,
    };
    // The file or stream was there: an empty one is a credentials problem, wherever it was named.
    match secret::first_line(&text) {
        Some(s) => Ok(ClientSecret::new(s)),
        None => Err(ConfigError(format!(
            "no client secret in {}: its first line is empty",
            match &g.value {
                Value::SecretFile(p) => format!("{} ({})", p.display(), g.place()),
                _ => "standard input (--client-secret-stdin)".into(),
            }
        ))
        .into()),
    }
}
