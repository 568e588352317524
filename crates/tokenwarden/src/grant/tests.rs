use super::classify::*;
use super::endpoint::*;
use super::refresh::*;
use super::*;
use crate::secret::ClientSecret;
use base64::Engine as _;
use std::sync::Arc;

fn fatal(r: Result<TokenResponse, FetchError>) -> Error {
    match r {
        Err(FetchError::Fatal(e)) => e,
        other => panic!("expected fatal, got {:?}", other.map(|_| ())),
    }
}

fn transient(r: Result<TokenResponse, FetchError>) -> Option<Duration> {
    match r {
        Err(FetchError::Transient { retry_after, .. }) => retry_after,
        other => panic!("expected transient, got {:?}", other.map(|_| ())),
    }
}

const H: &str = "login.example";

#[test]
fn success_parses_and_tolerates_string_expiry() {
    let ok = classify(
        200,
        br#"{"access_token":"abc","token_type":"bearer","expires_in":86399}"#,
        None,
        None,
        "client_credentials",
        H,
    )
    .unwrap();
    assert_eq!(ok.access_token.expose_secret(), "abc");
    assert_eq!(ok.expires_in, Some(Duration::from_secs(86399)));
    let s = classify(
        200,
        br#"{"access_token":"x","expires_in":"60"}"#,
        None,
        None,
        "g",
        H,
    )
    .unwrap();
    assert_eq!(s.expires_in, Some(Duration::from_secs(60)));
    let none = classify(200, br#"{"access_token":"x"}"#, None, None, "g", H).unwrap();
    assert_eq!(none.expires_in, None);
}

#[test]
fn undecodable_success_never_echoes_the_body() {
    let e = fatal(classify(
        200,
        b"<html>access_token=SECRETTOKEN</html>",
        None,
        None,
        "g",
        H,
    ));
    assert!(matches!(e, Error::TokenDecode { .. }));
    assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
}

#[test]
fn genesys_token_throttling_is_transient() {
    let body = br#"{"error":"invalid_request","description":"rate limit exceeded; try again","error_description":"rate limit exceeded; try again"}"#;
    assert_eq!(transient(classify(400, body, None, None, "g", H)), None);
    let ra = Some(Duration::from_secs(3));
    assert_eq!(transient(classify(400, body, ra, None, "g", H)), ra);
}

#[test]
fn server_errors_and_429_are_transient() {
    for s in [429, 500, 502, 503, 504, 408] {
        transient(classify(s, b"", None, None, "g", H));
    }
}

#[test]
fn bad_credentials_are_fatal_with_a_hint() {
    let e = fatal(classify(
        401,
        br#"{"error":"invalid_client","description":"client not found"}"#,
        None,
        None,
        "client_credentials",
        H,
    ));
    let msg = e.to_string();
    assert!(msg.contains("client id and secret"), "{msg}");
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(e.is_credentials());
    let other_400 = fatal(classify(
        400,
        br#"{"error":"invalid_request","description":"bad things"}"#,
        None,
        None,
        "g",
        H,
    ));
    assert!(other_400.is_credentials());
    let grant = fatal(classify(
        400,
        br#"{"error":"invalid_grant"}"#,
        None,
        None,
        "refresh_token",
        H,
    ));
    assert!(grant.to_string().contains("sign in again"), "{grant}");
}

#[test]
fn regression_the_error_code_cannot_inject_escapes_lines_or_secrets() {
    crate::redact::register_secret("code-echoed-secret-1");
    let body = "{\"error\":\"temporarily_unavailable \\u001b[31mRED\\nWARN forged line code-echoed-secret-1\"}";
    let reason = match classify(503, body.as_bytes(), None, None, "g", H) {
        Err(FetchError::Transient { reason, .. }) => reason,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    assert!(!reason.contains("code-echoed-secret-1"), "{reason}");
    assert!(
        reason.starts_with("HTTP 503 temporarily_unavailable \\u{1b}[31mRED\\n"),
        "{reason}"
    );
    let e = fatal(classify(401, body.as_bytes(), None, None, "g", H));
    let Error::Credentials {
        code: Some(code), ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        !code.chars().any(char::is_control) && !code.contains("echoed"),
        "{code:?}"
    );
    assert!(!e.to_string().chars().any(char::is_control), "{e}");
}

#[test]
fn redirects_are_fatal_config_errors() {
    let e = fatal(classify(
        302,
        b"",
        None,
        Some("https://evil.example/".into()),
        "g",
        H,
    ));
    assert!(e.to_string().contains("redirect"), "{e}");
}

#[test]
fn http_only_for_loopback() {
    assert!(TokenEndpoint::new("http://127.0.0.1:8080/oauth/token").is_ok());
    assert!(TokenEndpoint::new("http://localhost/oauth/token").is_ok());
    assert!(TokenEndpoint::new("http://[::1]:9/oauth/token").is_ok());
    assert!(TokenEndpoint::new("https://login.mypurecloud.com/oauth/token").is_ok());
    assert!(TokenEndpoint::new("http://login.mypurecloud.com/oauth/token").is_err());
    assert!(TokenEndpoint::allow_insecure_http("http://login.example/oauth/token").is_ok());
    assert!(TokenEndpoint::new("ftp://x/y").is_err());
    assert!(TokenEndpoint::new("not a url").is_err());
}

#[test]
fn grants_debug_without_secrets() {
    let ep = TokenEndpoint::new("http://127.0.0.1:1/oauth/token").unwrap();
    let cc = ClientCredentials::new(ep.clone(), "id", ClientSecret::new("s3cr3t-value"));
    let rt = RefreshTokenGrant::new(
        ep,
        "id",
        ClientSecret::new("s3cr3t-value"),
        RefreshToken::new("rt-value-123"),
    );
    let st = StaticToken::new(AccessToken::new("static-tok-999"));
    let shown = format!("{cc:?} {rt:?} {st:?}");
    for s in ["s3cr3t-value", "rt-value-123", "static-tok-999"] {
        assert!(!shown.contains(s), "{shown}");
    }
}

#[test]
fn odd_expires_in_is_refused_or_taken_as_given() {
    let parse = |v: &str| {
        let body = format!(r#"{{"access_token":"tok-odd-1","expires_in":{v}}}"#);
        classify(200, body.as_bytes(), None, None, "g", H).map(|t| t.expires_in)
    };
    assert_eq!(parse("3600").unwrap(), Some(Duration::from_secs(3600)));
    assert_eq!(parse("\"3600\"").unwrap(), Some(Duration::from_secs(3600)));
    assert_eq!(parse("null").unwrap(), None);
    assert_eq!(parse("1e-9").unwrap(), Some(Duration::from_nanos(1)));
    assert_eq!(parse("1e300").unwrap(), Some(Duration::MAX));
    for (v, says) in [
        ("0", "expires_in is 0"),
        ("-1", "expires_in is -1"),
        ("\"soon\"", "a string, not a number"),
        ("\"NaN\"", "not a number"),
        ("\"inf\"", "infinite"),
        ("true", "a boolean"),
        ("{}", "an object"),
    ] {
        match parse(v) {
            Err(FetchError::Fatal(Error::TokenDecode { detail })) => {
                assert!(detail.contains(says), "{v}: {detail}")
            }
            other => panic!("{v}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn only_bearer_tokens_are_accepted() {
    let with_type = |t: &str| {
        let body = format!(r#"{{"access_token":"tok-type-1","token_type":"{t}"}}"#);
        classify(200, body.as_bytes(), None, None, "g", H)
    };
    assert!(with_type("bearer").is_ok());
    assert!(with_type("Bearer").is_ok());
    let e = fatal(with_type("mac"));
    assert!(e.to_string().contains("\"mac\", not \"bearer\""), "{e}");
    assert!(fatal(with_type("DPoP")).to_string().contains("DPoP"));
}

#[test]
fn a_token_that_would_inject_headers_is_refused_without_echoing_it() {
    for token in [
        r"tok-1\r\nX-Injected: yes",
        r"tok-1\nX-Injected: yes",
        r"tok-1\u0000X-Injected",
        "tok-1 X-Injected",
        "tok-1\u{e9}X-Injected",
    ] {
        let body = format!(r#"{{"access_token":"{token}","expires_in":60}}"#);
        let e = fatal(classify(200, body.as_bytes(), None, None, "g", H));
        assert!(matches!(e, Error::TokenDecode { .. }), "{e}");
        assert!(
            e.to_string().contains("not allowed in an HTTP header"),
            "{e}"
        );
        assert!(!e.to_string().contains("Injected"), "{e}");
    }
}

#[test]
fn an_oversized_answer_is_a_decode_error_unless_its_status_says_retry() {
    let e = fatal(Err(too_large(200, None)));
    assert!(e.to_string().contains("more than 64 KiB"), "{e}");
    assert_eq!(
        transient(Err(too_large(503, Some(Duration::from_secs(2))))),
        Some(Duration::from_secs(2))
    );
}

/// A chunked answer (no `Content-Length`) of `chunks` × 8 KiB; counts the chunks produced.
fn chunked(chunks: usize, produced: Arc<std::sync::atomic::AtomicUsize>) -> reqwest::Response {
    use futures::StreamExt as _;
    use http_body::Frame;
    use http_body_util::StreamBody;
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        produced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(Frame::data(bytes::Bytes::from(vec![b'x'; 8192])))
    });
    reqwest::Response::from(http::Response::new(reqwest::Body::wrap(StreamBody::new(
        stream,
    ))))
}

#[tokio::test]
async fn token_answers_are_read_with_a_cap_not_buffered_whole() {
    let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // 8 MiB, streamed: reading stops just past 64 KiB.
    let body = read_capped(chunked(1024, Arc::clone(&produced)), MAX_TOKEN_RESPONSE)
        .await
        .unwrap();
    assert!(body.is_none());
    let read = produced.load(std::sync::atomic::Ordering::SeqCst);
    assert!(read <= 9, "{read} chunks of 8 KiB read");
    // Exactly 64 KiB is fine.
    let body = read_capped(chunked(8, Arc::default()), MAX_TOKEN_RESPONSE)
        .await
        .unwrap();
    assert_eq!(body.map(|b| b.len()), Some(MAX_TOKEN_RESPONSE));
}

#[test]
fn the_form_body_and_basic_credential_are_encoded_as_before() {
    let secret = ClientSecret::new("s3cr3t/+ &=value");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_secret", secret.expose_secret()),
    ];
    let body = form_body(&form);
    assert_eq!(
        body.as_bytes().unwrap(),
        b"grant_type=client_credentials&client_secret=s3cr3t%2F%2B+%26%3Dvalue"
    );
    let v = basic_header("my-client", &secret).unwrap();
    assert!(v.is_sensitive());
    let expected = base64::engine::general_purpose::STANDARD.encode("my-client:s3cr3t/+ &=value");
    assert_eq!(v.to_str().unwrap(), format!("Basic {expected}"));
}

mod properties {
    //! The token-response parser and the JWT `exp` reader on hostile input: they never panic,
    //! and what they accept is sane.
    use super::super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A field that is missing, or holds a plausible or an odd value.
    fn field(plausible: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            2 => Just(None),
            4 => plausible.prop_map(Some),
            2 => any_json().prop_map(Some),
        ]
    }

    fn expires_in() -> BoxedStrategy<Value> {
        prop_oneof![
            (1u64..200_000).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(1e-9)),
            Just(json!(1e300)),
            Just(json!("3600")),
            Just(json!("NaN")),
            Just(json!("-inf")),
            Just(json!("soon")),
        ]
        .boxed()
    }

    /// Short tokens only: every token accepted is registered with the process-wide redaction
    /// registry, which rebuilds its matcher over all of them (seconds per KiB-long token in a
    /// debug build). Long tokens are covered by `MAX_TOKEN_LEN`'s own test, the 64 KiB cap on
    /// whole answers by `token_answers_are_read_with_a_cap_not_buffered_whole`.
    fn access_token() -> BoxedStrategy<Value> {
        prop_oneof![
            "[A-Za-z0-9._~+/-]{1,64}=*".prop_map(Value::String),
            // Anything at all, control characters and non-ASCII included.
            ".{0,64}".prop_map(Value::String),
        ]
        .boxed()
    }

    fn token_type() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(json!("bearer")),
            Just(json!("Bearer")),
            Just(json!("mac")),
            Just(json!("DPoP")),
            ".{0,10}".prop_map(Value::String),
        ]
        .boxed()
    }

    proptest! {
        // Few cases: a debug build on a busy machine must stay well within the suite's budget.
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn classify_never_panics_on_any_bytes(
            status in 100u16..600,
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = classify(status, &body, None, None, "g", "h");
        }

        #[test]
        fn classify_is_sane_on_token_shaped_answers(
            access in field(access_token()),
            expires in field(expires_in()),
            ttype in field(token_type()),
            refresh in field(".{0,20}".prop_map(Value::String).boxed()),
            extra in any_json(),
        ) {
            let mut obj = serde_json::Map::new();
            for (k, v) in [("access_token", &access), ("expires_in", &expires),
                           ("token_type", &ttype), ("refresh_token", &refresh)] {
                if let Some(v) = v { obj.insert(k.into(), v.clone()); }
            }
            obj.insert("extra".into(), extra);
            let body = serde_json::to_vec(&Value::Object(obj)).unwrap();
            match classify(200, &body, None, None, "g", "h") {
                Ok(t) => {
                    let a = t.access_token.expose_secret();
                    prop_assert!(!a.is_empty());
                    prop_assert!(a.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    prop_assert_eq!(Some(&Value::String(a.to_string())), access.as_ref());
                    prop_assert!(t.expires_in.is_none_or(|d| d > Duration::ZERO));
                    if t.expires_in.is_none() {
                        prop_assert!(matches!(expires, None | Some(Value::Null)));
                    }
                    prop_assert!(t.token_type.as_deref().is_none_or(|ty| ty.eq_ignore_ascii_case("bearer")));
                }
                Err(FetchError::Fatal(Error::TokenDecode { detail })) => {
                    // Never the token itself (tokens long enough to be told from words).
                    if let Some(Value::String(a)) = &access && a.len() >= 8 {
                        prop_assert!(!detail.contains(a.as_str()), "{}", detail);
                    }
                    prop_assert!(detail.len() < 400, "{}", detail);
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn error_statuses_never_yield_a_token(
            status in 300u16..600,
            body in any_json(),
        ) {
            let body = serde_json::to_vec(&body).unwrap();
            match classify(status, &body, None, None, "g", "h") {
                Ok(_) => prop_assert!(false, "a token from HTTP {}", status),
                Err(FetchError::Transient { .. }) => prop_assert!(
                    status == 429 || status == 408 || status >= 500 || status == 400
                ),
                Err(_) => prop_assert!(status != 429 && status < 500),
            }
        }

        #[test]
        fn the_jwt_reader_never_panics(token in ".{0,200}") {
            let _ = crate::token::jwt_expiry(&token);
        }

        #[test]
        fn the_jwt_reader_takes_only_a_sane_exp(
            exp in prop_oneof![any_json(), any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f))],
            extra in any_json(),
            sig in "[A-Za-z0-9_-]{0,20}",
        ) {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let claims = json!({"exp": exp, "x": extra});
            let token = format!("{}.{}.{sig}", e.encode(r#"{"alg":"none"}"#), e.encode(claims.to_string()));
            match crate::token::jwt_expiry(&token) {
                Some(at) => {
                    let secs = exp.as_f64().expect("a number was read");
                    prop_assert!(secs >= 0.0);
                    let got = at.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
                    prop_assert!((got - secs.min(1e11)).abs() < 1e-3 * secs.max(1.0));
                }
                None => prop_assert!(exp.as_f64().is_none_or(|s| s < 0.0)),
            }
        }
    }
}
