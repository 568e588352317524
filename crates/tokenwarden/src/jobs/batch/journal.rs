//! The output file is the batch's journal: the line written for each record, and, on resume,
//! which records are done.

use super::Outcome;
use crate::error::Error;
use crate::keyset::KeySet;
use serde_json::Value;
use std::io::{BufRead, Read as _, Seek, SeekFrom, Write};
use std::path::Path;

/// One output line, fields in this order (the id first, for people reading the file).
#[derive(serde::Serialize)]
struct LineOut<'a> {
    id: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Encodes one record's output line into `line` (with its newline): `{"id", "status", "body"}`,
/// `{"id", "error"}`, or `{"id", "line", "error"}` for a bad input line. Server text is scrubbed
/// of secrets first. Returns whether the record succeeded.
pub(crate) fn encode_line(
    line: &mut Vec<u8>,
    id: Option<Value>,
    line_no: u64,
    outcome: &Outcome,
    invalid: bool,
) -> Result<bool, Error> {
    let id = &id;
    let (ok, encoded) = match outcome {
        Outcome::Response { status, body } => {
            // Server text: a JSON body is scrubbed as decoded text (a token spelled with JSON
            // escapes is caught), anything else as bytes.
            let body: Value = if body.is_empty() {
                Value::Null
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(mut v) => {
                        crate::redact::redact_json_in_place(&mut v);
                        v
                    }
                    Err(_) => Value::String(
                        crate::redact::redact(&String::from_utf8_lossy(body)).into_owned(),
                    ),
                }
            };
            let v = LineOut {
                id,
                line: None,
                status: Some(*status),
                // `null` stays in the line: the answer had no body.
                body: Some(body),
                error: None,
            };
            ((200..300).contains(status), serde_json::to_vec(&v))
        }
        Outcome::Failed(error) => {
            let error = crate::redact::redact(error);
            let v = LineOut {
                id,
                line: invalid.then_some(line_no),
                status: None,
                body: None,
                error: Some(&error),
            };
            (false, serde_json::to_vec(&v))
        }
        Outcome::Abort(_) | Outcome::Unreachable(_) => {
            unreachable!("an abort, or a record held back by the breaker, is not recorded")
        }
    };
    let encoded = encoded.map_err(|e| Error::Internal(format!("encoding output: {e}")))?;
    line.extend_from_slice(&crate::redact::scrub_serialized(encoded));
    line.push(b'\n');
    Ok(ok)
}

/// The key of an input line that has no usable id (so it is tracked by position).
pub(crate) fn line_key(line: u64) -> String {
    format!("\u{0}line:{line}")
}

/// An output line as a batch writes it: these fields and no other.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputLine {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    #[allow(dead_code)]
    body: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// What a resume scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) done: KeySet,
    /// Bytes of a torn last line that were cut off.
    pub(crate) repaired_bytes: u64,
    /// Complete lines that could not be read (ignored; their records are run again).
    pub(crate) unreadable_lines: u64,
    /// Recorded records that failed (a non-2xx answer, an error, an invalid input line).
    pub(crate) failed: u64,
    /// Of which invalid input lines.
    pub(crate) invalid: u64,
    /// The first complete line that is JSON but not a line a batch writes (a file of another
    /// program's objects): the file is not a journal, and nothing was cut.
    pub(crate) foreign_line: Option<u64>,
}

/// Reads an existing output file: collects the key of every recorded line and counts the failed
/// ones, then cuts a torn last line (a write interrupted by a kill). A file with a line no batch
/// writes is not cut: [`Scan::foreign_line`] says where.
pub(crate) fn scan_and_repair(path: &Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let good_len = complete_prefix_len(&mut file, len)?;
    file.seek(SeekFrom::Start(0))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, (&file).take(good_len));
    for (n, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let o = match serde_json::from_slice::<OutputLine>(&line) {
            Ok(o) if o.status.is_some() || o.error.is_some() => o,
            Ok(_) => {
                scan.foreign_line = Some(n as u64 + 1);
                return Ok(scan);
            }
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                scan.foreign_line = Some(n as u64 + 1);
                return Ok(scan);
            }
            Err(_) => {
                scan.unreadable_lines += 1;
                continue;
            }
        };
        let failed = match o.status {
            Some(s) => !(200..300).contains(&s),
            None => true,
        };
        if failed {
            scan.failed += 1;
            scan.invalid += u64::from(o.line.is_some() && o.status.is_none());
        }
        match (super::input::id_key(&o.id), o.line) {
            (Some(k), _) => {
                scan.done.insert(&k);
            }
            (None, Some(n)) => {
                scan.done.insert(&line_key(n));
            }
            (None, None) => scan.unreadable_lines += 1,
        }
    }
    if good_len < len {
        file.set_len(good_len)?;
        file.flush()?;
        scan.repaired_bytes = len - good_len;
    }
    Ok(scan)
}

#[derive(serde::Deserialize)]
struct Verdict {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// Rewrites the output without the records that failed (a non-2xx status, or an error that was not
/// about the input line itself), so that a resume runs them again. Invalid input lines stay: they
/// would fail the same way. Returns how many records were removed. The file is replaced atomically
/// (a private temporary file with an unpredictable name beside it, then a rename), so a kill
/// during this loses nothing.
pub(crate) fn drop_failed(path: &Path) -> std::io::Result<u64> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".twjob-retry-")
        .tempfile_in(dir)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let mut dropped = 0;
    for line in std::io::BufReader::with_capacity(1 << 20, file).split(b'\n') {
        let line = line?;
        let failed = match serde_json::from_slice::<Verdict>(&line) {
            Ok(v) => match (v.status, v.error, v.line) {
                (Some(s), _, _) => !(200..300).contains(&s),
                (None, Some(_), None) => true,
                _ => false,
            },
            Err(_) => false,
        };
        if failed {
            dropped += 1;
        } else {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    out.get_ref().as_file().sync_data()?;
    let tmp = out.into_inner().map_err(|e| e.into_error())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(dropped)
}

/// Whether the journal records a record that succeeded (a 2xx answer). Reads only.
pub(crate) fn has_success(path: &Path) -> std::io::Result<bool> {
    let file = std::fs::File::open(path)?;
    for line in std::io::BufReader::with_capacity(1 << 20, file).split(b'\n') {
        if let Ok(Verdict {
            status: Some(s), ..
        }) = serde_json::from_slice::<Verdict>(&line?)
            && (200..300).contains(&s)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Length of the file up to and including its last newline.
fn complete_prefix_len(file: &mut std::fs::File, len: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_a_torn_tail_and_collects_keys() {
        let dir = std::env::temp_dir().join(format!("tw-journal-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"status\":200}\n{\"id\":7,\"error\":\"x\"}\n{\"id\":null,\"line\":9,\"error\":\"bad\"}\ngarbage\n{\"id\":\"b\",\"sta",
        )
        .unwrap();
        let s = scan_and_repair(&p).unwrap();
        assert_eq!(s.repaired_bytes, "{\"id\":\"b\",\"sta".len() as u64);
        assert_eq!(s.unreadable_lines, 1);
        assert!(s.done.contains("a") && s.done.contains("7") && s.done.contains(&line_key(9)));
        assert!(!s.done.contains("b"));
        assert_eq!(s.done.len(), 3);
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("garbage\n"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn drop_failed_keeps_successes_and_input_errors() {
        let dir = std::env::temp_dir().join(format!("tw-journal-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"id\":\"a\",\"status\":200,\"body\":{\"error\":1}}\n",
                "{\"id\":\"b\",\"status\":503,\"body\":null}\n",
                "{\"id\":\"c\",\"error\":\"retries exhausted\"}\n",
                "{\"id\":null,\"line\":4,\"error\":\"line 4: not JSON\"}\n",
                "{\"id\":\"e\",\"line\":5,\"error\":\"line 5: no path\"}\n",
                "{\"id\":\"f\",\"status\":404,\"body\":null}\n",
            ),
        )
        .unwrap();
        assert_eq!(drop_failed(&p).unwrap(), 3);
        let s = scan_and_repair(&p).unwrap();
        assert!(s.done.contains("a") && s.done.contains("e") && s.done.contains(&line_key(4)));
        assert!(!s.done.contains("b") && !s.done.contains("c") && !s.done.contains("f"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_file_is_an_empty_journal() {
        let s = scan_and_repair(Path::new("/nonexistent/tw/out.jsonl")).unwrap();
        assert_eq!(s.done.len(), 0);
    }
}
