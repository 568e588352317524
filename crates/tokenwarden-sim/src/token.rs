//! `POST /oauth/token`: client credentials and refresh-token grants, with the token knobs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::config::SimConfig;
use crate::journal::{Outcome, Record};
use crate::state::random_uuid;
use crate::state::{Inner, token_id};
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
    let (resp, outcome, seq) = decide(&inner, &cfg, &headers, &body);
    let refresh_grant = outcome == Outcome::TokenIssued
        && url::form_urlencoded::parse(&body)
            .any(|(k, v)| k == "grant_type" && v == "refresh_token");
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
) -> (Response, Outcome, Option<u64>) {
    use std::sync::atomic::Ordering::SeqCst;
    let n_fail = inner.fail_first_counter.fetch_add(1, SeqCst) + 1;
    let n_throttle = inner.throttle_counter.fetch_add(1, SeqCst) + 1;
    if n_fail <= u64::from(cfg.fail_first_token_requests) {
        return (
            unavailable("The service is temporarily unavailable (simulated startup failure)."),
            Outcome::TokenUnavailable,
            None,
        );
    }
    if cfg.token_outage {
        return (
            unavailable("The service is temporarily unavailable (simulated outage)."),
            Outcome::TokenUnavailable,
            None,
        );
    }
    if let Some(every) = cfg.throttle_token_every.filter(|n| *n > 0)
        && n_throttle.is_multiple_of(u64::from(every))
    {
        return (
            oauth_error(400, "invalid_request", THROTTLE_DESCRIPTION),
            Outcome::TokenThrottled,
            None,
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
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let creds = basic_credentials(headers).or_else(|| {
        if !cfg.accept_form_credentials {
            return None;
        }
        Some((
            field("client_id")?.to_owned(),
            field("client_secret")?.to_owned(),
        ))
    });
    let Some((id, secret)) = creds else {
        return (
            oauth_error(401, "invalid_client", "client credentials are required"),
            Outcome::TokenBadCredentials,
            None,
        );
    };
    let Some(client) = cfg.client(&id).filter(|c| c.secret == secret) else {
        return (
            oauth_error(401, "invalid_client", "client not found or bad credentials"),
            Outcome::TokenBadCredentials,
            None,
        );
    };
    let refresh = match field("grant_type") {
        None | Some("") => {
            return (
                oauth_error(400, "invalid_request", "grant_type is required"),
                Outcome::TokenBadRequest,
                None,
            );
        }
        Some("client_credentials") => false,
        Some("refresh_token") => {
            let Some(rt) = field("refresh_token").filter(|s| !s.is_empty()) else {
                return (
                    oauth_error(400, "invalid_request", "refresh_token is required"),
                    Outcome::TokenBadRequest,
                    None,
                );
            };
            if !inner.consume_refresh_token(rt, &client.id) {
                return (
                    oauth_error(
                        400,
                        "invalid_grant",
                        "refresh token is invalid, used or revoked",
                    ),
                    Outcome::TokenInvalidGrant,
                    None,
                );
            }
            true
        }
        Some(other) => {
            return (
                oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("grant type {other} is not supported"),
                ),
                Outcome::TokenBadRequest,
                None,
            );
        }
    };
    let issued = inner.issue_access_token(&client.id, &client.name, cfg);
    if let Some(template) = &cfg.token_body_template {
        let mut resp = Response::new(axum::body::Body::from(
            template.replace("{access_token}", &issued.token),
        ));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (resp, Outcome::TokenIssued, Some(issued.seq));
    }
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    });
    if refresh {
        body["refresh_token"] = json!(inner.issue_refresh_token(&client.id));
    }
    let mut resp = json_response(200, &body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (resp, Outcome::TokenIssued, Some(issued.seq))
}
