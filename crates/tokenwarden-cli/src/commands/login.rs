//! `tokenwarden login`, `logout` and `whoami`: signing in as a person, and what that sign-in is.

use super::session;
use crate::ConfigError;
use crate::args::{GlobalArgs, LoginArgs, WhoamiArgs};
use crate::config::Settings;
use crate::exit::FailedError;
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::io::Write as _;
use std::time::Duration;
use tokenwarden::{
    ApiClient, Error, StaticToken, TokenManager, TokenResponse, TokenStore as _,
    authorize::AuthorizationCode, authorize::CallbackProblem, authorize::LoopbackListener,
    authorize::SignInFailure, session::Session, session::SessionUser, store::StoredToken,
};

/// How long `login` waits for the browser by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where Genesys Cloud keeps an OAuth client's redirect URIs, for messages.
const WHERE_TO_REGISTER: &str =
    "Genesys Cloud: Admin > Integrations > OAuth > the client > Authorized redirect URIs";

/// The settings for acting as the person (`--as-user` implied).
fn user_settings(mut g: GlobalArgs) -> Result<Settings> {
    g.connection.as_user = true;
    super::settings(&g)
}

pub(crate) async fn login(
    mut g: GlobalArgs,
    a: LoginArgs,
    hint: &mut Option<String>,
) -> Result<u8> {
    if a.redirect_uri.is_some() {
        g.connection.redirect_uri = a.redirect_uri.clone();
    }
    if a.authorize_url.is_some() {
        g.connection.authorize_url = a.authorize_url.clone();
    }
    let s = user_settings(g)?;
    let (client_id, secret) = session::user(&s)?;
    let Some(authorize_url) = s.authorize_url.clone() else {
        return Err(ConfigError(format!(
            "no authorization endpoint: the token URL {} does not end in /token, so set authorize_url (--authorize-url, TOKENWARDEN_AUTHORIZE_URL or authorize_url in the profile)",
            s.token_url_text()
        ))
        .into());
    };
    let endpoint = super::endpoint(&s)?;
    let mut flow = if s.allow_insecure_http {
        AuthorizationCode::allow_insecure_http(&authorize_url, endpoint, client_id, &s.redirect_uri)
    } else {
        AuthorizationCode::new(&authorize_url, endpoint, client_id, &s.redirect_uri)
    }
    .map_err(|e| ConfigError(e.to_string()))?;
    if let Some(secret) = secret {
        flow = flow.with_secret(secret.clone());
    }
    if let Some(scope) = &s.scope {
        flow = flow.with_scope(scope.clone());
    }
    let listener = LoopbackListener::bind(flow.redirect_uri())
        .await
        .map_err(|e| {
            ConfigError(format!(
                "{e}\nhint: the redirect URI comes from {}",
                source_of(&s, "redirect_uri")
            ))
        })?;
    let request = flow.start();
    let timeout = a.timeout.unwrap_or(DEFAULT_TIMEOUT);
    show_url(&request, &s, timeout, a.no_browser);

    let code = listener
        .wait(&request, timeout)
        .await
        .map_err(|e| explain_wait(e, &s, client_id))?;
    let tokens = match flow.exchange(&request, &code).await {
        Ok(t) => t,
        Err(e) => {
            let hint = if e.is_credentials() {
                format!(
                    "run `tokenwarden login{}` again; if it fails the same way, check that OAuth client {client_id:?} uses the Code Authorization grant{}",
                    s.profile_flag(),
                    if flow.is_confidential() {
                        " and that the client secret is its current one"
                    } else {
                        " (or PKCE, for a client without secret)"
                    }
                )
            } else {
                format!(
                    "run `tokenwarden login{}` again once the token endpoint answers",
                    s.profile_flag()
                )
            };
            let text = format!(
                "exchanging the sign-in code at {}: {e}\nhint: {hint}",
                s.token_url_text()
            );
            return Err(if e.is_credentials() {
                ConfigError(text).into()
            } else {
                anyhow::Error::msg(text)
            });
        }
    };
    let Some(refresh_token) = tokens.refresh_token.clone() else {
        return Err(ConfigError(format!(
            "the token endpoint signed you in but issued no refresh token, so later commands could not renew the access token: check that OAuth client {client_id:?} may use refresh tokens (the Code Authorization grant)"
        ))
        .into());
    };
    *hint = Some(s.credentials_hint());
    let (user, organization) = describe(&s, &tokens).await;
    let signed_in = Session {
        token_url: s.require_token_url()?.clone(),
        client_id: client_id.to_string(),
        confidential: flow.is_confidential(),
        scope: s.scope.clone(),
        refresh_token,
        user: user.clone(),
        organization: organization.clone(),
        signed_in_at: std::time::SystemTime::now(),
    };
    let where_kept = keep(&s, &signed_in, &tokens, secret, a.no_keyring).await?;
    let who = user
        .as_ref()
        .map_or_else(|| "a user".to_string(), user_line);
    crate::ui::summary(
        &format!(
            "signed in as {who}{} (profile '{}'); {where_kept}. Act as yourself with --as-user, or grant = \"user\" in the profile",
            organization
                .as_deref()
                .map(|o| format!(" to {o}"))
                .unwrap_or_default(),
            s.profile
        ),
        json!({
            "user": user,
            "organization": organization,
            "profile": s.profile,
        }),
    );
    Ok(crate::exit::OK)
}

/// Where a setting came from, for hints ("default" when nothing set it).
fn source_of(s: &Settings, what: &str) -> String {
    s.sources.iter().find(|(w, _)| w == what).map_or_else(
        || format!("the default, {}", crate::config::DEFAULT_REDIRECT_URI),
        |(_, f)| f.clone(),
    )
}

/// Shows the URL (always, even with `-q`: without it nobody can sign in) and opens the browser
/// unless told not to.
fn show_url(
    request: &tokenwarden::authorize::AuthorizationRequest,
    s: &Settings,
    timeout: Duration,
    no_browser: bool,
) {
    let url = request.url().as_str();
    let waiting = format!(
        "waiting up to {} for the sign-in on {}",
        tokenwarden::duration::human(timeout),
        s.redirect_uri
    );
    if !no_browser {
        match open::that_detached(url) {
            Ok(()) => {
                crate::ui::emit(
                    crate::ui::Kind::Note,
                    &format!(
                        "opened the browser to sign in ({waiting}); if it did not open, open this URL:"
                    ),
                    Value::Null,
                    true,
                );
            }
            Err(e) => crate::ui::emit(
                crate::ui::Kind::Note,
                &format!("could not open a browser ({e}); open this URL to sign in ({waiting}):"),
                Value::Null,
                true,
            ),
        }
    } else {
        crate::ui::emit(
            crate::ui::Kind::Note,
            &format!("open this URL in a browser to sign in ({waiting}):"),
            Value::Null,
            true,
        );
    }
    crate::ui::emit(crate::ui::Kind::Note, url, json!({ "url": url }), true);
}

/// The listener's failure, with what to do about it.
fn explain_wait(e: Error, s: &Settings, client_id: &str) -> anyhow::Error {
    match &e {
        Error::SignIn(SignInFailure::TimedOut { .. }) => FailedError(format!(
            "{e}\nhint: if the browser showed an error about the redirect URI (redirect_uri_mismatch), register exactly {} on OAuth client {client_id:?} ({WHERE_TO_REGISTER}), or set redirect_uri (--redirect-uri, or in the profile) to a loopback URI registered there; otherwise run `tokenwarden login{}` again and finish signing in within the time (--timeout)",
            s.redirect_uri,
            s.profile_flag()
        ))
        .into(),
        Error::SignIn(SignInFailure::Callback(CallbackProblem::Refused(refusal))) => {
            let hint = match refusal.error.as_str() {
                "access_denied" => format!(
                    "run `tokenwarden login{}` again and allow access; if you did allow it, your user may lack the permission to use OAuth client {client_id:?}",
                    s.profile_flag()
                ),
                "unauthorized_client" | "unsupported_response_type" => format!(
                    "OAuth client {client_id:?} is not allowed the authorization code grant: give it the Code Authorization grant type (or PKCE)"
                ),
                "invalid_scope" => "a requested scope is not allowed for this OAuth client: check --scope".into(),
                _ => format!("check OAuth client {client_id:?} and its grant type"),
            };
            ConfigError(format!("{e}\nhint: {hint}")).into()
        }
        _ => e.into(),
    }
}

/// Who signed in and to which organization, from the API (best effort: a sign-in does not fail
/// because the API cannot say who it is).
async fn describe(s: &Settings, tokens: &TokenResponse) -> (Option<SessionUser>, Option<String>) {
    let manager = TokenManager::builder(
        StaticToken::new(tokens.access_token.clone())
            .expires_in(tokens.expires_in.unwrap_or(Duration::from_secs(60))),
    )
    .build();
    let Ok(client) = ApiClient::builder(&s.api_base, manager)
        .allow_insecure_http(s.allow_insecure_http)
        .build()
    else {
        return (None, None);
    };
    let user = match client.current_user().await {
        Ok(me) => me.id.map(|id| SessionUser {
            id,
            name: me.name.as_deref().map(super::check::shown),
            email: me.email.as_deref().map(super::check::shown),
        }),
        Err(e) => {
            crate::ui::warn(&format!(
                "signed in, but the API did not say who you are: {e}"
            ));
            None
        }
    };
    let organization = client
        .token_identity()
        .await
        .ok()
        .and_then(|me| me.organization?.name)
        .as_deref()
        .map(super::check::shown);
    (user, organization)
}

fn user_line(u: &SessionUser) -> String {
    let name = u.name.as_deref().unwrap_or(&u.id);
    match &u.email {
        Some(e) => format!("{name} <{e}>"),
        None => name.to_string(),
    }
}

/// Stores the sign-in (replacing any other of the profile, and its cached access tokens) and
/// caches the access token that came with it; says where it is kept.
async fn keep(
    s: &Settings,
    signed_in: &Session,
    tokens: &TokenResponse,
    secret: Option<&tokenwarden::ClientSecret>,
    no_keyring: bool,
) -> Result<String> {
    let store = session::store(s, &signed_in.client_id)?;
    #[cfg(feature = "keyring")]
    let store = if no_keyring {
        session::store_without_keyring(s, &signed_in.client_id)?
    } else {
        match tokenwarden::session::SessionStore::keyring_available(session::KEYRING_SERVICE).await
        {
            Ok(()) => store,
            Err(e) => {
                tracing::info!(error = %e, "no OS keyring; keeping the refresh token in the file");
                session::store_without_keyring(s, &signed_in.client_id)?
            }
        }
    };
    #[cfg(not(feature = "keyring"))]
    let _ = no_keyring;
    let access = store.access_tokens(session::access_key(s, signed_in, secret)?);
    // Under both locks, in the order every refresh takes them: no process is rotating or caching
    // the old sign-in's tokens while it is replaced.
    let _access_lock = access.lock().await?;
    let _lock = tokenwarden::store::RefreshTokenStore::lock(&store).await?;
    store.remove().await?;
    store
        .write(signed_in)
        .await
        .context("storing the sign-in")?;
    let now = std::time::SystemTime::now();
    let cached = access
        .save(&StoredToken {
            access_token: tokens.access_token.clone(),
            obtained_at: now,
            expires_at: now + tokens.expires_in.unwrap_or(Duration::from_secs(60)),
        })
        .await;
    if let Err(e) = cached {
        tracing::debug!(error = %e, "not caching the first access token");
    }
    let kept = store
        .read()
        .await?
        .is_some_and(|_| store_in_keyring(&store));
    Ok(if kept {
        format!(
            "the refresh token is in the OS keyring, the rest in {}",
            store.path().display()
        )
    } else {
        format!(
            "the sign-in is kept in {} (readable only by you)",
            store.path().display()
        )
    })
}

/// Whether the stored record keeps its refresh token in the keyring.
fn store_in_keyring(store: &tokenwarden::session::SessionStore) -> bool {
    std::fs::read_to_string(store.path())
        .is_ok_and(|t| t.contains("\"refresh_token_in\":\"keyring\""))
}

pub(crate) async fn logout(g: GlobalArgs, hint: &mut Option<String>) -> Result<u8> {
    let s = user_settings(g)?;
    let (client_id, _) = session::user(&s)?;
    let store = session::store(&s, client_id)?;
    let Some(signed_in) = store.read().await? else {
        crate::ui::note(&format!(
            "not signed in for profile '{}': nothing to do",
            s.profile
        ));
        return Ok(crate::exit::OK);
    };
    *hint = Some(s.credentials_hint());
    // Revoke on the server first: a sign-in deleted here but alive there is still a credential.
    let revoked = async {
        let tokens = session::token_builder(&s).await?.build();
        let client = super::client_for(&s, &GlobalArgs::default(), tokens, None, None)?;
        let resp = client
            .request(http::Method::DELETE, "/api/v2/tokens/me")
            .send()
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "DELETE /api/v2/tokens/me answered HTTP {}",
                resp.status()
            ))
        }
    }
    .await;
    if let Err(e) = &revoked {
        crate::ui::warn(&format!(
            "could not revoke the sign-in on the server ({e:#}); deleting it here anyway"
        ));
    }
    {
        let _lock = tokenwarden::store::RefreshTokenStore::lock(&store).await?;
        store.remove().await?;
    }
    let who = signed_in
        .user
        .as_ref()
        .map_or_else(|| "the user".to_string(), user_line);
    crate::ui::summary(
        &format!(
            "signed out {who} (profile '{}'){}",
            s.profile,
            if revoked.is_ok() {
                "; the sign-in is revoked"
            } else {
                ""
            }
        ),
        json!({ "profile": s.profile, "revoked": revoked.is_ok() }),
    );
    Ok(crate::exit::OK)
}

pub(crate) async fn whoami(g: GlobalArgs, a: WhoamiArgs, hint: &mut Option<String>) -> Result<u8> {
    let s = user_settings(g)?;
    *hint = Some(s.credentials_hint());
    let (store, signed_in) = session::signed_in(&s).await?;
    let tokens = session::token_builder(&s).await?.build();
    let client = super::client_for(&s, &GlobalArgs::default(), tokens, None, None)?;
    let me = client.current_user().await?;
    let token = client.token_identity().await?;
    let scopes: Vec<String> = token
        .scopes
        .iter()
        .map(|s| super::check::shown(s))
        .collect();
    let shown = |t: &Option<String>| t.as_deref().map(super::check::shown);
    let (id, name, email) = (shown(&me.id), shown(&me.name), shown(&me.email));
    let user = json!({ "id": id, "name": name, "email": email });
    let organization = token.organization.as_ref().map(super::check::described);
    let oauth_client = token.oauth_client.as_ref().map(super::check::described);
    let signed_in_at = crate::text::rfc3339(signed_in.signed_in_at);
    let kept = if store_in_keyring(&store) {
        "the OS keyring".to_string()
    } else {
        store.path().display().to_string()
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(
            out,
            "{}",
            json!({
                "user": user,
                "organization": organization,
                "oauth_client": oauth_client,
                "scopes": scopes,
                "profile": s.profile,
                "signed_in_at": signed_in_at,
                "refresh_token_in": kept,
            })
        )?;
    } else {
        let user_text = format!(
            "{}{} ({})",
            name.as_deref().unwrap_or("?"),
            email.map(|e| format!(" <{e}>")).unwrap_or_default(),
            id.as_deref().unwrap_or("?")
        );
        writeln!(out, "user:          {user_text}")?;
        writeln!(
            out,
            "organization:  {}",
            organization.as_deref().unwrap_or("?")
        )?;
        writeln!(
            out,
            "OAuth client:  {}",
            oauth_client.as_deref().unwrap_or("?")
        )?;
        writeln!(
            out,
            "scopes:        {}",
            if scopes.is_empty() {
                "(none reported)".to_string()
            } else {
                scopes.join(" ")
            }
        )?;
        writeln!(
            out,
            "signed in:     {signed_in_at} (profile '{}', kept in {kept})",
            s.profile
        )?;
    }
    out.flush()?;
    Ok(crate::exit::OK)
}
