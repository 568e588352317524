//! `GET /metrics`: the Prometheus text exposition, built in one function ([`render`]): the
//! library's one record of events (`tokenwarden::observe`) and the agent's own counters.

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

/// The exposition (text format 0.0.4): the library's families for `client`
/// ([`tokenwarden::observe::render_prometheus`], the same numbers as `--metrics-listen`, the
/// report and the summary), then the agent's own (`tokenwarden_agent_*`: what it forwarded and
/// answered, what it refused, the local credentials it handed out).
pub fn render(client: &ApiClient, proxy: &ProxyCounters) -> String {
    let mut out = tokenwarden::observe::render_prometheus(
        client.recorder(),
        client.token_metrics().time_to_expiry,
    );
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);

    let name = "tokenwarden_agent_forwarded_total";
    family(
        &mut out,
        name,
        "counter",
        "Requests the agent forwarded, by the status class it answered (error: no answer).",
    );
    for (class, n) in CLASSES.iter().zip(&proxy.by_class) {
        let _ = writeln!(out, "{name}{{class=\"{class}\"}} {}", g(n));
    }
    let scalars = [
        (
            "tokenwarden_agent_refused_total",
            "Requests the agent refused without forwarding anything (no key, Host, Origin, path).",
            g(&proxy.refused),
        ),
        (
            "tokenwarden_agent_local_tokens_total",
            "Local credentials handed out by the agent's token endpoint.",
            g(&proxy.local_tokens),
        ),
    ];
    for (name, help, value) in scalars {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    let name = "tokenwarden_agent_request_duration_seconds";
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
