//! `GET` listings: page-number style (`pageNumber` / `pageCount` / `nextUri`) and cursor style
//! (`cursors.after`, `cursor`, `nextUri`).

use super::{ensure_progress, items, str_field, take_items, u64_field, with_query_param};
use crate::client::ApiClient;
use crate::error::Result;
use futures::{Stream, stream};
use serde_json::Value;
use url::Url;

/// Every item of a page-number listing such as `GET /api/v2/users?pageSize=100`, in order.
///
/// Follows `nextUri` (a path relative to the API base); without one, asks for
/// `pageNumber + 1` while it is below `pageCount`. Stops at the first empty page.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
/// use futures::TryStreamExt as _;
/// let mut users = std::pin::pin!(tokenwarden::paginate_pages(&client, "/api/v2/users?pageSize=100"));
/// while let Some(user) = users.try_next().await? {
///     println!("{}", user["name"]);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// Each failed page is one `Err` item, after which the stream ends: the errors of
/// [`RequestBuilder::send`](crate::RequestBuilder::send), [`Error::Status`](crate::Error::Status)
/// for a non-2xx page, [`Error::Decode`](crate::Error::Decode) for a page that is not JSON.
pub fn paginate_pages(
    client: &ApiClient,
    path: &str,
) -> impl Stream<Item = Result<Value>> + Send + 'static {
    let client = client.clone();
    let first = client.resolve(path);
    let pages = stream::try_unfold(Some(first), move |next| {
        let client = client.clone();
        async move {
            let Some(url) = next else { return Ok(None) };
            let url = url?;
            let mut page: Value = client
                .get(url.as_str())
                .send()
                .await?
                .error_for_status()?
                .json()?;
            let found = take_items(&mut page);
            let next = match next_page(&url, &page, found.len()) {
                Some(n) => ensure_progress(&url, Some(client.resolve(&n)?))?,
                None => None,
            };
            Ok(Some((found, next.map(Ok))))
        }
    });
    items(pages)
}

/// The page after a page-number page: its `nextUri`, else `pageNumber + 1` while below
/// `pageCount`, else none; never after an empty page.
fn next_page(current: &Url, page: &Value, item_count: usize) -> Option<String> {
    if item_count == 0 {
        return None;
    }
    if let Some(next) = str_field(page, "nextUri") {
        return Some(next.to_string());
    }
    let (number, count) = (
        u64_field(page, "pageNumber")?,
        u64_field(page, "pageCount")?,
    );
    (number < count)
        .then(|| with_query_param(current, "pageNumber", &(number + 1).to_string()).to_string())
}

/// Every item of a cursor listing such as `GET /api/v2/externalcontacts/scan/contacts?limit=200`,
/// in order.
///
/// Follows `nextUri` when the page has one; otherwise sets the `cursor` query parameter of the
/// first request to the page's `cursors.after` (or top-level `cursor`). Stops when there is none.
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
/// use futures::TryStreamExt as _;
/// let contacts = tokenwarden::paginate_cursor(&client, "/api/v2/externalcontacts/scan/contacts?limit=200");
/// let n = contacts.try_fold(0u64, |n, _| async move { Ok(n + 1) }).await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// # Errors
/// As [`paginate_pages`].
pub fn paginate_cursor(
    client: &ApiClient,
    path: &str,
) -> impl Stream<Item = Result<Value>> + Send + 'static {
    let first = client.resolve(path);
    cursor_from(client.clone(), first)
}

/// The cursor stream from an already resolved first URL.
pub(super) fn cursor_from(
    client: ApiClient,
    first: Result<Url>,
) -> impl Stream<Item = Result<Value>> + Send + 'static {
    let pages = stream::try_unfold(
        (first.map(|u| (u.clone(), u)), false),
        move |(state, done)| {
            let client = client.clone();
            async move {
                if done {
                    return Ok(None);
                }
                let (base, url) = state?;
                let mut page: Value = client
                    .get(url.as_str())
                    .send()
                    .await?
                    .error_for_status()?
                    .json()?;
                let found = take_items(&mut page);
                let next = match next_cursor(&base, &page) {
                    Some(n) => ensure_progress(&url, Some(client.resolve(&n)?))?,
                    None => None,
                };
                let done = next.is_none();
                let next = next.unwrap_or_else(|| url.clone());
                Ok(Some((found, (Ok((base, next)), done))))
            }
        },
    );
    items(pages)
}

/// The page after a cursor page: its `nextUri`, else the first request with `cursor` set to
/// `cursors.after` or to a top-level `cursor`, else none.
fn next_cursor(first: &Url, page: &Value) -> Option<String> {
    if let Some(next) = str_field(page, "nextUri") {
        return Some(next.to_string());
    }
    let cursor = page
        .get("cursors")
        .and_then(|c| str_field(c, "after"))
        .or_else(|| str_field(page, "cursor"))?;
    Some(with_query_param(first, "cursor", cursor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn page_number_rules() {
        let cur = url("https://api.example/api/v2/users?pageSize=2&pageNumber=1");
        let next = json!({"nextUri": "/api/v2/users?pageSize=2&pageNumber=2", "pageNumber": 1, "pageCount": 3});
        assert_eq!(
            next_page(&cur, &next, 2).as_deref(),
            Some("/api/v2/users?pageSize=2&pageNumber=2")
        );
        // no nextUri: count pages
        let counted = json!({"pageNumber": 1, "pageCount": 3, "nextUri": null});
        assert_eq!(
            next_page(&cur, &counted, 2).as_deref(),
            Some("https://api.example/api/v2/users?pageSize=2&pageNumber=2")
        );
        let last = json!({"pageNumber": 3, "pageCount": 3});
        assert_eq!(next_page(&cur, &last, 2), None);
        // an empty page ends the listing even if the API says there is more
        assert_eq!(next_page(&cur, &next, 0), None);
        assert_eq!(next_page(&cur, &json!({}), 2), None);
    }

    #[test]
    fn cursor_rules() {
        let first = url("https://api.example/api/v2/externalcontacts/scan/contacts?limit=2");
        assert_eq!(
            next_cursor(&first, &json!({"nextUri": "/x?cursor=abc"})).as_deref(),
            Some("/x?cursor=abc")
        );
        assert_eq!(
            next_cursor(&first, &json!({"cursors": {"after": "abc"}})).as_deref(),
            Some("https://api.example/api/v2/externalcontacts/scan/contacts?limit=2&cursor=abc")
        );
        let results = url("https://api.example/jobs/1/results?pageSize=2&cursor=old");
        assert_eq!(
            next_cursor(&results, &json!({"cursor": "new"})).as_deref(),
            Some("https://api.example/jobs/1/results?pageSize=2&cursor=new")
        );
        assert_eq!(next_cursor(&first, &json!({"cursors": {}})), None);
        assert_eq!(next_cursor(&first, &json!({"cursor": ""})), None);
    }
}
