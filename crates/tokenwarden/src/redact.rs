//! Scrubbing secrets out of text that came from outside.
//!
//! A server can echo what it was sent: an API that reflects the `Authorization` header puts the
//! bearer token into a response body, a token endpoint can quote the client secret in its
//! `error_description`. Redacted `Debug` output is not enough then, because the secret arrives as
//! ordinary text. So every secret value this process learns (client secrets, access and refresh
//! tokens, the Basic credential built from them) is registered here, and every string that came from
//! a server is passed through [`redact`] before it is printed, logged or written.
//!
//! The registry is process-wide: "every secret the process knows". Client secrets are kept for the
//! life of the process; access and refresh tokens in a bounded ring of the most recent
//! [`MAX_ROTATING_SECRETS`], so that a week-long job minting a token a minute stays small while a
//! server echoing a token from an hour ago is still caught. Values shorter than
//! [`MIN_SECRET_LEN`] are not registered: they would match ordinary text. Registered copies are
//! zeroized when they leave the registry.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use arc_swap::ArcSwapOption;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// What replaces a secret in scrubbed text.
pub const REDACTED: &str = "[REDACTED]";

/// Shortest value that is registered as a secret (shorter ones would match ordinary words).
pub const MIN_SECRET_LEN: usize = 6;

/// How many access and refresh tokens are remembered (the most recent ones).
pub const MAX_ROTATING_SECRETS: usize = 1024;

/// How long a secret is kept in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifespan {
    /// For the life of the process (client secrets, Basic credentials, user-registered values).
    Process,
    /// Among the most recent [`MAX_ROTATING_SECRETS`] (access and refresh tokens).
    Rotating,
}

struct Registry {
    pinned: Vec<Zeroizing<String>>,
    rotating: VecDeque<Zeroizing<String>>,
}

/// guards the registered values; the matcher built from them is published through `MATCHER`.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pinned: Vec::new(),
    rotating: VecDeque::new(),
});

/// Bumped by every registration that changed the registry.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The automaton for the registered values and the registry generation it was built from. Readers
/// load it without a lock.
static MATCHER: ArcSwapOption<Built> = ArcSwapOption::const_empty();

struct Built {
    generation: u64,
    ac: AhoCorasick,
}

/// Registers `value` (and the forms it takes when quoted in JSON or in a form body) as a secret for
/// the life of the process, so that [`redact`] scrubs it. For values the library does not create
/// itself: a header given on the command line, a password read from a vault.
pub fn register_secret(value: &str) {
    register(value, Lifespan::Process);
}

pub(crate) fn register(value: &str, lifespan: Lifespan) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut forms = vec![value.to_string()];
    // Quoted in a JSON string (`/` and `"` escaped) or in a form/URL body (percent-encoded).
    if let Ok(json) = serde_json::to_string(value) {
        let inner = &json[1..json.len() - 1];
        for alt in [inner.to_string(), inner.replace('/', "\\/")] {
            if !forms.contains(&alt) {
                forms.push(alt);
            }
        }
    }
    let pct = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    if !forms.contains(&pct) {
        forms.push(pct);
    }
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut changed = false;
    for form in forms {
        let form = Zeroizing::new(form);
        let known = reg.pinned.contains(&form);
        if known {
            continue;
        }
        if let Some(i) = reg.rotating.iter().position(|s| *s == form) {
            if lifespan == Lifespan::Process {
                let moved = reg.rotating.remove(i);
                reg.pinned.extend(moved);
                changed = true;
            }
            continue;
        }
        match lifespan {
            Lifespan::Process => reg.pinned.push(form),
            Lifespan::Rotating => {
                reg.rotating.push_back(form);
                while reg.rotating.len() > MAX_ROTATING_SECRETS {
                    reg.rotating.pop_front();
                }
            }
        }
        changed = true;
    }
    if changed {
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

/// The automaton for the current registry, rebuilt on first use after a registration (so a burst of
/// registrations costs one build, paid by the next reader).
fn matcher() -> Option<Arc<Built>> {
    let wanted = GENERATION.load(Ordering::Acquire);
    if wanted == 0 {
        return None;
    }
    let current = MATCHER.load_full();
    if let Some(m) = current.as_ref().filter(|m| m.generation == wanted) {
        return Some(Arc::clone(m));
    }
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let generation = GENERATION.load(Ordering::Acquire);
    let patterns: Vec<&str> = reg
        .pinned
        .iter()
        .chain(reg.rotating.iter())
        .map(|s| s.as_str())
        .collect();
    // Leftmost-longest: a secret that contains another is replaced whole.
    // A contiguous NFA builds in time linear in the patterns' total length; the default may pick a
    // DFA, whose construction is far more costly for long secrets (a 6 KB JWT took seconds).
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(&patterns)
        .ok()?;
    let built = Arc::new(Built { generation, ac });
    MATCHER.store(Some(Arc::clone(&built)));
    Some(built)
}

/// `text` with every registered secret replaced by [`REDACTED`]. Borrows when there is nothing to
/// replace, so it is cheap on the common path.
///
/// ```
/// tokenwarden::register_secret("s3cr3t-value-42");
/// assert_eq!(tokenwarden::redact("echo: s3cr3t-value-42!"), "echo: [REDACTED]!");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    match matcher() {
        Some(m) if m.ac.is_match(text) => {
            let ac = &m.ac;
            let mut out = String::with_capacity(text.len());
            ac.replace_all_with(text, &mut out, |_, _, dst| {
                dst.push_str(REDACTED);
                true
            });
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(text),
    }
}

/// [`redact`] for bytes (a response body that may not be UTF-8).
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match matcher() {
        Some(m) if m.ac.is_match(bytes) => {
            let ac = &m.ac;
            let mut out = Vec::with_capacity(bytes.len());
            ac.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
                dst.extend_from_slice(REDACTED.as_bytes());
                true
            });
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(bytes),
    }
}

/// Server text made fit for a terminal or a log line: secrets redacted, control characters (escape
/// sequences, carriage returns, newlines) shown escaped so they cannot move the cursor or forge a
/// line, and at most `max` characters (then `…`).
///
/// ```
/// assert_eq!(tokenwarden::terminal_safe("bad\x1b[2Jthing\r\nnext", 100), "bad\\u{1b}[2Jthing\\r\\nnext");
/// assert_eq!(tokenwarden::terminal_safe("abcdef", 3), "abc…");
/// ```
pub fn terminal_safe(text: &str, max: usize) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(2)));
    for (shown, c) in text.chars().enumerate() {
        if shown >= max {
            out.push('…');
            return out;
        }
        if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_and_their_quoted_forms_are_scrubbed() {
        register("client/secret\"quoted-1", Lifespan::Process);
        let raw = "desc: client/secret\"quoted-1 end";
        assert_eq!(redact(raw), "desc: [REDACTED] end");
        let json = r#"{"echo":"client\/secret\"quoted-1"}"#;
        assert_eq!(redact(json), r#"{"echo":"[REDACTED]"}"#);
        let form = "client_secret=client%2Fsecret%22quoted%2D1&x=1";
        assert_eq!(redact(form), "client_secret=[REDACTED]&x=1");
        assert_eq!(
            redact_bytes(b"\xffclient/secret\"quoted-1").as_ref(),
            b"\xff[REDACTED]"
        );
    }

    #[test]
    fn short_values_are_not_secrets_and_clean_text_is_borrowed() {
        register("abc", Lifespan::Process);
        assert!(matches!(redact("abc abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn longest_secret_wins() {
        register("tok-overlap-AAAA", Lifespan::Rotating);
        register("tok-overlap-AAAA-and-more", Lifespan::Rotating);
        assert_eq!(redact("x tok-overlap-AAAA-and-more y"), "x [REDACTED] y");
    }

    #[test]
    fn the_rotating_ring_is_bounded() {
        let first = "rotating-ring-first-token";
        register(first, Lifespan::Rotating);
        for i in 0..MAX_ROTATING_SECRETS + 8 {
            register(&format!("rotating-ring-filler-{i:08}"), Lifespan::Rotating);
        }
        let reg = REGISTRY.lock().unwrap();
        assert!(reg.rotating.len() <= MAX_ROTATING_SECRETS);
        drop(reg);
        assert_eq!(redact(first), first);
    }

    #[test]
    fn long_secrets_use_a_linear_time_matcher() {
        // Regression: the matcher could be built as a DFA, and a few 6 KB tokens took a minute to
        // register in a debug build. A contiguous NFA builds in time linear in the secrets' length.
        for i in 0..8 {
            let token = format!("long-secret-{i}-{}", "x".repeat(6 * 1024));
            register(&token, Lifespan::Rotating);
            assert_eq!(redact(&format!("a {token} b")), "a [REDACTED] b");
        }
        let built = matcher().expect("secrets are registered");
        assert_eq!(built.ac.kind(), AhoCorasickKind::ContiguousNFA);
    }

    #[test]
    fn terminal_text_has_no_control_characters() {
        register("terminal-secret-xyz", Lifespan::Process);
        let s = terminal_safe("a\u{1b}]0;title\u{7}b terminal-secret-xyz\u{202e}", 200);
        assert!(!s.chars().any(char::is_control), "{s}");
        assert!(
            s.contains("[REDACTED]") && !s.contains("terminal-secret-xyz"),
            "{s}"
        );
    }
}
