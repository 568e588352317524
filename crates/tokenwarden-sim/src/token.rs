//! `POST /oauth/token`: the client credentials, authorization code and refresh-token grants, with
//! the token knobs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::config::{SimClient, SimConfig};
use crate::ids::{random_uuid, token_id};
use crate::journal::{GrantNote, Outcome, Record};
use crate::session::CodeExchange;
use crate::state::Inner;
use crate::util::{json_response, oauth_error};

/// The description Genesys uses when throttling token creation.
pub const THROTTLE_DESCRIPTION: &str = "rate limit exceeded; retry in a few seconds";

/// Handler of `POST /oauth/token`.
pub(crate) async fn token_endpoint(
    State(inner): State<Arc<Inner>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = inner.token_request_started();
    let latency = inner.cfg().token_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let cfg = inner.cfg();
    let (resp, outcome, seq, grant) = decide(&inner, &cfg, &headers, &body);
    let refresh_grant = outcome == Outcome::TokenIssued && grant.refresh_presented.is_some();
    let path_and_query = uri.path_and_query().map_or("/oauth/token", |p| p.as_str());
    inner.record(
        Record {
            at_ms: inner.elapsed_ms(),
            method: "POST",
            path_and_query,
            path: uri.path(),
            status: resp.status().as_u16(),
            outcome,
            token_id: seq.map(token_id),
            authorization_present: headers.contains_key(header::AUTHORIZATION),
            body_len: body.len() as u64,
            is_api: false,
            refresh_grant,
            grant,
        },
        cfg.journal_capacity,
    );
    resp
}

fn unavailable(description: &str) -> Response {
    let body = json!({
        "error": "temporarily_unavailable",
        "description": description,
        "error_description": description,
        "message": description,
        "code": "service.unavailable",
        "status": 503,
        "contextId": random_uuid(),
        "details": [],
        "errors": [],
    });
    json_response(503, &body)
}

/// Basic credentials from the Authorization header, if it carries Basic auth.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false)
}

/// Decide the answer to a token request. Returns the response, its outcome, and the sequence
/// number of the issued token (if any).
fn decide(
    inner: &Inner,
    cfg: &SimConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Outcome, Option<u64>, GrantNote) {
    use std::sync::atomic::Ordering::SeqCst;
    let n_fail = inner.fail_first_counter.fetch_add(1, SeqCst) + 1;
    let n_throttle = inner.throttle_counter.fetch_add(1, SeqCst) + 1;
    if n_fail <= u64::from(cfg.fail_first_token_requests) {
        return (
            unavailable("The service is temporarily unavailable (simulated startup failure)."),
            Outcome::TokenUnavailable,
            None,
            GrantNote::default(),
        );
    }
    if cfg.token_outage {
        return (
            unavailable("The service is temporarily unavailable (simulated outage)."),
            Outcome::TokenUnavailable,
            None,
            GrantNote::default(),
        );
    }
    if let Some(every) = cfg.throttle_token_every.filter(|n| *n > 0)
        && n_throttle.is_multiple_of(u64::from(every))
    {
        return (
            oauth_error(400, "invalid_request", THROTTLE_DESCRIPTION),
            Outcome::TokenThrottled,
            None,
            GrantNote::default(),
        );
    }
    if !is_form(headers) {
        return (
            oauth_error(
                400,
                "invalid_request",
                "Content-Type must be application/x-www-form-urlencoded",
            ),
            Outcome::TokenBadRequest,
            None,
            GrantNote::default(),
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| form_field(&form, k);
    let client = match authenticate(cfg, headers, &form) {
        Ok(c) => c,
        Err(resp) => {
            return (
                *resp,
                Outcome::TokenBadCredentials,
                None,
                GrantNote::default(),
            );
        }
    };
    // Before the grant is looked at, so that a throttled refresh token is not used up.
    if !inner.take_token_creation(&client.id, cfg) {
        return (
            oauth_error(400, "invalid_request", THROTTLE_DESCRIPTION),
            Outcome::TokenThrottled,
            None,
            GrantNote::default(),
        );
    }
    let mut note = GrantNote::default();
    let bad_request = |error: &str, description: &str, note: GrantNote| {
        (
            oauth_error(400, error, description),
            Outcome::TokenBadRequest,
            None,
            note,
        )
    };
    let invalid_grant = |description: &str, note: GrantNote| {
        (
            oauth_error(400, "invalid_grant", description),
            Outcome::TokenInvalidGrant,
            None,
            note,
        )
    };
    let grantee = match field("grant_type") {
        None | Some("") => return bad_request("invalid_request", "grant_type is required", note),
        Some("client_credentials") if client.public => {
            return bad_request(
                "unauthorized_client",
                "a public client cannot use the client_credentials grant",
                note,
            );
        }
        Some("client_credentials") => None,
        Some("refresh_token") => {
            let Some(rt) = field("refresh_token").filter(|s| !s.is_empty()) else {
                return bad_request("invalid_request", "refresh_token is required", note);
            };
            let (presented, consumed) = inner.sessions.consume_refresh_token(rt, &client.id);
            note.refresh_presented = presented;
            match consumed {
                Ok(g) => Some(g),
                Err(refused) => {
                    note.refresh_reuse = refused.reuse;
                    if let Some(session) = refused.revoke
                        && (!refused.reuse || cfg.refresh_token_reuse_revokes_session)
                    {
                        inner.revoke_session(session);
                    }
                    return invalid_grant(refused.description, note);
                }
            }
        }
        Some("authorization_code") => {
            let Some(code) = field("code").filter(|s| !s.is_empty()) else {
                return bad_request("invalid_request", "code is required", note);
            };
            let exchange = CodeExchange {
                code,
                client_id: &client.id,
                redirect_uri: field("redirect_uri"),
                verifier: field("code_verifier"),
            };
            match inner.sessions.exchange_code(&exchange, cfg) {
                Ok((g, _scope)) => {
                    note.code_exchanged = true;
                    Some(g)
                }
                Err(refused) => {
                    if let Some(session) = refused.revoke {
                        inner.revoke_session(session);
                    }
                    return invalid_grant(refused.description, note);
                }
            }
        }
        Some(other) => {
            return bad_request(
                "unsupported_grant_type",
                &format!("grant type {other} is not supported"),
                note,
            );
        }
    };
    let issued = inner.issue_session_access_token(&client.id, &client.name, cfg, grantee);
    let refresh = grantee.map(|g| inner.sessions.issue_refresh_token(g.session));
    note.refresh_issued = refresh.as_ref().map(|(_, n)| *n);
    if let Some(template) = &cfg.token_body_template {
        let mut resp = Response::new(axum::body::Body::from(
            template.replace("{access_token}", &issued.token),
        ));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (resp, Outcome::TokenIssued, Some(issued.seq), note);
    }
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    });
    if let Some((rt, _)) = refresh {
        body["refresh_token"] = json!(rt);
    }
    let mut resp = json_response(200, &body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (resp, Outcome::TokenIssued, Some(issued.seq), note)
}

/// The first value of form field `k`.
fn form_field<'f>(form: &'f [(String, String)], k: &str) -> Option<&'f str> {
    form.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

/// The client a token request comes from: HTTP Basic, or form fields (`client_id` and
/// `client_secret`, unless `accept_form_credentials` is off); a public client gives its
/// `client_id` alone. Otherwise the 401 `invalid_client` answer.
fn authenticate<'c>(
    cfg: &'c SimConfig,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<&'c SimClient, Box<Response>> {
    let field = |k: &str| form_field(form, k);
    let (id, secret) = match basic_credentials(headers) {
        Some((id, secret)) => (id, Some(secret)),
        None => match (field("client_id"), field("client_secret")) {
            (Some(id), Some(secret)) if cfg.accept_form_credentials => {
                (id.to_owned(), Some(secret.to_owned()))
            }
            (Some(id), None) => (id.to_owned(), None),
            _ => {
                return Err(Box::new(oauth_error(
                    401,
                    "invalid_client",
                    "client credentials are required",
                )));
            }
        },
    };
    let refused = || {
        Box::new(oauth_error(
            401,
            "invalid_client",
            "client not found or bad credentials",
        ))
    };
    let client = cfg.client(&id).ok_or_else(refused)?;
    match (client.public, secret) {
        // A public client has no secret to send.
        (true, None) => Ok(client),
        (true, Some(_)) => Err(Box::new(oauth_error(
            401,
            "invalid_client",
            "this is a public client: it authenticates with client_id alone, without a secret",
        ))),
        (false, Some(s)) if s == client.secret => Ok(client),
        (false, None) => Err(Box::new(oauth_error(
            401,
            "invalid_client",
            "client credentials are required",
        ))),
        (false, Some(_)) => Err(refused()),
    }
}
