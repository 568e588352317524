//! Genesys Cloud's pagination styles as async streams of items, and of pages with resumable
//! positions.
//!
//! Every page is fetched through the [`ApiClient`], so a token that expires or is
//! revoked in the middle of a listing is replaced inside the loop, and 429s and 5xx are retried
//! per page. Only one page is held at a time: items are handed out as the pages arrive.
//!
//! The items of a page are the first array found under `entities`, `conversations` or `results`
//! (absent means an empty page, as Genesys does for the last analytics page).
//!
//! Each item stream has a page stream beside it (`numbered_items` / [`numbered_pages`], ...)
//! that yields [`Page`]s carrying the [`Position`] after them, so a job killed mid-listing can
//! continue from the last position it recorded; the export engine (`tokenwarden::jobs::export`) builds resumable files on them.
//!
//! A next page that points off the API's origin is refused, not followed: a listing's pages all
//! come from the API that was asked. So is a next page (or cursor, or job id) that carries a
//! secret this process holds (a server putting the token into `nextUri` would have it sent back in
//! a query string and recorded in an export's state file), and a page the walk has been to
//! already (A → B → A would loop forever): each is an [`Error::Decode`] that says so.

pub(crate) mod analytics;
mod interval;
mod listing;
mod position;
mod visits;

pub use analytics::{
    JobOptions, analytics_job_items, analytics_job_pages, query_items, query_pages,
};
pub use interval::{Interval, IntervalError, MAX_SLICE, parse_slice_length};
pub use listing::{cursor_items, cursor_pages, numbered_items, numbered_pages};
pub use position::{Page, Position};

use crate::client::{ApiClient, RequestBuilder};
use crate::error::{Error, Result, excerpt};
use futures::{Stream, TryStreamExt as _, stream};
use serde_json::Value;
use url::Url;

/// Keys under which Genesys pages hold their items, in the order they are looked for.
const ITEM_KEYS: [&str; 3] = ["entities", "conversations", "results"];

/// Takes the items out of a page (see the module docs); empty if there are none.
pub(crate) fn take_items(page: &mut Value) -> Vec<Value> {
    for key in ITEM_KEYS {
        if let Some(Value::Array(items)) = page.get_mut(key) {
            return std::mem::take(items);
        }
    }
    Vec::new()
}

/// A non-empty string field.
fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A number field, as Genesys sends them (numbers; tolerate numeric strings).
fn u64_field(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `url` with query parameter `key` set to `value` (replacing any previous values).
fn with_query_param(url: &Url, key: &str, value: &str) -> Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = out.query_pairs_mut();
        q.clear();
        q.extend_pairs(kept);
        q.append_pair(key, value);
    }
    out
}

/// Refuses a page the walk has been to already (the API sent it round in a cycle).
fn ensure_progress(visits: &mut visits::Visits, url: &Url) -> Result<()> {
    if visits.first_visit(url.as_str()) {
        return Ok(());
    }
    Err(Error::Decode {
        what: format!("the page {}", excerpt(url.as_str(), 200)),
        detail: "the API sent the listing back to a page it had already returned; stopping instead of looping".into(),
    })
}

/// Sends one page's `request` and takes the items out of its answer (an HTTP error after the
/// client's retries is an error); returns the rest of the page and the items.
///
/// Refuses a page whose items are exactly those of an earlier page of the walk (`contents`): a
/// server sending the walk round under another spelling of a page's address (`/users` then
/// `/users?pageNumber=1`), or answering every page number alike. Checked before the items are
/// handed on, so none is output twice. Empty pages are not compared.
async fn fetch_page(
    request: RequestBuilder,
    contents: &mut visits::Visits,
    what: impl FnOnce() -> String,
) -> Result<(Value, Vec<Value>)> {
    let mut page: Value = request.send().await?.error_for_status()?.json()?;
    let items = take_items(&mut page);
    if items.is_empty() || contents.first_visit(&serde_json::to_string(&items).unwrap_or_default())
    {
        return Ok((page, items));
    }
    Err(Error::Decode {
        what: what(),
        detail:
            "the API answered with the same items as an earlier page; stopping instead of looping"
                .into(),
    })
}

/// Refuses a next page, cursor or job id that holds a secret this process knows: it would be
/// sent back in a query string and recorded in a state file.
pub(super) fn ensure_no_secret(what: &str, value: &str) -> Result<()> {
    if !crate::redact::contains_secret(value) {
        return Ok(());
    }
    Err(Error::Decode {
        what: what.to_string(),
        detail: "it holds a token or secret of this process ([REDACTED]); refusing to send it back or record it".into(),
    })
}

/// `url` if it is on the API's origin (a recorded position or a `nextUri` must be).
fn same_origin(client: &ApiClient, url: Url) -> Result<Url> {
    if url.origin() == client.api_base().origin() {
        Ok(url)
    } else {
        Err(Error::Decode {
            what: "the next page's address".into(),
            detail: format!(
                "{} is not on the API's origin ({}); refusing to follow it",
                excerpt(url.as_str(), 200),
                client.api_base().origin().ascii_serialization()
            ),
        })
    }
}

/// Where a `GET` walk goes after a page: the next URL and the position that names it.
type Advance = dyn Fn(&Url, &Value, usize) -> Result<Option<(Url, Position)>> + Send + Sync;

/// Pages of a `GET` listing from `first` on: each page is fetched, its items taken, and `advance`
/// (given the page's URL, the rest of the page and its item count) says where to go next.
fn walk(
    client: ApiClient,
    first: Result<Url>,
    advance: Box<Advance>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let advance: std::sync::Arc<Advance> = advance.into();
    let start = (
        Some(first),
        visits::Visits::default(),
        visits::Visits::default(),
    );
    stream::try_unfold(start, move |(next, mut visits, mut contents)| {
        let (client, advance) = (client.clone(), advance.clone());
        async move {
            let Some(url) = next else { return Ok(None) };
            let url = same_origin(&client, url?)?;
            ensure_progress(&mut visits, &url)?;
            let (page, items) = fetch_page(client.get(url.as_str()), &mut contents, || {
                format!("the page {}", excerpt(url.as_str(), 200))
            })
            .await?;
            let (next_url, position) = match advance(&url, &page, items.len())? {
                Some((n, p)) => {
                    ensure_no_secret("the next page's address", n.as_str())?;
                    (Some(same_origin(&client, n)?), Some(p))
                }
                None => (None, None),
            };
            Ok(Some((
                Page {
                    items,
                    next: position,
                },
                (next_url.map(Ok), visits, contents),
            )))
        }
    })
}

/// Turns a stream of pages into a stream of items.
fn items<S>(pages: S) -> impl Stream<Item = Result<Value>> + Send + 'static
where
    S: Stream<Item = Result<Page>> + Send + 'static,
{
    pages
        .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_items_under_known_keys() {
        let mut p = json!({"entities": [1, 2], "conversations": [3]});
        assert_eq!(take_items(&mut p), vec![json!(1), json!(2)]);
        let mut p = json!({"conversations": [3], "totalHits": 1});
        assert_eq!(take_items(&mut p), vec![json!(3)]);
        let mut p = json!({"totalHits": 0});
        assert!(take_items(&mut p).is_empty());
        let mut p = json!({"entities": null, "results": [4]});
        assert_eq!(take_items(&mut p), vec![json!(4)]);
    }

    #[test]
    fn sets_query_params() {
        let u = Url::parse("https://a.example/x?pageSize=25&pageNumber=1&q=a%20b").unwrap();
        let n = with_query_param(&u, "pageNumber", "2");
        let pairs: Vec<_> = n.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("pageSize".into(), "25".into()),
                ("q".into(), "a b".into()),
                ("pageNumber".into(), "2".into())
            ]
        );
    }
}
