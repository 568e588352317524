//! The HTML report: one page holding its styles, its script and its data, which loads nothing
//! (a Content-Security-Policy of `default-src 'none'` says so to the browser too) and holds no
//! token or secret: only counts, durations, the summary's numbers and the run's times.

use anyhow::{Context as _, Result};
use std::path::Path;
use tokenwarden::observe::Recorder;

/// The page, with `__TOKENWARDEN_DATA__` where the run's data goes.
const TEMPLATE: &str = include_str!("report.html");
const DATA_SLOT: &str = "__TOKENWARDEN_DATA__";
/// What marks a file as a tokenwarden report (replaced without `--force`).
const MARK: &str = "<meta name=\"generator\" content=\"tokenwarden report\">";

/// The report page of the run `client` recorded.
pub(super) fn render(
    command: &str,
    recorder: &Recorder,
    summary: &serde_json::Value,
    resumed: bool,
) -> String {
    let mut summary = summary.clone();
    if let Some(o) = summary.as_object_mut() {
        // The report shows the series as charts and the totals in a table of their own.
        o.remove("series");
        o.remove("observed");
    }
    let data = serde_json::json!({
        "command": command,
        "version": env!("CARGO_PKG_VERSION"),
        "resumed": resumed,
        "generated_at": now_rfc3339(),
        "summary": summary,
        "totals": recorder.totals(),
        "series": recorder.series(),
    });
    page(&data)
}

/// The template with `data` in its slot. The JSON is made safe to sit inside `<script>`: `<`, `>`
/// and `&` appear only in strings, where their `\u` escapes mean the same; no text from the run
/// can close the element. Registered secrets are scrubbed once more on the way.
fn page(data: &serde_json::Value) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    let json = tokenwarden::redact::redact(&json)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    TEMPLATE.replacen(DATA_SLOT, &json, 1)
}

#[allow(clippy::disallowed_methods)] // the report's own timestamp: when it was written
fn now_rfc3339() -> String {
    jiff::Timestamp::try_from(std::time::SystemTime::now())
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// Refuses a report path that is one of the job's own files, is not a file, or is a file that is
/// not a tokenwarden report (without `--force`), or whose directory cannot take a file.
///
/// # Errors
/// A usage error saying why.
pub(super) fn check(path: &Path, own: &[(std::path::PathBuf, &str)], force: bool) -> Result<()> {
    crate::commands::check_replaceable(path, "--report", own, force, "report", is_report)
}

/// Whether the file at `path` starts like a report tokenwarden wrote.
fn is_report(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .is_ok()
        && String::from_utf8_lossy(&head).contains(MARK)
}

/// Writes the page 0600, replacing `path` atomically (never following a link planted there).
pub(super) fn write(path: &Path, page: &[u8]) -> Result<()> {
    tokenwarden::fs::replace(path, page).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_text_cannot_close_the_script_element() {
        let page = page(
            &serde_json::json!({"summary": {"aborted": "</script><script>alert(1)</script>&"}}),
        );
        assert_eq!(
            page.matches("</script>").count(),
            TEMPLATE.matches("</script>").count()
        );
        assert!(page.contains("\\u003c/script\\u003e"));
        assert!(!page.contains(DATA_SLOT));
    }

    /// Ten hours, a million requests (a token refresh every five minutes, a 429 burst every
    /// hour): the page stays well under 2 MiB.
    #[tokio::test(start_paused = true)]
    async fn a_ten_hour_million_request_run_makes_a_small_report() {
        use tokenwarden::observe::{Class, RefreshReason};
        let recorder = Recorder::new();
        let per_second = 1_000_000 / 36_000 + 1;
        let mut sent = 0u64;
        for sec in 0..36_000u64 {
            for i in 0..per_second {
                if sent == 1_000_000 {
                    break;
                }
                let class = match (sec % 3600, i) {
                    (0..=9, 0..=4) => Class::RateLimited,
                    (_, 0) if sec % 97 == 0 => Class::ServerError,
                    _ => Class::Success,
                };
                recorder.record_exchange(class, std::time::Duration::from_micros(800 + 37 * i));
                sent += 1;
            }
            if sec % 300 == 0 {
                recorder.record_refresh(RefreshReason::Proactive);
            }
            tokio::time::advance(std::time::Duration::from_secs(1)).await;
        }
        assert_eq!(recorder.totals().all_requests(), 1_000_000);
        let page = render(
            "batch",
            &recorder,
            &serde_json::json!({"ok": 1_000_000}),
            false,
        );
        let size = page.len();
        println!("report of a 10-hour, 1,000,000-request run: {size} bytes");
        assert!(size < 2 << 20, "{size} bytes");
    }

    #[test]
    fn the_template_loads_nothing() {
        let lower = TEMPLATE.to_ascii_lowercase();
        for fetching in [
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "<img",
            "<iframe",
        ] {
            assert!(!lower.contains(fetching), "{fetching}");
        }
        assert!(TEMPLATE.contains("default-src 'none'"));
        assert!(TEMPLATE.contains(MARK));
    }
}
