//! Scrubbing a body too large to hold, as it passes.
//!
//! [`Streaming`] takes the registry as it is when it is made (every secret, in every form it is
//! registered under) and replaces matches chunk by chunk. The end of each chunk that could be the
//! start of a secret finishing in the next one is held back: at most the longest form less one
//! byte. What a stream cannot get is what needs the whole text: JSON decoding (a token spelled
//! with arbitrary `\u` escapes) and percent-decoding of text whose encoder is not one of the
//! registered forms. Those are only caught in bodies read whole ([`super::redact_body`]).

use super::{Built, GENERATION, REDACTED, matcher};
use aho_corasick::automaton::Automaton as _;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, Input, MatchKind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Built {
    /// The streaming automaton of the registry state this matcher was built from: built on
    /// first use, then shared by every stream made while the registry stays as it is (an agent
    /// streaming many answers builds it once per new token). `None` when it cannot be built.
    fn stream_nfa(&self) -> Option<&NFA> {
        self.stream
            .get_or_init(|| {
                NFA::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&self.patterns)
                    .map_err(|e| {
                        tracing::error!(
                            error = %e,
                            "cannot build the streaming scrubber: streamed answers are withheld"
                        )
                    })
                    .ok()
            })
            .as_ref()
    }
}

/// Scrubs a stream of chunks of every secret registered when it was made.
///
/// What it holds back at the end of a chunk is only what could still be the start of a secret
/// (a tail that is a prefix of some registered form), so an answer that trickles line by line is
/// passed on line by line.
///
/// ```
/// tokenwarden::redact::register_secret("stream-secret-42");
/// let mut s = tokenwarden::redact::Streaming::new();
/// let mut out = s.push(b"a stream-sec");
/// assert_eq!(out, b"a ");
/// out.extend(s.push(b"ret-42 b"));
/// out.extend(s.finish());
/// assert_eq!(out, b"a [REDACTED] b");
/// ```
pub struct Streaming {
    /// Every form of every secret registered at the start, leftmost-longest; walked anchored to
    /// tell whether a tail could be the start of one (through [`Built::stream_nfa`]). `None`:
    /// nothing is registered, or no automaton could be built.
    shared: Option<Arc<Built>>,
    /// Secrets are registered but no automaton could be built: nothing is passed on.
    withheld: bool,
    /// The longest form of a secret, less one: at most what is held back between chunks.
    keep: usize,
    /// Held back from the last chunk.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Default for Streaming {
    fn default() -> Self {
        Self::new()
    }
}

impl Streaming {
    /// A scrubber of the secrets registered now (a secret registered later is not matched). Its
    /// automaton (linear in the registered forms' total length) is built once per state of the
    /// registry and shared by the streams made meanwhile. Should it fail to build, the stream
    /// passes nothing on (fails closed, said once as an error).
    pub fn new() -> Self {
        let shared = matcher().filter(|m| m.stream_nfa().is_some());
        let withheld = shared.is_none() && GENERATION.load(Ordering::Acquire) != 0;
        let keep = shared
            .as_ref()
            .and_then(|m| m.stream_nfa())
            .map_or(0, |n| n.max_pattern_len().saturating_sub(1));
        Self {
            shared,
            withheld,
            keep,
            pending: Vec::new(),
        }
    }

    /// The next chunk, scrubbed: what can be sent now (possibly empty, when all of it could be
    /// the start of a secret).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(nfa) = self.shared.as_ref().and_then(|m| m.stream_nfa()) else {
            return if self.withheld {
                Vec::new()
            } else {
                chunk.to_vec()
            };
        };
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(chunk);
        // Before `final_before` no secret can be cut off by the chunk's end (the longest fits).
        let final_before = buf.len().saturating_sub(self.keep);
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        loop {
            // A match found starting before the first open position is the one the whole stream
            // would give: no longer one, and no earlier one, can start where no secret can.
            let open = first_open(nfa, &buf, pos.max(final_before));
            match next_match(nfa, &buf, pos) {
                Some((start, end)) if start < open => {
                    out.extend_from_slice(&buf[pos..start]);
                    out.extend_from_slice(REDACTED.as_bytes());
                    pos = end;
                }
                _ => {
                    out.extend_from_slice(&buf[pos..open]);
                    self.pending = buf.split_off(open);
                    return out;
                }
            }
        }
    }

    /// What is left at the end of the stream, scrubbed. (It can hold a whole secret shorter than
    /// the longest one.)
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        let Some(nfa) = self.shared.as_ref().and_then(|m| m.stream_nfa()) else {
            return if self.withheld {
                REDACTED.as_bytes().to_vec()
            } else {
                rest
            };
        };
        let mut out = Vec::with_capacity(rest.len());
        let mut pos = 0;
        while let Some((start, end)) = next_match(nfa, &rest, pos) {
            out.extend_from_slice(&rest[pos..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            pos = end;
        }
        out.extend_from_slice(&rest[pos..]);
        out
    }
}

/// The first match in `buf` at or after `from`, as its start and end.
fn next_match(nfa: &NFA, buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let input = Input::new(buf).range(from..);
    nfa.try_find(&input)
        .ok()
        .flatten()
        .map(|m| (m.start(), m.end()))
}

/// The first position at or after `from` from which the rest of `buf` is the start of a
/// registered form (an anchored walk that reaches the end alive); `buf.len()` when there is none.
fn first_open(nfa: &NFA, buf: &[u8], from: usize) -> usize {
    let Ok(start) = nfa.start_state(Anchored::Yes) else {
        return from;
    };
    (from..buf.len())
        .find(|&r| {
            let mut sid = start;
            buf[r..].iter().all(|&b| {
                sid = nfa.next_state(Anchored::Yes, sid, b);
                !nfa.is_dead(sid)
            })
        })
        .unwrap_or(buf.len())
}

#[cfg(test)]
mod tests {
    use super::super::{Lifespan, register};
    use super::*;

    // An attacker's review: each streamed answer built an automaton of the whole registry of its
    // own (up to 1,024 tokens in several forms each).
    #[test]
    fn streams_made_while_the_registry_stays_share_one_automaton() {
        register("shared-automaton-secret-1", Lifespan::Process);
        let (a, b) = (Streaming::new(), Streaming::new());
        let same = |x: &Streaming, y: &Streaming| match (&x.shared, &y.shared) {
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        };
        // (Other tests register secrets meanwhile: retry until two were made in one state.)
        let shared_once = same(&a, &b) || {
            let (c, d) = (Streaming::new(), Streaming::new());
            same(&c, &d)
        };
        assert!(shared_once);
        register("shared-automaton-secret-2", Lifespan::Process);
        let c = Streaming::new();
        assert!(!same(&a, &c), "a new registration, a new automaton");
        let mut c = c;
        let mut out = c.push(b"x shared-automaton-secret-2 y");
        out.extend(c.finish());
        assert_eq!(out, b"x [REDACTED] y");
    }

    fn run(chunks: &[&[u8]]) -> String {
        let mut s = Streaming::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn secrets_split_across_chunks_are_caught_at_every_split() {
        let t = "tok-stream-abcdefgh";
        register(t, Lifespan::Rotating);
        let text = format!("aa{t}bb{t}");
        for split in 0..=text.len() {
            let (a, b) = text.as_bytes().split_at(split);
            assert_eq!(run(&[a, b]), "aa[REDACTED]bb[REDACTED]", "split {split}");
        }
        let one_byte: Vec<[u8; 1]> = format!("<{t}>").bytes().map(|b| [b]).collect();
        let refs: Vec<&[u8]> = one_byte.iter().map(|b| &b[..]).collect();
        assert_eq!(run(&refs), "<[REDACTED]>");
        assert_eq!(run(&[b"tok-stream-abcdefg", b""]), "tok-stream-abcdefg");
    }

    #[test]
    fn regression_a_short_secret_at_the_end_of_the_stream_is_scrubbed() {
        // The agent's first scrubber held back the longest secret's length less one and gave the
        // rest back as it was at the end: a shorter secret in that tail passed.
        register("short-tok-1", Lifespan::Rotating);
        register(&format!("long-tok-{}", "x".repeat(200)), Lifespan::Rotating);
        assert_eq!(run(&[b"end: short-tok-1"]), "end: [REDACTED]");
        assert_eq!(run(&[b"end: short-", b"tok-1"]), "end: [REDACTED]");
    }

    #[test]
    fn every_registered_form_is_caught_streaming() {
        // Percent-encoded (as a form body) and JSON-quoted (with `/` escaped), split mid-escape.
        register("form/stream+secret-7", Lifespan::Process);
        for echo in [
            "x=form%2Fstream%2Bsecret-7&y",
            "x=form%2fstream%2bsecret-7&y",
            r#"{"x":"form\/stream+secret-7"}"#,
        ] {
            for split in 0..=echo.len() {
                let (a, b) = echo.as_bytes().split_at(split);
                let out = run(&[a, b]);
                assert!(
                    out.contains(REDACTED) && !out.contains("stream"),
                    "{echo} split {split}: {out}"
                );
            }
        }
    }

    #[test]
    fn only_what_could_start_a_secret_is_held_back() {
        register("held-back-secret-1", Lifespan::Rotating);
        let mut s = Streaming::new();
        // A line that cannot start a secret is passed on whole, at once.
        assert_eq!(s.push(b"{\"line\":1}\n"), b"{\"line\":1}\n");
        // A tail that could is held until it cannot. (Each push ends in a newline, which starts
        // no secret: tests running meanwhile register random codes and tokens, and a "d" at the
        // end is the start of one of them often enough to make the test flaky.)
        assert_eq!(s.push(b"x held-back-se"), b"x ");
        assert_eq!(s.push(b"cond\n"), b"held-back-second\n");
        assert_eq!(s.push(b" held-back-secret-1 z\n"), b" [REDACTED] z\n");
        assert_eq!(s.finish(), b"");
    }

    #[test]
    fn the_longest_form_wins_whatever_the_split() {
        register("over-lap-AAAAAA", Lifespan::Rotating);
        register("over-lap-AAAAAA-and-more", Lifespan::Rotating);
        let text = "x over-lap-AAAAAA-and-more y";
        for split in 0..=text.len() {
            let (a, b) = text.as_bytes().split_at(split);
            assert_eq!(run(&[a, b]), "x [REDACTED] y", "split {split}");
        }
    }
}
