//! Analytics: the conversation details query (`POST`, paged in the body) and asynchronous jobs
//! (submit, poll, then results by cursor).

use super::listing::{Next, next_cursor};
use super::visits::Visits;
use super::{
    Page, Position, ensure_no_secret, fetch_page, items, str_field, u64_field, walk,
    with_query_param,
};
use crate::client::ApiClient;
use crate::error::{Error, Result, excerpt};
use futures::{Stream, StreamExt as _, TryStreamExt as _, stream};
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Page size asked for when the query body gives none (Genesys's maximum for the details query).
const DEFAULT_QUERY_PAGE_SIZE: u64 = 100;

/// Every conversation of an analytics details query such as
/// `POST /api/v2/analytics/conversations/details/query`, page after page.
///
/// `body` is the query (`interval`, `order`, filters...); its `paging.pageNumber` (default 1) is the
/// first page and `paging.pageSize` is kept (default 100). The POST is a read, so it is sent
/// [`replay_safe`](crate::RequestBuilder::replay_safe). Stops at an empty page (Genesys omits
/// `conversations` there) or once `totalHits` items were paged through; a page holding the same
/// items as an earlier one (a server that ignores `pageNumber`) is an error, not a loop.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
/// use futures::TryStreamExt as _;
/// let body = serde_json::json!({
///     "interval": "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
///     "order": "asc",
///     "orderBy": "conversationStart",
/// });
/// let conversations: Vec<_> = tokenwarden::paginate::query_items(
///     &client, "/api/v2/analytics/conversations/details/query", body,
/// ).try_collect().await?; // or consume one by one
/// # let _ = conversations; Ok(()) }
/// ```
///
/// # Errors
/// As [`numbered_items`](crate::paginate::numbered_items).
pub fn query_items(
    client: &ApiClient,
    path: &str,
    body: Value,
) -> impl Stream<Item = Result<Value>> + Send + 'static + use<> {
    items(query_pages(client, path, body, None))
}

/// The pages of an analytics details query (see [`query_items`]), each with the
/// [`Position::PageNumber`] after it, starting at `from` (`None`: the body's `paging.pageNumber`,
/// default 1).
///
/// # Errors
/// As [`query_items`]; [`Error::Config`] for a position that is not a page number.
pub fn query_pages(
    client: &ApiClient,
    path: &str,
    body: Value,
    from: Option<Position>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let client = client.clone();
    let url = client.resolve(path);
    let mut body = body;
    let (first, size) = paging(&mut body);
    let first = match from {
        None => Ok(first),
        Some(Position::PageNumber { page_number }) => Ok(page_number.max(1)),
        Some(_) => Err(Error::Config(
            "a query continues from a page number only".into(),
        )),
    };
    let start = (Some(first), Visits::default());
    stream::try_unfold(start, move |(next, mut visits)| {
        let (client, url, mut body) = (client.clone(), url.clone(), body.clone());
        async move {
            let Some(number) = next else { return Ok(None) };
            let (number, url) = (number?, url?);
            body["paging"]["pageNumber"] = json!(number);
            // Page numbers never repeat, but a server can answer every one with the same items
            // (and no totalHits): the same page again ends the walk with an error.
            let request = client
                .request(Method::POST, url.as_str())
                .json(&body)
                .replay_safe();
            let (page, items) = fetch_page(request, &mut visits, || {
                format!("page {number} of the query")
            })
            .await?;
            let next = next_query_page(number, size, items.len(), u64_field(&page, "totalHits"));
            let position = next.map(|page_number| Position::PageNumber { page_number });
            Ok(Some((
                Page {
                    items,
                    next: position,
                },
                (next.map(Ok), visits),
            )))
        }
    })
}

/// Makes sure `body.paging` exists; returns the first page number and the page size.
fn paging(body: &mut Value) -> (u64, u64) {
    if !body.is_object() {
        return (1, DEFAULT_QUERY_PAGE_SIZE);
    }
    if !body.get("paging").is_some_and(Value::is_object) {
        body["paging"] = json!({});
    }
    let first = u64_field(&body["paging"], "pageNumber").unwrap_or(1).max(1);
    let size = match u64_field(&body["paging"], "pageSize") {
        Some(s) if s > 0 => s,
        _ => {
            body["paging"]["pageSize"] = json!(DEFAULT_QUERY_PAGE_SIZE);
            DEFAULT_QUERY_PAGE_SIZE
        }
    };
    (first, size)
}

/// The page after page `number` of the query, if any.
fn next_query_page(
    number: u64,
    size: u64,
    item_count: usize,
    total_hits: Option<u64>,
) -> Option<u64> {
    if item_count == 0 {
        return None;
    }
    match total_hits {
        Some(total) if number.saturating_mul(size) >= total => None,
        _ => Some(number + 1),
    }
}

/// How [`analytics_job_items`] waits for a job and reads its results.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobOptions {
    /// First wait between status polls. Default 1 s.
    pub poll_initial: Duration,
    /// Longest wait between polls (the wait grows by half each poll). Default 10 s.
    pub poll_max: Duration,
    /// Give up (with [`Error::JobFailed`]) if the job has not finished after this long. Default 2 h.
    pub max_wait: Duration,
    /// `pageSize` of the results pages. Default 500.
    pub page_size: u32,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(10),
            max_wait: Duration::from_secs(2 * 3600),
            page_size: 500,
        }
    }
}

impl JobOptions {
    /// Polls starting at `initial` and growing to at most `max`.
    pub fn poll(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_initial = initial;
        self.poll_max = max.max(initial);
        self
    }

    /// Gives up after `d`.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Results page size.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The wait before poll `n` (0-based): `poll_initial × 1.5^n`, at most `poll_max`.
    fn poll_delay(&self, n: u32) -> Duration {
        let f = 1.5f64.powi(n.min(64) as i32);
        self.poll_initial.mul_f64(f.min(1e6)).min(self.poll_max)
    }
}

/// Every conversation of an asynchronous analytics job: submits `body` to `jobs_path` (e.g.
/// `/api/v2/analytics/conversations/details/jobs`), polls `{jobs_path}/{jobId}` until the job is
/// `FULFILLED`, then reads `{jobs_path}/{jobId}/results` by cursor.
///
/// Every request goes through the client, so a job that outlives many tokens still completes. The
/// submission is not marked replay-safe (sending it twice would start two jobs): it is retried only
/// when the failure proves it was not received.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
/// use futures::TryStreamExt as _;
/// let body = serde_json::json!({"interval": "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z"});
/// let n = tokenwarden::paginate::analytics_job_items(
///     &client, "/api/v2/analytics/conversations/details/jobs", body, Default::default(),
/// )
/// .try_fold(0u64, |n, _| async move { Ok(n + 1) })
/// .await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// # Errors
/// [`Error::JobFailed`] if the job ends `FAILED`, `CANCELLED` or `EXPIRED` (or is still running
/// after [`JobOptions::max_wait`]); [`Error::Decode`] if the submission answer has no `jobId`;
/// otherwise as [`numbered_items`](crate::paginate::numbered_items).
pub fn analytics_job_items(
    client: &ApiClient,
    jobs_path: &str,
    body: Value,
    options: JobOptions,
) -> impl Stream<Item = Result<Value>> + Send + 'static + use<> {
    items(analytics_job_pages(client, jobs_path, body, options, None))
}

/// The pages of an asynchronous analytics job (see [`analytics_job_items`]), each with the
/// [`Position::Job`] after it, starting at `from`.
///
/// Without `from`, the job is submitted and the first page handed out has no items and the new
/// job's position (`cursor: None`): record it, and a later run attaches to the same job instead of
/// submitting another. With `from`, the job is not submitted again: its status is polled until it
/// is fulfilled, then its results are read from the recorded cursor.
///
/// # Errors
/// As [`analytics_job_items`]. A job the API no longer knows (it expired, or was deleted) answers
/// [`Error::Status`] 404, or [`Error::JobFailed`] with state `EXPIRED`: submit it again then.
/// [`Error::Config`] for a position that is not a job.
pub fn analytics_job_pages(
    client: &ApiClient,
    jobs_path: &str,
    body: Value,
    options: JobOptions,
    from: Option<Position>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let client = client.clone();
    let jobs_path = jobs_path.trim_end_matches('/').to_string();
    stream::once(async move {
        let (job_id, cursor, announce) = match from {
            None => (submit(&client, &jobs_path, &body).await?, None, true),
            Some(Position::Job { job_id, cursor }) => (job_id, cursor, false),
            Some(_) => {
                return Err(Error::Config(
                    "an analytics job continues from a job position only".into(),
                ));
            }
        };
        let announced = announce.then(|| Page {
            items: Vec::new(),
            next: Some(Position::Job {
                job_id: job_id.clone(),
                cursor: None,
            }),
        });
        let rest = stream::once(async move {
            wait_for(&client, &jobs_path, &job_id, &options).await?;
            Ok(results(
                &client,
                &jobs_path,
                &job_id,
                options.page_size,
                cursor,
            ))
        })
        .try_flatten();
        Ok(stream::iter(announced.map(Ok)).chain(rest))
    })
    .try_flatten()
    .boxed()
}

/// The results pages of a fulfilled job from `cursor` on (`None`: the first page), each with the
/// job position after it.
pub(crate) fn results(
    client: &ApiClient,
    jobs_path: &str,
    job_id: &str,
    page_size: u32,
    cursor: Option<String>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let base = client.resolve(&format!(
        "{jobs_path}/{}/results?pageSize={page_size}",
        encode_segment(job_id)
    ));
    let first = match (&base, cursor) {
        (Ok(b), Some(c)) => Ok(with_query_param(b, "cursor", &c)),
        (b, _) => b.clone(),
    };
    let (resolver, job_id) = (client.clone(), job_id.to_string());
    walk(
        client.clone(),
        first,
        Box::new(move |url, page, _| {
            let (next, cursor) = match next_cursor(page) {
                None => return Ok(None),
                Some(Next::Cursor(c)) => (with_query_param(url, "cursor", &c), c),
                Some(Next::Uri(u)) => {
                    let next = resolver.resolve(&u)?;
                    let c = next
                        .query_pairs()
                        .find(|(k, _)| k == "cursor")
                        .map(|(_, v)| v.into_owned())
                        .ok_or_else(|| Error::Decode {
                            what: "an analytics job results page".into(),
                            detail: format!("its nextUri {} has no cursor", excerpt(&u, 200)),
                        })?;
                    (next, c)
                }
            };
            let position = Position::Job {
                job_id: job_id.clone(),
                cursor: Some(cursor),
            };
            Ok(Some((next, position)))
        }),
    )
}

/// Submits a job; returns its id.
pub(crate) async fn submit(client: &ApiClient, jobs_path: &str, body: &Value) -> Result<String> {
    let resp = client
        .request(Method::POST, jobs_path)
        .json(body)
        // Creating a job only reads: sent twice (a 5xx after the server created it), the worst is
        // a second job nobody polls, which the API expires on its own. Not retrying would fail a
        // month's export on one 503.
        .replay_safe()
        .send()
        .await?
        .error_for_status()?;
    let answer: Value = resp.json()?;
    let id = str_field(&answer, "jobId")
        .filter(|id| plausible_job_id(id))
        .ok_or_else(|| Error::Decode {
            what: format!("the answer to POST {jobs_path}"),
            detail: "no usable jobId in it (absent, longer than 256 characters, or with control characters)".into(),
        })?;
    ensure_no_secret(&format!("the jobId of the answer to POST {jobs_path}"), id)?;
    tracing::info!(job_id = id, "analytics job submitted");
    Ok(id.to_string())
}

/// A job id is shown in messages and recorded in files: only short, printable ones are accepted.
fn plausible_job_id(id: &str) -> bool {
    id.len() <= 256 && !id.chars().any(char::is_control)
}

/// Deletes a job whose results were read (they would otherwise be kept by the API for days).
pub(crate) async fn delete(client: &ApiClient, jobs_path: &str, job_id: &str) -> Result<()> {
    client
        .request(
            Method::DELETE,
            &format!("{jobs_path}/{}", encode_segment(job_id)),
        )
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Where a job stands.
#[derive(Debug, PartialEq, Eq)]
enum JobState {
    Done,
    Running,
    Failed,
}

fn job_state(state: &str) -> JobState {
    match state {
        "FULFILLED" => JobState::Done,
        "FAILED" | "CANCELLED" | "EXPIRED" => JobState::Failed,
        // QUEUED, PENDING, and anything new: keep waiting (bounded by max_wait).
        _ => JobState::Running,
    }
}

/// Polls a job until it is fulfilled.
pub(crate) async fn wait_for(
    client: &ApiClient,
    jobs_path: &str,
    job_id: &str,
    options: &JobOptions,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    let status_path = format!("{jobs_path}/{}", encode_segment(job_id));
    let mut polls = 0u32;
    loop {
        let status = client.get_json(&status_path).await?;
        // Server text: shortened and made printable before it can reach a message.
        let state = excerpt(str_field(&status, "state").unwrap_or("UNKNOWN"), 40);
        match job_state(&state) {
            JobState::Done => {
                tracing::info!(job_id, polls, "analytics job fulfilled");
                return Ok(());
            }
            JobState::Failed => {
                // The caller says what happens next (the slice runs again, or the export stops).
                tracing::info!(job_id, %state, "analytics job failed");
                return Err(Error::JobFailed {
                    job_id: excerpt(job_id, 64),
                    state,
                });
            }
            JobState::Running => {}
        }
        let delay = options.poll_delay(polls);
        if started.elapsed() + delay > options.max_wait {
            return Err(Error::JobFailed {
                job_id: excerpt(job_id, 64),
                state: format!(
                    "{state} (still running after {}; gave up)",
                    crate::error::human_duration(options.max_wait)
                ),
            });
        }
        tracing::debug!(job_id, %state, wait_ms = delay.as_millis() as u64, "analytics job running");
        polls += 1;
        tokio::time::sleep(delay).await;
    }
}

/// A job id as one path segment (ids are UUIDs; anything else is percent-encoded).
fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_paging_defaults() {
        let mut b = json!({"interval": "x"});
        assert_eq!(paging(&mut b), (1, 100));
        assert_eq!(b["paging"]["pageSize"], 100);
        let mut b = json!({"interval": "x", "paging": {"pageSize": 25, "pageNumber": 3}});
        assert_eq!(paging(&mut b), (3, 25));
    }

    #[test]
    fn query_stops_at_total_hits_or_empty_page() {
        assert_eq!(next_query_page(1, 25, 25, Some(60)), Some(2));
        assert_eq!(next_query_page(2, 25, 25, Some(60)), Some(3));
        assert_eq!(next_query_page(3, 25, 10, Some(60)), None);
        assert_eq!(next_query_page(2, 25, 25, Some(50)), None);
        assert_eq!(next_query_page(1, 25, 0, Some(60)), None);
        assert_eq!(next_query_page(1, 25, 25, None), Some(2));
    }

    #[test]
    fn job_states() {
        assert_eq!(job_state("FULFILLED"), JobState::Done);
        for s in ["FAILED", "CANCELLED", "EXPIRED"] {
            assert_eq!(job_state(s), JobState::Failed);
        }
        for s in ["QUEUED", "PENDING", "SOMETHING_NEW"] {
            assert_eq!(job_state(s), JobState::Running);
        }
    }

    #[test]
    fn poll_delay_grows_and_is_capped() {
        let o = JobOptions::default().poll(Duration::from_millis(100), Duration::from_millis(300));
        assert_eq!(o.poll_delay(0), Duration::from_millis(100));
        assert_eq!(o.poll_delay(1), Duration::from_millis(150));
        assert_eq!(o.poll_delay(2), Duration::from_millis(225));
        assert_eq!(o.poll_delay(3), Duration::from_millis(300));
        assert_eq!(o.poll_delay(u32::MAX), Duration::from_millis(300));
    }

    #[test]
    fn job_ids_are_one_segment() {
        assert_eq!(encode_segment("3f2a-11"), "3f2a-11");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
