//! `tokenwarden paginate` and `tokenwarden export conversations`: items as JSON Lines.

use crate::args::{ExportArgs, PaginateArgs, PagingStyle};
use anyhow::{Context as _, Result};
use futures::{Stream, StreamExt as _};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use tokenwarden::{ApiClient, JobOptions};

/// Analytics conversation details jobs endpoint.
const JOBS_PATH: &str = "/api/v2/analytics/conversations/details/jobs";

pub(crate) async fn paginate(client: &ApiClient, a: PaginateArgs) -> Result<u8> {
    let style = match a.style {
        PagingStyle::Auto if a.body.is_some() => PagingStyle::Query,
        PagingStyle::Auto if a.path.contains("/scan/") || a.path.contains("cursor=") => {
            PagingStyle::Cursor
        }
        PagingStyle::Auto => PagingStyle::Pages,
        s => s,
    };
    let path = match (a.page_size, style) {
        (Some(n), PagingStyle::Pages) => with_query(&a.path, "pageSize", n),
        (Some(n), PagingStyle::Cursor) => with_query(&a.path, "limit", n),
        _ => a.path.clone(),
    };
    match style {
        PagingStyle::Query => {
            let mut body = match &a.body {
                Some(b) => super::json_arg(b)?,
                None => serde_json::json!({}),
            };
            if let (Some(n), Some(obj)) = (a.page_size, body.as_object_mut()) {
                let paging = obj.entry("paging").or_insert_with(|| serde_json::json!({}));
                paging["pageSize"] = n.into();
            }
            write_items(
                tokenwarden::paginate_query(client, &path, body),
                a.out.as_deref(),
            )
            .await
        }
        PagingStyle::Cursor => {
            write_items(
                tokenwarden::paginate_cursor(client, &path),
                a.out.as_deref(),
            )
            .await
        }
        _ => write_items(tokenwarden::paginate_pages(client, &path), a.out.as_deref()).await,
    }
}

fn with_query(path: &str, key: &str, n: u32) -> String {
    if path.contains(&format!("{key}=")) {
        return path.to_string();
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={n}")
}

pub(crate) async fn export_conversations(client: &ApiClient, a: ExportArgs) -> Result<u8> {
    let mut body = match &a.filter {
        Some(f) => super::json_arg(f)?,
        None => serde_json::json!({}),
    };
    let obj = body
        .as_object_mut()
        .ok_or_else(|| crate::ConfigError("--filter must be a JSON object".into()))?;
    if !a.interval.contains('/') {
        return Err(crate::ConfigError(format!(
            "--interval {:?}: use START/END in ISO-8601, e.g. 2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
            a.interval
        ))
        .into());
    }
    obj.insert("interval".into(), Value::String(a.interval.clone()));
    let mut options = JobOptions::default();
    if let Some(n) = a.page_size {
        options = options.page_size(n);
    }
    let items = tokenwarden::analytics_job(client, JOBS_PATH, body, options);
    write_items(items, a.out.as_deref()).await
}

/// Streams items to `out` (or stdout), one JSON per line, never holding more than one page.
async fn write_items(
    items: impl Stream<Item = tokenwarden::Result<Value>>,
    out: Option<&Path>,
) -> Result<u8> {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut items = std::pin::pin!(items);
    let mut n = 0u64;
    while let Some(item) = items.next().await {
        let item = item.with_context(|| format!("after {n} items"))?;
        serde_json::to_writer(&mut sink, &item)?;
        sink.write_all(b"\n")?;
        n += 1;
    }
    sink.flush()?;
    tracing::info!(items = n, "done");
    if out.is_some() {
        crate::ui::summary(&format!("{n} items"), serde_json::json!({"items": n}));
    }
    Ok(crate::exit::OK)
}
