//! Scrubbing the real token out of what the API answers, before a local program sees it.
//!
//! A body read whole (the common case: small JSON answers) is scrubbed by the library, as batch
//! output is ([`tokenwarden::redact::redact_json_bytes`] decodes JSON escapes, so a server escaping every
//! character of the token does not get it through; [`tokenwarden::redact::redact_bytes`] otherwise). A
//! body too large to hold is scrubbed as it streams, of the raw tokens the agent holds, with a
//! carry-over of one token's length between chunks so that a token split across two chunks is
//! still caught.

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::{Bytes, BytesMut};

/// A whole body, scrubbed: JSON decoded and scrubbed when it is JSON with escapes in it, bytes
/// otherwise. Without a backslash, every JSON string reads as it is written, so matching the raw
/// bytes finds all that decoding would (and costs no parse): the common case, and no copy when
/// nothing is replaced.
pub(crate) fn whole(body: Bytes, json: bool) -> Bytes {
    let escaped = json && body.contains(&b'\\');
    let clean = match escaped {
        true => tokenwarden::redact::redact_json_bytes(&body),
        false => tokenwarden::redact::redact_bytes(&body),
    };
    match clean {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    }
}

/// Scrubs a stream of chunks of the given secrets.
pub struct Streaming {
    matcher: Option<AhoCorasick>,
    /// The longest secret, less one: what may be held back between chunks.
    keep: usize,
    pending: BytesMut,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Streaming {
    /// A scrubber of `secrets` (empty ones ignored).
    pub fn new(secrets: &[&str]) -> Self {
        let secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
        let keep = secrets.iter().map(|s| s.len()).max().unwrap_or(1) - 1;
        let matcher = (!secrets.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&secrets)
                    .ok()
            })
            .flatten();
        Self {
            matcher,
            keep,
            pending: BytesMut::new(),
        }
    }

    /// The next chunk, scrubbed: what can be sent now (possibly empty).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let Some(m) = &self.matcher else {
            return Bytes::copy_from_slice(chunk);
        };
        self.pending.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.pending);
        let mut out = BytesMut::with_capacity(buf.len());
        let mut pos = 0;
        for found in m.find_iter(&buf[..]) {
            out.extend_from_slice(&buf[pos..found.start()]);
            out.extend_from_slice(tokenwarden::redact::REDACTED.as_bytes());
            pos = found.end();
        }
        // A secret that started in the last `keep` bytes may end in the next chunk: hold them.
        let rest = &buf[pos..];
        let hold = rest.len().min(self.keep);
        out.extend_from_slice(&rest[..rest.len() - hold]);
        self.pending.extend_from_slice(&rest[rest.len() - hold..]);
        out.freeze()
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        // What is held back is shorter than any secret: nothing in it to replace.
        rest.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secrets: &[&str], chunks: &[&str]) -> String {
        let mut s = Streaming::new(secrets);
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&s.push(c.as_bytes()));
        }
        out.extend_from_slice(&s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tokens_split_across_chunks_are_caught() {
        let t = "tok-abcdefgh";
        assert_eq!(run(&[t], &["x tok-abcdefgh y"]), "x [REDACTED] y");
        assert_eq!(run(&[t], &["x tok-ab", "cdefgh y"]), "x [REDACTED] y");
        for split in 0..=t.len() + 4 {
            let text = format!("aa{t}bb{t}");
            let (a, b) = text.split_at(split.min(text.len()));
            assert_eq!(
                run(&[t], &[a, b]),
                "aa[REDACTED]bb[REDACTED]",
                "split {split}"
            );
        }
        let one_byte: Vec<String> = format!("<{t}>").chars().map(String::from).collect();
        let refs: Vec<&str> = one_byte.iter().map(String::as_str).collect();
        assert_eq!(run(&[t], &refs), "<[REDACTED]>");
        assert_eq!(run(&[t], &["tok-abcdefg", ""]), "tok-abcdefg");
        assert_eq!(run(&[], &["anything"]), "anything");
    }
}
