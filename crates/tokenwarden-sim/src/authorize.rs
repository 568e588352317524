//! `GET|POST /oauth/authorize`: the Authorization Code grant's front door, with a tiny sign-in
//! page.
//!
//! Checked first, and answered with an error page (never a redirect, which could send the person
//! anywhere): the client must exist and the `redirect_uri` must be one of its registered ones,
//! exactly. Then, per RFC 6749 §4.1.2.1, other problems go back to the redirect URI as `error=`:
//! `response_type` other than `code`, a public client without a PKCE challenge, a challenge method
//! other than `S256`. A valid request shows the sign-in page (`authorize_mode = page`), or is
//! approved or denied at once (`approve`, `deny`) for tests.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::config::{AuthorizeMode, SimConfig};
use crate::data;
use crate::session::CodeRequest;
use crate::state::Inner;
use crate::util::Query;

/// `GET /oauth/authorize?response_type=code&client_id=&redirect_uri=&state=&code_challenge=...`.
pub(crate) async fn authorize_get(
    State(inner): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let cfg = inner.cfg();
    let q = Query::parse(raw.as_deref());
    let req = match check(&cfg, &q) {
        Ok(r) => r,
        Err(stop) => return *stop,
    };
    match cfg.authorize_mode {
        AuthorizeMode::Approve => approve(&inner, &cfg, &req, cfg.sign_in_user),
        AuthorizeMode::Deny => deny(&req),
        AuthorizeMode::Page => sign_in_page(&cfg, &q),
    }
}

/// `POST /oauth/authorize`: the sign-in page's form (the request's parameters, `user` and
/// `decision=allow|deny`).
pub(crate) async fn authorize_post(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let cfg = inner.cfg();
    let q = Query::parse(std::str::from_utf8(&body).ok());
    let req = match check(&cfg, &q) {
        Ok(r) => r,
        Err(stop) => return *stop,
    };
    if q.get("decision") != Some("allow") {
        return deny(&req);
    }
    let user = q
        .get("user")
        .and_then(data::parse_user_id)
        .filter(|i| *i < cfg.users);
    match user {
        Some(user) => approve(&inner, &cfg, &req, user),
        None => page(
            400,
            "Unknown user",
            "<p>No such user in this simulated organization. Go back and use an id such as user-000001.</p>",
        ),
    }
}

/// A request that passed the checks.
struct Valid {
    client_id: String,
    redirect_uri: url::Url,
    state: Option<String>,
    challenge: Option<String>,
    scope: Option<String>,
}

/// Checks a request: the answer to stop with is an error page (bad client or redirect URI) or an
/// error sent back to the redirect URI.
fn check(cfg: &SimConfig, q: &Query) -> Result<Valid, Box<Response>> {
    let client_id = q.get("client_id").unwrap_or_default();
    let Some(client) = cfg.client(client_id) else {
        return Err(Box::new(page(
            400,
            "Unknown OAuth client",
            &format!(
                "<p>invalid_client: there is no OAuth client <code>{}</code> in this organization.</p>",
                escape(client_id)
            ),
        )));
    };
    let redirect = q.get("redirect_uri").unwrap_or_default();
    let registered = client.redirect_uris.iter().any(|u| u == redirect);
    let parsed = url::Url::parse(redirect).ok();
    let (true, Some(redirect_uri)) = (registered, parsed) else {
        return Err(Box::new(page(
            400,
            "Redirect URI not registered",
            &format!(
                "<p>redirect_uri_mismatch: the redirect URI <code>{}</code> is not registered for OAuth client <code>{}</code>. Register it in the client's Authorized redirect URIs (Admin &gt; Integrations &gt; OAuth), or use one of: {}.</p>",
                escape(redirect),
                escape(client_id),
                client
                    .redirect_uris
                    .iter()
                    .map(|u| format!("<code>{}</code>", escape(u)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    };
    let valid = Valid {
        client_id: client.id.clone(),
        redirect_uri,
        state: q.get("state").map(str::to_owned),
        challenge: q.get("code_challenge").map(str::to_owned),
        scope: q.get("scope").map(str::to_owned),
    };
    let back =
        |error: &str, description: &str| Box::new(redirect_error(&valid, error, description));
    if q.get("response_type") != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    match (valid.challenge.as_deref(), q.get("code_challenge_method")) {
        (None, _) if client.public => {
            return Err(back(
                "invalid_request",
                "a public client must send a PKCE code_challenge",
            ));
        }
        (Some(c), Some("S256")) if c.len() == 43 => {}
        (Some(_), Some("S256")) => {
            return Err(back(
                "invalid_request",
                "code_challenge must be 43 base64url characters",
            ));
        }
        (Some(_), _) => {
            return Err(back(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, _) => {}
    }
    Ok(valid)
}

fn approve(inner: &Inner, cfg: &SimConfig, req: &Valid, user: usize) -> Response {
    let code = inner.sessions.issue_code(
        &CodeRequest {
            client_id: &req.client_id,
            redirect_uri: req.redirect_uri.as_str(),
            challenge: req.challenge.as_deref(),
            scope: req.scope.as_deref(),
            user,
        },
        cfg,
    );
    let mut to = req.redirect_uri.clone();
    {
        let mut pairs = to.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &req.state {
            pairs.append_pair("state", s);
        }
    }
    found(&to)
}

fn deny(req: &Valid) -> Response {
    redirect_error(
        req,
        "access_denied",
        "The user denied the authorization request.",
    )
}

fn redirect_error(req: &Valid, error: &str, description: &str) -> Response {
    let mut to = req.redirect_uri.clone();
    {
        let mut pairs = to.query_pairs_mut();
        pairs.append_pair("error", error);
        pairs.append_pair("error_description", description);
        if let Some(s) = &req.state {
            pairs.append_pair("state", s);
        }
    }
    found(&to)
}

fn found(to: &url::Url) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The sign-in page: the request's parameters as hidden fields, a user id, Allow and Deny.
fn sign_in_page(cfg: &SimConfig, q: &Query) -> Response {
    let hidden: String = q
        .pairs()
        .iter()
        .filter(|(k, _)| k != "user" && k != "decision")
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    let client = q.get("client_id").unwrap_or_default();
    page(
        200,
        "Sign in",
        &format!(
            r#"<p>Sign in to <b>{org}</b> to let <code>{client}</code> act as you.</p>
<form method="post" action="/oauth/authorize">{hidden}
<label>User id <input name="user" value="{user}"></label>
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny">Deny</button>
</form>"#,
            org = escape(crate::api::ORG_NAME),
            client = escape(client),
            user = data::user_id(cfg.sign_in_user),
        ),
    )
}

fn page(status: u16, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} - tokenwarden-sim</title></head><body><h1>{title}</h1>{body}</body></html>"
    );
    let mut resp = Response::new(Body::from(html));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// HTML-escapes text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
