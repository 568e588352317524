//! The writing side of an export ([`Sink`]): items scrubbed into the data file or stream, the
//! state recorded after each page, the CSV written at the end.

use super::journal::{self, Paths, Phase, SliceState, Start, State};
use super::{Event, ExportOptions, Format, Report, csv};
use crate::jobs::ownership;
use crate::jobs::{JobError, Refusal, RunReport, Step};
use crate::paginate::Position;
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where items go while the listing is read.
enum Data {
    /// A file that can be cut back (the output, the CSV spool, an anonymous spool).
    File { w: BufWriter<File>, path: PathBuf },
    /// A stream that cannot.
    Stream(BufWriter<Box<dyn Write + Send>>),
}

/// Where the CSV goes at the end.
enum CsvTo {
    File(PathBuf),
    Stream(Box<dyn Write + Send>),
}

/// The writing side of an export: the data, its state, and what this run did.
pub(super) struct Sink {
    data: Data,
    /// The state file, when the position is recorded.
    state_path: Option<PathBuf>,
    pub(super) state: State,
    csv: Option<CsvTo>,
    /// The CSV spool beside the output, removed once the CSV is written.
    spool: Option<PathBuf>,
    terminal: bool,
    pub(super) report: Report,
    /// The output file (none for a stream).
    output: Option<PathBuf>,
    /// The output's claim, held until the run ends.
    _claim: Option<ownership::Claim>,
}

const STREAM: &str = "-";

impl Sink {
    /// The output file, or `-` for a stream.
    pub(super) fn out_path(&self) -> &Path {
        self.output.as_deref().unwrap_or(Path::new(STREAM))
    }

    pub(super) fn stream(
        w: Box<dyn Write + Send>,
        options: ExportOptions,
        definition: Value,
    ) -> Result<Self, JobError> {
        let (data, csv) = match options.format {
            Format::Jsonl => (Data::Stream(BufWriter::with_capacity(1 << 16, w)), None),
            Format::Csv => {
                let spool = tempfile::tempfile()
                    .map_err(JobError::io_at(Step::CreateTemporary, "$TMPDIR"))?;
                (
                    Data::File {
                        w: BufWriter::with_capacity(1 << 16, spool),
                        path: PathBuf::from("(temporary spool)"),
                    },
                    Some(CsvTo::Stream(w)),
                )
            }
        };
        Ok(Self {
            data,
            state_path: None,
            state: State::new(definition),
            csv,
            spool: None,
            terminal: options.terminal,
            report: Report::default(),
            output: None,
            _claim: None,
        })
    }

    pub(super) fn file(paths: Paths, opened: journal::Opened, options: ExportOptions) -> Self {
        let (resumed, cut_bytes) = match opened.start {
            Start::Fresh => (false, 0),
            Start::Resumed { cut } => (true, cut),
        };
        Self {
            data: Data::File {
                w: BufWriter::with_capacity(1 << 16, opened.data),
                path: paths.data.clone(),
            },
            state_path: Some(paths.state.clone()),
            report: Report {
                run: RunReport {
                    resumed,
                    cut_bytes,
                    ..RunReport::default()
                },
                items: opened.state.items,
                ..Report::default()
            },
            state: opened.state,
            csv: (options.format == Format::Csv).then(|| CsvTo::File(paths.out.clone())),
            spool: (paths.data != paths.out).then(|| paths.data.clone()),
            terminal: options.terminal,
            output: Some(paths.out.clone()),
            _claim: Some(opened.claim),
        }
    }

    pub(super) fn data_path(&self) -> &Path {
        match &self.data {
            Data::File { path, .. } => path,
            Data::Stream(_) => Path::new(STREAM),
        }
    }

    /// Writes `items`, each scrubbed of every secret the process knows, one per line.
    pub(super) fn write_items(&mut self, items: &[Value]) -> Result<(), JobError> {
        let mut buf = Vec::with_capacity(items.len() * 256);
        for item in items {
            buf.extend_from_slice(&scrub_line(item));
            buf.push(b'\n');
        }
        let path = self.data_path().to_path_buf();
        match &mut self.data {
            Data::File { w, .. } => w.write_all(&buf),
            Data::Stream(w) => w.write_all(&buf),
        }
        .map_err(JobError::io_at(Step::Write, path))?;
        self.state.bytes += buf.len() as u64;
        self.state.items += items.len() as u64;
        self.report.run.done += items.len() as u64;
        self.report.items = self.state.items;
        Ok(())
    }

    pub(super) fn page_done(&mut self) -> Result<(), JobError> {
        self.state.pages += 1;
        self.report.pages += 1;
        self.save()
    }

    pub(super) fn page_event(&self) -> Event {
        Event::Page {
            items: self.state.items,
            pages: self.report.pages,
        }
    }

    /// Flushes the items to the data file, then records the state: never the other way round, so
    /// the state never claims an item the file does not hold.
    pub(super) fn save(&mut self) -> Result<(), JobError> {
        let path = self.data_path().to_path_buf();
        match &mut self.data {
            Data::File { w, .. } => w.flush(),
            Data::Stream(w) => w.flush(),
        }
        .map_err(JobError::io_at(Step::Write, path))?;
        if let Some(p) = &self.state_path {
            self.state.fingerprint = self.fingerprint()?;
            journal::save_state(p, &self.state)?;
        }
        Ok(())
    }

    /// What the state vouches for: the good part of the data file while fetching, the output
    /// once complete (for a CSV, the spool is gone by then).
    pub(super) fn fingerprint(&self) -> Result<Option<ownership::Fingerprint>, JobError> {
        let Data::File { path, .. } = &self.data else {
            return Ok(None);
        };
        let fp = match (&self.output, self.state.phase) {
            (Some(out), Phase::Complete) => {
                ownership::Fingerprint::of_whole(out).map_err(JobError::io_at(Step::Read, out))?
            }
            _ => ownership::Fingerprint::of(path, self.state.bytes)
                .map_err(JobError::io_at(Step::Read, path))?,
        };
        Ok(Some(fp))
    }

    /// Whether the current slice can start over: its items can be taken back (not from a
    /// stream), or none were written yet.
    pub(super) fn can_restart_slice(&self) -> bool {
        matches!(self.data, Data::File { .. })
            || self
                .state
                .slice
                .as_ref()
                .is_some_and(|s| s.start_bytes == self.state.bytes)
    }

    /// Moves the state from slice `k` to the next one (or to "fetched" after the last).
    pub(super) fn next_slice(&mut self, k: usize, count: usize) {
        let (bytes, items) = (self.state.bytes, self.state.items);
        let Some(s) = self.state.slice.as_mut() else {
            return;
        };
        if k + 1 >= count {
            self.state.phase = Phase::Fetched;
            self.state.position = None;
            s.index = count;
            s.next_job = None;
            return;
        }
        let next_job = s.next_job.take();
        self.state.position =
            next_job
                .filter(|(i, _)| *i == k + 1)
                .map(|(_, job_id)| Position::Job {
                    job_id,
                    cursor: None,
                });
        *s = SliceState {
            index: k + 1,
            start_bytes: bytes,
            start_items: items,
            next_job: None,
        };
    }

    /// Takes back everything written for the current slice and forgets its job.
    pub(super) fn restart_slice(&mut self) -> Result<(), JobError> {
        let Some(s) = self.state.slice.clone() else {
            return Ok(());
        };
        if s.start_bytes != self.state.bytes {
            let Data::File { w, path } = &mut self.data else {
                return Err(super::refuse(STREAM, Refusal::StreamTakeBack));
            };
            let io = |step| JobError::io_at(step, path.clone());
            w.flush().map_err(io(Step::Write))?;
            w.get_mut()
                .set_len(s.start_bytes)
                .map_err(io(Step::Truncate))?;
            w.get_mut()
                .seek(SeekFrom::Start(s.start_bytes))
                .map_err(io(Step::Seek))?;
        }
        self.report.run.done = self
            .report
            .run
            .done
            .saturating_sub(self.state.items - s.start_items);
        self.state.bytes = s.start_bytes;
        self.state.items = s.start_items;
        self.report.items = s.start_items;
        self.state.position = None;
        self.save()
    }

    /// Removes the files of a run that created them and stopped before its first page: a typo in a
    /// path or a refused credential must not leave an "unfinished export" that blocks the
    /// corrected command.
    pub(super) fn discard_if_empty(&mut self) {
        if self.report.run.resumed || self.state.pages > 0 || self.state.bytes > 0 {
            return;
        }
        let Some(state) = &self.state_path else {
            return;
        };
        if let Data::File { path, .. } = &self.data {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(state);
    }

    /// Writes the CSV if needed, marks the export complete, makes the files durable.
    pub(super) fn finish(mut self, on_event: &mut impl FnMut(Event)) -> Result<Report, JobError> {
        self.save()?;
        if self.state.phase == Phase::Fetched {
            if let (Data::File { w, path }, Some(to)) = (&mut self.data, self.csv.take()) {
                on_event(Event::WritingCsv);
                let (spool, len) = (w.get_mut(), self.state.bytes);
                match to {
                    CsvTo::Stream(mut out) => {
                        csv::render(spool, path, len, &mut out, Path::new(STREAM), self.terminal)?;
                        out.flush().map_err(JobError::io_at(Step::Write, STREAM))?;
                    }
                    CsvTo::File(out) => write_csv_file(spool, path, len, &out, self.terminal)?,
                }
            }
            self.state.phase = Phase::Complete;
        }
        if let (Data::File { w, path }, Some(_), None) = (&self.data, &self.state_path, &self.spool)
        {
            journal::sync(w.get_ref(), path)?;
        }
        self.save()?;
        if let Some(spool) = &self.spool {
            // The CSV is in place and recorded complete: its spool is no longer needed.
            let _ = std::fs::remove_file(spool);
        }
        self.report.items = self.state.items;
        Ok(self.report)
    }
}

/// Writes the CSV in place of `out`, atomically ([`crate::fs::Replacement`]: a private temporary
/// file beside it, synced, renamed over it, the directory synced).
fn write_csv_file(
    spool: &mut File,
    spool_path: &Path,
    len: u64,
    out: &Path,
    terminal: bool,
) -> Result<(), JobError> {
    let new = crate::fs::Replacement::begin(out, ".twcsv-")
        .map_err(JobError::io_at(Step::CreateTemporaryFor, out))?;
    let tmp_path = new.temp_path().to_path_buf();
    let mut w = BufWriter::with_capacity(1 << 16, new);
    csv::render(spool, spool_path, len, &mut w, &tmp_path, terminal)?;
    let new = w
        .into_inner()
        .map_err(|e| JobError::io_at(Step::Write, tmp_path.clone())(e.into_error()))?;
    new.commit().map_err(JobError::io_at(Step::Replace, out))
}

/// An item as one JSON line with every registered secret replaced by `[REDACTED]`: its strings
/// and keys scrubbed as decoded text ([`redact_json`](crate::redact::redact_json): a secret spelled with
/// JSON escapes is caught), then the line itself.
fn scrub_line(item: &Value) -> Vec<u8> {
    let item = crate::redact::redact_json(item);
    crate::redact::scrub_serialized(serde_json::to_vec(&*item).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_scrubbed_and_stay_json() {
        crate::redact::register_secret("tok-export-SECRET-1");
        let item = json!({"id": 1, "echo": "Bearer tok-export-SECRET-1", "n": [1]});
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        assert_eq!(line, r#"{"echo":"Bearer [REDACTED]","id":1,"n":[1]}"#);
        // A secret that spans JSON punctuation when serialised: the line stays JSON, and the
        // secret inside a key is still scrubbed.
        crate::redact::register_secret("x1\",\"b-secret");
        let item = json!({"a": "x1", "b-secret": 2, "key x1\",\"b-secret": 3});
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["a"], "x1");
        assert_eq!(back["key [REDACTED]"], 3, "{line}");
        let clean = json!({"id": 2});
        assert_eq!(scrub_line(&clean), br#"{"id":2}"#);
    }

    #[test]
    fn regression_an_item_echoing_the_token_with_json_escapes_is_scrubbed() {
        crate::redact::register_secret("tok-export-ESCAPED-2");
        let item: Value = serde_json::from_str(
            r#"{"t": "\u0074\u006f\u006b-export-ESCAPED-2", "p": "tok\u002dexport-ESCAPED-2"}"#,
        )
        .unwrap();
        let line = String::from_utf8(scrub_line(&item)).unwrap();
        assert_eq!(line, r#"{"p":"[REDACTED]","t":"[REDACTED]"}"#);
    }
}
