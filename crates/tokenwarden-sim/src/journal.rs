//! The journal: what the simulator saw and answered, for assertions in tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// How a request was classified by the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Token endpoint: a token was issued (client credentials or refresh grant).
    TokenIssued,
    /// Token endpoint: unknown client or bad secret (401 `invalid_client`).
    TokenBadCredentials,
    /// Token endpoint: unknown, used or revoked refresh token (400 `invalid_grant`).
    TokenInvalidGrant,
    /// Token endpoint: throttled (400 `invalid_request`, "rate limit exceeded; ...").
    TokenThrottled,
    /// Token endpoint: 503 (`fail_first_token_requests` or `token_outage`).
    TokenUnavailable,
    /// Token endpoint: any other 400 (unsupported grant type, malformed request).
    TokenBadRequest,
    /// API: a 2xx answer.
    Ok,
    /// API: a 3xx answer (`/api/v2/sim/redirect`, `/api/v2/sim/status/3xx`).
    Redirect,
    /// API: 401, the token had expired (server time, including `clock_skew`).
    ExpiredToken,
    /// API: 401, the token had been revoked (`revoke_every`, `DELETE /api/v2/tokens/me`,
    /// `revoke_all_tokens`).
    RevokedToken,
    /// API: 401, the bearer token was never issued by this simulator.
    UnknownToken,
    /// API: 401, no `Authorization: Bearer` header.
    MissingToken,
    /// API: 429 (per-token rate limit).
    RateLimited,
    /// API: a 5xx answer (injected by `error_rate`, or asked for via `/api/v2/sim/status/5xx`).
    ServerError,
    /// API: the connection was closed without a response (`drop_rate`).
    Dropped,
    /// API: 403 (`forbidden_paths`).
    Forbidden,
    /// API: 404.
    NotFound,
    /// API: any other 4xx.
    ClientError,
}

/// One request seen by the simulator (token endpoint and `/api/...` routes; `/sim/...` admin
/// routes are not journaled).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Sequence number, starting at 1, strictly increasing (not reset by `reset_journal`).
    pub seq: u64,
    /// Milliseconds since the simulator started, when the answer was decided.
    pub at_ms: u64,
    /// HTTP method, e.g. `"GET"`.
    pub method: String,
    /// Request path including the query string, e.g. `"/api/v2/users?pageSize=25&pageNumber=2"`.
    pub path: String,
    /// HTTP status answered; 0 when the connection was dropped without a response.
    pub status: u16,
    /// Classification of the answer.
    pub outcome: Outcome,
    /// Short, non-secret id of the access token involved (e.g. `"tok-17"`): for API calls the
    /// token the request carried (if it was one this simulator issued), for the token endpoint the
    /// token issued. Never the token itself.
    pub token_id: Option<String>,
    /// Whether the request carried an `Authorization` header.
    pub authorization_present: bool,
    /// Length of the request body in bytes.
    pub body_len: u64,
    /// Token endpoint: the refresh token a `refresh_token` grant presented, by its short id
    /// (`rt-7`, numbered in the order issued), whether or not it was accepted; `None` for other
    /// requests and for a refresh token this simulator never issued. Never the token itself.
    #[serde(default)]
    pub refresh_token_presented: Option<String>,
    /// Token endpoint: the refresh token issued by this answer (`rt-8`), if any.
    #[serde(default)]
    pub refresh_token_issued: Option<String>,
}

/// A snapshot of the journal: counters and the most recent entries.
///
/// Outcomes are recorded before the response is sent, so a client that got a response can read a
/// consistent journal right away.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Requests to `POST /oauth/token`.
    pub token_requests: u64,
    /// Access tokens issued (client credentials and refresh grants).
    pub tokens_issued: u64,
    /// Token requests refused for unknown client / bad secret / missing credentials (401).
    pub token_bad_credentials: u64,
    /// Refresh grants refused because the refresh token was unknown, used or revoked (400).
    pub token_invalid_grant: u64,
    /// Token requests answered with the Genesys throttling 400 (`throttle_token_every`).
    pub token_throttled: u64,
    /// Token requests answered 503 (`fail_first_token_requests`, `token_outage`).
    pub token_unavailable: u64,
    /// Token requests refused for another reason (unsupported grant type, malformed request).
    pub token_bad_request: u64,
    /// Successful `refresh_token` grants.
    pub refresh_grants: u64,
    /// Successful `authorization_code` grants (sign-ins completed).
    #[serde(default)]
    pub authorization_code_grants: u64,
    /// Refresh grants that presented a refresh token that had already been used (refused; by
    /// default the session is then revoked). A client that rotates correctly keeps this at 0.
    #[serde(default)]
    pub refresh_token_reuse: u64,
    /// Highest number of token requests in flight at once (since start or last reset).
    pub max_concurrent_token_requests: u64,
    /// Requests to `/api/...` routes (all outcomes).
    pub api_requests: u64,
    /// API requests answered 2xx.
    pub api_ok: u64,
    /// API requests answered 3xx.
    pub api_redirect: u64,
    /// API requests refused because the token had expired.
    pub api_expired_token: u64,
    /// API requests refused because the token had been revoked.
    pub api_revoked_token: u64,
    /// API requests refused because the token was unknown.
    pub api_unknown_token: u64,
    /// API requests refused because they carried no bearer token.
    pub api_missing_token: u64,
    /// API requests answered 429.
    pub api_rate_limited: u64,
    /// API requests answered 5xx (injected errors and `/api/v2/sim/status/5xx`).
    pub api_server_error: u64,
    /// API requests whose connection was dropped without a response.
    pub api_dropped: u64,
    /// API requests answered 403.
    pub api_forbidden: u64,
    /// API requests answered 404.
    pub api_not_found: u64,
    /// API requests answered with another 4xx.
    pub api_client_error: u64,
    /// Successful (2xx) API requests per `"METHOD path"` (path without query), e.g.
    /// `"GET /api/v2/users/user-000042"`.
    pub per_resource_ok: BTreeMap<String, u64>,
    /// API requests per token id (see [`JournalEntry::token_id`]), all outcomes.
    pub per_token_requests: BTreeMap<String, u64>,
    /// The most recent entries, oldest first (bounded by `SimConfig::journal_capacity`).
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// How many times `"METHOD path"` (path without query) succeeded.
    pub fn ok_count(&self, method: &str, path: &str) -> u64 {
        self.per_resource_ok
            .get(&format!("{method} {path}"))
            .copied()
            .unwrap_or(0)
    }

    /// Number of entries with this outcome among the retained entries.
    pub fn count_outcome(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }

    /// The distinct tokens (their [`JournalEntry::token_id`]s) that API requests carried after
    /// the server revoked them, among the retained entries: one revocation answers 401 to every
    /// request that carries that token, so this is how many tokens were revoked in use, where
    /// [`api_revoked_token`](Self::api_revoked_token) counts the requests.
    pub fn revoked_tokens(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| e.outcome == Outcome::RevokedToken)
            .filter_map(|e| e.token_id.as_deref())
            .collect()
    }
}

/// Mutable journal state behind the simulator's journal lock.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    pub(crate) counters: Journal,
    pub(crate) entries: VecDeque<JournalEntry>,
    pub(crate) next_seq: u64,
}

/// What to record for one request.
pub(crate) struct Record<'a> {
    pub(crate) at_ms: u64,
    pub(crate) method: &'a str,
    pub(crate) path_and_query: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
    pub(crate) token_id: Option<String>,
    pub(crate) authorization_present: bool,
    pub(crate) body_len: u64,
    pub(crate) is_api: bool,
    /// A successful refresh-token grant (token endpoint only).
    pub(crate) refresh_grant: bool,
    /// What the token request did with refresh tokens and codes (token endpoint only).
    pub(crate) grant: GrantNote,
}

/// What a token request presented and got, for the journal.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GrantNote {
    pub(crate) refresh_presented: Option<u64>,
    pub(crate) refresh_issued: Option<u64>,
    pub(crate) code_exchanged: bool,
    pub(crate) refresh_reuse: bool,
}

impl JournalState {
    pub(crate) fn record(&mut self, r: Record<'_>, capacity: usize) {
        let c = &mut self.counters;
        if r.is_api {
            c.api_requests += 1;
            let counter = match r.outcome {
                Outcome::Ok => &mut c.api_ok,
                Outcome::Redirect => &mut c.api_redirect,
                Outcome::ExpiredToken => &mut c.api_expired_token,
                Outcome::RevokedToken => &mut c.api_revoked_token,
                Outcome::UnknownToken => &mut c.api_unknown_token,
                Outcome::MissingToken => &mut c.api_missing_token,
                Outcome::RateLimited => &mut c.api_rate_limited,
                Outcome::ServerError => &mut c.api_server_error,
                Outcome::Dropped => &mut c.api_dropped,
                Outcome::Forbidden => &mut c.api_forbidden,
                Outcome::NotFound => &mut c.api_not_found,
                _ => &mut c.api_client_error,
            };
            *counter += 1;
            if r.outcome == Outcome::Ok {
                let key = format!("{} {}", r.method, r.path);
                *c.per_resource_ok.entry(key).or_insert(0) += 1;
            }
            if let Some(id) = &r.token_id {
                match c.per_token_requests.get_mut(id) {
                    Some(n) => *n += 1,
                    None => {
                        c.per_token_requests.insert(id.clone(), 1);
                    }
                }
            }
        } else {
            c.token_requests += 1;
            let counter = match r.outcome {
                Outcome::TokenIssued => &mut c.tokens_issued,
                Outcome::TokenBadCredentials => &mut c.token_bad_credentials,
                Outcome::TokenInvalidGrant => &mut c.token_invalid_grant,
                Outcome::TokenThrottled => &mut c.token_throttled,
                Outcome::TokenUnavailable => &mut c.token_unavailable,
                _ => &mut c.token_bad_request,
            };
            *counter += 1;
            if r.refresh_grant {
                c.refresh_grants += 1;
            }
            if r.grant.code_exchanged {
                c.authorization_code_grants += 1;
            }
            if r.grant.refresh_reuse {
                c.refresh_token_reuse += 1;
            }
        }
        if capacity == 0 {
            self.next_seq += 1;
            return;
        }
        while self.entries.len() >= capacity {
            self.entries.pop_front();
        }
        self.next_seq += 1;
        self.entries.push_back(JournalEntry {
            seq: self.next_seq,
            at_ms: r.at_ms,
            method: r.method.to_owned(),
            path: r.path_and_query.to_owned(),
            status: r.status,
            outcome: r.outcome,
            token_id: r.token_id,
            authorization_present: r.authorization_present,
            body_len: r.body_len,
            refresh_token_presented: r.grant.refresh_presented.map(crate::ids::refresh_token_id),
            refresh_token_issued: r.grant.refresh_issued.map(crate::ids::refresh_token_id),
        });
    }

    pub(crate) fn snapshot(&self, with_entries: bool) -> Journal {
        let mut j = Journal {
            per_resource_ok: self.counters.per_resource_ok.clone(),
            per_token_requests: self.counters.per_token_requests.clone(),
            entries: Vec::new(),
            ..self.counters
        };
        if with_entries {
            j.entries = self.entries.iter().cloned().collect();
        }
        j
    }

    pub(crate) fn reset(&mut self) {
        self.counters = Journal::default();
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome, token: Option<&str>) -> JournalEntry {
        JournalEntry {
            seq: 1,
            at_ms: 0,
            method: "GET".into(),
            path: "/api/v2/users/me".into(),
            status: 401,
            outcome,
            token_id: token.map(str::to_string),
            authorization_present: true,
            body_len: 0,
            refresh_token_presented: None,
            refresh_token_issued: None,
        }
    }

    #[test]
    fn revoked_tokens_are_counted_once_each() {
        let j = Journal {
            entries: vec![
                entry(Outcome::RevokedToken, Some("a")),
                entry(Outcome::RevokedToken, Some("a")),
                entry(Outcome::Ok, Some("b")),
                entry(Outcome::RevokedToken, Some("c")),
                entry(Outcome::RevokedToken, None),
                entry(Outcome::ExpiredToken, Some("d")),
            ],
            ..Journal::default()
        };
        assert_eq!(j.revoked_tokens(), BTreeSet::from(["a", "c"]));
    }
}
