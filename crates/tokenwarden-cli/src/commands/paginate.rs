//! `tokenwarden paginate`: every item of a listing, as JSON Lines or CSV, resumable with `--out`.

use crate::args::{PaginateArgs, PagingStyle};
use crate::exit::UsageError;
use anyhow::Result;
use tokenwarden::ApiClient;
use tokenwarden::jobs::export::Source;

pub(crate) async fn paginate(client: &ApiClient, a: PaginateArgs) -> Result<u8> {
    let style = match a.style {
        PagingStyle::Auto if a.body.is_some() => PagingStyle::Query,
        PagingStyle::Auto if a.path.contains("/scan/") || a.path.contains("cursor=") => {
            PagingStyle::Cursor
        }
        PagingStyle::Auto => PagingStyle::Pages,
        s => s,
    };
    super::on_origin(client, &a.path)?;
    let path = match (a.page_size, style) {
        (Some(n), PagingStyle::Pages) => with_query(&a.path, "pageSize", n)?,
        (Some(n), PagingStyle::Cursor) => with_query(&a.path, "limit", n)?,
        _ => a.path.clone(),
    };
    let source = match style {
        PagingStyle::Query => {
            let mut body = match &a.body {
                Some(b) => super::json_arg(b)?,
                None => serde_json::json!({}),
            };
            if let (Some(n), Some(obj)) = (a.page_size, body.as_object_mut()) {
                let paging = obj.entry("paging").or_insert_with(|| serde_json::json!({}));
                if paging.get("pageSize").is_some() {
                    return Err(UsageError(format!(
                        "--page-size {n} and \"paging\": {{\"pageSize\": ...}} in --body both set the page size: give one"
                    ))
                    .into());
                }
                paging["pageSize"] = n.into();
            }
            Source::Query { path, body }
        }
        PagingStyle::Cursor => Source::Cursor { path },
        _ => Source::Pages { path },
    };
    super::export::run(client, "paginate", source, &a.out).await
}

/// `path` with `key=n` added; a path that sets `key` itself conflicts with the flag.
fn with_query(path: &str, key: &str, n: u32) -> Result<String> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    if query
        .split('&')
        .any(|pair| pair.split('=').next() == Some(key))
    {
        return Err(UsageError(format!(
            "--page-size {n} and {key}= in the path both set the page size: give one"
        ))
        .into());
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    Ok(format!("{path}{sep}{key}={n}"))
}
