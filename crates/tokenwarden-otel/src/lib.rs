//! OpenTelemetry export of a tokenwarden run over OTLP/HTTP (protobuf): the metrics the
//! Prometheus exposition has, a span per API request and a span per token refresh, with a link
//! from each request that waited for a refresh to that refresh's span.
//!
//! Everything comes from the library's one record of a run
//! ([`Recorder`](tokenwarden::observe::Recorder)): the counters are read from its totals when the
//! SDK collects, the duration histogram and the spans are fed by its
//! [`Observer`](tokenwarden::observe::Observer) hook (the same events it counts). Nothing is
//! recorded for OpenTelemetry unless [`Telemetry::start`] is called.
//!
//! The SDK sends through the workspace's reqwest client ([`ReqwestExporter`]), one HTTP stack.
//! A dead or slow collector never fails or slows the job: exports run beside it, each bounded by
//! its timeout, their failures are logged once as a warning (never with a header value), and
//! [`Telemetry::shutdown`] flushes what is left within the timeout.

mod exporter;
mod observer;
mod settings;
mod spans;

pub use exporter::ReqwestExporter;
pub use settings::{DEFAULT_TIMEOUT, OtlpSettings, SettingsError, SignalTarget};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokenwarden::ApiClient;

/// The name of the instrumentation scope and the default `service.name`.
pub const SCOPE: &str = "tokenwarden";

/// The export of one run, until [`shutdown`](Self::shutdown).
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    timeout: Duration,
    /// Whether the run's one warning about the export has been given.
    warned: Arc<AtomicBool>,
    /// Spans ended and handed to the exporter (see [`spans`]), and the queue's size.
    spans: Arc<spans::SpanCounts>,
    queue: usize,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .finish()
    }
}

/// Export cannot start (the exporter could not be built).
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry export: {0}")]
pub struct StartError(String);

impl Telemetry {
    /// Starts exporting `client`'s run as `settings` say. Must be called inside a Tokio runtime
    /// (the exports are sent on it).
    ///
    /// # Errors
    /// The exporters cannot be built (a URL the HTTP stack refuses).
    pub fn start(settings: &OtlpSettings, client: &ApiClient) -> Result<Telemetry, StartError> {
        let resource = resource();
        let runtime = tokio::runtime::Handle::current();
        let warned = Arc::new(AtomicBool::new(false));
        let mut exporters = Exporters {
            runtime: &runtime,
            warned: &warned,
            timeout: Duration::ZERO,
        };
        let spans = Arc::new(spans::SpanCounts::default());
        let mut queue = 0;
        let tracer = match &settings.traces {
            Some(target) => {
                let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
                let exporter = exporters.build(builder, target, "traces", |b| b.build())?;
                let (processor, size) = spans::processor(exporter, &spans);
                queue = size;
                Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_span_processor(processor)
                        .build(),
                )
            }
            None => None,
        };
        let meter = match &settings.metrics {
            Some(target) => {
                let builder = opentelemetry_otlp::MetricExporter::builder().with_http();
                let exporter = exporters.build(builder, target, "metrics", |b| b.build())?;
                let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build();
                Some(
                    SdkMeterProvider::builder()
                        .with_resource(resource)
                        .with_reader(reader)
                        .build(),
                )
            }
            None => None,
        };
        let tracer_handle = tracer.as_ref().map(|p| {
            use opentelemetry::trace::TracerProvider as _;
            p.tracer(SCOPE)
        });
        let histogram = meter.as_ref().map(|m| {
            let meter = m.meter(SCOPE);
            observer::register_metrics(&meter, client);
            observer::duration_histogram(&meter)
        });
        if tracer_handle.is_some() || histogram.is_some() {
            let hook = observer::Exporting::new(tracer_handle, histogram);
            if !client.recorder().set_observer(Arc::new(hook)) {
                tracing::warn!(
                    "the run's record has an observer already: OpenTelemetry spans and the duration histogram are not exported"
                );
            }
        }
        for (what, t) in [("traces", &settings.traces), ("metrics", &settings.metrics)] {
            if let Some(t) = t {
                tracing::info!(
                    endpoint = %settings::shown_url(&t.endpoint),
                    headers = t.headers.len(),
                    timeout_ms = t.timeout.as_millis() as u64,
                    "exporting OpenTelemetry {what}"
                );
            }
        }
        Ok(Telemetry {
            tracer,
            meter,
            timeout: exporters.timeout,
            warned,
            spans,
            queue,
        })
    }

    /// Exports what is left (the last spans, the final metrics) and stops, within the export
    /// timeout: a collector that does not answer costs the job no more than that. Traces and
    /// metrics are flushed at the same time. Spans that were dropped (the queue was full, or
    /// the flush did not finish in time) are counted in one warning.
    pub async fn shutdown(self) {
        let Telemetry {
            tracer,
            meter,
            timeout,
            warned,
            spans,
            queue,
        } = self;
        // The SDK's shutdown blocks its caller until its worker thread has exported, and that
        // sends on this runtime: off the runtime's threads, one blocking task per signal.
        let traces = tracer.map(|t| {
            tokio::task::spawn_blocking(move || {
                let _ = t.shutdown_with_timeout(timeout);
            })
        });
        let metrics = meter.map(|m| {
            tokio::task::spawn_blocking(move || {
                let _ = m.shutdown_with_timeout(timeout);
            })
        });
        let both = async {
            if let Some(t) = traces {
                let _ = t.await;
            }
            if let Some(m) = metrics {
                let _ = m.await;
            }
        };
        let late = tokio::time::timeout(timeout, both).await.is_err();
        let (ended, dropped) = spans.dropped();
        let timeout_ms = timeout.as_millis() as u64;
        if dropped > 0 {
            // Said even after another warning: only this one has the count.
            warned.store(true, Ordering::Relaxed);
            if late {
                tracing::warn!(
                    timeout_ms,
                    "OpenTelemetry export did not finish in time: {dropped} of {ended} spans were dropped"
                );
            } else {
                tracing::warn!(
                    queue,
                    "OpenTelemetry export could not keep up: {dropped} of {ended} spans were dropped (the queue of {queue} spans was full; OTEL_BSP_MAX_QUEUE_SIZE sets it)"
                );
            }
        } else if late {
            if warned.swap(true, Ordering::Relaxed) {
                tracing::debug!("OpenTelemetry export did not finish in time; the rest is dropped");
            } else {
                tracing::warn!(
                    timeout_ms,
                    "OpenTelemetry export did not finish in time; the rest is dropped"
                );
            }
        }
    }
}

/// What every signal's exporter is built with: the runtime the exports are sent on, the run's
/// one warning, and the longest export timeout so far (the shutdown's bound).
struct Exporters<'a> {
    runtime: &'a tokio::runtime::Handle,
    warned: &'a Arc<AtomicBool>,
    timeout: Duration,
}

impl Exporters<'_> {
    /// The OTLP exporter of `builder` configured for `target` (the workspace's reqwest client,
    /// the endpoint, the timeout; the headers are the client's, never the SDK's own variables),
    /// then built by `build`.
    fn build<B, T, E>(
        &mut self,
        builder: B,
        target: &SignalTarget,
        signal: &'static str,
        build: impl FnOnce(B) -> Result<T, E>,
    ) -> Result<T, StartError>
    where
        B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig,
        E: std::fmt::Display,
    {
        self.timeout = self.timeout.max(target.timeout);
        let builder = builder
            .with_http_client(ReqwestExporter::new(
                target,
                signal,
                self.runtime.clone(),
                Arc::clone(self.warned),
            ))
            .with_endpoint(target.endpoint.as_str())
            .with_timeout(target.timeout)
            .with_headers(Default::default());
        build(builder).map_err(|e| StartError(e.to_string()))
    }
}

/// `service.name` (default `tokenwarden`, or `OTEL_SERVICE_NAME`, or the `service.name` of
/// `OTEL_RESOURCE_ATTRIBUTES`), `service.version` and the resource attributes of
/// `OTEL_RESOURCE_ATTRIBUTES`, as the SDK's resource detectors read them.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',').any(|kv| {
                kv.split('=')
                    .next()
                    .is_some_and(|k| k.trim() == "service.name")
            })
        });
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match named {
        true => builder.build(),
        false => builder.with_service_name(SCOPE).build(),
    }
}
