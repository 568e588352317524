//! The run's record as OpenTelemetry instruments and spans.
//!
//! Metrics carry the Prometheus exposition's names without the suffixes OpenTelemetry puts in
//! the unit and the instrument kind (`tokenwarden_api_requests` is a counter; a Prometheus
//! back end shows it as `tokenwarden_api_requests_total`, `tokenwarden_api_request_duration` in
//! `s` as `tokenwarden_api_request_duration_seconds`), the same attributes (`class`, `reason`),
//! and the same numbers: the counters are read from the recorder's totals at each collection.

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{KeyValue, trace::Span as _};
use opentelemetry_sdk::trace::SdkTracer;
use std::hash::BuildHasher as _;
use std::time::Duration;
use tokenwarden::ApiClient;
use tokenwarden::observe::{
    Class, DURATION_BOUNDS, Observer, Outcome, RefreshEnd, RefreshReason, RequestEnd,
};

/// Registers the counters and the token gauge, read from `client`'s record when collected.
pub(crate) fn register_metrics(meter: &Meter, client: &ApiClient) {
    let c = client.clone();
    let _ = meter
        .u64_observable_counter("tokenwarden_api_requests")
        .with_unit("{request}")
        .with_description(
            "Exchanges with the API (every attempt: retries, 401 heals and redirects included) by outcome class.",
        )
        .with_callback(move |o| {
            let t = c.recorder().totals();
            for class in Class::ALL {
                o.observe(t.requests(class), &[KeyValue::new("class", class.label())]);
            }
        })
        .build();
    let c = client.clone();
    let _ = meter
        .u64_observable_counter("tokenwarden_token_requests")
        .with_unit("{request}")
        .with_description("Token refreshes started, by reason (proactive, after_401, on_demand).")
        .with_callback(move |o| {
            let t = c.recorder().totals();
            for reason in RefreshReason::ALL {
                o.observe(
                    t.refreshes(reason),
                    &[KeyValue::new("reason", reason.label())],
                );
            }
        })
        .build();
    type Read = fn(&tokenwarden::observe::Totals) -> u64;
    let counters: [(&'static str, &'static str, &'static str, Read); 5] = [
        (
            "tokenwarden_token_refresh_failures",
            "{refresh}",
            "Token refreshes that ended without a token.",
            |t| t.token_refresh_failures,
        ),
        (
            "tokenwarden_401_healed",
            "{request}",
            "API 401s healed: the retry with a new token was answered with anything but another 401.",
            |t| t.unauthorized_healed,
        ),
        (
            "tokenwarden_429",
            "{answer}",
            "API answers with HTTP 429 Too Many Requests.",
            |t| t.requests(Class::RateLimited),
        ),
        (
            "tokenwarden_429_waits",
            "{wait}",
            "429 answers waited out before a retry.",
            |t| t.rate_limited_waits,
        ),
        (
            "tokenwarden_rate_limit_pauses",
            "{pause}",
            "Times every request was held until the API's rate-limit window reset.",
            |t| t.rate_limit_pauses,
        ),
    ];
    for (name, unit, help, read) in counters {
        let c = client.clone();
        let _ = meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(help)
            .with_callback(move |o| o.observe(read(&c.recorder().totals()), &[]))
            .build();
    }
    let c = client.clone();
    let _ = meter
        .f64_observable_counter("tokenwarden_429_wait")
        .with_unit("s")
        .with_description("Time spent waiting out 429 answers (concurrent waits add up).")
        .with_callback(move |o| o.observe(c.recorder().totals().rate_limited_wait_secs, &[]))
        .build();
    let c = client.clone();
    let _ = meter
        .f64_observable_gauge("tokenwarden_token_remaining")
        .with_unit("s")
        .with_description(
            "Seconds until the current access token expires (0 once it has expired; absent while there is none, or it never expires).",
        )
        .with_callback(move |o| {
            if let Some(d) = c.token_metrics().time_to_expiry {
                o.observe(d.as_secs_f64(), &[]);
            }
        })
        .build();
}

/// The request-duration histogram, with the Prometheus exposition's bounds.
pub(crate) fn duration_histogram(meter: &Meter) -> Histogram<f64> {
    meter
        .f64_histogram("tokenwarden_api_request_duration")
        .with_unit("s")
        .with_description(
            "Duration of one exchange with the API (one attempt), from sending to the whole answer read.",
        )
        .with_boundaries(DURATION_BOUNDS.to_vec())
        .build()
}

/// The recorder's observer: spans to the tracer, exchanges to the histogram.
pub(crate) struct Exporting {
    tracer: Option<SdkTracer>,
    histogram: Option<Histogram<f64>>,
    /// The `class` attribute of each class, built once.
    classes: Vec<KeyValue>,
    /// A refresh's span ids are a function of its id, salted per process: a request's link is
    /// made without looking the refresh up.
    salt: std::collections::hash_map::RandomState,
}

impl Exporting {
    pub(crate) fn new(tracer: Option<SdkTracer>, histogram: Option<Histogram<f64>>) -> Self {
        Self {
            tracer,
            histogram,
            classes: Class::ALL
                .iter()
                .map(|c| KeyValue::new("class", c.label()))
                .collect(),
            salt: Default::default(),
        }
    }

    /// The span context of refresh `id`.
    fn refresh_context(&self, id: u64) -> SpanContext {
        let h = |part: u64| self.salt.hash_one((id, part)).max(1);
        let trace = (u128::from(h(0)) << 64) | u128::from(h(1));
        SpanContext::new(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(h(2).to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }
}

impl Observer for Exporting {
    fn exchange(&self, class: Class, latency: Duration) {
        if let Some(h) = &self.histogram {
            let at = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
            h.record(latency.as_secs_f64(), &self.classes[at..=at]);
        }
    }

    fn request(&self, r: &RequestEnd<'_>) {
        let Some(tracer) = &self.tracer else { return };
        let mut attributes = vec![
            KeyValue::new("http.request.method", r.method.to_string()),
            KeyValue::new("url.template", r.route.to_string()),
            KeyValue::new("tokenwarden.attempts", i64::from(r.attempts)),
            KeyValue::new(
                "http.request.resend_count",
                i64::from(r.attempts.saturating_sub(1)),
            ),
            KeyValue::new("tokenwarden.outcome", r.outcome.label()),
        ];
        if let Some(status) = r.status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        let failed = r.outcome == Outcome::Failed || r.status.is_some_and(|s| s >= 500);
        let links = r
            .waited_for
            .map(|id| {
                vec![Link::new(
                    self.refresh_context(id),
                    vec![KeyValue::new("tokenwarden.link", "waited_for_token")],
                    0,
                )]
            })
            .unwrap_or_default();
        let mut span = tracer
            .span_builder(format!("{} {}", r.method, r.route))
            .with_kind(SpanKind::Client)
            .with_start_time(r.started)
            .with_attributes(attributes)
            .with_links(links)
            .with_status(if failed {
                Status::error("")
            } else {
                Status::Unset
            })
            .start(tracer);
        span.end_with_timestamp(r.ended);
    }

    fn refresh(&self, r: &RefreshEnd) {
        let Some(tracer) = &self.tracer else { return };
        let ctx = self.refresh_context(r.id);
        let mut span = tracer
            .span_builder("token refresh")
            .with_kind(SpanKind::Client)
            .with_trace_id(ctx.trace_id())
            .with_span_id(ctx.span_id())
            .with_start_time(r.started)
            .with_attributes(vec![
                KeyValue::new("tokenwarden.refresh.reason", r.reason.label()),
                KeyValue::new("tokenwarden.refresh.ok", r.ok),
            ])
            .with_status(if r.ok {
                Status::Unset
            } else {
                Status::error("no token")
            })
            .start(tracer);
        span.end_with_timestamp(r.ended);
    }
}
