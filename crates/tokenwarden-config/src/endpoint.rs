//! Where the token endpoint and the API are: a Genesys region, or URLs checked before use.

use tokenwarden::{Region, region::REGIONS};

/// The region `s`, or one short line saying what was meant: "unknown region 'eu-west-9'; did you
/// mean eu-west-1 or eu-west-2?". `place` says where it was given, unless typed as `--region`.
pub(crate) fn region(s: &str, place: Option<&str>) -> Result<Region, String> {
    Region::parse(s).map_err(|_| {
        let at = place.map(|p| format!(" in {p}")).unwrap_or_default();
        match suggestions(s).as_slice() {
            [] => format!(
                "unknown region '{s}'{at}; use a region name such as eu-west-1 or a domain such as mypurecloud.ie\nhint: regions: {}",
                REGIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
            close => format!("unknown region '{s}'{at}; did you mean {}?", or_list(close)),
        }
    })
}

/// Region names or domains within a few edits of `s`, closest first (at most three).
fn suggestions(s: &str) -> Vec<&'static str> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .trim_start_matches("https://")
        .trim_start_matches("api.")
        .trim_start_matches("login.");
    let mut scored: Vec<(usize, &'static str)> = REGIONS
        .iter()
        .flat_map(|(name, domain)| [*name, *domain])
        .map(|candidate| (strsim::levenshtein(t, candidate), candidate))
        .collect();
    let Some(best) = scored.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    // Close means a typo, not a different word: at most 3 edits, and under a third of the word.
    if best > 3 || best * 3 > t.chars().count().max(1) {
        return Vec::new();
    }
    scored.retain(|(d, _)| *d == best);
    scored.into_iter().map(|(_, c)| c).take(3).collect()
}

/// "a", "a or b", "a, b or c".
pub(crate) fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The authorization endpoint beside a token endpoint: `.../oauth/token` → `.../oauth/authorize`
/// (Genesys: `https://login.X/oauth/authorize`); `None` for a token URL not ending in `/token`.
pub(crate) fn authorize_url_for(token_url: &str) -> Option<String> {
    let mut u = url::Url::parse(token_url).ok()?;
    let path = u.path().strip_suffix("/token")?.to_string();
    u.set_path(&format!("{path}/authorize"));
    u.set_query(None);
    Some(u.to_string())
}

/// Why a URL cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Not a URL at all, or not http(s), or no host.
    Invalid(String),
    /// Plain http to a host other than loopback, without `--allow-insecure-http`.
    Insecure,
}

/// `s` as an http(s) URL with a host and no credentials in it; plain http only to loopback
/// unless `insecure_ok`.
pub(crate) fn check_url(s: &str, insecure_ok: bool) -> Result<url::Url, UrlProblem> {
    let u = url::Url::parse(s.trim()).map_err(|e| UrlProblem::Invalid(e.to_string()))?;
    match u.scheme() {
        "https" | "http" => {}
        other => {
            return Err(UrlProblem::Invalid(format!(
                "scheme '{other}' is not http or https"
            )));
        }
    }
    if u.host().is_none() {
        return Err(UrlProblem::Invalid("it has no host".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        // Refused, but the password was typed where messages show the URL: it is scrubbed
        // from everything printed from now on (and `masked` hides it where the URL is shown).
        if let Some(pw) = u.password() {
            tokenwarden::redact::register_secret(pw);
            if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
                tokenwarden::redact::register_secret(&decoded);
            }
        }
        return Err(UrlProblem::Invalid(
            "it holds a user name or password; give credentials with the client options".into(),
        ));
    }
    if u.scheme() == "http" && !insecure_ok && !tokenwarden::client::ProxyConfig::is_loopback(&u) {
        return Err(UrlProblem::Insecure);
    }
    Ok(u)
}

/// `text` (a URL as given, which may not parse) with the password of its `user:password@` part
/// shown as `****`, for every place a URL is shown (`config`, error messages).
///
/// ```ignore
/// assert_eq!(masked("https://svc:pw@login.x/t"), "https://svc:****@login.x/t");
/// ```
pub fn masked(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.into();
    };
    let rest = &text[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return text.into();
    };
    let Some(colon) = authority[..at].find(':') else {
        return text.into();
    };
    let (start, end) = (scheme_end + colon + 1, scheme_end + at);
    format!("{}****{}", &text[..start], &text[end..]).into()
}

/// The API base that goes with a token URL: `https://login.X/...` → `https://api.X`
/// (Genesys's pattern); otherwise the token URL's origin (the simulator serves both).
pub fn api_base_for(token_url: &url::Url) -> String {
    let origin = token_url.origin().ascii_serialization();
    match token_url.host_str() {
        Some(host) if host.starts_with("login.") => origin.replacen("://login.", "://api.", 1),
        _ => origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_region_gets_one_short_line_with_the_near_ones() {
        let e = region("eu-west-9", None).unwrap_err();
        assert_eq!(
            e,
            "unknown region 'eu-west-9'; did you mean eu-west-1 or eu-west-2?"
        );
        let e = region("mypurecloud.co", Some("GENESYSCLOUD_REGION")).unwrap_err();
        assert_eq!(
            e,
            "unknown region 'mypurecloud.co' in GENESYSCLOUD_REGION; did you mean mypurecloud.com?"
        );
        let e = region("ireland", None).unwrap_err();
        assert!(
            e.starts_with("unknown region 'ireland'; use a region name"),
            "{e}"
        );
        assert!(e.contains("\nhint: regions: us-east-1, eu-west-1"), "{e}");
        assert_eq!(region("EU-WEST-1", None).unwrap().name(), "eu-west-1");
    }

    #[test]
    fn lists_read_as_english() {
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b"]), "a or b");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn regression_a_password_in_a_url_is_masked_and_scrubbed() {
        // It was echoed in the error and in `config`.
        for (given, shown) in [
            (
                "https://svc:Pr0xyPassw0rd@login.x/t",
                "https://svc:****@login.x/t",
            ),
            (
                "https://svc:a@b:c@login.x/t?x=@y",
                "https://svc:****@login.x/t?x=@y",
            ),
            ("https://svc@login.x/t", "https://svc@login.x/t"),
            ("not a url:pw@x", "not a url:pw@x"),
            ("https://login.x/a:b@c", "https://login.x/a:b@c"),
        ] {
            assert_eq!(masked(given), shown, "{given}");
        }
        assert!(check_url("https://svc:Urlpass%2Fw0rd-9@x/y", false).is_err());
        assert_eq!(
            tokenwarden::redact::redact("x Urlpass%2Fw0rd-9 Urlpass/w0rd-9"),
            "x [REDACTED] [REDACTED]"
        );
    }

    #[test]
    fn urls_are_checked_before_use() {
        assert!(matches!(
            check_url("not-a-url", false),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("ftp://x/y", false),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("https://me:pw@x/y", false),
            Err(UrlProblem::Invalid(_))
        ));
        assert_eq!(
            check_url("http://example.com/t", false),
            Err(UrlProblem::Insecure)
        );
        assert!(check_url("http://example.com/t", true).is_ok());
        for ok in [
            "http://127.0.0.1:9/t",
            "http://localhost/t",
            "http://[::1]:8/t",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_api_base_follows_the_token_url() {
        let u = |s| url::Url::parse(s).unwrap();
        assert_eq!(
            api_base_for(&u("https://login.mypurecloud.ie/oauth/token")),
            "https://api.mypurecloud.ie"
        );
        assert_eq!(
            api_base_for(&u("http://127.0.0.1:8080/oauth/token")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(api_base_for(&u("http://[::1]:8/t")), "http://[::1]:8");
    }
}
