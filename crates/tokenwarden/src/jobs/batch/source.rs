//! Where a batch's records come from, read exactly once: a file, a FIFO, a process substitution or
//! standard input, line by line with a cap on line length, keeping the first bytes read as the
//! job's fingerprint.

use crate::jobs::{JobError, Step};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Longest input line accepted by default, in bytes (1 MiB). A longer line is a bad line: it is
/// reported with its number and skipped without being held in memory whole.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// How many of the first bytes read are kept to recognise the input on resume.
pub(crate) const PREFIX_BYTES: usize = 64 * 1024;

/// Bytes asked for per read.
const CHUNK: usize = 256 * 1024;

/// Where a batch reads its records from.
///
/// ```
/// use tokenwarden::jobs::batch::Input;
/// assert_eq!(Input::from_arg("-"), Input::Stdin);
/// assert_eq!(Input::from_arg("ids.txt"), Input::Path("ids.txt".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file: a regular file, a FIFO, `/dev/stdin` or a shell's `<(...)`. Whatever it is, it is
    /// read once, front to back.
    Path(PathBuf),
    /// The process's standard input.
    Stdin,
}

impl Input {
    /// `-` means standard input; anything else is a path.
    pub fn from_arg(arg: impl AsRef<Path>) -> Input {
        let arg = arg.as_ref();
        if arg.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }

    /// The input as named in messages and in the job file: its path, or `-`.
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
        }
    }

    /// Opens the input for one front-to-back read. A regular file also gives its path, so that its
    /// lines can be counted (on a handle of their own) for a percentage; a pipe cannot be.
    pub(crate) async fn open(&self, max_line: usize) -> Result<Source, JobError> {
        let (reader, countable): (Box<dyn AsyncRead + Send + Unpin>, _) = match self {
            Input::Stdin => (Box::new(tokio::io::stdin()), None),
            Input::Path(path) => {
                let open_error = |e| JobError::io(Step::OpenInput, path, e);
                let meta = tokio::fs::metadata(path).await.map_err(open_error)?;
                if meta.is_dir() {
                    return Err(open_error(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "is a directory",
                    )));
                }
                // Opening a FIFO waits for its writer, as `cat` does.
                let file = tokio::fs::File::open(path).await.map_err(open_error)?;
                (Box::new(file), meta.is_file().then(|| path.clone()))
            }
        };
        Ok(Source {
            lines: LineReader::new(reader, max_line),
            countable,
        })
    }
}

/// An opened input.
pub(crate) struct Source {
    pub(crate) lines: LineReader,
    /// The path of a regular file, which can be counted.
    pub(crate) countable: Option<PathBuf>,
}

/// One input line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// The line's bytes, without the newline.
    Text(&'a [u8]),
    /// A line over the cap, skipped: its length in bytes.
    TooLong(u64),
}

/// Splits a byte stream into lines, holding at most about `max` bytes of any one line.
pub(crate) struct LineReader {
    inner: Box<dyn AsyncRead + Send + Unpin>,
    /// `buf[start..end]` is read and not yet handed out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    max: usize,
    line_no: u64,
    /// The first [`PREFIX_BYTES`] bytes read, shared with whoever writes the job file.
    prefix: Arc<std::sync::Mutex<Vec<u8>>>,
    read_total: u64,
}

impl LineReader {
    pub(crate) fn new(inner: Box<dyn AsyncRead + Send + Unpin>, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            max: max.max(1),
            line_no: 0,
            prefix: Arc::default(),
            read_total: 0,
        }
    }

    /// The first bytes read so far (up to [`PREFIX_BYTES`]); grows as reading goes on.
    pub(crate) fn prefix(&self) -> Arc<std::sync::Mutex<Vec<u8>>> {
        Arc::clone(&self.prefix)
    }

    /// Reads ahead until `len` bytes (or the whole input, if shorter) have been read, without
    /// handing out any line; returns the first `len` bytes (fewer at the end of the input).
    pub(crate) async fn peek_prefix(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let len = len.min(PREFIX_BYTES);
        while (self.read_total as usize) < len && !self.eof {
            self.fill().await?;
        }
        let prefix = self.prefix.lock().unwrap_or_else(|p| p.into_inner());
        Ok(prefix[..len.min(prefix.len())].to_vec())
    }

    /// Reads more bytes after `end`, making room first.
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() - self.end < CHUNK / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < CHUNK / 4 {
                self.buf.resize(self.end + CHUNK, 0);
            }
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]).await {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(());
        }
        let mut prefix = self.prefix.lock().unwrap_or_else(|p| p.into_inner());
        if prefix.len() < PREFIX_BYTES {
            let take = n.min(PREFIX_BYTES - prefix.len());
            prefix.extend_from_slice(&self.buf[self.end..self.end + take]);
        }
        self.end += n;
        self.read_total += n as u64;
        Ok(())
    }

    /// The next line and its 1-based number, or `None` at the end of the input. A last line
    /// without a newline counts.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        // Bytes of the current line already searched (from `start`), and bytes of it discarded
        // because it is too long to keep.
        let mut scanned = 0usize;
        let mut dropped = 0u64;
        loop {
            let window = &self.buf[self.start + scanned..self.end];
            if let Some(i) = memchr::memchr(b'\n', window) {
                let begin = self.start;
                let newline = begin + scanned + i;
                self.start = newline + 1;
                return Ok(Some(self.finish_line(begin, newline, dropped)));
            }
            scanned = self.end - self.start;
            if scanned > self.max {
                // Too long already: forget what was read of it, keep looking for its end.
                dropped += scanned as u64;
                self.start = self.end;
                scanned = 0;
            }
            if self.eof {
                if self.start == self.end && dropped == 0 {
                    return Ok(None);
                }
                let begin = self.start;
                self.start = self.end;
                return Ok(Some(self.finish_line(begin, self.end, dropped)));
            }
            self.fill().await?;
        }
    }

    fn finish_line(&mut self, begin: usize, end: usize, dropped: u64) -> (u64, Line<'_>) {
        self.line_no += 1;
        let len = end - begin;
        let line = if dropped > 0 || len > self.max {
            Line::TooLong(dropped + len as u64)
        } else {
            Line::Text(&self.buf[begin..end])
        };
        (self.line_no, line)
    }
}

/// Counts the non-blank lines of the regular file at `path` on a blocking thread, for a progress
/// percentage; gives up early (returning `None`) once `cancel` is set.
pub(crate) async fn count_lines(path: PathBuf, cancel: Arc<AtomicBool>) -> Option<u64> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut f = std::fs::File::open(&path).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut lines, mut blank) = (0u64, true);
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            let k = f.read(&mut buf).ok()?;
            if k == 0 {
                break;
            }
            for b in &buf[..k] {
                if *b == b'\n' {
                    lines += u64::from(!blank);
                    blank = true;
                } else if !b.is_ascii_whitespace() {
                    blank = false;
                }
            }
        }
        Some(lines + u64::from(!blank))
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8], max: usize) -> LineReader {
        LineReader::new(Box::new(bytes), max)
    }

    async fn all(mut r: LineReader) -> Vec<(u64, Result<String, u64>)> {
        let mut out = Vec::new();
        while let Some((n, line)) = r.next_line().await.unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => Ok(String::from_utf8(t.to_vec()).unwrap()),
                    Line::TooLong(len) => Err(len),
                },
            ));
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_line_without_newline() {
        let got = all(reader(b"a\n\nbc\r\nd", 10)).await;
        assert_eq!(
            got,
            [
                (1, Ok("a".into())),
                (2, Ok(String::new())),
                (3, Ok("bc\r".into())),
                (4, Ok("d".into()))
            ]
        );
        assert!(all(reader(b"", 10)).await.is_empty());
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_reported_by_length_not_kept() {
        let long: &'static [u8] = Box::leak(
            format!("ok\n{}\nafter\n{}", "x".repeat(3 * CHUNK), "y".repeat(11))
                .into_bytes()
                .into_boxed_slice(),
        );
        let mut r = reader(long, 10);
        let mut got = Vec::new();
        while let Some((n, line)) = r.next_line().await.unwrap() {
            got.push((
                n,
                matches!(line, Line::Text(_)),
                match line {
                    Line::Text(t) => t.len() as u64,
                    Line::TooLong(n) => n,
                },
            ));
            // Never more than the cap plus one read of a long line is held.
            assert!(r.buf.len() <= 2 * CHUNK, "{}", r.buf.len());
        }
        assert_eq!(
            got,
            [
                (1, true, 2),
                (2, false, 3 * CHUNK as u64),
                (3, true, 5),
                (4, false, 11)
            ]
        );
    }

    #[tokio::test]
    async fn the_prefix_is_the_first_bytes_read() {
        let mut r = reader(b"first\nsecond\n", 100);
        assert_eq!(r.peek_prefix(3).await.unwrap(), b"fir");
        assert_eq!(r.peek_prefix(1000).await.unwrap(), b"first\nsecond\n");
        // Peeking handed out nothing.
        assert_eq!(all(r).await.len(), 2);
    }

    #[test]
    fn dash_is_standard_input() {
        assert_eq!(Input::from_arg("-").name(), "-");
        assert_eq!(Input::from_arg("./-").name(), "./-");
    }
}
