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
//! [`MAX_ROTATING_SECRETS`] (counted in tokens, whatever the number of forms each is matched in),
//! so that a week-long job minting a token a minute stays small while a server echoing a token
//! from hours ago is still caught. Each value is matched as it is and in the forms software
//! re-emits it in (JSON string escapes, percent and form encodings in either hex case: see
//! `forms`); JSON bodies are decoded before they are scrubbed ([`redact_json`],
//! [`redact_json_bytes`]), so a server escaping every character of a token does not get it
//! through. Values shorter than [`MIN_SECRET_LEN`] are not registered: they would match ordinary
//! text (a short client secret or credential header gets one warning that it cannot be scrubbed).
//! Registered copies are zeroized when they leave the registry.

mod forms;
mod json;
mod stream;

pub use json::{redact_body, redact_json, redact_json_bytes};
pub(crate) use json::{redact_json_in_place, scrub_serialized};
pub use stream::Streaming;

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

/// How many access and refresh tokens are remembered (the most recent ones), each with all its
/// forms.
pub const MAX_ROTATING_SECRETS: usize = 1024;

/// How long a secret is kept in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifespan {
    /// For the life of the process (client secrets, Basic credentials, user-registered values).
    Process,
    /// Among the most recent [`MAX_ROTATING_SECRETS`] (access and refresh tokens).
    Rotating,
}

/// One secret: its value first, then the other forms it is matched in.
type Forms = Vec<Zeroizing<String>>;

/// The registered secrets.
struct Registry {
    pinned: Vec<Forms>,
    /// Oldest first; at most [`MAX_ROTATING_SECRETS`] secrets.
    rotating: VecDeque<Forms>,
}

impl Registry {
    const fn new() -> Self {
        Self {
            pinned: Vec::new(),
            rotating: VecDeque::new(),
        }
    }

    /// Adds `value` (with its forms) for `lifespan`; whether the registry changed. A rotating
    /// value registered again for the process is moved to the pinned ones.
    fn insert(&mut self, value: &str, lifespan: Lifespan) -> bool {
        let is = |f: &Forms| f.first().is_some_and(|v| v.as_str() == value);
        if self.pinned.iter().any(is) {
            return false;
        }
        let rotating = self.rotating.iter().position(is);
        match (lifespan, rotating) {
            (Lifespan::Rotating, Some(_)) => false,
            (Lifespan::Process, Some(i)) => {
                self.pinned.extend(self.rotating.remove(i));
                true
            }
            (lifespan, None) => {
                let forms: Forms = forms::of(value).into_iter().map(Zeroizing::new).collect();
                match lifespan {
                    Lifespan::Process => self.pinned.push(forms),
                    Lifespan::Rotating => {
                        self.rotating.push_back(forms);
                        while self.rotating.len() > MAX_ROTATING_SECRETS {
                            self.rotating.pop_front();
                        }
                    }
                }
                true
            }
        }
    }

    /// Every form of every secret, for the matcher.
    fn patterns(&self) -> impl Iterator<Item = &str> {
        self.pinned
            .iter()
            .chain(self.rotating.iter())
            .flatten()
            .map(|f| f.as_str())
    }
}

/// guards the registered values; the matcher built from them is published through `MATCHER`.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

/// Bumped by every registration that changed the registry.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The automaton for the registered values and the registry generation it was built from. Readers
/// load it without a lock.
static MATCHER: ArcSwapOption<Built> = ArcSwapOption::const_empty();

struct Built {
    generation: u64,
    ac: AhoCorasick,
    /// The forms it was built from, for the streaming automaton ([`Streaming`]), built from them
    /// on first use and shared by every stream made while the registry stays as it is.
    patterns: Vec<String>,
    stream: std::sync::OnceLock<Option<aho_corasick::nfa::contiguous::NFA>>,
}

impl Built {
    /// `text` with every match replaced, or `None` when there is none (see
    /// [`replace_bytes`](Self::replace_bytes)).
    fn replace(&self, text: &str) -> Option<String> {
        self.replace_bytes(text.as_bytes()).map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }

    /// Whether `bytes` hold a secret, as they are or once percent-decoded.
    fn is_match(&self, bytes: &[u8]) -> bool {
        self.ac.is_match(bytes) || percent_decoded(bytes).any(|d| self.ac.is_match(&d))
    }

    /// `bytes` with every match replaced, or `None` when there is none.
    ///
    /// Percent-encoders differ in the characters they keep (`-._~` for RFC 3986, `-._*` for
    /// forms, `!'()*` for JavaScript) and in the case of hex digits; the registered forms cover
    /// the common ones, and for the rest text with a `%` in it is also looked at percent-decoded
    /// (and with `+` as a space). When a secret shows there, the decoded text, scrubbed, is
    /// returned: the escapes of the rest of it are lost, which only happens to text that echoed a
    /// secret.
    fn replace_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = None;
        if self.ac.is_match(bytes) {
            out = Some(self.replace_all(bytes));
        }
        let current = out.as_deref().unwrap_or(bytes);
        let decoded = percent_decoded(current).find(|d| self.ac.is_match(d));
        match decoded {
            Some(decoded) => Some(self.replace_all(&decoded)),
            None => out,
        }
    }

    fn replace_all(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        self.ac
            .replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
                dst.extend_from_slice(REDACTED.as_bytes());
                true
            });
        out
    }
}

/// `bytes` percent-decoded, then also form-decoded (`+` as a space, before the escapes are
/// decoded); nothing when there is no `%` in them (the common case costs one scan).
fn percent_decoded(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let has_escape = bytes.contains(&b'%');
    let decoded = has_escape.then(|| percent_encoding::percent_decode(bytes).collect::<Vec<u8>>());
    let form = (has_escape && bytes.contains(&b'+')).then(|| {
        let spaced: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced).collect::<Vec<u8>>()
    });
    decoded.into_iter().chain(form)
}

/// Registers `value` (and the forms it takes when quoted in JSON or in a form body) as a secret for
/// the life of the process, so that [`redact`] scrubs it. For values the library does not create
/// itself: a header given on the command line, a password read from a vault. Values shorter than
/// [`MIN_SECRET_LEN`] are ignored.
pub fn register_secret(value: &str) {
    register(value, Lifespan::Process);
}

pub(crate) fn register(value: &str, lifespan: Lifespan) {
    if value.len() < MIN_SECRET_LEN {
        warn_short(value, lifespan);
        return;
    }
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if reg.insert(value, lifespan) {
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

/// Says once per process that a long-lived secret (a client secret, a credential header) is too
/// short to be scrubbed. Matching a value of a few characters would replace ordinary words in every
/// answer and message, so it is not registered; the person is told instead of trusting a scrub
/// that does not happen. (Short tokens are not worth a word: servers mint long ones.)
fn warn_short(value: &str, lifespan: Lifespan) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if lifespan == Lifespan::Process && !value.is_empty() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "a secret shorter than {MIN_SECRET_LEN} characters cannot be scrubbed from what servers \
             send back (it would match ordinary text): if a server echoes it, it will be shown"
        );
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
    let patterns: Vec<&str> = reg.patterns().collect();
    // Leftmost-longest: a secret that contains another is replaced whole.
    // A contiguous NFA builds in time linear in the patterns' total length; the default may pick a
    // DFA, whose construction is far more costly for long secrets (a 6 KB JWT took seconds).
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(&patterns)
        .ok()?;
    let built = Arc::new(Built {
        generation,
        ac,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        stream: std::sync::OnceLock::new(),
    });
    MATCHER.store(Some(Arc::clone(&built)));
    Some(built)
}

/// `text` with every registered secret replaced by [`REDACTED`]. Borrows when there is nothing to
/// replace, so it is cheap on the common path.
///
/// ```
/// tokenwarden::redact::register_secret("s3cr3t-value-42");
/// assert_eq!(tokenwarden::redact::redact("echo: s3cr3t-value-42!"), "echo: [REDACTED]!");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    match matcher().and_then(|m| m.replace(text)) {
        Some(clean) => Cow::Owned(clean),
        None => Cow::Borrowed(text),
    }
}

/// Whether `text` holds a registered secret (in any of its forms): a value that would be
/// scrubbed by [`redact`].
pub(crate) fn contains_secret(text: &str) -> bool {
    matcher().is_some_and(|m| m.is_match(text.as_bytes()))
}

/// [`redact`] for bytes (a response body that may not be UTF-8).
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match matcher().and_then(|m| m.replace_bytes(bytes)) {
        Some(clean) => Cow::Owned(clean),
        None => Cow::Borrowed(bytes),
    }
}

/// Server text made fit for a terminal or a log line: secrets redacted, control characters (escape
/// sequences, carriage returns, newlines) shown escaped so they cannot move the cursor or forge a
/// line, and at most `max` characters (then `…`).
///
/// ```
/// assert_eq!(tokenwarden::redact::terminal_safe("bad\x1b[2Jthing\r\nnext", 100), "bad\\u{1b}[2Jthing\\r\\nnext");
/// assert_eq!(tokenwarden::redact::terminal_safe("abcdef", 3), "abc…");
/// ```
pub fn terminal_safe(text: &str, max: usize) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(2)));
    for (shown, c) in text.chars().enumerate() {
        if shown >= max {
            out.push('…');
            return out;
        }
        push_printable(&mut out, c);
    }
    out
}

/// Text with many lines (a response body, a CSV cell) made fit for a terminal: as
/// [`terminal_safe`], whole, except that newlines and tabs are kept (they only lay text out).
///
/// ```
/// assert_eq!(tokenwarden::redact::terminal_lines("a\tb\nc\x1b]0;title\x07"), "a\tb\nc\\u{1b}]0;title\\u{7}");
/// ```
pub fn terminal_lines(text: &str) -> Cow<'_, str> {
    let clean = redact(text);
    if !clean
        .chars()
        .any(|c| is_unprintable(c) && c != '\n' && c != '\t')
    {
        return clean;
    }
    let mut out = String::with_capacity(clean.len() + 16);
    for c in clean.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_printable(&mut out, c),
        }
    }
    Cow::Owned(out)
}

/// Characters that act on a terminal instead of showing: controls, and the Unicode line
/// separators and bidirectional overrides that reorder or break what follows.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_printable(out: &mut String, c: char) {
    if is_unprintable(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
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
    fn regression_the_ring_keeps_the_last_1024_tokens_whatever_their_forms() {
        // Tokens with characters that have other forms (`-` is escaped in a URL component) took
        // two to four places each: older ones were forgotten after about 512 refreshes.
        let mut reg = Registry::new();
        let token = |i: usize| format!("TOK-{i:06}-with/slash and space");
        for i in 0..MAX_ROTATING_SECRETS {
            assert!(reg.insert(&token(i), Lifespan::Rotating));
        }
        assert!(forms::of(&token(0)).len() > 2);
        let known = |reg: &Registry, i: usize| reg.patterns().any(|p| p == token(i));
        assert!(known(&reg, 0), "the 1024th newest token is still matched");
        assert!(reg.insert(&token(MAX_ROTATING_SECRETS), Lifespan::Rotating));
        assert!(!known(&reg, 0) && known(&reg, 1));
        assert_eq!(reg.rotating.len(), MAX_ROTATING_SECRETS);
        // Registering one again changes nothing; pinning it moves it out of the ring.
        assert!(!reg.insert(&token(5), Lifespan::Rotating));
        assert!(reg.insert(&token(5), Lifespan::Process));
        assert_eq!(reg.rotating.len(), MAX_ROTATING_SECRETS - 1);
        assert!(!reg.insert(&token(5), Lifespan::Rotating));
        assert!(known(&reg, 5));
    }

    #[test]
    fn regression_a_form_body_echo_of_the_secret_is_scrubbed_in_either_hex_case() {
        register("abc/def+ghi-jklm*x y", Lifespan::Process);
        for echo in [
            "you sent grant_type=client_credentials&client_secret=abc%2Fdef%2Bghi-jklm*x+y",
            "you sent abc%2fdef%2bghi-jklm*x+y",
            "you sent abc%2fdef%2bghi%2djklm%2ax%20y",
        ] {
            assert!(!redact(echo).contains("ghi"), "{echo}: {}", redact(echo));
        }
    }

    #[test]
    fn regression_a_secret_percent_encoded_by_any_encoder_is_scrubbed() {
        // Python's `quote(s, safe='')` keeps `-._~` and wrote lower-case hex: no registered form.
        register("pct/sec+ret-9.x~y*z w", Lifespan::Process);
        for echo in [
            "you sent myclient%3apct%2fsec%2bret-9.x~y%2az%20w",
            "you sent pct%2Fsec%2Bret-9.x%7Ey%2Az+w",
            "a=pct%2fsec%2bret%2d9%2ex%7ey%2az%20w&b=1",
        ] {
            let clean = redact(echo);
            assert!(
                !clean.contains("sec") && clean.contains(REDACTED),
                "{echo}: {clean}"
            );
        }
        // Text without a secret keeps its escapes.
        assert_eq!(redact("a%20b%2Fc"), "a%20b%2Fc");
        assert!(contains_secret("/next?x=pct%2fsec%2bret-9.x~y%2az%20w"));
    }

    #[test]
    fn lines_keep_their_layout_and_lose_their_escapes() {
        register("lines-secret-42", Lifespan::Process);
        assert!(matches!(terminal_lines("a\n\tb"), Cow::Borrowed(_)));
        assert_eq!(
            terminal_lines("x lines-secret-42\n\u{1b}[2J\r"),
            "x [REDACTED]\n\\u{1b}[2J\\r"
        );
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
