//! The forms a secret takes when software re-emits it: the ones the registry matches besides the
//! value itself.
//!
//! A token endpoint that quotes the form body it received shows the client secret
//! `application/x-www-form-urlencoded` (`-._*` kept, a space as `+`), which is not how a URL
//! component is percent-encoded (every byte but letters and digits); servers print percent
//! escapes with upper- or lower-case hex digits (`%2F`, `%2f`); JSON encoders escape `"`, `\`,
//! control characters, and some `/`. Each of these is registered. JSON text that escapes *any*
//! character (`\u0054\u004f\u004b`) is not matched as bytes: JSON bodies are decoded before they
//! are scrubbed (see [`super::json`]).

/// `value` and every other form it is registered under (each once, the value first).
pub(super) fn of(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    let mut add = |form: String| {
        if !forms.contains(&form) {
            forms.push(form);
        }
    };
    // Quoted in a JSON string, as serde_json writes it, and with `/` escaped as some encoders do.
    if let Ok(json) = serde_json::to_string(value) {
        let inner = &json[1..json.len() - 1];
        add(inner.to_string());
        add(inner.replace('/', "\\/"));
    }
    // A URL component (every byte but letters and digits escaped) and a form body (what
    // `grant::endpoint::form_body` sends), each with upper- and lower-case hex digits.
    let component =
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    for encoded in [component, form] {
        let lower = lower_hex(&encoded);
        add(encoded);
        add(lower);
    }
    forms
}

/// `s` with the hex digits of its percent escapes in lower case (`%2F` → `%2f`).
fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escape_left = 0;
    for c in s.chars() {
        if escape_left > 0 {
            out.push(c.to_ascii_lowercase());
            escape_left -= 1;
        } else {
            if c == '%' {
                escape_left = 2;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_registered_as_sent_in_a_form_body_and_in_either_hex_case() {
        let forms = of("abc/def+ghi-jk.l*m n");
        for expected in [
            "abc/def+ghi-jk.l*m n",
            // URL component
            "abc%2Fdef%2Bghi%2Djk%2El%2Am%20n",
            "abc%2fdef%2bghi%2djk%2el%2am%20n",
            // form body: `-._*` kept, space as `+`
            "abc%2Fdef%2Bghi-jk.l*m+n",
            "abc%2fdef%2bghi-jk.l*m+n",
            // JSON with `/` escaped
            "abc\\/def+ghi-jk.l*m n",
        ] {
            assert!(forms.iter().any(|f| f == expected), "{expected}: {forms:?}");
        }
        // Plain alphanumerics have one form only.
        assert_eq!(of("plainTOKEN123"), ["plainTOKEN123"]);
    }

    #[test]
    fn only_the_hex_digits_of_escapes_are_lowered() {
        assert_eq!(lower_hex("AB%2FCD%3a"), "AB%2fCD%3a");
    }
}
