//! Batch input: one record per line, parsed and validated without ever stopping the job.

use http::Method;
use serde_json::Value;

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
    /// Path (and query) below the API base, starting with `/`.
    pub path: String,
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
    /// A valid record.
    Record(Record),
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

pub(crate) fn parse_line(format: &InputFormat, line_no: u64, text: &str) -> Parsed {
    let text = text.trim();
    if text.is_empty() {
        return Parsed::Blank;
    }
    match format {
        InputFormat::Ids {
            path_template,
            method,
        } => {
            let enc = percent_encoding::utf8_percent_encode(text, SEGMENT).to_string();
            Parsed::Record(Record {
                id: Value::String(text.to_string()),
                key: text.to_string(),
                line: line_no,
                method: method.clone(),
                path: path_template.replace("{id}", &enc),
                body: None,
            })
        }
        InputFormat::Jsonl => parse_json_line(line_no, text),
    }
}

fn parse_json_line(line_no: u64, text: &str) -> Parsed {
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
    let method = match obj.remove("method") {
        None | Some(Value::Null) => Method::GET,
        Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET)
        }
        Some(other) => {
            return Parsed::Invalid {
                id: ident,
                error: format!(
                    "line {line_no}: unknown method {other} (use one of {})",
                    METHODS.join(", ")
                ),
            };
        }
    };
    let path = match obj.remove("path") {
        Some(Value::String(p)) if p.starts_with('/') && !p.starts_with("//") => p,
        Some(Value::String(p)) if !p.is_empty() => {
            return Parsed::Invalid {
                id: ident,
                error: format!("line {line_no}: path {p:?} must start with /"),
            };
        }
        _ => {
            return Parsed::Invalid {
                id: ident,
                error: format!("line {line_no}: no path"),
            };
        }
    };
    let body = obj.remove("body").filter(|b| !b.is_null());
    Parsed::Record(Record {
        id,
        key,
        line: line_no,
        method,
        path,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invalid(p: Parsed) -> String {
        match p {
            Parsed::Invalid { error, .. } => error,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn parses_jsonl_records() {
        let p = parse_line(
            &InputFormat::Jsonl,
            3,
            r#"{"id": 7, "method": "post", "path": "/api/v2/x", "body": {"a": 1}}"#,
        );
        let Parsed::Record(r) = p else { panic!() };
        assert_eq!(r.key, "7");
        assert_eq!(r.id, json!(7));
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.body, Some(json!({"a": 1})));
        assert_eq!(r.line, 3);
        let Parsed::Record(r) = parse_line(&InputFormat::Jsonl, 1, r#"{"id":"a","path":"/p"}"#)
        else {
            panic!()
        };
        assert_eq!(r.method, Method::GET);
        assert_eq!(parse_line(&InputFormat::Jsonl, 1, "   "), Parsed::Blank);
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let f = InputFormat::Jsonl;
        assert!(invalid(parse_line(&f, 4, "{oops")).starts_with("line 4: not JSON"));
        assert!(invalid(parse_line(&f, 5, "[1]")).contains("not a JSON object"));
        assert!(invalid(parse_line(&f, 6, r#"{"path":"/x"}"#)).contains("no id"));
        assert!(invalid(parse_line(&f, 7, r#"{"id":"a"}"#)).contains("no path"));
        assert!(invalid(parse_line(&f, 8, r#"{"id":"a","path":"x"}"#)).contains("must start"));
        let e = invalid(parse_line(
            &f,
            9,
            r#"{"id":"a","path":"/x","method":"FETCH"}"#,
        ));
        assert!(e.contains("unknown method"), "{e}");
        match parse_line(&f, 9, r#"{"id":"a","path":"/x","method":"FETCH"}"#) {
            Parsed::Invalid { id, .. } => assert_eq!(id.unwrap().1, "a"),
            _ => panic!(),
        }
    }

    #[test]
    fn ids_are_percent_encoded_into_the_template() {
        let f = InputFormat::Ids {
            path_template: "/api/v2/users/{id}".into(),
            method: Method::GET,
        };
        let Parsed::Record(r) = parse_line(&f, 1, " a b/c \n") else {
            panic!()
        };
        assert_eq!(r.path, "/api/v2/users/a%20b%2Fc");
        assert_eq!(r.key, "a b/c");
    }
}
