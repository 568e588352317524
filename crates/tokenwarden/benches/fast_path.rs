//! The token fast path: what every request pays while a fresh token is cached.
//! Run with `cargo bench -p tokenwarden --bench fast_path`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use tokenwarden::{AccessToken, StaticToken, TokenManager};

fn fast_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tokens = rt.block_on(async {
        let grant = StaticToken::new(AccessToken::new("bench-token"))
            .expires_in(Duration::from_secs(86_400));
        let m = TokenManager::builder(grant).build();
        m.bearer().await.expect("token");
        m
    });

    c.bench_function("bearer() on a fresh token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tokens.bearer().await.expect("token")) })
    });

    c.bench_function("bearer() + Authorization header value", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tokens.bearer().await.expect("token").header_value()) })
    });

    // Two threads hitting the same manager: the fast path must not serialise them.
    c.bench_function("bearer() x1000 across 2 threads", |b| {
        b.to_async(&rt).iter(|| async {
            let a = tokens.clone();
            let bb = tokens.clone();
            let t1 = tokio::spawn(async move {
                for _ in 0..500 {
                    black_box(a.bearer().await.expect("token"));
                }
            });
            let t2 = tokio::spawn(async move {
                for _ in 0..500 {
                    black_box(bb.bearer().await.expect("token"));
                }
            });
            let _ = tokio::join!(t1, t2);
        })
    });
}

criterion_group!(benches, fast_path);
criterion_main!(benches);
