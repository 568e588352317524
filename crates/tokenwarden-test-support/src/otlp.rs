//! An OTLP/HTTP receiver's server, for the tests and the benchmarks' receiver: an HTTP/1 server
//! on loopback that hands each request, its body read whole, to a handler of the test's own, and
//! the answer a collector gives to an export it accepted.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What answers each request: its head and whole body in, the answer out.
pub type Handler = Arc<
    dyn Fn(Request<Bytes>) -> Pin<Box<dyn Future<Output = Response<Bytes>> + Send>> + Send + Sync,
>;

/// Serves `handler` on a free loopback port until the runtime ends; its base URL
/// (`http://127.0.0.1:PORT`).
///
/// # Panics
/// When no port can be bound.
pub async fn serve(handler: Handler) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!(
        "http://{}",
        listener.local_addr().expect("a bound listener")
    );
    tokio::spawn(serve_on(listener, handler));
    base
}

/// Serves `handler` on `listener`, each connection in a task of its own, until accepting fails.
pub async fn serve_on(listener: tokio::net::TcpListener, handler: Handler) {
    while let Ok((stream, _)) = listener.accept().await {
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let handler = Arc::clone(&handler);
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let answer = handler(Request::from_parts(parts, body)).await;
                    Ok::<_, std::convert::Infallible>(answer.map(Full::new))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A collector's answer to an export it accepted: 200, an empty protobuf message.
pub fn accepted() -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}
