//! Batch input: one record per line, parsed and validated without ever stopping the job.
//!
//! **Records cannot leave the API's origin.** Each record's path is resolved against the API base
//! exactly as the client will resolve it, and the record runs only when the result has the base's
//! scheme, host and port; otherwise the line is a bad line (reported, never sent). A URL parser
//! reads `/\\host/x` as `//host/x` and drops tabs and newlines, so a check on the text alone is not
//! enough; paths with control characters are refused outright. Ids put into a path template are
//! percent-encoded (`/`, `?`, `#`, `%`, spaces, ...), and an id that would still change the path
//! (`.` and `..`, which a URL parser treats as path steps even when encoded) is a bad line.

use crate::client::locate;
use crate::error::{Error, excerpt};
use http::Method;
use serde_json::Value;
use url::Url;

/// One unit of batch work.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's id as given (a JSON string or number), echoed in its output line.
    pub id: Value,
    /// The id as a string: the key for resume and duplicate detection.
    pub key: String,
    /// 1-based line number in the input.
    pub line: u64,
    /// HTTP method.
    pub method: Method,
    /// Path (and query) below the API base, starting with `/`, as written (or as the template
    /// made it).
    pub path: String,
    /// Where the request goes: `path` resolved against the API base, on the base's origin.
    /// Send this, not `path`.
    pub url: Url,
    /// JSON body, if any.
    pub body: Option<Value>,
}

/// How input lines are read.
#[derive(Debug, Clone, PartialEq)]
pub enum InputFormat {
    /// JSON Lines: `{"id": ..., "method": "GET", "path": "/api/v2/...", "body": {...}}`; `method`
    /// defaults to GET.
    Jsonl,
    /// One id per line, substituted (percent-encoded) for `{id}` in `path_template`.
    Ids {
        /// E.g. `/api/v2/users/{id}`.
        path_template: String,
        /// The method for every record.
        method: Method,
    },
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// A well-formed record, whose destination is still to be checked with
    /// [`Parser::confine`] (only when it is to run: a resume skips most lines).
    Draft(Draft),
    /// Nothing to do (a blank line).
    Blank,
    /// A line that cannot be run: the id if one could be read, and why.
    Invalid {
        /// The id, if the line had a readable one.
        id: Option<(Value, String)>,
        /// The complaint.
        error: String,
    },
}

/// A well-formed record whose URL is not resolved yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    id: Value,
    key: String,
    line: u64,
    method: Method,
    path: String,
    body: Option<Value>,
    /// For an id: its percent-encoded form, which must stand in the URL as it is.
    encoded_id: Option<String>,
}

impl Draft {
    /// The id as a string: the key for resume and duplicate detection.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

/// Turns input lines into records that stay on the API's origin.
#[derive(Debug)]
pub(crate) struct Parser {
    format: InputFormat,
    base: Url,
    /// For ids: the template resolved with [`ID_MARKER`] for the id. An id that is only data
    /// gives this URL with the marker replaced by the encoded id, character for character.
    template_url: Option<String>,
}

/// Stands for the id while a path template is checked.
const ID_MARKER: &str = "tw-id-marker-7c3f9a";

/// Longest excerpt of a rejected path quoted in its error.
const QUOTED_PATH: usize = 200;

impl Parser {
    /// A parser for `format`, sending to `base`.
    ///
    /// # Errors
    /// [`Error::Config`] for a path template that does not start with `/`, lacks `{id}`, holds
    /// control characters or leads away from the base's origin.
    pub(crate) fn new(format: &InputFormat, base: &Url) -> Result<Self, Error> {
        let template_url = match format {
            InputFormat::Jsonl => None,
            InputFormat::Ids { path_template, .. } => {
                let bad = |why: &str| {
                    Error::Config(format!(
                        "path template '{}' {why}",
                        excerpt(path_template, QUOTED_PATH)
                    ))
                };
                if !path_template.starts_with('/') || !path_template.contains("{id}") {
                    return Err(bad("must start with / and contain {id}"));
                }
                let url = locate(base, &path_template.replace("{id}", ID_MARKER))
                    .map_err(|why| bad(&why))?;
                Some(url.to_string())
            }
        };
        Ok(Parser {
            format: format.clone(),
            base: base.clone(),
            template_url,
        })
    }

    /// Parses line `line_no`.
    pub(crate) fn parse(&self, line_no: u64, text: &str) -> Parsed {
        let text = text.trim();
        if text.is_empty() {
            return Parsed::Blank;
        }
        match &self.format {
            InputFormat::Ids {
                path_template,
                method,
            } => self.parse_id(path_template, method, line_no, text),
            InputFormat::Jsonl => self.parse_json_line(line_no, text),
        }
    }

    fn parse_id(&self, template: &str, method: &Method, line_no: u64, id: &str) -> Parsed {
        let enc = percent_encoding::utf8_percent_encode(id, SEGMENT).to_string();
        Parsed::Draft(Draft {
            id: Value::String(id.to_string()),
            key: id.to_string(),
            line: line_no,
            method: method.clone(),
            path: template.replace("{id}", &enc),
            body: None,
            encoded_id: Some(enc),
        })
    }

    /// The record of `draft`, if its URL stays on the API's origin (and an id stays data);
    /// otherwise its id and why not.
    pub(crate) fn confine(&self, draft: Draft) -> Result<Record, ((Value, String), String)> {
        let line_no = draft.line;
        let url = match locate(&self.base, &draft.path) {
            Ok(url) => url,
            Err(why) => {
                return Err(((draft.id, draft.key), format!("line {line_no}: path {why}")));
            }
        };
        if let (Some(enc), Some(template)) = (&draft.encoded_id, &self.template_url)
            && url.as_str() != template.replace(ID_MARKER, enc)
        {
            let error = format!(
                "line {line_no}: id '{}' cannot be put in the path: it would change it to {}",
                excerpt(&draft.key, QUOTED_PATH),
                excerpt(url.path(), QUOTED_PATH)
            );
            return Err(((draft.id, draft.key), error));
        }
        Ok(Record {
            id: draft.id,
            key: draft.key,
            line: line_no,
            method: draft.method,
            path: draft.path,
            url,
            body: draft.body,
        })
    }

    fn parse_json_line(&self, line_no: u64, text: &str) -> Parsed {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Parsed::Invalid {
                    id: None,
                    error: format!("line {line_no}: not JSON: {e}"),
                };
            }
        };
        let Value::Object(mut obj) = v else {
            return Parsed::Invalid {
                id: None,
                error: format!("line {line_no}: not a JSON object"),
            };
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        let Some(key) = id_key(&id) else {
            return Parsed::Invalid {
                id: None,
                error: format!("line {line_no}: no id (a non-empty string or a number)"),
            };
        };
        let ident = Some((id.clone(), key.clone()));
        let invalid = |error: String| Parsed::Invalid {
            id: ident.clone(),
            error,
        };
        let method = match obj.remove("method") {
            None | Some(Value::Null) => Method::GET,
            Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET)
            }
            Some(other) => {
                return invalid(format!(
                    "line {line_no}: unknown method {} (use one of {})",
                    excerpt(&other.to_string(), QUOTED_PATH),
                    METHODS.join(", ")
                ));
            }
        };
        let path = match obj.remove("path") {
            Some(Value::String(p)) if p.starts_with('/') && !p.starts_with("//") => p,
            Some(Value::String(p)) if !p.is_empty() => {
                return invalid(format!(
                    "line {line_no}: path '{}' must start with / (one /)",
                    excerpt(&p, QUOTED_PATH)
                ));
            }
            _ => return invalid(format!("line {line_no}: no path")),
        };
        let body = obj.remove("body").filter(|b| !b.is_null());
        Parsed::Draft(Draft {
            id,
            key,
            line: line_no,
            method,
            path,
            body,
            encoded_id: None,
        })
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The canonical key of a JSON id: strings as they are, numbers as written.
pub(crate) fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Characters escaped when an id is put into a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8080").unwrap()
    }

    /// A line as the engine sees it: parsed, then (if well-formed) confined.
    #[derive(Debug, PartialEq)]
    enum Got {
        Record(Record),
        Blank,
        Invalid {
            id: Option<(Value, String)>,
            error: String,
        },
    }

    fn parse(format: &InputFormat, line_no: u64, text: &str) -> Got {
        let parser = Parser::new(format, &base()).unwrap();
        match parser.parse(line_no, text) {
            Parsed::Draft(d) => match parser.confine(d) {
                Ok(r) => Got::Record(r),
                Err((id, error)) => Got::Invalid {
                    id: Some(id),
                    error,
                },
            },
            Parsed::Blank => Got::Blank,
            Parsed::Invalid { id, error } => Got::Invalid { id, error },
        }
    }

    fn invalid(p: Got) -> String {
        match p {
            Got::Invalid { error, .. } => error,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    fn ids(template: &str) -> InputFormat {
        InputFormat::Ids {
            path_template: template.into(),
            method: Method::GET,
        }
    }

    #[test]
    fn parses_jsonl_records() {
        let p = parse(
            &InputFormat::Jsonl,
            3,
            r#"{"id": 7, "method": "post", "path": "/api/v2/x?a=1", "body": {"a": 1}}"#,
        );
        let Got::Record(r) = p else { panic!() };
        assert_eq!(r.key, "7");
        assert_eq!(r.id, json!(7));
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.body, Some(json!({"a": 1})));
        assert_eq!(r.line, 3);
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/api/v2/x?a=1");
        let Got::Record(r) = parse(&InputFormat::Jsonl, 1, r#"{"id":"a","path":"/p"}"#) else {
            panic!()
        };
        assert_eq!(r.method, Method::GET);
        assert_eq!(parse(&InputFormat::Jsonl, 1, "   "), Got::Blank);
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let f = InputFormat::Jsonl;
        assert!(invalid(parse(&f, 4, "{oops")).starts_with("line 4: not JSON"));
        assert!(invalid(parse(&f, 5, "[1]")).contains("not a JSON object"));
        assert!(invalid(parse(&f, 6, r#"{"path":"/x"}"#)).contains("no id"));
        assert!(invalid(parse(&f, 7, r#"{"id":"a"}"#)).contains("no path"));
        assert!(invalid(parse(&f, 8, r#"{"id":"a","path":"x"}"#)).contains("must start"));
        let e = invalid(parse(&f, 9, r#"{"id":"a","path":"/x","method":"FETCH"}"#));
        assert!(e.contains("unknown method"), "{e}");
        match parse(&f, 9, r#"{"id":"a","path":"/x","method":"FETCH"}"#) {
            Got::Invalid { id, .. } => assert_eq!(id.unwrap().1, "a"),
            _ => panic!(),
        }
    }

    #[test]
    fn paths_that_leave_the_api_origin_are_bad_lines() {
        let f = InputFormat::Jsonl;
        for (n, path) in [
            r#""/\\evil.example:9/x""#,
            r#""/\t/evil.example/x""#,
            r#""/\n/evil.example/x""#,
            r#""//evil.example/x""#,
            r#""/\r/evil.example/x""#,
        ]
        .iter()
        .enumerate()
        {
            let line = format!(r#"{{"id":"h{n}","method":"POST","path":{path},"body":{{"s":1}}}}"#);
            let e = invalid(parse(&f, n as u64 + 1, &line));
            assert!(e.starts_with(&format!("line {}: path", n + 1)), "{e}");
            assert!(e.contains("not sent") || e.contains("must start"), "{e}");
        }
        // On the origin, backslashes and all, it runs (where the client would send it).
        let Got::Record(r) = parse(&f, 1, r#"{"id":"ok","path":"/api\\v2/x"}"#) else {
            panic!()
        };
        assert_eq!(r.url.origin(), base().origin());
    }

    #[test]
    fn ids_are_percent_encoded_into_the_template() {
        let f = ids("/api/v2/users/{id}");
        let Got::Record(r) = parse(&f, 1, " a b/c \n") else {
            panic!()
        };
        assert_eq!(r.path, "/api/v2/users/a%20b%2Fc");
        assert_eq!(r.url.path(), "/api/v2/users/a%20b%2Fc");
        assert_eq!(r.key, "a b/c");
        for id in ["../../admin", "x?y#z", "%2e%2e", "\\..\\x", "a/../../b"] {
            let Got::Record(r) = parse(&f, 1, id) else {
                panic!("{id}")
            };
            assert!(
                r.url.path().starts_with("/api/v2/users/"),
                "{id}: {}",
                r.url
            );
            assert_eq!(r.url.path().matches('/').count(), 4, "{id}: {}", r.url);
            assert_eq!(r.url.query(), None, "{id}");
        }
    }

    #[test]
    fn an_id_that_would_be_a_path_step_is_a_bad_line() {
        let f = ids("/api/v2/users/{id}/roles");
        for id in [".", ".."] {
            let e = invalid(parse(&f, 2, id));
            assert!(e.contains("cannot be put in the path"), "{e}");
        }
        // In the query, dots are only data.
        let Got::Record(r) = parse(&ids("/api/v2/users?id={id}"), 1, "..") else {
            panic!()
        };
        assert_eq!(r.url.query(), Some("id=.."));
    }

    #[test]
    fn a_template_must_hold_id_and_stay_on_the_origin() {
        for t in [
            "/api/v2/users",
            "api/{id}",
            "/\\evil.example/{id}",
            "/\t/evil/{id}",
        ] {
            assert!(Parser::new(&ids(t), &base()).is_err(), "{t}");
        }
    }
}
