//! The Prometheus text exposition of a [`Recorder`]: what `GET /metrics` answers.
//!
//! Names and labels follow Prometheus's conventions (`promtool check metrics` has nothing to say):
//! counters end in `_total`, durations are in seconds, and the only labels are the outcome
//! `class` and the refresh `reason`, from fixed sets: no label ever holds an id, a path or a
//! secret, so the series count cannot grow with the traffic.

use super::histogram::{self, BOUNDS};
use super::{Class, Recorder, RefreshReason};
use std::fmt::Write as _;
use std::time::Duration;

/// The `Content-Type` of [`render_prometheus`]'s text (exposition format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The request-duration histogram's bounds, in seconds, in every export (Prometheus,
/// OpenTelemetry): Prometheus's usual ones, each a bound of the recorder's finer histogram, so
/// each count is exact.
pub const DURATION_BOUNDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The metrics of `recorder` in the Prometheus text format, with the current token's time to
/// expiry as `tokenwarden_token_remaining_seconds` when one is given (from
/// `manager::Metrics::time_to_expiry`).
///
/// ```
/// use tokenwarden::observe::{Recorder, render_prometheus};
/// let text = render_prometheus(&Recorder::new(), Some(std::time::Duration::from_secs(90)));
/// assert!(text.contains("tokenwarden_token_remaining_seconds 90\n"));
/// assert!(text.contains("# TYPE tokenwarden_api_request_duration_seconds histogram\n"));
/// ```
pub fn render_prometheus(recorder: &Recorder, token_remaining: Option<Duration>) -> String {
    let c = recorder.counts();
    let mut out = String::with_capacity(4096);
    let mut lines = Vec::new();

    let name = family(
        &mut out,
        "tokenwarden_api_requests_total",
        "counter",
        "Exchanges with the API (every attempt: retries, 401 heals and redirects included) by outcome class.",
    );
    for class in Class::ALL {
        lines.push(format!(
            "{name}{{class=\"{}\"}} {}",
            class.label(),
            c.classes[class.index()]
        ));
    }
    flush(&mut out, &mut lines);

    let name = family(
        &mut out,
        "tokenwarden_token_requests_total",
        "counter",
        "Token refreshes started, by reason (proactive, after_401, on_demand).",
    );
    for reason in RefreshReason::ALL {
        lines.push(format!(
            "{name}{{reason=\"{}\"}} {}",
            reason.label(),
            c.refreshes[reason.index()]
        ));
    }
    flush(&mut out, &mut lines);

    let counters: [(&str, &str, u64); 5] = [
        (
            "tokenwarden_token_refresh_failures_total",
            "Token refreshes that ended without a token.",
            c.refresh_failures,
        ),
        (
            "tokenwarden_401_healed_total",
            "API 401s healed: the retry with a new token was answered with anything but another 401.",
            c.healed,
        ),
        (
            "tokenwarden_429_total",
            "API answers with HTTP 429 Too Many Requests.",
            c.classes[Class::RateLimited.index()],
        ),
        (
            "tokenwarden_429_waits_total",
            "429 answers waited out before a retry.",
            c.waits_429,
        ),
        (
            "tokenwarden_rate_limit_pauses_total",
            "Times every request was held until the API's rate-limit window reset.",
            c.holds,
        ),
    ];
    for (name, help, value) in counters {
        let name = family(&mut out, name, "counter", help);
        lines.push(format!("{name} {value}"));
        flush(&mut out, &mut lines);
    }
    let name = family(
        &mut out,
        "tokenwarden_429_wait_seconds_total",
        "counter",
        "Time spent waiting out 429 answers (concurrent waits add up).",
    );
    lines.push(format!(
        "{name} {}",
        number(Duration::from_nanos(c.wait_429_nanos).as_secs_f64())
    ));
    flush(&mut out, &mut lines);

    let name = family(
        &mut out,
        "tokenwarden_token_remaining_seconds",
        "gauge",
        "Seconds until the current access token expires (0 once it has expired; absent while there is none, or it never expires).",
    );
    if let Some(d) = token_remaining {
        lines.push(format!("{name} {}", number(d.as_secs_f64())));
    }
    flush(&mut out, &mut lines);

    let name = family(
        &mut out,
        "tokenwarden_api_request_duration_seconds",
        "histogram",
        "Duration of one exchange with the API (one attempt), from sending to the whole answer read.",
    );
    let mut cumulative = 0u64;
    let mut fine = 0usize;
    for le in DURATION_BOUNDS {
        // Every exposed bound is one of the fine bounds: add the fine buckets up to it.
        while fine < BOUNDS && histogram::bound(fine).is_some_and(|b| b <= le * (1.0 + 1e-9)) {
            cumulative += c.latency.buckets[fine];
            fine += 1;
        }
        lines.push(format!(
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            number(le)
        ));
    }
    let count = c.latency.total();
    lines.push(format!("{name}_bucket{{le=\"+Inf\"}} {count}"));
    lines.push(format!(
        "{name}_sum {}",
        number(Duration::from_nanos(c.latency.sum_nanos).as_secs_f64())
    ));
    lines.push(format!("{name}_count {count}"));
    flush(&mut out, &mut lines);
    out
}

/// Writes the `# HELP` and `# TYPE` lines of a family; returns its name.
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    name.to_string()
}

/// Appends `lines` (the samples of one family) to `out`.
fn flush(out: &mut String, lines: &mut Vec<String>) {
    for l in lines.drain(..) {
        out.push_str(&l);
        out.push('\n');
    }
}

/// A sample value as Prometheus reads it: integers without a fraction, others in Rust's
/// shortest round-trip form.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;

    #[test]
    fn every_family_has_help_and_type_and_counts_add_up() {
        let r = Recorder::new();
        let now = Instant::now();
        r.exchange(Class::Success, Duration::from_millis(3), now);
        r.exchange(Class::Success, Duration::from_millis(40), now);
        r.exchange(Class::RateLimited, Duration::from_millis(2), now);
        r.exchange(Class::Transport, Duration::from_secs(120), now);
        r.refresh_started(RefreshReason::AfterUnauthorized);
        r.healed();
        let text = render_prometheus(&r, None);
        for want in [
            "tokenwarden_api_requests_total{class=\"2xx\"} 2\n",
            "tokenwarden_api_requests_total{class=\"429\"} 1\n",
            "tokenwarden_api_requests_total{class=\"transport\"} 1\n",
            "tokenwarden_token_requests_total{reason=\"after_401\"} 1\n",
            "tokenwarden_401_healed_total 1\n",
            "tokenwarden_429_total 1\n",
            "tokenwarden_api_request_duration_seconds_bucket{le=\"0.0025\"} 1\n",
            "tokenwarden_api_request_duration_seconds_bucket{le=\"0.005\"} 2\n",
            "tokenwarden_api_request_duration_seconds_bucket{le=\"0.05\"} 3\n",
            "tokenwarden_api_request_duration_seconds_bucket{le=\"60\"} 3\n",
            "tokenwarden_api_request_duration_seconds_bucket{le=\"+Inf\"} 4\n",
            "tokenwarden_api_request_duration_seconds_count 4\n",
            "tokenwarden_api_request_duration_seconds_sum 120.045\n",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
        assert!(!text.contains("\ntokenwarden_token_remaining_seconds "));
        // Every sample belongs to a family announced just before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
    }

    #[test]
    fn bucket_counts_never_fall() {
        let r = Recorder::new();
        for ms in [0, 1, 2, 7, 80, 700, 9_000, 59_000, 61_000] {
            r.exchange(Class::Success, Duration::from_millis(ms), Instant::now());
        }
        let text = render_prometheus(&r, Some(Duration::from_millis(1500)));
        assert!(
            text.contains("tokenwarden_token_remaining_seconds 1.5\n"),
            "{text}"
        );
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.contains("_bucket{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&9));
        assert_eq!(counts[counts.len() - 2], 8);
    }
}
