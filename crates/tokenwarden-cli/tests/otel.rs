//! `--otlp-endpoint` and the `OTEL_EXPORTER_OTLP_*` variables, end to end: the built binary
//! (`batch`, `agent`, `exec`) exports to an OTLP/HTTP receiver of this test's own, which decodes
//! what arrives with the OpenTelemetry protobuf definitions. The spans are the simulator's
//! requests, a healed 401's span links to its refresh's span, the counters are the summary's
//! numbers, no secret is in any byte sent, the variables are read as the specification says, a
//! run that fails or is interrupted still flushes, and a dead collector costs at most the export
//! timeout.

mod common;

use bytes::Bytes;
use common::*;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value as AnyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as Number};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenwarden_sim::{DEFAULT_CLIENT_SECRET, SimConfig};
use tokenwarden_test_support::otlp::{self, serve};

// ---- the receiver and a token-recording proxy, on test-support's OTLP server ----------------

/// One export as it arrived.
#[derive(Clone)]
struct Export {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An OTLP/HTTP receiver: every POST is answered 200 (an empty protobuf answer) and handed to
/// the test on its channel.
struct Receiver {
    base: String,
    rx: tokio::sync::mpsc::UnboundedReceiver<Export>,
    got: Vec<Export>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::answering_after(Duration::ZERO).await
    }

    /// A receiver that takes `delay` over each answer (a slow collector: what it was sent
    /// arrives at once, the exporter waits for the answer).
    async fn answering_after(delay: Duration) -> Receiver {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let base = serve(Arc::new(move |req: Request<Bytes>| {
            let (parts, body) = req.into_parts();
            let _ = tx.send(Export {
                path: parts.uri.path().to_string(),
                headers: parts.headers,
                body,
            });
            Box::pin(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                otlp::accepted()
            })
        }))
        .await;
        Receiver {
            base,
            rx,
            got: Vec::new(),
        }
    }

    /// Takes what has arrived, waiting (at most 2 s) until `enough` says it has all it needs: a
    /// process that exited has sent everything, so the wait ends at once.
    async fn until(&mut self, enough: impl Fn(&[Export]) -> bool) -> &[Export] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !enough(&self.got) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.got.push(e),
                _ => break,
            }
        }
        while let Ok(e) = self.rx.try_recv() {
            self.got.push(e);
        }
        &self.got
    }
}

/// The token endpoint through a proxy that notes every access token the simulator issues: what
/// "no token in any byte sent" is checked against. Returns the proxy's token URL.
async fn recording_token_proxy(token_url: String, tokens: Arc<Mutex<Vec<String>>>) -> String {
    let http = reqwest::Client::new();
    let base = serve(Arc::new(move |req: Request<Bytes>| {
        let http = http.clone();
        let token_url = token_url.clone();
        let tokens = Arc::clone(&tokens);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut forward = http.post(&token_url).body(body);
            for name in [http::header::AUTHORIZATION, http::header::CONTENT_TYPE] {
                if let Some(v) = parts.headers.get(&name) {
                    forward = forward.header(name, v);
                }
            }
            let answer = forward.send().await.unwrap();
            let status = answer.status();
            let body = answer.bytes().await.unwrap();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(t) = v["access_token"].as_str()
            {
                tokens.lock().unwrap().push(t.to_string());
            }
            let mut r = Response::new(body);
            *r.status_mut() = status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        })
    }))
    .await;
    format!("{base}/oauth/token")
}

// ---- reading what arrived -------------------------------------------------------------------------

fn traces(got: &[Export], path: &str) -> Vec<ExportTraceServiceRequest> {
    got.iter()
        .filter(|e| e.path == path)
        .map(|e| ExportTraceServiceRequest::decode(e.body.clone()).expect("an OTLP trace export"))
        .collect()
}

fn metrics(got: &[Export], path: &str) -> Vec<ExportMetricsServiceRequest> {
    got.iter()
        .filter(|e| e.path == path)
        .map(|e| {
            ExportMetricsServiceRequest::decode(e.body.clone()).expect("an OTLP metrics export")
        })
        .collect()
}

fn spans(exports: &[ExportTraceServiceRequest]) -> Vec<Span> {
    exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn int_attr(kvs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(kvs, key) {
        Some(AnyValue::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn str_attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(kvs, key) {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Each metric of the last metrics export, by name and then by its attributes
/// (`class=2xx`, `reason=after_401`, or `` for none), as numbers; a histogram by its count.
fn last_metrics(
    exports: &[ExportMetricsServiceRequest],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let last = exports.last().expect("a metrics export");
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for m in last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let key = |kvs: &[KeyValue]| {
            kvs.iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValue::StringValue(s)) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    format!("{}={v}", kv.key)
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let entry = out.entry(m.name.clone()).or_default();
        let number = |v: &Option<Number>| match v {
            Some(Number::AsInt(i)) => *i as f64,
            Some(Number::AsDouble(d)) => *d,
            None => f64::NAN,
        };
        match &m.data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic, "{} is a counter", m.name);
                for p in &s.data_points {
                    entry.insert(key(&p.attributes), number(&p.value));
                }
            }
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    entry.insert(key(&p.attributes), number(&p.value));
                }
            }
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    *entry.entry(key(&p.attributes)).or_default() += p.count as f64;
                }
            }
            other => panic!("unexpected data for {}: {other:?}", m.name),
        }
    }
    out
}

/// The resource's attributes of every export (traces and metrics), as text.
fn resources(got: &[Export]) -> Vec<BTreeMap<String, String>> {
    let attrs = |kvs: &[KeyValue]| {
        kvs.iter()
            .filter_map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(AnyValue::StringValue(s)) => Some((kv.key.clone(), s.clone())),
                    _ => None,
                },
            )
            .collect::<BTreeMap<_, _>>()
    };
    let mut out = Vec::new();
    for e in got {
        if let Ok(t) = ExportTraceServiceRequest::decode(e.body.clone())
            && !t.resource_spans.is_empty()
        {
            out.extend(
                t.resource_spans
                    .iter()
                    .filter_map(|r| r.resource.as_ref())
                    .map(|r| attrs(&r.attributes)),
            );
        } else if let Ok(m) = ExportMetricsServiceRequest::decode(e.body.clone()) {
            out.extend(
                m.resource_metrics
                    .iter()
                    .filter_map(|r| r.resource.as_ref())
                    .map(|r| attrs(&r.attributes)),
            );
        }
    }
    out
}

/// Every byte that arrived (header values and bodies) holds none of `secrets`.
#[track_caller]
fn assert_no_secret(got: &[Export], secrets: &[String]) {
    assert!(!secrets.is_empty());
    for e in got {
        let mut bytes = e.body.to_vec();
        for (name, value) in &e.headers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(value.as_bytes());
        }
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret reached the collector at {}",
                e.path
            );
        }
    }
}

/// The request spans and the refresh spans; every link of a request span names a refresh span
/// (trace id and span id). Returns the request spans with, for each, the reasons of the refreshes
/// it links to.
fn linked(spans: &[Span]) -> Vec<(&Span, Vec<String>)> {
    let refreshes: BTreeMap<(Vec<u8>, Vec<u8>), String> = spans
        .iter()
        .filter(|s| s.name == "token refresh")
        .map(|s| {
            (
                (s.trace_id.clone(), s.span_id.clone()),
                str_attr(&s.attributes, "tokenwarden.refresh.reason")
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    spans
        .iter()
        .filter(|s| s.name != "token refresh")
        .map(|s| {
            let reasons = s
                .links
                .iter()
                .map(|l| {
                    refreshes
                        .get(&(l.trace_id.clone(), l.span_id.clone()))
                        .unwrap_or_else(|| panic!("a link to no refresh span: {}", s.name))
                        .clone()
                })
                .collect();
            (s, reasons)
        })
        .collect()
}

fn sum_attempts(requests: &[(&Span, Vec<String>)]) -> u64 {
    requests
        .iter()
        .map(|(s, _)| int_attr(&s.attributes, "tokenwarden.attempts").unwrap() as u64)
        .sum()
}

/// `sb.tw()` without the developer's own `OTEL_*` settings.
fn tw(sb: &Sandbox) -> std::process::Command {
    without_otel(sb.tw())
}

/// The binary pointed at the simulator's API and at `token_url`, with the default credentials.
fn tw_via(sb: &Sandbox, token_url: &str) -> std::process::Command {
    let mut c = without_otel(sb.bare());
    c.args(["--api-base", &sb.sim.base_url(), "--token-url", token_url]);
    with_client(&mut c, DEFAULT_CLIENT_SECRET);
    c
}

fn without_otel(mut c: std::process::Command) -> std::process::Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c
}

// ---- the tests -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_exports_a_span_per_request_links_heals_to_refreshes_and_the_summary_numbers() {
    let sb = Sandbox::start(SimConfig {
        revoke_every: Some(25),
        ..SimConfig::default()
    })
    .await;
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let token_url = recording_token_proxy(sb.sim.token_url(), Arc::clone(&tokens)).await;
    let mut receiver = Receiver::start().await;
    sb.write("in.jsonl", &user_gets(60));
    let cmd = tw_via(&sb, &token_url);
    let run = run(
        cmd,
        &[
            "batch",
            "-i",
            "in.jsonl",
            "-o",
            "out.jsonl",
            // One at a time: the 25th and the 50th request are revoked, each retry is not.
            "-c",
            "1",
            "--no-progress",
            "--summary-json",
            "s.json",
            "--otlp-endpoint",
            &receiver.base,
        ],
    )
    .await;
    run.ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await;
    for e in got {
        assert!(
            ["/v1/traces", "/v1/metrics"].contains(&e.path.as_str()),
            "{}",
            e.path
        );
        assert_eq!(
            e.headers[http::header::CONTENT_TYPE],
            "application/x-protobuf"
        );
    }
    let spans = spans(&traces(got, "/v1/traces"));
    let requests = linked(&spans);
    let journal = sb.sim.journal();
    let s = summary(&sb.path("s.json"));
    let o = &s["observed"];

    // A span per record, their attempts the simulator's API requests, one by one.
    assert_eq!(requests.len(), 60);
    assert_eq!(sum_attempts(&requests), journal.api_requests);
    for (span, _) in &requests {
        assert_eq!(span.name, "GET /api/v2/users/{id}");
        assert_eq!(
            int_attr(&span.attributes, "http.response.status_code"),
            Some(200)
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    // Each healed request (sent twice: the 401, then the retry with a new token) links to the
    // refresh made after the 401, by that span's trace id and span id.
    let healed: Vec<_> = requests
        .iter()
        .filter(|(s, _)| int_attr(&s.attributes, "tokenwarden.attempts") == Some(2))
        .collect();
    assert!(journal.api_revoked_token >= 2, "{journal:?}");
    assert_eq!(
        healed.len() as u64,
        o["unauthorized_healed"].as_u64().unwrap()
    );
    assert_eq!(healed.len() as u64, journal.api_revoked_token);
    for (span, reasons) in &healed {
        assert_eq!(reasons, &["after_401"], "{}", span.name);
    }
    let refresh_spans = spans.iter().filter(|s| s.name == "token refresh").count() as u64;
    assert_eq!(refresh_spans, journal.token_requests);

    // The counters are the summary's totals.
    let m = last_metrics(&metrics(got, "/v1/metrics"));
    let classes = o["api_requests"].as_object().unwrap();
    for (class, n) in classes {
        assert_eq!(
            m["tokenwarden_api_requests"][&format!("class={class}")],
            n.as_f64().unwrap(),
            "{class}"
        );
    }
    for (reason, n) in o["token_requests"].as_object().unwrap() {
        assert_eq!(
            m["tokenwarden_token_requests"][&format!("reason={reason}")],
            n.as_f64().unwrap(),
            "{reason}"
        );
    }
    assert_eq!(
        m["tokenwarden_401_healed"][""],
        o["unauthorized_healed"].as_f64().unwrap()
    );
    assert_eq!(
        m["tokenwarden_429"][""],
        o["api_requests"]["429"].as_f64().unwrap()
    );
    assert_eq!(
        m["tokenwarden_429_waits"][""],
        o["rate_limited_waits"].as_f64().unwrap()
    );
    assert_eq!(
        m["tokenwarden_rate_limit_pauses"][""],
        o["rate_limit_pauses"].as_f64().unwrap()
    );
    assert_eq!(
        m["tokenwarden_token_refresh_failures"][""],
        o["token_refresh_failures"].as_f64().unwrap()
    );
    let sent: f64 = classes.values().map(|v| v.as_f64().unwrap()).sum();
    assert_eq!(sent, journal.api_requests as f64);
    assert_eq!(
        m["tokenwarden_api_request_duration"].values().sum::<f64>(),
        sent
    );
    assert!(m["tokenwarden_token_remaining"][""] > 0.0);

    // No secret and no id in any byte sent.
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len() as u64, journal.tokens_issued);
    let mut secrets = tokens;
    secrets.push(DEFAULT_CLIENT_SECRET.to_string());
    secrets.push(tokenwarden_sim::data::user_id(7));
    assert_no_secret(got, &secrets);
    let names: Vec<_> = resources(got)
        .iter()
        .map(|r| r.get("service.name").cloned())
        .collect();
    assert!(
        names.iter().all(|n| n.as_deref() == Some("tokenwarden")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_exports_by_the_standard_variables_alone() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let token_url = recording_token_proxy(sb.sim.token_url(), Arc::clone(&tokens)).await;
    let mut receiver = Receiver::start().await;
    let key_file = sb.path("agent.key");
    let mut cmd = tw_via(&sb, &token_url);
    cmd.args(["-vv", "agent", "--listen", "127.0.0.1:0", "--key-file"])
        .arg(&key_file)
        // A base endpoint gets /v1/traces appended; a signal's own endpoint is used as it is.
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{}/base/", receiver.base),
        )
        .env(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/custom/metrics", receiver.base),
        )
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=hush%3D4711,x-team=ops",
        )
        .env("OTEL_SERVICE_NAME", "nightly-sync")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,team=ops",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut agent = cmd.spawn().unwrap();
    let stderr = agent.stderr.take().unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let logged = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if let Some(url) = line.split("agent listening on ").nth(1) {
                let _ = url_tx.send(url.split(['"', ' ']).next().unwrap_or_default().to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the agent's address");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    for i in 0..6 {
        if i == 3 {
            // The held token is revoked: the next request is healed.
            sb.sim.revoke_all_tokens();
        }
        let r = http
            .get(format!(
                "{url}/api/v2/users/{}",
                tokenwarden_sim::data::user_id(i)
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || agent.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let logged = logged.join().unwrap();
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/custom/metrics"))
        .await;
    let paths: std::collections::BTreeSet<_> = got.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/base/v1/traces", "/custom/metrics"].into_iter().collect(),
        "{logged}"
    );
    for e in got {
        assert_eq!(e.headers["api-key"], "hush=4711");
        assert_eq!(e.headers["x-team"], "ops");
    }
    for r in resources(got) {
        assert_eq!(
            r.get("service.name").map(String::as_str),
            Some("nightly-sync"),
            "{r:?}"
        );
        assert_eq!(
            r.get("deployment.environment").map(String::as_str),
            Some("test")
        );
        assert_eq!(r.get("team").map(String::as_str), Some("ops"));
    }

    let journal = sb.sim.journal();
    let spans = spans(&traces(got, "/base/v1/traces"));
    let requests = linked(&spans);
    assert_eq!(requests.len(), 6);
    assert_eq!(sum_attempts(&requests), journal.api_requests);
    let healed: Vec<_> = requests
        .iter()
        .filter(|(s, _)| int_attr(&s.attributes, "tokenwarden.attempts") == Some(2))
        .collect();
    assert_eq!(healed.len(), 1);
    assert_eq!(healed[0].1, ["after_401"]);
    let m = last_metrics(&metrics(got, "/custom/metrics"));
    assert_eq!(
        m["tokenwarden_api_requests"]["class=2xx"],
        journal.api_ok as f64
    );
    assert_eq!(
        m["tokenwarden_api_requests"]["class=4xx"],
        journal.api_revoked_token as f64
    );
    assert_eq!(m["tokenwarden_401_healed"][""], 1.0);
    assert_eq!(
        m["tokenwarden_token_requests"].values().sum::<f64>(),
        journal.token_requests as f64
    );

    // The key, the client secret and the tokens never reach the collector; the header value
    // (an API key of the collector's) is in no log line.
    let mut secrets = tokens.lock().unwrap().clone();
    assert_eq!(secrets.len(), 2);
    secrets.push(key.clone());
    secrets.push(DEFAULT_CLIENT_SECRET.to_string());
    assert_no_secret(got, &secrets);
    assert!(
        logged.contains("exporting OpenTelemetry traces"),
        "{logged}"
    );
    assert!(
        !logged.contains("hush") && !logged.contains(&key),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_and_a_failed_one_still_flush() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut receiver = Receiver::start().await;
    // Interrupted: the records come from a pipe that stays open; Ctrl-C once all are written.
    let mut cmd = tw(&sb);
    cmd.args([
        "batch",
        "-i",
        "-",
        "-o",
        "out.jsonl",
        "--no-progress",
        "--otlp-endpoint",
        &receiver.base,
    ])
    .stdin(Stdio::piped());
    let mut child = spawn(cmd, &[]);
    let mut records = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut records, user_gets(30).as_bytes()).unwrap();
    let out = sb.path("out.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while line_count(&out) < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "the records were not answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = tokio::task::spawn_blocking(move || interrupt(child))
        .await
        .unwrap();
    drop(records);
    stopped.expect_code(130);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await;
    let requests = spans(&traces(got, "/v1/traces"))
        .into_iter()
        .filter(|s| s.name != "token refresh")
        .count();
    assert_eq!(requests, 30);
    let m = last_metrics(&metrics(got, "/v1/metrics"));
    assert_eq!(m["tokenwarden_api_requests"]["class=2xx"], 30.0);

    // Failed: the client secret is refused (exit 3); the failed refresh is exported all the same.
    let mut receiver = Receiver::start().await;
    sb.write("in.jsonl", &user_gets(3));
    let run = run(
        {
            let mut c = tw(&sb);
            with_client(&mut c, "not-the-secret");
            c
        },
        &[
            "batch",
            "-i",
            "in.jsonl",
            "-o",
            "failed.jsonl",
            "--no-progress",
            "--otlp-endpoint",
            &receiver.base,
        ],
    )
    .await;
    run.expect_code(3);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await;
    let spans = spans(&traces(got, "/v1/traces"));
    let refresh = spans
        .iter()
        .find(|s| s.name == "token refresh")
        .expect("the refresh span");
    assert!(matches!(
        attr(&refresh.attributes, "tokenwarden.refresh.ok"),
        Some(AnyValue::BoolValue(false))
    ));
    let m = last_metrics(&metrics(got, "/v1/metrics"));
    assert_eq!(m["tokenwarden_token_refresh_failures"][""], 1.0);
    assert_no_secret(got, &["not-the-secret".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_nothing_and_costs_at_most_the_timeout() {
    let sb = Sandbox::start(SimConfig::default()).await;
    sb.write("in.jsonl", &user_gets(20));
    let batch = |out: &str, endpoint: Option<&str>| {
        let mut cmd = tw(&sb);
        cmd.env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
            .env("OTEL_EXPORTER_OTLP_HEADERS", "api-key=hush-4711");
        let mut args = vec!["batch", "-i", "in.jsonl", "-o", out, "--no-progress"];
        if let Some(e) = endpoint {
            args.extend(["--otlp-endpoint", e]);
        }
        cmd.args(args);
        cmd
    };
    let plain = run(batch("plain.jsonl", None), &[]).await;
    plain.ok();
    // A closed port: refused at once (held for the whole test).
    let closed_port = tokenwarden_test_support::RefusedPort::new();
    let closed = closed_port.url();
    // A collector that accepts and never answers.
    let hole = black_hole();
    for (out, endpoint) in [("closed.jsonl", &closed), ("hole.jsonl", &hole.base)] {
        let r = run(batch(out, Some(endpoint)), &[]).await;
        r.ok();
        assert_eq!(line_count(&sb.path(out)), 20);
        let warnings: Vec<_> = r
            .stderr
            .lines()
            .filter(|l| l.contains("OpenTelemetry"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", r.stderr);
        assert!(warnings[0].starts_with("warning:"), "{}", r.stderr);
        assert!(!r.all_output().contains("hush"), "{}", r.stderr);
        // The export timeout (1 s) at most, beyond the run without export (and a margin for
        // starting the process on a busy machine).
        assert!(
            r.elapsed < plain.elapsed + Duration::from_millis(1000 + 700),
            "{endpoint}: {:?} against {:?}",
            r.elapsed,
            plain.elapsed
        );
    }
    assert!(
        hole.accepted.try_recv().is_ok(),
        "the black hole saw no export"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_the_export_cannot_keep_up_with_are_counted_in_one_warning() {
    let sb = Sandbox::start(SimConfig::default()).await;
    sb.write("in.jsonl", &user_gets(40));
    // A queue of one span (the standard variable) and a collector that takes 400 ms over each
    // answer: while the first export waits, one span waits in the queue and the others that end
    // are dropped.
    let mut receiver = Receiver::answering_after(Duration::from_millis(400)).await;
    let mut cmd = tw(&sb);
    cmd.env("OTEL_BSP_MAX_QUEUE_SIZE", "1");
    let r = run(
        cmd,
        &[
            "batch",
            "-i",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--no-progress",
            "--otlp-endpoint",
            &receiver.base,
        ],
    )
    .await;
    r.ok();
    assert_eq!(line_count(&sb.path("out.jsonl")), 40);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await;
    let received = spans(&traces(got, "/v1/traces")).len() as u64;
    // A span per API request and per token request ended; the run says, once, how many of
    // them never left.
    let journal = sb.sim.journal();
    let ended = journal.api_requests + journal.token_requests;
    let warnings: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| l.contains("OpenTelemetry"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(warnings[0].starts_with("warning:"), "{}", r.stderr);
    let said = warnings[0]
        .split(" spans were dropped")
        .next()
        .and_then(|head| head.rsplit(": ").next())
        .unwrap_or_else(|| panic!("no count in {}", warnings[0]));
    let (dropped, of) = said
        .split_once(" of ")
        .unwrap_or_else(|| panic!("no count in {}", warnings[0]));
    assert_eq!(of.parse::<u64>().unwrap(), ended, "{}", warnings[0]);
    let dropped: u64 = dropped.parse().unwrap();
    assert!(dropped > 0, "{}", warnings[0]);
    assert_eq!(dropped, ended - received, "{}", warnings[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exports_its_commands_requests_and_flushes_whatever_the_command_exits_with() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut receiver = Receiver::start().await;
    // Three requests through exec's agent, the key kept for the check, and a failing status.
    let script = format!(
        "for i in 1 2 3; do curl -sf -o /dev/null -H \"Authorization: Bearer $TOKENWARDEN_AGENT_KEY\" \"$TOKENWARDEN_AGENT_URL/api/v2/users/user-00000$i\" || exit 9; done; echo \"$TOKENWARDEN_AGENT_KEY\" > {}; exit 5",
        sb.path("key.txt").display()
    );
    let r = run(
        tw(&sb),
        &[
            "exec",
            "--otlp-endpoint",
            &receiver.base,
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .await;
    r.expect_code(5);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await;
    let journal = sb.sim.journal();
    let spans = spans(&traces(got, "/v1/traces"));
    let requests = linked(&spans);
    assert_eq!(requests.len(), 3);
    assert_eq!(sum_attempts(&requests), journal.api_requests);
    let m = last_metrics(&metrics(got, "/v1/metrics"));
    assert_eq!(m["tokenwarden_api_requests"]["class=2xx"], 3.0);
    let key = std::fs::read_to_string(sb.path("key.txt"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(key.len(), 64);
    assert_no_secret(got, &[key, DEFAULT_CLIENT_SECRET.to_string()]);
}

/// What every long command's export must hold: a span per API request (their attempts the
/// simulator's API requests), a refresh span per token request, counters that add up to the
/// journal, and nothing secret or id-like in any byte sent.
fn assert_spans_and_counters_match_the_journal(got: &[Export], sb: &Sandbox, tokens: &[String]) {
    let journal = sb.sim.journal();
    let spans = spans(&traces(got, "/v1/traces"));
    let requests = linked(&spans);
    assert!(!requests.is_empty());
    assert_eq!(sum_attempts(&requests), journal.api_requests);
    for (span, _) in &requests {
        assert!(!span.name.contains('?'), "{}", span.name);
    }
    let refresh_spans = spans.iter().filter(|s| s.name == "token refresh").count() as u64;
    assert_eq!(refresh_spans, journal.token_requests);
    let m = last_metrics(&metrics(got, "/v1/metrics"));
    let sent: f64 = m["tokenwarden_api_requests"].values().sum();
    assert_eq!(sent, journal.api_requests as f64);
    assert_eq!(
        m["tokenwarden_api_requests"]["class=2xx"],
        journal.api_ok as f64
    );
    let token_requests: f64 = m["tokenwarden_token_requests"].values().sum();
    assert_eq!(token_requests, journal.token_requests as f64);
    assert_eq!(
        m["tokenwarden_401_healed"][""],
        journal.api_revoked_token as f64
    );
    let mut secrets = tokens.to_vec();
    assert_eq!(secrets.len() as u64, journal.tokens_issued);
    secrets.push(DEFAULT_CLIENT_SECRET.to_string());
    assert_no_secret(got, &secrets);
}

/// Runs `args` against the simulator behind a token proxy that records every token issued,
/// exporting to a receiver of its own; checks the run succeeded without a warning and that its
/// export matches the journal ([`assert_spans_and_counters_match_the_journal`]); gives the export.
async fn exported_run(sb: &Sandbox, args: &[&str]) -> Vec<Export> {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let token_url = recording_token_proxy(sb.sim.token_url(), Arc::clone(&tokens)).await;
    let mut receiver = Receiver::start().await;
    let mut all = args.to_vec();
    all.extend(["--otlp-endpoint", &receiver.base]);
    let r = run(tw_via(sb, &token_url), &all).await;
    r.ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let got = receiver
        .until(|g| g.iter().any(|e| e.path == "/v1/metrics"))
        .await
        .to_vec();
    let tokens = tokens.lock().unwrap().clone();
    assert_spans_and_counters_match_the_journal(&got, sb, &tokens);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_exports_a_span_per_page_request_and_counters_that_match_the_journal() {
    let sb = Sandbox::start(SimConfig {
        revoke_every: Some(4),
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("users.jsonl");
    let args = ["paginate", "/api/v2/users", "--page-size", "25", "--out"];
    exported_run(&sb, &[&args[..], &[out.to_str().unwrap()]].concat()).await;
    let journal = sb.sim.journal();
    // Several pages, and at least one revoked token healed on the way.
    assert!(journal.api_requests >= 4, "{journal:?}");
    assert!(journal.api_revoked_token >= 1, "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_exports_a_span_per_job_request_and_counters_that_match_the_journal() {
    let sb = Sandbox::start(SimConfig {
        conversations: 60,
        job_duration: Duration::from_millis(60),
        ..SimConfig::default()
    })
    .await;
    let out = sb.path("convs.jsonl");
    let args = [
        "export",
        "conversations",
        "--interval",
        "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z",
        "--slice",
        "7d",
        "--page-size",
        "25",
        "--out",
    ];
    let got = exported_run(&sb, &[&args[..], &[out.to_str().unwrap()]].concat()).await;
    // The job's submission, its status polls and its result pages.
    let journal = sb.sim.journal();
    assert!(journal.api_requests >= 3, "{journal:?}");
    // The job's status and results are named by their route, the job id taken out.
    let spans = spans(&traces(&got, "/v1/traces"));
    assert!(
        spans.iter().any(|s| s
            .name
            .contains("/analytics/conversations/details/jobs/{id}")),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}
