//! `GET` listings: page-number style (`pageNumber` / `pageCount` / `nextUri`) and cursor style
//! (`cursors.after`, `cursor`, `nextUri`).

use super::{Page, Position, items, str_field, u64_field, walk, with_query_param};
use crate::client::ApiClient;
use crate::error::{Error, Result};
use futures::Stream;
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
/// let mut users = std::pin::pin!(tokenwarden::paginate::numbered_items(&client, "/api/v2/users?pageSize=100"));
/// while let Some(user) = users.try_next().await? {
///     println!("{}", user["name"]);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// Each failed page is one `Err` item, after which the stream ends: the errors of
/// [`RequestBuilder::send`](crate::RequestBuilder::send), [`Error::Status`](crate::Error::Status)
/// for a non-2xx page, [`Error::Decode`](crate::Error::Decode) for a page that is not JSON or a next
/// page off the API's origin.
pub fn numbered_items(
    client: &ApiClient,
    path: &str,
) -> impl Stream<Item = Result<Value>> + Send + 'static + use<> {
    items(numbered_pages(client, path, None))
}

/// The pages of a page-number listing (see [`numbered_items`]), each with the [`Position`] after
/// it, starting at `from` (`None`: the first page).
///
/// `from` is a [`Position::Url`] recorded from an earlier page, or a [`Position::PageNumber`]
/// (the `pageNumber` query parameter of `path` is set to it).
///
/// ```no_run
/// # async fn run(client: tokenwarden::ApiClient) -> Result<(), tokenwarden::Error> {
/// use futures::TryStreamExt as _;
/// use tokenwarden::{paginate::Position, paginate::numbered_pages};
/// // Store each page's items, then its `next`; after a crash, start from the last one stored.
/// let stored: Option<Position> = Some(Position::PageNumber { page_number: 4 });
/// let mut pages = std::pin::pin!(numbered_pages(&client, "/api/v2/users?pageSize=100", stored));
/// while let Some(page) = pages.try_next().await? {
///     println!("{} users; continue at {:?}", page.items.len(), page.next);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`numbered_items`]; [`Error::Config`](crate::Error::Config) for a [`Position::Job`].
pub fn numbered_pages(
    client: &ApiClient,
    path: &str,
    from: Option<Position>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let first = client.resolve(path).and_then(|base| match from {
        None => Ok(base),
        Some(Position::Url { url }) => client.resolve(&url),
        Some(Position::PageNumber { page_number }) => Ok(with_query_param(
            &base,
            "pageNumber",
            &page_number.max(1).to_string(),
        )),
        Some(_) => Err(Error::Config(
            "a page-number listing continues from a page URL or a page number only".into(),
        )),
    });
    let resolver = client.clone();
    walk(
        client.clone(),
        first,
        Box::new(move |url, page, count| {
            next_page(url, page, count)
                .map(|n| {
                    let next = resolver.resolve(&n)?;
                    let position = Position::Url {
                        url: next.to_string(),
                    };
                    Ok((next, position))
                })
                .transpose()
        }),
    )
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
/// let contacts = tokenwarden::paginate::cursor_items(&client, "/api/v2/externalcontacts/scan/contacts?limit=200");
/// let n = contacts.try_fold(0u64, |n, _| async move { Ok(n + 1) }).await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// # Errors
/// As [`numbered_items`].
pub fn cursor_items(
    client: &ApiClient,
    path: &str,
) -> impl Stream<Item = Result<Value>> + Send + 'static + use<> {
    items(cursor_pages(client, path, None))
}

/// The pages of a cursor listing (see [`cursor_items`]), each with the [`Position`] after it,
/// starting at `from` (`None`: the first page; otherwise a [`Position::Url`] recorded from an
/// earlier page, its cursor included).
///
/// # Errors
/// As [`numbered_items`]; [`Error::Config`](crate::Error::Config) for a position that is not a
/// [`Position::Url`].
pub fn cursor_pages(
    client: &ApiClient,
    path: &str,
    from: Option<Position>,
) -> impl Stream<Item = Result<Page>> + Send + 'static + use<> {
    let base = client.resolve(path);
    let first = base.clone().and_then(|base| match from {
        None => Ok(base),
        Some(Position::Url { url }) => client.resolve(&url),
        Some(_) => Err(Error::Config(
            "a cursor listing continues from a page URL only".into(),
        )),
    });
    let resolver = client.clone();
    let base = base.ok();
    walk(
        client.clone(),
        first,
        Box::new(move |_, page, _| {
            let Some(base) = &base else { return Ok(None) };
            let next = match next_cursor(page) {
                None => return Ok(None),
                Some(Next::Uri(u)) => resolver.resolve(&u)?,
                Some(Next::Cursor(c)) => with_query_param(base, "cursor", &c),
            };
            let position = Position::Url {
                url: next.to_string(),
            };
            Ok(Some((next, position)))
        }),
    )
}

/// What a cursor page says about the next one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A `nextUri` to follow as it is.
    Uri(String),
    /// A cursor to put in the `cursor` query parameter of the first request.
    Cursor(String),
}

/// The page after a cursor page: its `nextUri`, else its `cursors.after` or top-level `cursor`,
/// else none.
pub(super) fn next_cursor(page: &Value) -> Option<Next> {
    if let Some(next) = str_field(page, "nextUri") {
        return Some(Next::Uri(next.to_string()));
    }
    page.get("cursors")
        .and_then(|c| str_field(c, "after"))
        .or_else(|| str_field(page, "cursor"))
        .map(|c| Next::Cursor(c.to_string()))
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
        assert_eq!(
            next_cursor(&json!({"nextUri": "/x?cursor=abc", "cursors": {"after": "zzz"}})),
            Some(Next::Uri("/x?cursor=abc".into()))
        );
        assert_eq!(
            next_cursor(&json!({"cursors": {"after": "abc"}})),
            Some(Next::Cursor("abc".into()))
        );
        assert_eq!(
            next_cursor(&json!({"cursor": "new"})),
            Some(Next::Cursor("new".into()))
        );
        assert_eq!(next_cursor(&json!({"cursors": {}})), None);
        assert_eq!(next_cursor(&json!({"cursor": ""})), None);
    }
}
