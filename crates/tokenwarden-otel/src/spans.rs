//! The span pipeline: the SDK's batch processor with tokenwarden's bounds, and a count of what
//! it dropped.
//!
//! A span ends on the request's task and is queued (bounded: [`QUEUE`] spans, unless
//! `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise); the SDK's thread takes batches off the queue,
//! encodes them and hands them to the exporter. When the queue is full (the collector or the
//! machine cannot keep up) the SDK drops the span without a word, so the spans are counted
//! here: those that ended (reached the processor) and those handed to the exporter. What is
//! left at the end of the run, ended minus handed, was dropped, and is said once, with its
//! count, by [`Telemetry::shutdown`](crate::Telemetry::shutdown).

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many ended spans may wait for export (`OTEL_BSP_MAX_QUEUE_SIZE` unset): about 1.5 s of
/// spans at 20,000 requests a second.
pub(crate) const QUEUE: usize = 32_768;
/// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` unset); an export starts as soon as this
/// many are queued.
pub(crate) const BATCH: usize = 2_048;
/// The longest a span waits for a batch to fill (`OTEL_BSP_SCHEDULE_DELAY` unset).
pub(crate) const DELAY: Duration = Duration::from_secs(2);

/// Spans that reached the processor and spans handed to the exporter.
#[derive(Debug, Default)]
pub(crate) struct SpanCounts {
    ended: AtomicU64,
    handed: AtomicU64,
}

impl SpanCounts {
    /// Spans ended so far, and how many of them were not handed to the exporter.
    pub(crate) fn dropped(&self) -> (u64, u64) {
        let handed = self.handed.load(Ordering::Relaxed);
        let ended = self.ended.load(Ordering::Relaxed);
        (ended, ended.saturating_sub(handed))
    }
}

/// The processor of a run's spans: the SDK's batch processor over `exporter`, counting into
/// `counts`. Returns it and the queue's size. The standard `OTEL_BSP_*` variables win over
/// tokenwarden's bounds.
pub(crate) fn processor<E: SpanExporter + 'static>(
    exporter: E,
    counts: &Arc<SpanCounts>,
) -> (Counting<BatchSpanProcessor>, usize) {
    // Read as the SDK reads them (a number, milliseconds for the delay); unset or not a
    // number: tokenwarden's bounds.
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let queue = var("OTEL_BSP_MAX_QUEUE_SIZE").map_or(QUEUE, |n| n as usize);
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(queue)
        .with_max_export_batch_size(
            var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").map_or(BATCH, |n| n as usize),
        )
        .with_scheduled_delay(var("OTEL_BSP_SCHEDULE_DELAY").map_or(DELAY, Duration::from_millis))
        .build();
    let exporter = Counting {
        inner: exporter,
        counts: Arc::clone(counts),
    };
    let inner = BatchSpanProcessor::builder(exporter)
        .with_batch_config(config)
        .build();
    (
        Counting {
            inner,
            counts: Arc::clone(counts),
        },
        queue,
    )
}

/// A processor that counts the spans that end, or an exporter that counts the spans it is
/// handed, around the SDK's own.
#[derive(Debug)]
pub(crate) struct Counting<T> {
    inner: T,
    counts: Arc<SpanCounts>,
}

impl<P: SpanProcessor> SpanProcessor for Counting<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.counts.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.counts
            .handed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn shutdown(&mut self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
