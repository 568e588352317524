//! The HTTP client's behaviour as the built binary shows it: proxies from the environment,
//! redirects to another origin, the response size limit.

mod common;

use common::{Sandbox, run};
use tokenwarden_sim::SimConfig;
use tokenwarden_sim::recorder::{Recorder, Reply};

const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_never_carry_loopback_traffic_token_request_included() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let proxy = Recorder::start(Reply::Close).await;
    let with_proxy = || {
        let mut c = sb.tw();
        for v in PROXY_VARS {
            c.env(v, proxy.url());
        }
        c.env_remove("NO_PROXY").env_remove("no_proxy");
        c
    };
    run(with_proxy(), &["token"]).await.ok();
    // --no-cache: its own token request (else the first one's token comes from the cache).
    run(
        with_proxy(),
        &["request", "GET", "/api/v2/tokens/me", "--no-cache"],
    )
    .await
    .ok();
    assert_eq!(proxy.connections(), 0, "{:?}", proxy.requests());
    let j = sb.sim.journal_counters();
    assert_eq!(j.token_requests, 2, "one per invocation, both direct");
    assert_eq!(j.api_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_trailing_dot_loopback_name_never_sends_credentials_through_a_proxy() {
    // `localhost.` was checked as loopback (direct) but proxied by the HTTP client: the token
    // request, Basic credentials included, reached the proxy in clear text.
    let sb = Sandbox::start(SimConfig::default()).await;
    let proxy = Recorder::start(Reply::Close).await;
    let port = sb.sim.base_url().rsplit(':').next().unwrap().to_string();
    for host in ["localhost.", "sim.localhost."] {
        let base = format!("http://{host}:{port}");
        let mut c = sb.bare();
        for v in PROXY_VARS {
            c.env(v, proxy.url());
        }
        c.env_remove("NO_PROXY").env_remove("no_proxy");
        common::with_client(&mut c, tokenwarden_sim::DEFAULT_CLIENT_SECRET);
        let token_url = format!("{base}/oauth/token");
        let args = [
            "--allow-insecure-http",
            "--token-url",
            &token_url,
            "--api-base",
            &base,
            "token",
            "--no-cache",
        ];
        let r = run(c, &args).await;
        assert_ne!(r.code, 0, "{host}: {}", r.stderr);
        assert!(r.stderr.contains("proxy"), "{host}: {}", r.stderr);
    }
    assert_eq!(proxy.connections(), 0, "{:?}", proxy.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_redirect_is_refused_unless_the_flag_allows_it_and_then_carries_no_caller_header()
 {
    let sb = Sandbox::start(SimConfig::default()).await;
    let other = Recorder::start(Reply::Ok).await;
    let path = format!("/api/v2/sim/redirect?location={}/landing", other.url());
    let r = run(sb.tw(), &["request", "GET", &path]).await;
    r.expect_code(1);
    assert!(
        r.stderr.contains(&other.url()),
        "names the target: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--follow-redirects-across-origins"),
        "{}",
        r.stderr
    );
    assert_eq!(other.connections(), 0);

    let r = run(
        sb.tw(),
        &[
            "--follow-redirects-across-origins",
            "request",
            "GET",
            &path,
            "-H",
            "X-Caller-Secret: s3cr3t",
        ],
    )
    .await;
    r.ok();
    let seen = other.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let head = seen[0].to_ascii_lowercase();
    assert!(head.starts_with("get /landing "), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    assert!(!head.contains("x-caller-secret"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_response_bytes_limits_the_answer() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let big = "/api/v2/sim/bytes?n=2000000&chunked=true";
    let r = run(
        sb.tw(),
        &["--max-response-bytes", "1MiB", "request", "GET", big],
    )
    .await;
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "nothing half-written");
    assert!(r.stderr.contains("1048576"), "{}", r.stderr);
    assert!(r.stderr.contains("--max-response-bytes"), "{}", r.stderr);
    assert_eq!(sb.sim.journal_counters().api_requests, 1, "not retried");

    // Under the default limit (64 MiB) the same answer arrives whole.
    let r = run(sb.tw(), &["request", "GET", big]).await;
    r.ok();
    assert_eq!(r.stdout.trim_end().len(), 2_000_000);

    let r = run(
        sb.tw(),
        &["--max-response-bytes", "12XB", "request", "GET", "/x"],
    )
    .await;
    r.expect_code(2);
    assert!(r.stderr.contains("12XB"), "{}", r.stderr);
}
