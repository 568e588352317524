//! The `/api/...` pipeline (latency, authentication, revocation, rate limit, fault injection,
//! permissions, journal) and the API route handlers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::config::{JobOutcome, SimConfig};
use crate::data;
use crate::ids::token_id;
use crate::journal::{Outcome, Record};
use crate::state::{AuthCtx, Fate, Inner, Job, RateInfo, TokenCheck};
use crate::sync::lock;
use crate::time::{format_rfc3339, format_unix_ms, parse_interval, unix_ms};
use crate::util::{
    BadRequest, DropConnection, Query, bad_request, empty, genesys_error, internal_error,
    json_response, not_found, status_code_and_message,
};

/// Largest request body the simulator reads (bigger ones get 413).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Outermost middleware. Every request except the `/sim/...` admin routes is handled in its own
/// task, so the server finishes (and journals) a request even if the client gives up on it.
pub(crate) async fn outer_layer(
    State(inner): State<Arc<Inner>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path.starts_with("/sim/") || path == "/sim" {
        return next.run(req).await;
    }
    let is_api = path.starts_with("/api/");
    let task = tokio::spawn(async move {
        if is_api {
            api_pipeline(inner, req, next).await
        } else {
            next.run(req).await
        }
    });
    task.await.unwrap_or_else(|_| internal_error())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        300..=399 => Outcome::Redirect,
        403 => Outcome::Forbidden,
        404 => Outcome::NotFound,
        429 => Outcome::RateLimited,
        500..=599 => Outcome::ServerError,
        _ => Outcome::ClientError,
    }
}

fn rate_limited(rate: &RateInfo) -> Response {
    let secs = rate.reset_secs;
    let mut resp = genesys_error(
        429,
        "too.many.requests.retry.after",
        &format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

fn add_rate_headers(resp: &mut Response, rate: &RateInfo) {
    let h = resp.headers_mut();
    h.insert("inin-ratelimit-count", HeaderValue::from(rate.count));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(rate.allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(rate.reset_secs));
}

async fn api_pipeline(inner: Arc<Inner>, req: Request, next: Next) -> Response {
    let (latency, jitter) = {
        let c = inner.cfg();
        (c.latency, c.latency_jitter)
    };
    let latency = match jitter.is_zero() {
        true => latency,
        false => latency + jitter.mul_f64(rand::random::<f64>()),
    };
    if !latency.is_zero() {
        inner.delays.sleep(latency).await;
    }
    let cfg = inner.cfg();
    let (parts, body) = req.into_parts();
    let authorization_present = parts.headers.contains_key(header::AUTHORIZATION);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let (bytes, body_error) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
    };
    let body_len = bytes.len() as u64;

    let mut token_seq = None;
    let (resp, outcome) = match bearer(&parts.headers) {
        None => (
            genesys_error(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            ),
            Outcome::MissingToken,
        ),
        Some(tok) => match inner.check_api_token(tok, &cfg, Instant::now()) {
            TokenCheck::Unknown => (
                genesys_error(401, "bad.credentials", "Invalid login credentials."),
                Outcome::UnknownToken,
            ),
            TokenCheck::Revoked(seq) | TokenCheck::RevokedNow(seq) => {
                token_seq = Some(seq);
                (
                    genesys_error(401, "bad.credentials", "Invalid login credentials."),
                    Outcome::RevokedToken,
                )
            }
            TokenCheck::Expired(seq) => {
                token_seq = Some(seq);
                let message = if cfg.expired_token_code == "credentials.expired" {
                    "The supplied credentials are expired."
                } else {
                    "Invalid login credentials."
                };
                (
                    genesys_error(401, &cfg.expired_token_code, message),
                    Outcome::ExpiredToken,
                )
            }
            TokenCheck::Valid(ctx, rate) => {
                token_seq = Some(ctx.seq);
                let (mut resp, outcome) = match rate {
                    Some(r) if r.limited => (rate_limited(&r), Outcome::RateLimited),
                    _ => match inner.fate(&cfg) {
                        Fate::Drop => {
                            let mut resp = empty(500);
                            resp.extensions_mut().insert(DropConnection);
                            (resp, Outcome::Dropped)
                        }
                        Fate::Error(status) => {
                            let (code, message) = status_code_and_message(status);
                            (genesys_error(status, code, message), Outcome::ServerError)
                        }
                        Fate::Proceed if body_error => (
                            genesys_error(
                                413,
                                "request.entity.too.large",
                                "The request is too large.",
                            ),
                            Outcome::ClientError,
                        ),
                        Fate::Proceed
                            if cfg
                                .forbidden_paths
                                .iter()
                                .any(|p| !p.is_empty() && path.starts_with(p.as_str())) =>
                        {
                            let (code, message) = status_code_and_message(403);
                            (genesys_error(403, code, message), Outcome::Forbidden)
                        }
                        Fate::Proceed => {
                            let mut req = Request::from_parts(parts, Body::from(bytes));
                            req.extensions_mut().insert(ctx);
                            let resp = next.run(req).await;
                            let outcome = classify(resp.status().as_u16());
                            (resp, outcome)
                        }
                    },
                };
                if let Some(r) = rate.as_ref().filter(|_| cfg.rate_limit_headers) {
                    add_rate_headers(&mut resp, r);
                }
                (resp, outcome)
            }
        },
    };
    let status = if outcome == Outcome::Dropped {
        0
    } else {
        resp.status().as_u16()
    };
    inner.record(
        Record {
            at_ms: inner.elapsed_ms(),
            method: method.as_str(),
            path_and_query: &path_and_query,
            path: &path,
            status,
            outcome,
            token_id: token_seq.map(token_id),
            authorization_present,
            body_len,
            is_api: true,
            refresh_grant: false,
            grant: Default::default(),
        },
        cfg.journal_capacity,
    );
    resp
}

// ---- fallbacks ----------------------------------------------------------------------------------

/// Unknown routes: 404 `not.found`.
pub(crate) async fn fallback() -> Response {
    not_found("The requested resource was not found.")
}

/// Known path, wrong method: 405.
pub(crate) async fn method_not_allowed() -> Response {
    let (code, message) = status_code_and_message(405);
    genesys_error(405, code, message)
}

// ---- users --------------------------------------------------------------------------------------

/// `GET /api/v2/users/{id}`.
pub(crate) async fn get_user(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let cfg = inner.cfg();
    match data::parse_user_id(&id) {
        Some(i) if i < cfg.users => json_response(200, &data::user(i)),
        _ => not_found(&format!("User {id} not found")),
    }
}

/// `GET /api/v2/users?pageSize=&pageNumber=` (page-number paging).
pub(crate) async fn list_users(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
    RawQuery(q): RawQuery,
) -> Result<Response, BadRequest> {
    let cfg = inner.cfg();
    let (q, page_size) = listing_query(q.as_deref(), "pageSize", &cfg)?;
    let page_number = q.bounded("pageNumber", 1, usize::MAX)?;
    let total = cfg.users;
    let page_count = total.div_ceil(page_size);
    let entities: Vec<Value> = numbered_page(total, page_number, page_size)
        .map(|i| echo_token(&cfg, &ctx, data::user(i)))
        .collect();
    let uri = |n: usize| format!("/api/v2/users?pageSize={page_size}&pageNumber={n}");
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
        "lastUri": uri(page_count.max(1)),
    });
    if page_number > 1 {
        body["previousUri"] = json!(uri((page_number - 1).min(page_count.max(1))));
    }
    if page_number < page_count {
        body["nextUri"] = json!(uri(page_number + 1));
    }
    Ok(json_response(200, &body))
}

/// A listing's query and the page size it asks for in `size` (Genesys' default of 25 when
/// absent, at most the configured maximum).
fn listing_query(
    raw: Option<&str>,
    size: &str,
    cfg: &SimConfig,
) -> Result<(Query, usize), BadRequest> {
    let q = Query::parse(raw);
    let n = q.bounded(size, 25, cfg.max_page_size)?;
    Ok((q, n))
}

/// The items on page `number` (from 1) of `size` items, out of `total`.
fn numbered_page(total: usize, number: usize, size: usize) -> std::ops::Range<usize> {
    let start = (number - 1).saturating_mul(size).min(total);
    start..start.saturating_add(size).min(total)
}

/// The items on a cursor page of `size` items out of `total`: from the offset the query's
/// `cursor` (made for `tag`) names, or from the first without one.
fn cursor_page(
    q: &Query,
    tag: &str,
    total: usize,
    size: usize,
) -> Result<std::ops::Range<usize>, BadRequest> {
    let offset = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => decode_cursor(tag, c).ok_or_else(|| format!("Invalid cursor [{c}]"))?,
    };
    let start = offset.min(total);
    Ok(start..start.saturating_add(size).min(total))
}

/// With [`SimConfig::echo_token_in_items`], `item` with the caller's `Authorization` header in an
/// `echoedAuthorization` field (a careless or hostile API).
fn echo_token(cfg: &SimConfig, ctx: &AuthCtx, mut item: Value) -> Value {
    if cfg.echo_token_in_items {
        item["echoedAuthorization"] = json!(format!("Bearer {}", ctx.token));
    }
    item
}

// ---- external contacts (cursor paging) ----------------------------------------------------------

fn encode_cursor(tag: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{offset}"))
}

fn decode_cursor(tag: &str, cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (t, offset) = raw.rsplit_once(':')?;
    if t != tag {
        return None;
    }
    offset.parse().ok()
}

/// `GET /api/v2/externalcontacts/scan/contacts?limit=&cursor=` (cursor paging).
pub(crate) async fn scan_contacts(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
    RawQuery(q): RawQuery,
) -> Result<Response, BadRequest> {
    let cfg = inner.cfg();
    let (q, limit) = listing_query(q.as_deref(), "limit", &cfg)?;
    let total = cfg.contacts;
    let page = cursor_page(&q, "scan", total, limit)?;
    let end = page.end;
    let entities: Vec<Value> = page
        .map(|i| echo_token(&cfg, &ctx, data::contact(i)))
        .collect();
    let mut body = json!({
        "entities": entities,
        "selfUri": match q.get("cursor") {
            Some(c) if !c.is_empty() => format!("/api/v2/externalcontacts/scan/contacts?limit={limit}&cursor={c}"),
            _ => format!("/api/v2/externalcontacts/scan/contacts?limit={limit}"),
        },
    });
    if end < total {
        let after = encode_cursor("scan", end);
        body["nextUri"] = json!(format!(
            "/api/v2/externalcontacts/scan/contacts?limit={limit}&cursor={after}"
        ));
        body["cursors"] = json!({ "after": after });
    } else {
        body["cursors"] = json!({});
    }
    Ok(json_response(200, &body))
}

// ---- analytics ----------------------------------------------------------------------------------

/// Conversation indices whose start lies in `[from_ms, to_ms)`.
fn conversation_range(cfg: &SimConfig, from_ms: u64, to_ms: u64) -> std::ops::Range<usize> {
    let n = cfg.conversations;
    let (s, e) = interval_ms(cfg);
    let first_at_or_after = |t: u64| {
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if data::conversation_start_ms(mid, n, s, e) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    first_at_or_after(from_ms)..first_at_or_after(to_ms)
}

fn interval_ms(cfg: &SimConfig) -> (u64, u64) {
    (
        unix_ms(cfg.conversation_interval.start),
        unix_ms(cfg.conversation_interval.end),
    )
}

/// Parsed interval + order of an analytics request body.
struct AnalyticsRequest {
    from_ms: u64,
    to_ms: u64,
    desc: bool,
    body: Value,
}

fn parse_analytics_body(bytes: &[u8]) -> Result<AnalyticsRequest, String> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("Unable to parse the request body: {e}"))?;
    let interval = body
        .get("interval")
        .and_then(Value::as_str)
        .ok_or_else(|| "The field [interval] is required.".to_owned())?;
    let (from, to) = parse_interval(interval).ok_or_else(|| {
        format!(
            "Invalid interval [{interval}]: expected <ISO-8601 start>/<ISO-8601 end> with start before end."
        )
    })?;
    let desc = match body.get("order") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("asc") => false,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("desc") => true,
        Some(other) => {
            return Err(format!("Invalid order [{other}]: expected asc or desc."));
        }
    };
    Ok(AnalyticsRequest {
        from_ms: unix_ms(from),
        to_ms: unix_ms(to),
        desc,
        body,
    })
}

fn paging_field(body: &Value, key: &str, default: usize, max: usize) -> Result<usize, String> {
    match body.get("paging").and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(default.min(max.max(1))),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
            _ => Err(format!(
                "Value [{v}] is not valid for field [paging.{key}]. Allowable values are: 1 to {max}"
            )),
        },
    }
}

/// The `i`-th conversation (in the requested order) of a range.
fn nth_in_range(range: &std::ops::Range<usize>, desc: bool, i: usize) -> usize {
    if desc {
        range.end - 1 - i
    } else {
        range.start + i
    }
}

/// `POST /api/v2/analytics/conversations/details/query` (page-number paging in the body).
pub(crate) async fn analytics_query(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
    bytes: Bytes,
) -> Result<Response, BadRequest> {
    let cfg = inner.cfg();
    let req = parse_analytics_body(&bytes)?;
    let page_size = paging_field(&req.body, "pageSize", 25, cfg.max_page_size)?;
    let page_number = paging_field(&req.body, "pageNumber", 1, usize::MAX)?;
    let range = conversation_range(&cfg, req.from_ms, req.to_ms);
    let total = range.len();
    let page = numbered_page(total, page_number, page_size);
    let (s, e) = interval_ms(&cfg);
    let n = cfg.conversations;
    let mut body = json!({ "totalHits": total });
    if !page.is_empty() {
        let conversations: Vec<Value> = page
            .map(|k| {
                let i = nth_in_range(&range, req.desc, k);
                let c = data::conversation(i, data::conversation_start_ms(i, n, s, e), cfg.users);
                echo_token(&cfg, &ctx, c)
            })
            .collect();
        body["conversations"] = Value::Array(conversations);
    }
    Ok(json_response(200, &body))
}

/// `POST /api/v2/analytics/conversations/details/jobs` → 202 `{"jobId"}`.
///
/// As Genesys documents for jobs (unlike the query), the results hold every conversation whose
/// lifetime overlaps the interval, including ones that started before it; with
/// `"startOfDayIntervalMatching": true`, only those that started on or after midnight UTC of the
/// interval's first day.
pub(crate) async fn job_submit(
    State(inner): State<Arc<Inner>>,
    bytes: Bytes,
) -> Result<Response, BadRequest> {
    let cfg = inner.cfg();
    let req = parse_analytics_body(&bytes)?;
    let (s, e) = interval_ms(&cfg);
    let n = cfg.conversations;
    let start_of_day = req.body.get("startOfDayIntervalMatching") == Some(&Value::Bool(true));
    let earliest = if start_of_day {
        req.from_ms - req.from_ms % 86_400_000
    } else {
        req.from_ms.saturating_sub(data::MAX_CONVERSATION_MS)
    };
    let early = conversation_range(&cfg, earliest, req.from_ms)
        .filter(|i| {
            let start = data::conversation_start_ms(*i, n, s, e);
            data::conversation_end_ms(*i, start) > req.from_ms
        })
        .collect();
    let job = Job {
        submitted: Instant::now(),
        submitted_wall: SystemTime::now(),
        duration: cfg.job_duration,
        outcome: cfg.job_outcome,
        early,
        range: conversation_range(&cfg, req.from_ms, req.to_ms),
        desc: req.desc,
        conversations: n,
        start_ms: s,
        end_ms: e,
        users: cfg.users,
    };
    let id = inner.new_job_id();
    lock(&inner.jobs).insert(id.clone(), job);
    Ok(json_response(202, &json!({ "jobId": id })))
}

fn find_job(inner: &Inner, id: &str) -> Option<Job> {
    lock(&inner.jobs).get(id).cloned()
}

/// `GET /api/v2/analytics/conversations/details/jobs/{jobId}`.
pub(crate) async fn job_status(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Response {
    let Some(job) = find_job(&inner, &id) else {
        return not_found(&format!("Job {id} not found"));
    };
    let state = job.state(Instant::now());
    let mut body = json!({
        "state": state,
        "submissionDate": format_rfc3339(job.submitted_wall),
        "expirationDate": format_rfc3339(job.submitted_wall + Duration::from_secs(7 * 86_400)),
    });
    if state == JobOutcome::Failed.as_str() {
        body["errorMessage"] = json!("The job failed (simulated).");
    }
    json_response(200, &body)
}

/// `GET /api/v2/analytics/conversations/details/jobs/{jobId}/results?cursor=&pageSize=`.
pub(crate) async fn job_results(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, BadRequest> {
    let cfg = inner.cfg();
    let Some(job) = find_job(&inner, &id) else {
        return Ok(not_found(&format!("Job {id} not found")));
    };
    let state = job.state(Instant::now());
    if state != JobOutcome::Fulfilled.as_str() {
        return Err(BadRequest(format!(
            "Results for job {id} are not available: the job state is {state}, not FULFILLED."
        )));
    }
    let q = Query::parse(q.as_deref());
    let page_size = q.bounded("pageSize", cfg.max_page_size, cfg.max_page_size)?;
    let total = job.len();
    let page = cursor_page(&q, &id, total, page_size)?;
    let end = page.end;
    let mut body = json!({});
    if !page.is_empty() {
        let conversations: Vec<Value> = page
            .map(|k| {
                let i = job.nth(k);
                let at =
                    data::conversation_start_ms(i, job.conversations, job.start_ms, job.end_ms);
                echo_token(&cfg, &ctx, data::conversation(i, at, job.users))
            })
            .collect();
        body["conversations"] = Value::Array(conversations);
    }
    if end < total {
        body["cursor"] = json!(encode_cursor(&id, end));
    }
    body["dataAvailabilityDate"] = json!(format_unix_ms(unix_ms(SystemTime::now())));
    Ok(json_response(200, &body))
}

/// `DELETE /api/v2/analytics/conversations/details/jobs/{jobId}` → 204 (the job is gone).
pub(crate) async fn job_delete(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Response {
    match lock(&inner.jobs).remove(&id) {
        Some(_) => empty(204),
        None => not_found(&format!("Job {id} not found")),
    }
}

// ---- tokens/me ----------------------------------------------------------------------------------

/// The simulated organization's id.
pub(crate) const ORG_ID: &str = "5e1f0000-7000-4000-8000-000000000001";
/// The simulated organization's name.
pub(crate) const ORG_NAME: &str = "Tokenwarden Simulated Org";

/// `GET`/`HEAD /api/v2/tokens/me`.
pub(crate) async fn tokens_me(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
) -> Response {
    let cfg = inner.cfg();
    let org = json!({"id": ORG_ID, "name": ORG_NAME, "selfUri": format!("/api/v2/organizations/{ORG_ID}")});
    json_response(
        200,
        &json!({
            "organization": org,
            "homeOrganization": {"id": ORG_ID, "name": ORG_NAME, "thirdPartyOrgName": "tokenwarden-sim"},
            "authorizedScope": cfg.scopes,
            "OAuthClient": {
                "id": &*ctx.client_id,
                "name": &*ctx.client_name,
                "organization": org,
            },
            "selfUri": "/api/v2/tokens/me",
        }),
    )
}

/// `DELETE /api/v2/tokens/me`: revokes the calling token → 204. A signed-in user's token signs
/// the user out: every token of that sign-in, refresh tokens included, is revoked.
pub(crate) async fn tokens_me_delete(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
) -> Response {
    inner.revoke_token(&ctx.token);
    if let Some(g) = ctx.session {
        inner.revoke_session(g.session);
    }
    empty(204)
}

/// `GET /api/v2/users/me`: the signed-in user; a client-credentials token has no user (400, as
/// Genesys answers).
pub(crate) async fn users_me(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
) -> Response {
    match ctx.session {
        Some(g) if g.user < inner.cfg().users => json_response(200, &data::user(g.user)),
        Some(g) => not_found(&format!("User {} not found", data::user_id(g.user))),
        None => bad_request(
            "This request requires a user context. Client credentials cannot be used for requests to this resource.",
        ),
    }
}

// ---- /api/v2/sim test helpers -------------------------------------------------------------------

/// Any method on `/api/v2/sim/echo`: echoes method, query, body and a request counter.
/// `?delay_ms=N` delays the answer; `?headers=1` also echoes every request header, `Authorization`
/// included (a careless API that reflects the bearer token).
pub(crate) async fn echo(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<AuthCtx>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let counter = inner
        .echo_counter
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let q = Query::parse(raw.as_deref());
    if let Some(d) = q.get("delay_ms") {
        match d.parse::<u64>() {
            Ok(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Err(_) => return bad_request(&format!("Invalid delay_ms [{d}]")),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let query: serde_json::Map<String, Value> = q
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let echoed_headers: Option<serde_json::Map<String, Value>> =
        q.get("headers").filter(|v| *v == "1").map(|_| {
            headers
                .iter()
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.as_str().to_string(), Value::String(v))
                })
                .collect()
        });
    let status = match q.get("status").map(str::parse::<u16>) {
        None => 200,
        Some(Ok(s)) if (200..=599).contains(&s) => s,
        Some(_) => return bad_request("Invalid status: expected 200..=599"),
    };
    let answer = json!({
        "method": method.as_str(),
        "query": query,
        "body": text,
        "json": parsed,
        "bodyLength": bytes.len(),
        "contentType": headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        "counter": counter,
        "tokenId": token_id(ctx.seq),
        "clientId": &*ctx.client_id,
        "headers": echoed_headers,
    });
    match q.get("escape") {
        // Every character of every string and key as a JSON `\uXXXX` escape: legal JSON that a
        // reader decodes back, in which no byte pattern of what was echoed appears.
        Some("unicode") => {
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(&mut out, EscapeAll);
            let _ = serde::Serialize::serialize(&answer, &mut ser);
            let mut resp = json_response(status, &Value::Null);
            *resp.body_mut() = axum::body::Body::from(out);
            resp
        }
        _ => json_response(status, &answer),
    }
}

/// A JSON formatter that writes every character of strings and keys as `\uXXXX` (UTF-16 units).
struct EscapeAll;

impl serde_json::ser::Formatter for EscapeAll {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            for u in c.encode_utf16(&mut units) {
                write!(writer, "\\u{u:04x}")?;
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape::*;
        let c = match escape {
            Quote => 0x22,
            ReverseSolidus => 0x5c,
            Solidus => 0x2f,
            Backspace => 0x08,
            FormFeed => 0x0c,
            LineFeed => 0x0a,
            CarriageReturn => 0x0d,
            Tab => 0x09,
            AsciiControl(b) => u16::from(b),
        };
        write!(writer, "\\u{c:04x}")
    }
}

/// `GET /api/v2/sim/status/{code}`: answers that status with a Genesys body.
/// `?retry_after=N` adds `Retry-After`; `?location=URL` adds `Location`.
pub(crate) async fn sim_status(Path(code): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let status = match code.parse::<u16>() {
        Ok(s) if (200..=599).contains(&s) => s,
        _ => return bad_request(&format!("Invalid status [{code}]: expected 200..=599")),
    };
    let q = Query::parse(raw.as_deref());
    let mut resp = match status {
        204 | 304 => empty(status),
        200..=299 => json_response(status, &json!({"status": status, "message": "OK"})),
        429 => genesys_error(
            429,
            "too.many.requests.retry.after",
            &format!(
                "Rate limit exceeded the maximum. Retry the request in [{}] seconds",
                q.get("retry_after").unwrap_or("1")
            ),
        ),
        _ => {
            let (c, m) = status_code_and_message(status);
            genesys_error(status, c, m)
        }
    };
    if let Some(v) = q
        .get("retry_after")
        .or((status == 429).then_some("1"))
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if let Some(v) = q
        .get("location")
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Largest body `/api/v2/sim/bytes` serves.
const MAX_SIM_BYTES: u64 = 4 << 30;

/// `GET /api/v2/sim/bytes?n=N[&chunked=true]`: N bytes of `x`, streamed in 64 KiB chunks (never
/// held in memory), with `Content-Length` unless `chunked=true`. For tests of response size limits.
pub(crate) async fn sim_bytes(RawQuery(raw): RawQuery) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let q = Query::parse(raw.as_deref());
    let n = match q.get("n").map(str::parse::<u64>) {
        Some(Ok(n)) if n <= MAX_SIM_BYTES => n,
        _ => {
            return bad_request(&format!(
                "The query parameter [n] must be 0..={MAX_SIM_BYTES}."
            ));
        }
    };
    let chunked = q.get("chunked") == Some("true");
    let chunk = Bytes::from(vec![b'x'; CHUNK.min(n) as usize]);
    let chunks = (0..n.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(n - i * CHUNK) as usize;
        Ok::<_, std::convert::Infallible>(chunk.slice(..len))
    });
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if !chunked {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

/// `GET /api/v2/sim/redirect?location=URL` → 302 to URL.
pub(crate) async fn sim_redirect(RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    match q
        .get("location")
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        Some(loc) => {
            let mut resp = empty(302);
            resp.headers_mut().insert(header::LOCATION, loc);
            resp
        }
        None => bad_request("The query parameter [location] is required."),
    }
}
