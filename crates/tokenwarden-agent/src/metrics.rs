//! `GET /metrics`: the Prometheus text exposition, built in one function ([`render`]) from the
//! library's counters (the client's and its token managers') and the agent's own.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokenwarden::ApiClient;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Status classes counted.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The agent's own counters: what it answered to the requests it forwarded, how long they took,
/// and what it refused.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    by_class: [AtomicU64; 6],
    buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
    local_tokens: AtomicU64,
}

impl ProxyCounters {
    /// A forwarded request answered with `status` (`None`: answered with an error of the agent's)
    /// after `took`.
    pub fn record(&self, status: Option<u16>, took: Duration) {
        let class = match status {
            Some(s @ 100..=599) => (s / 100 - 1) as usize,
            _ => 5,
        };
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.duration_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request refused before anything was forwarded (no key, DNS rebinding, ...).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A local credential handed out by `POST /oauth/token`.
    pub fn local_token(&self) {
        self.local_tokens.fetch_add(1, Ordering::Relaxed);
    }
}

/// The exposition (text format 0.0.4) of `client`'s and `proxy`'s counters.
pub fn render(client: &ApiClient, proxy: &ProxyCounters) -> String {
    let api = client.metrics();
    let tokens = client.token_metrics();
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::with_capacity(4096);

    let name = "tokenwarden_api_requests_total";
    family(
        &mut out,
        name,
        "counter",
        "Requests forwarded to the API, by the status class answered (error: no answer).",
    );
    for (i, class) in CLASSES.iter().enumerate() {
        let _ = writeln!(out, "{name}{{class=\"{class}\"}} {}", g(&proxy.by_class[i]));
    }

    let name = "tokenwarden_token_requests_total";
    family(
        &mut out,
        name,
        "counter",
        "Token refreshes started, by reason: proactive (before expiry), reactive (no valid token), rejected (after a 401).",
    );
    for (reason, v) in [
        ("proactive", tokens.proactive_refreshes),
        ("reactive", tokens.reactive_refreshes),
        ("rejected", tokens.rejected_refreshes),
    ] {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
    }

    let scalars: [(&str, &str, &str, String); 8] = [
        (
            "tokenwarden_token_endpoint_requests_total",
            "counter",
            "HTTP requests made to the token endpoint, retries included.",
            tokens.token_requests.to_string(),
        ),
        (
            "tokenwarden_token_refresh_failures_total",
            "counter",
            "Token refreshes that ended without a token.",
            tokens.refresh_failures.to_string(),
        ),
        (
            "tokenwarden_401_healed_total",
            "counter",
            "401 answers healed with a new token and the request sent again.",
            api.unauthorized_healed.to_string(),
        ),
        (
            "tokenwarden_429_total",
            "counter",
            "429 answers waited out.",
            api.rate_limited_waits.to_string(),
        ),
        (
            "tokenwarden_retries_total",
            "counter",
            "API attempts that repeated a failed one.",
            api.retries.to_string(),
        ),
        (
            "tokenwarden_token_remaining_seconds",
            "gauge",
            "Time left before the current token expires (0 without one).",
            format!(
                "{:.3}",
                tokens.time_to_expiry.unwrap_or_default().as_secs_f64()
            ),
        ),
        (
            "tokenwarden_agent_refused_total",
            "counter",
            "Requests the agent refused without forwarding anything (no key, Host, Origin, path).",
            g(&proxy.refused).to_string(),
        ),
        (
            "tokenwarden_agent_local_tokens_total",
            "counter",
            "Local credentials handed out by the agent's token endpoint.",
            g(&proxy.local_tokens).to_string(),
        ),
    ];
    for (name, kind, help, value) in scalars {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }

    let name = "tokenwarden_api_request_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Time from receiving a request to having the API's answer head, retries and waits included.",
    );
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += g(&proxy.buckets[i]);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count = g(&proxy.forwarded);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "{name}_sum {:.6}",
        g(&proxy.duration_micros) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count {count}");
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
