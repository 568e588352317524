//! What a sidecar remembers of its file, to tell whether the file is still the one it describes:
//! the length, and a SHA-256 of the first and of the last bytes of that length. Reading 8 KiB is
//! enough to tell another command's output, a file copied over it or one cut short, without
//! hashing gigabytes on every page.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::Path;

/// Bytes hashed at each end.
const WINDOW: u64 = 4096;

/// The first `len` bytes of a file, as a sidecar remembers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    len: u64,
    head_sha256: String,
    tail_sha256: String,
}

impl Fingerprint {
    /// The fingerprint of the first `len` bytes of the file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, or is shorter than `len`.
    pub(crate) fn of(path: &Path, len: u64) -> io::Result<Fingerprint> {
        let mut file = File::open(path)?;
        Self::of_file(&mut file, len)
    }

    /// The fingerprint of the whole file at `path`.
    ///
    /// # Errors
    /// The file cannot be read.
    pub(crate) fn of_whole(path: &Path) -> io::Result<Fingerprint> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        Self::of_file(&mut file, len)
    }

    fn of_file(file: &mut File, len: u64) -> io::Result<Fingerprint> {
        Ok(Fingerprint {
            len,
            head_sha256: hash(file, 0, len.min(WINDOW))?,
            tail_sha256: hash(file, len.saturating_sub(WINDOW), len)?,
        })
    }

    /// The length it covers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file at `path` begins with the bytes this fingerprint describes; `Some(why
    /// not)` in words when it does not.
    ///
    /// # Errors
    /// The file cannot be read.
    pub(crate) fn mismatch(&self, path: &Path) -> io::Result<Option<String>> {
        let mut file = File::open(path)?;
        let actual = file.metadata()?.len();
        if actual < self.len {
            return Ok(Some(format!(
                "it is shorter ({actual} bytes) than recorded ({} bytes)",
                self.len
            )));
        }
        let now = Self::of_file(&mut file, self.len)?;
        Ok((now != *self)
            .then(|| format!("its first {} bytes are not the ones recorded", self.len)))
    }
}

/// SHA-256, in hex, of bytes `start..end` of `file`.
fn hash(file: &mut File, start: u64, end: u64) -> io::Result<String> {
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((end - start) as usize);
    file.take(end - start).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < end - start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than its fingerprint",
        ));
    }
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_only_grew_still_matches_and_any_other_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let long: String = (0..2000).map(|i| format!("{{\"id\":{i}}}\n")).collect();
        std::fs::write(&p, &long).unwrap();
        let fp = Fingerprint::of_whole(&p).unwrap();
        assert_eq!(fp.len(), long.len() as u64);
        assert_eq!(fp.mismatch(&p).unwrap(), None);
        std::fs::write(&p, format!("{long}{{\"id\":\"more\"}}\n")).unwrap();
        assert_eq!(fp.mismatch(&p).unwrap(), None, "appended to");
        // Changed in the middle only: the ends decide (a cheap check, not a proof).
        std::fs::write(&p, &long[..long.len() - 1]).unwrap();
        assert!(fp.mismatch(&p).unwrap().unwrap().contains("shorter"));
        let mut other = long.clone().into_bytes();
        other[10] = b'7';
        std::fs::write(&p, &other).unwrap();
        assert!(fp.mismatch(&p).unwrap().is_some(), "head changed");
        let mut other = long.clone().into_bytes();
        let n = other.len();
        other[n - 3] = b'7';
        std::fs::write(&p, &other).unwrap();
        assert!(fp.mismatch(&p).unwrap().is_some(), "tail changed");
        // A short file: both windows cover it all.
        std::fs::write(&p, "ab\n").unwrap();
        let fp = Fingerprint::of(&p, 3).unwrap();
        std::fs::write(&p, "ac\n").unwrap();
        assert!(fp.mismatch(&p).unwrap().is_some());
        let empty = Fingerprint::of(&p, 0).unwrap();
        assert_eq!(empty.mismatch(&p).unwrap(), None);
    }
}
