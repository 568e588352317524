//! Scrubbing JSON after decoding it.
//!
//! JSON may spell any character as an escape: `"\u0054\u004f\u004b-1"` is the string `TOK-1`, and
//! an encoder that escapes every non-ASCII character (or, out of caution, `-`, `+`, `<`) writes a
//! token in a form no byte pattern can list. A reader decodes it back (jq, a script), so matching
//! the bytes is not enough: JSON is parsed, every string and key is scrubbed as decoded text, and
//! the value is written out again. One implementation serves the batch output, the export items,
//! `request`'s stdout and the excerpts of JSON bodies in error messages.

use super::{Built, matcher, redact_bytes};
use serde_json::Value;
use std::borrow::Cow;

/// `value` with every registered secret in its strings and object keys, as decoded text, replaced
/// by [`REDACTED`](crate::redact::REDACTED). Borrows when there is nothing to replace.
///
/// ```
/// tokenwarden::redact::register_secret("TOK-json-secret-1");
/// let v: serde_json::Value =
///     serde_json::from_str(r#"{"echo": "\u0054\u004f\u004b-json-secret-1"}"#).unwrap();
/// assert_eq!(tokenwarden::redact::redact_json(&v)["echo"], "[REDACTED]");
/// ```
pub fn redact_json(value: &Value) -> Cow<'_, Value> {
    match matcher() {
        Some(m) if holds_secret(value, &m) => {
            let mut owned = value.clone();
            scrub(&mut owned, &m);
            Cow::Owned(owned)
        }
        _ => Cow::Borrowed(value),
    }
}

/// [`redact_json`] in place; whether anything was replaced.
pub(crate) fn redact_json_in_place(value: &mut Value) -> bool {
    matcher().is_some_and(|m| scrub(value, &m))
}

/// A body that may be JSON, scrubbed: as it is (byte for byte) when no registered secret is in it,
/// raw or decoded; if it is JSON with a secret in a decoded string or key, the scrubbed value
/// written out again (compact); otherwise (not JSON) the bytes with every secret replaced, as
/// [`redact_bytes`].
///
/// ```
/// tokenwarden::redact::register_secret("TOK-json-secret-2");
/// let body = br#"{"echo": "TOK\u002djson-secret-2", "n": 1}"#;
/// assert_eq!(&*tokenwarden::redact::redact_json_bytes(body), br#"{"echo":"[REDACTED]","n":1}"#);
/// assert_eq!(&*tokenwarden::redact::redact_json_bytes(b"plain TOK-json-secret-2"), b"plain [REDACTED]");
/// ```
pub fn redact_json_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(m) = matcher() else {
        return Cow::Borrowed(bytes);
    };
    if let Ok(mut value) = serde_json::from_slice::<Value>(bytes)
        && scrub(&mut value, &m)
    {
        return Cow::Owned(scrub_serialized(
            serde_json::to_vec(&value).unwrap_or_default(),
        ));
    }
    redact_bytes(bytes)
}

/// A body of any type, scrubbed as far as its text allows: what a proxy passes on, whatever its
/// `Content-Type` says. Without a backslash in it, every JSON string reads as it is written, so
/// the bytes are matched as they are ([`redact_bytes`]: one pass, no copy when clean). With one,
/// it is scrubbed as JSON ([`redact_json_bytes`]) when it is one JSON value, labelled so or not;
/// when it is not (NDJSON, JSON quoted in text, a `text/plain` answer, a script), its escapes
/// (`\uXXXX` with surrogate pairs, `\xHH`, `\/`, `\"`, `\'`, `\\`) are decoded and, if a
/// secret shows there, the decoded text is returned scrubbed: the other escapes are lost, which
/// only happens to a body that echoed a secret.
///
/// ```
/// tokenwarden::redact::register_secret("TOK-body-secret-3");
/// let ndjson = b"{\"a\":1}\n{\"echo\":\"\\u0054OK-body-secret-3\"}\n";
/// assert!(!String::from_utf8_lossy(&tokenwarden::redact::redact_body(ndjson)).contains("body-secret"));
/// let text = br"say \x54OK-body-secret-3";
/// assert_eq!(&*tokenwarden::redact::redact_body(text), b"say [REDACTED]");
/// ```
pub fn redact_body(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'\\') {
        return redact_bytes(bytes);
    }
    let Some(m) = matcher() else {
        return Cow::Borrowed(bytes);
    };
    // One linear pass first: a secret that JSON decoding would show is there once the escapes
    // are decoded (a token has no control characters, the only escapes decoded differently).
    // Only then is the body parsed: a large answer full of escapes, with no secret in it, is
    // not turned into a tree of values (an 8-MiB array of numbers was some 200 MB).
    let decoded = unescaped(bytes);
    if !m.is_match(&decoded) {
        return redact_bytes(bytes);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) => {
            if scrub(&mut value, &m) {
                return Cow::Owned(scrub_serialized(
                    serde_json::to_vec(&value).unwrap_or_default(),
                ));
            }
        }
        Err(_) => return Cow::Owned(m.replace_bytes(&decoded).unwrap_or(decoded)),
    }
    redact_bytes(bytes)
}

/// `bytes` with the backslash escapes of JSON, JavaScript and Python string literals decoded
/// (`\uXXXX`, a surrogate pair as one character, `\xHH`, and `\` before `/`, `"`, `'`, `\`);
/// anything else, a broken escape included, kept as it is.
fn unescaped(bytes: &[u8]) -> Vec<u8> {
    fn hex(digits: Option<&[u8]>) -> Option<u32> {
        let digits = digits?;
        let text = std::str::from_utf8(digits).ok()?;
        text.bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| u32::from_str_radix(text, 16).ok())
            .flatten()
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            match bytes.get(i + 1) {
                Some(b'u') => {
                    if let Some(unit) = hex(bytes.get(i + 2..i + 6)) {
                        let low = (0xD800..0xDC00)
                            .contains(&unit)
                            .then(|| bytes.get(i + 6..i + 8).filter(|e| *e == b"\\u"))
                            .flatten()
                            .and_then(|_| hex(bytes.get(i + 8..i + 12)))
                            .filter(|low| (0xDC00..0xE000).contains(low));
                        let (code, used) = match low {
                            Some(low) => (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12),
                            None => (unit, 6),
                        };
                        if let Some(c) = char::from_u32(code) {
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            i += used;
                            continue;
                        }
                    }
                }
                Some(b'x') => {
                    if let Some(byte) = hex(bytes.get(i + 2..i + 4)) {
                        out.push(byte as u8);
                        i += 4;
                        continue;
                    }
                }
                Some(&c @ (b'/' | b'"' | b'\'' | b'\\')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The last pass over JSON text written from scrubbed values: a secret that spans JSON
/// punctuation (`a","b`) is in no single string, but is in the text. It is replaced when the
/// result is still JSON; otherwise the text is kept as it is (every string in it is clean).
pub(crate) fn scrub_serialized(text: Vec<u8>) -> Vec<u8> {
    match redact_bytes(&text) {
        Cow::Owned(clean) if serde_json::from_slice::<serde::de::IgnoredAny>(&clean).is_ok() => {
            clean
        }
        _ => text,
    }
}

/// Whether a string or key of `v` holds a secret.
fn holds_secret(v: &Value, m: &Built) -> bool {
    match v {
        Value::String(s) => m.is_match(s.as_bytes()),
        Value::Array(a) => a.iter().any(|x| holds_secret(x, m)),
        Value::Object(map) => map
            .iter()
            .any(|(k, x)| m.is_match(k.as_bytes()) || holds_secret(x, m)),
        _ => false,
    }
}

/// Replaces the secrets in the strings and keys of `v`; whether any was.
fn scrub(v: &mut Value, m: &Built) -> bool {
    match v {
        Value::String(s) => match m.replace(s) {
            Some(clean) => {
                *s = clean;
                true
            }
            None => false,
        },
        Value::Array(a) => a.iter_mut().fold(false, |changed, x| scrub(x, m) | changed),
        Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| m.is_match(k.as_bytes())) {
                // Keys cannot be changed in place: the object is rebuilt, in its order.
                let old = std::mem::take(map);
                for (k, x) in old {
                    let k = m.replace(&k).unwrap_or(k);
                    map.insert(k, x);
                }
                changed = true;
            }
            map.values_mut()
                .fold(changed, |changed, x| scrub(x, m) | changed)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::REDACTED;
    use serde_json::json;

    const TOKEN: &str = "TOK-abcdefghijklmnopqrstuvwxyz0123456789";

    fn every_char_escaped(s: &str) -> String {
        s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
    }

    #[test]
    fn regression_a_token_escaped_in_json_is_scrubbed_after_decoding() {
        crate::redact::register(TOKEN, crate::redact::Lifespan::Rotating);
        let body = format!(
            r#"{{"echo":"{}","partial":"TOK\u002d{}","{}":1,"n":[{{"deep":"x {TOKEN} y"}}],"ok":2}}"#,
            every_char_escaped(TOKEN),
            &TOKEN[4..],
            every_char_escaped(TOKEN),
        );
        // The bytes alone do not show the escaped token.
        let escaped_only = format!(r#"{{"echo":"{}"}}"#, every_char_escaped(TOKEN));
        assert!(matches!(
            redact_bytes(escaped_only.as_bytes()),
            Cow::Borrowed(_)
        ));
        let clean = redact_json_bytes(body.as_bytes());
        let back: Value = serde_json::from_slice(&clean).unwrap();
        assert_eq!(
            back,
            json!({"echo": "[REDACTED]", "partial": "[REDACTED]", "[REDACTED]": 1,
                   "n": [{"deep": "x [REDACTED] y"}], "ok": 2})
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(redact_json(&parsed).as_ref(), &back);
    }

    #[test]
    fn regression_a_body_of_any_type_is_scrubbed_of_an_escaped_token() {
        // The agent decoded escapes only when the answer said it was JSON: a `text/plain` echo,
        // NDJSON and a token in a JavaScript string passed with their escapes.
        crate::redact::register(TOKEN, crate::redact::Lifespan::Rotating);
        let escaped = every_char_escaped(TOKEN);
        let hexed: String = TOKEN.bytes().map(|b| format!("\\x{b:02x}")).collect();
        let surrogate = format!("\\ud83d\\ude00 {}", every_char_escaped(TOKEN));
        for body in [
            format!(r#"{{"echo":"{escaped}"}}"#),
            format!("{{\"a\":1}}\n{{\"echo\":\"{escaped}\"}}\n"),
            format!("var t = '{hexed}'; // C:\\temp"),
            format!("you sent: {escaped} (C:\\x)"),
            format!("got {}", TOKEN.replace('-', "\\u002D")),
            surrogate,
        ] {
            let clean = String::from_utf8_lossy(&redact_body(body.as_bytes())).into_owned();
            assert!(
                clean.contains(REDACTED) && !clean.contains("abcdef"),
                "{body}: {clean}"
            );
        }
        // A pair decodes to one character, and what is not an escape is kept.
        assert_eq!(unescaped(br"\ud83d\ude00"), "\u{1f600}".as_bytes());
        assert_eq!(unescaped(br"\u12 \x4 \q \"), br"\u12 \x4 \q \");
        // A clean body with backslashes is kept byte for byte, JSON or not.
        for clean in [&br#"{"path":"C:\\temp\u0041"}"#[..], br"C:\temp\x41 \u0041"] {
            assert!(matches!(redact_body(clean), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn clean_bodies_are_kept_byte_for_byte() {
        crate::redact::register(TOKEN, crate::redact::Lifespan::Rotating);
        let body = br#"{ "pretty" : [1, 2.50, "x"] }"#;
        assert!(matches!(redact_json_bytes(body), Cow::Borrowed(_)));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(matches!(redact_json(&v), Cow::Borrowed(_)));
        // Not JSON: byte redaction.
        let text = format!("<html>{TOKEN}</html>");
        assert_eq!(
            &*redact_json_bytes(text.as_bytes()),
            b"<html>[REDACTED]</html>"
        );
    }

    #[test]
    fn a_secret_across_json_punctuation_is_replaced_when_the_text_stays_json() {
        crate::redact::register_secret("x1\",\"b-secret");
        let text = serde_json::to_vec(&json!({"a": "x1", "b-secret": 2})).unwrap();
        // Replacing it would break the JSON: kept (each string is clean).
        assert_eq!(scrub_serialized(text.clone()), text);
        let text = br#"["x1\",\"b-secret"]"#.to_vec();
        assert_eq!(scrub_serialized(text), br#"["[REDACTED]"]"#);
    }
}
