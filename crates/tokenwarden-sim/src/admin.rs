//! `/sim/...` admin routes (no authentication, not journaled).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::config::{ConfigPatch, DEFAULT_CLIENT_ID, SimConfig};
use crate::state::Inner;
use crate::time::format_rfc3339;
use crate::util::{Query, bad_request, empty, json_response};

/// `GET /sim/journal`.
pub(crate) async fn journal(State(inner): State<Arc<Inner>>) -> Response {
    json_response(200, &json!(inner.journal(true)))
}

/// `POST /sim/journal/reset` → 204.
pub(crate) async fn journal_reset(State(inner): State<Arc<Inner>>) -> Response {
    inner.reset_journal();
    empty(204)
}

/// `POST /sim/revoke-all` → 204.
pub(crate) async fn revoke_all(State(inner): State<Arc<Inner>>) -> Response {
    inner.revoke_all();
    empty(204)
}

/// `POST /sim/refresh-token?client_id=` → `{"refresh_token"}`.
pub(crate) async fn refresh_token(
    State(inner): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = Query::parse(raw.as_deref());
    let client = q.get("client_id").unwrap_or(DEFAULT_CLIENT_ID);
    json_response(
        200,
        &json!({ "refresh_token": inner.issue_refresh_token(client) }),
    )
}

/// A JSON view of the configuration (durations in ms, secrets omitted).
pub(crate) fn config_view(c: &SimConfig) -> Value {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    json!({
        "bind": c.bind.to_string(),
        "clients": c.clients.iter().map(|k| json!({"id": k.id, "name": k.name, "public": k.public, "redirect_uris": k.redirect_uris})).collect::<Vec<_>>(),
        "token_ttl_ms": ms(c.token_ttl),
        "clock_skew_ms": ms(c.clock_skew),
        "jwt_tokens": c.jwt_tokens,
        "revoke_every": c.revoke_every,
        "revoke_at_random_age_ms": c.revoke_at_random_age.map(ms),
        "expired_token_code": c.expired_token_code,
        "fail_first_token_requests": c.fail_first_token_requests,
        "token_outage": c.token_outage,
        "throttle_token_every": c.throttle_token_every,
        "token_creation_limit": c.token_creation_limit,
        "token_creation_window_ms": ms(c.token_creation_window),
        "token_latency_ms": ms(c.token_latency),
        "api_rate_limit_per_minute": c.api_rate_limit_per_minute,
        "rate_limit_window_ms": ms(c.rate_limit_window),
        "rate_limit_headers": c.rate_limit_headers,
        "error_rate": c.error_rate,
        "drop_rate": c.drop_rate,
        "seed": c.seed,
        "latency_ms": ms(c.latency),
        "latency_jitter_ms": ms(c.latency_jitter),
        "scopes": c.scopes,
        "forbidden_paths": c.forbidden_paths,
        "users": c.users,
        "contacts": c.contacts,
        "conversations": c.conversations,
        "conversation_interval": format!(
            "{}/{}",
            format_rfc3339(c.conversation_interval.start),
            format_rfc3339(c.conversation_interval.end)
        ),
        "job_duration_ms": ms(c.job_duration),
        "job_outcome": c.job_outcome,
        "accept_form_credentials": c.accept_form_credentials,
        "max_page_size": c.max_page_size,
        "journal_capacity": c.journal_capacity,
        "authorize_mode": c.authorize_mode,
        "sign_in_user": c.sign_in_user,
        "authorization_code_ttl_ms": ms(c.authorization_code_ttl),
        "refresh_token_lifetime_ms": c.refresh_token_lifetime.map(ms),
        "refresh_token_reuse_revokes_session": c.refresh_token_reuse_revokes_session,
    })
}

/// `GET /sim/config`.
pub(crate) async fn get_config(State(inner): State<Arc<Inner>>) -> Response {
    json_response(200, &config_view(&inner.cfg()))
}

/// `PATCH /sim/config` with a JSON [`ConfigPatch`] → the new configuration view.
pub(crate) async fn patch_config(State(inner): State<Arc<Inner>>, bytes: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("Invalid config patch: {e}")),
    };
    inner.update(|c| patch.apply(c));
    json_response(200, &config_view(&inner.cfg()))
}
