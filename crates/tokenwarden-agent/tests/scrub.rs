//! The answers the agent passes on, scrubbed of what it knows whatever their type, size or pace
//! (issue #18, low findings of an attack review): a token spelled with escapes in an answer not
//! labelled JSON, a token in a registered form (or the agent key) in an answer too large to hold,
//! and an answer that trickles, which was held back until its end.

mod common;

use common::{KEY, Piece, REAL_TOKEN, agent_for, head, raw_api};
use std::time::Duration;

/// `s` with every character as a JSON `\u` escape.
fn every_char_escaped(s: &str) -> String {
    s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

#[tokio::test]
async fn a_token_spelled_with_escapes_is_scrubbed_whatever_the_content_type() {
    let escaped = every_char_escaped(REAL_TOKEN);
    let hexed: String = REAL_TOKEN.bytes().map(|b| format!("\\x{b:02x}")).collect();
    let bodies = [
        ("text/plain", format!("you sent: Bearer {escaped}")),
        (
            "application/x-ndjson",
            format!("{{\"n\":1}}\n{{\"auth\":\"Bearer {escaped}\"}}\n"),
        ),
        ("application/javascript", format!("var t = '{hexed}';")),
        ("text/plain", format!(r#"{{"auth":"{escaped}"}}"#)),
    ];
    let served = bodies.clone();
    let api = raw_api(move |r| {
        let i: usize = r.line.split("/api/v2/b/").nth(1).unwrap()[..1]
            .parse()
            .unwrap();
        let (ty, body) = &served[i];
        vec![
            head(
                200,
                &[
                    ("content-type", ty),
                    ("content-length", &body.len().to_string()),
                ],
            ),
            Piece::Bytes(body.clone().into_bytes()),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let http = reqwest::Client::new();
    for (i, (ty, body)) in bodies.iter().enumerate() {
        let text = http
            .get(format!("{}/api/v2/b/{i}", agent.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("[REDACTED]") && !text.contains("\\u0030\\u0031\\u0032"),
            "{ty} {body}: {text}"
        );
        assert!(!text.contains("\\x30\\x31"), "{ty}: {text}");
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn an_answer_too_large_to_hold_is_scrubbed_of_every_form_of_every_secret() {
    // Percent-encoded as a URL component (`-` is `%2D`, or `%2d`), raw at the very end, and the
    // agent key: the streaming scrubber matched the raw tokens only.
    let component = REAL_TOKEN.replace('-', "%2d");
    let pct = REAL_TOKEN.replace('-', "%2D");
    assert_ne!(pct, REAL_TOKEN);
    let filler = vec![b'.'; tokenwarden_agent::SCRUBBED_WHOLE + 1000];
    let mut body = filler.clone();
    body.extend_from_slice(format!(" a={pct} b={component} key={KEY} end={REAL_TOKEN}").as_bytes());
    let served = body.clone();
    let api = raw_api(move |_| {
        vec![
            head(200, &[("content-type", "text/plain")]),
            Piece::Bytes(served.clone()),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let got = reqwest::Client::new()
        .get(format!("{}/api/v2/large", agent.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let tail = String::from_utf8_lossy(&got[filler.len()..]).into_owned();
    assert_eq!(
        tail, " a=[REDACTED] b=[REDACTED] key=[REDACTED] end=[REDACTED]",
        "what streamed"
    );
    assert!(got[..filler.len()].iter().all(|b| *b == b'.'));
    agent.shutdown().await;
}

#[tokio::test]
async fn an_answer_that_trickles_reaches_its_caller_as_it_comes() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
    let api = raw_api(move |_| {
        let wait = std::sync::Arc::clone(&wait);
        vec![
            head(200, &[("content-type", "application/x-ndjson")]),
            Piece::Bytes(format!("{{\"first\":\"{REAL_TOKEN}\"}}\n").into_bytes()),
            // The rest only once the caller has the first line (or, without the fix, after the
            // caller gave up waiting for it).
            Piece::Until(Box::new(move || {
                let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(4));
            })),
            Piece::Bytes(b"{\"second\":2}\n".to_vec()),
        ]
    });
    let agent = agent_for(&api.base, |b| b, |o| o).await;
    let http = reqwest::Client::new();
    let mut got = Vec::new();
    // The window (1 s) plus room: the head and the first line come long before the answer's end
    // (they came with it, after the API's 4 s).
    let first = tokio::time::timeout(Duration::from_secs(3), async {
        let mut r = http
            .get(format!("{}/api/v2/stream", agent.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        while !got.contains(&b'\n') {
            got.extend_from_slice(&r.chunk().await.unwrap().unwrap());
        }
        r
    })
    .await;
    go.send(()).unwrap();
    let mut r = first.expect("the first line was held back");
    while let Some(c) = r.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "{\"first\":\"[REDACTED]\"}\n{\"second\":2}\n"
    );
    agent.shutdown().await;
}
