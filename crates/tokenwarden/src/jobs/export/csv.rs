//! JSON items as CSV: nested objects flattened with dots, arrays as JSON text, RFC 4180 quoting and
//! line ends (via the `csv` crate).
//!
//! The header is the union of every item's flattened keys, in the order they first appear. Keys
//! vary across items (an optional field, a conversation still going), and a CSV needs its header
//! first, so the items are spooled as JSON Lines while the listing is read and the CSV is written
//! from the spool at the end: two reads of the spool, one row per item, no column lost.

use super::refuse;
use crate::jobs::{JobError, Refusal, Step};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::path::Path;

/// Most columns a CSV gets. A listing whose items have more distinct keys than this is refused
/// (with JSON Lines as the way out) instead of producing a header no tool can read.
pub const MAX_CSV_COLUMNS: usize = 10_000;

/// Calls `cell(key, text)` for every leaf of `item`: nested objects flattened with dots, arrays as
/// JSON text, `null` as an empty cell, strings as they are, numbers and booleans as JSON. An empty
/// object is one cell, `{}`; an item that is not an object is the single column `value`.
fn flatten(item: &Value, mut cell: impl FnMut(&str, String)) {
    fn walk(v: &Value, key: &mut String, cell: &mut dyn FnMut(&str, String)) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    let len = key.len();
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(k);
                    walk(child, key, cell);
                    key.truncate(len);
                }
            }
            Value::Object(_) => cell(key, "{}".into()),
            Value::Null => cell(key, String::new()),
            Value::String(s) => cell(key, s.clone()),
            other => cell(key, other.to_string()),
        }
    }
    let mut key = String::new();
    match item {
        Value::Object(map) if !map.is_empty() => walk(item, &mut key, &mut cell),
        other => {
            key.push_str("value");
            walk(other, &mut key, &mut cell);
        }
    }
}

/// The header: every key, in first-seen order.
#[derive(Debug, Default)]
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    fn add(&mut self, key: &str) -> Result<(), Refusal> {
        if self.index.contains_key(key) {
            return Ok(());
        }
        if self.names.len() >= MAX_CSV_COLUMNS {
            return Err(Refusal::TooManyColumns {
                limit: MAX_CSV_COLUMNS,
            });
        }
        self.index.insert(key.to_string(), self.names.len());
        self.names.push(key.to_string());
        Ok(())
    }
}

/// Writes the CSV of the JSON Lines in `spool` (its first `len` bytes) to `out`; returns the number
/// of rows. With `terminal`, control characters in cells and field names (other than newlines and
/// tabs) are shown escaped, so a hostile value cannot drive the terminal.
pub(super) fn render<R: Read + std::io::Seek>(
    spool: &mut R,
    spool_path: &Path,
    len: u64,
    out: impl Write,
    out_path: &Path,
    terminal: bool,
) -> Result<u64, JobError> {
    let parse = |line: &[u8], n: u64| {
        serde_json::from_slice::<Value>(line).map_err(|e| {
            refuse(
                spool_path,
                Refusal::NotJson {
                    line: n,
                    detail: e.to_string(),
                },
            )
        })
    };
    let mut columns = Columns::default();
    let mut failure = None;
    for (n, line) in lines(spool, spool_path, len)?.enumerate() {
        let item = parse(
            &line.map_err(JobError::io_at(Step::Read, spool_path))?,
            n as u64 + 1,
        )?;
        flatten(&item, |k, _| {
            if failure.is_none() {
                failure = columns.add(k).err();
            }
        });
        if let Some(reason) = failure.take() {
            return Err(refuse(out_path, reason));
        }
    }
    let write_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => JobError::io_at(Step::Write, out_path)(e),
        other => refuse(
            out_path,
            Refusal::Csv {
                detail: format!("{other:?}"),
            },
        ),
    };
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    if !columns.names.is_empty() {
        // Field names are server text too: a key can carry escape sequences.
        let header: Vec<String> = if terminal {
            columns.names.iter().cloned().map(printable).collect()
        } else {
            columns.names.clone()
        };
        csv.write_record(&header).map_err(write_err)?;
    }
    let mut row = vec![String::new(); columns.names.len()];
    let mut rows = 0;
    for (n, line) in lines(spool, spool_path, len)?.enumerate() {
        let item = parse(
            &line.map_err(JobError::io_at(Step::Read, spool_path))?,
            n as u64 + 1,
        )?;
        row.iter_mut().for_each(String::clear);
        flatten(&item, |k, v| {
            if let Some(i) = columns.index.get(k) {
                row[*i] = if terminal { printable(v) } else { v };
            }
        });
        csv.write_record(&row).map_err(write_err)?;
        rows += 1;
    }
    csv.flush()
        .map_err(|e| JobError::io_at(Step::Write, out_path)(e))?;
    Ok(rows)
}

/// The lines of the first `len` bytes of `spool`, from its start.
fn lines<'a, R: Read + std::io::Seek>(
    spool: &'a mut R,
    path: &Path,
    len: u64,
) -> Result<std::io::Split<BufReader<std::io::Take<&'a mut R>>>, JobError> {
    spool
        .seek(std::io::SeekFrom::Start(0))
        .map_err(JobError::io_at(Step::Read, path))?;
    Ok(BufReader::with_capacity(1 << 20, spool.take(len)).split(b'\n'))
}

/// `s` fit for a terminal ([`terminal_lines`](crate::redact::terminal_lines): escape sequences and other
/// control characters shown escaped); newlines and tabs are kept, they are the cell's.
fn printable(s: String) -> String {
    match crate::redact::terminal_lines(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Cursor;

    fn cells(v: Value) -> Vec<(String, String)> {
        let mut out = vec![];
        flatten(&v, |k, c| out.push((k.to_string(), c)));
        out
    }

    fn csv_of(lines: &[Value], terminal: bool) -> String {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let len = text.len() as u64;
        let mut out = Vec::new();
        let rows = render(
            &mut Cursor::new(text.into_bytes()),
            Path::new("spool"),
            len,
            &mut out,
            Path::new("out"),
            terminal,
        )
        .unwrap();
        assert_eq!(rows, lines.len() as u64);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn flattens_nested_objects_with_dots_and_arrays_as_json() {
        let got = cells(json!({
            "id": "u1", "n": 3, "ok": true, "none": null, "empty": {},
            "division": {"id": "d1", "home": {"name": "H"}},
            "tags": ["a", {"b": 1}],
        }));
        let want: Vec<(String, String)> = [
            ("id", "u1"),
            ("n", "3"),
            ("ok", "true"),
            ("none", ""),
            ("empty", "{}"),
            ("division.id", "d1"),
            ("division.home.name", "H"),
            ("tags", r#"["a",{"b":1}]"#),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut got = got;
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
        assert_eq!(cells(json!("x")), vec![("value".into(), "x".into())]);
    }

    #[test]
    fn header_is_the_union_of_keys_in_first_seen_order() {
        let out = csv_of(
            &[
                json!({"id": "1", "name": "Ada"}),
                json!({"id": "2", "email": "b@x"}),
                json!({"id": "3", "name": "Cy", "email": "c@x"}),
            ],
            false,
        );
        assert_eq!(out, "id,name,email\r\n1,Ada,\r\n2,,b@x\r\n3,Cy,c@x\r\n");
    }

    #[test]
    fn quotes_per_rfc_4180() {
        let out = csv_of(
            &[json!({"a": "x,y", "b": "say \"hi\"", "c": "two\nlines", "d": [1, 2]})],
            false,
        );
        assert_eq!(
            out,
            "a,b,c,d\r\n\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\",\"[1,2]\"\r\n"
        );
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let rec = reader.records().next().unwrap().unwrap();
        assert_eq!(&rec[2], "two\nlines");
    }

    #[test]
    fn on_a_terminal_control_characters_are_escaped() {
        let v = json!({"name": "evil\u{1b}]0;pwned\u{7}\nline two"});
        assert!(csv_of(std::slice::from_ref(&v), false).contains('\u{1b}'));
        let shown = csv_of(&[v], true);
        assert!(
            !shown.contains('\u{1b}') && shown.contains("\\u{1b}]0;pwned\\u{7}\nline two"),
            "{shown}"
        );
    }

    #[test]
    fn regression_on_a_terminal_field_names_are_escaped_too() {
        let v = json!({"name\u{1b}]0;PWNED\u{7}\u{1b}[2J": "v\u{1b}[31mred"});
        let shown = csv_of(&[v], true);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown:?}"
        );
        assert!(
            shown.starts_with("name\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J\r\n"),
            "{shown:?}"
        );
    }

    #[test]
    fn too_many_columns_is_refused() {
        let wide: serde_json::Map<String, Value> = (0..=MAX_CSV_COLUMNS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let text = format!("{}\n", Value::Object(wide));
        let len = text.len() as u64;
        let e = render(
            &mut Cursor::new(text.into_bytes()),
            Path::new("spool"),
            len,
            std::io::sink(),
            Path::new("out"),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--format jsonl"), "{e}");
    }
}
