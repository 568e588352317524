//! A local OTLP/HTTP receiver for the benchmarks (`scripts/bench-observe`): answers every POST
//! 200 at once (an empty protobuf answer), decodes the trace exports with the OpenTelemetry
//! protobuf definitions and counts what arrived; `GET /count` says so far, as one line:
//!
//! ```text
//! exports 52 bytes 38211340 request_spans 100000 refresh_spans 1
//! ```
//!
//! ```bash
//! cargo run --release -p tokenwarden-otel --all-features --example otlp_receiver -- 14318
//! ```

use bytes::Bytes;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokenwarden_test_support::otlp;

#[derive(Default)]
struct Counts {
    exports: AtomicU64,
    bytes: AtomicU64,
    request_spans: AtomicU64,
    refresh_spans: AtomicU64,
}

impl Counts {
    fn line(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "exports {} bytes {} request_spans {} refresh_spans {}\n",
            n(&self.exports),
            n(&self.bytes),
            n(&self.request_spans),
            n(&self.refresh_spans)
        )
    }

    fn add(&self, path: &str, body: &Bytes) {
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if !path.ends_with("/v1/traces") {
            return;
        }
        let Ok(export) = ExportTraceServiceRequest::decode(body.clone()) else {
            eprintln!("otlp_receiver: a trace export that does not decode");
            return;
        };
        for span in export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            match span.name.as_str() {
                "token refresh" => &self.refresh_spans,
                _ => &self.request_spans,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(14318);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the receiver's port");
    eprintln!("otlp_receiver: listening on http://127.0.0.1:{port}");
    let counts = Arc::new(Counts::default());
    otlp::serve_on(
        listener,
        Arc::new(move |req: Request<Bytes>| {
            let answer = if req.method() == hyper::Method::GET {
                Response::new(Bytes::from(counts.line()))
            } else {
                counts.add(req.uri().path(), req.body());
                otlp::accepted()
            };
            Box::pin(async move { answer })
        }),
    )
    .await;
}
