//! Reading secrets and config files without leaving copies: one preallocated buffer, bounded,
//! wiped when dropped. (`read_to_string` grows its buffer by reallocating, and every buffer it
//! leaves behind still holds the bytes read so far.)

use std::io::{self, Read};
use std::path::Path;
use zeroize::Zeroizing;

/// Largest secret file or standard input accepted: a secret is a line, not a document.
pub(crate) const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Largest config file accepted.
pub(crate) const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The file or stream could not be read.
    Io(io::Error),
    /// It is larger than this many bytes.
    TooLarge(usize),
    /// It is not UTF-8 text.
    NotUtf8,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::TooLarge(max) if *max >= 1024 * 1024 => {
                write!(f, "larger than {} MiB", max / (1024 * 1024))
            }
            ReadError::TooLarge(max) => write!(f, "larger than {} KiB", max / 1024),
            ReadError::NotUtf8 => f.write_str("not UTF-8 text"),
        }
    }
}

/// Reads all of `r`, at most `max` bytes, into one buffer that is wiped when dropped; with
/// `first_line_only`, stops at the first newline (for a secret typed at a terminal).
pub(crate) fn read_bounded(
    mut r: impl Read,
    max: usize,
    first_line_only: bool,
) -> Result<Zeroizing<String>, ReadError> {
    // One extra byte tells "exactly max" from "more than max".
    let mut buf = Zeroizing::new(vec![0u8; max + 1]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(ReadError::TooLarge(max));
        }
        // The first line only: a byte at a time, so that nothing after it is taken from the
        // reader (standard input is the command's too, for `exec`, and a batch's input).
        let end = if first_line_only {
            filled + 1
        } else {
            buf.len()
        };
        let n = match r.read(&mut buf[filled..end]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        if n == 0 {
            break;
        }
        filled += n;
        if first_line_only && buf[filled - n..filled].contains(&b'\n') {
            break;
        }
    }
    let text = std::str::from_utf8(&buf[..filled]).map_err(|_| ReadError::NotUtf8)?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(out)
}

/// Standard input read without a buffer (each `read` one system call), so that reading the
/// secret's line leaves the rest of the stream where it was, for whoever reads it next.
pub(crate) struct UnbufferedStdin;

impl Read for UnbufferedStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(std::io::stdin(), buf)?)
    }
}

/// Reads a file with [`read_bounded`].
pub(crate) fn read_file(path: &Path, max: usize) -> Result<Zeroizing<String>, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    read_bounded(f, max, false)
}

/// The secret in `text`: its first line, trimmed; `None` when that is empty.
pub(crate) fn first_line(text: &str) -> Option<&str> {
    Some(text.lines().next().unwrap_or("").trim()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `exec --client-secret-stdin -- CMD` lost the start of CMD's input: the secret's line was
    // read in blocks of up to 16 KiB, through standard input's own 8-KiB buffer.
    #[test]
    fn regression_the_secret_line_is_read_without_taking_what_follows() {
        let input = b"tw-secret\nline2\nline3\n";
        let mut r = io::Cursor::new(&input[..]);
        let got = read_bounded(&mut r, MAX_SECRET_BYTES, true).unwrap();
        assert_eq!(got.as_str(), "tw-secret\n");
        assert_eq!(r.position(), 10, "nothing after the line taken");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "line2\nline3\n");
    }

    #[test]
    fn reads_up_to_the_bound_and_no_further() {
        let exact = [b'a'; 16];
        assert_eq!(read_bounded(&exact[..], 16, false).unwrap().len(), 16);
        let over = [b'a'; 17];
        assert!(matches!(
            read_bounded(&over[..], 16, false),
            Err(ReadError::TooLarge(16))
        ));
        assert!(matches!(
            read_bounded(&[0xff, 0xfe][..], 16, false),
            Err(ReadError::NotUtf8)
        ));
    }

    #[test]
    fn a_terminal_line_ends_the_read() {
        // A reader that would block after the first line, like a terminal.
        // (Each chunk is what one read may return; after the last one, a read panics.)
        struct Terminal(Vec<&'static [u8]>);
        impl Read for Terminal {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let chunk = self.0[0];
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                match chunk.len() == n {
                    true => drop(self.0.remove(0)),
                    false => self.0[0] = &chunk[n..],
                }
                Ok(n)
            }
        }
        let t = Terminal(vec![b"s3cr", b"et\n"]);
        let text = read_bounded(t, 64, true).unwrap();
        assert_eq!(first_line(&text), Some("s3cret"));
    }

    #[test]
    fn the_secret_is_the_first_line_trimmed() {
        assert_eq!(first_line("  abc \r\nnext"), Some("abc"));
        assert_eq!(first_line("\n"), None);
        assert_eq!(first_line(""), None);
    }
}
