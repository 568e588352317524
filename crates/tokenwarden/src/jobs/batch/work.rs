//! The stream of work: the input's lines as records to run or invalid lines to record, with the
//! records of other shards passed over and those an earlier run recorded skipped.

use super::input::{Parsed, Parser, Record};
use super::journal::line_key;
use super::source::{self, Line};
use super::{Outcome, Shard};
use crate::keyset::KeySet;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

/// One input line to deal with.
pub(super) enum Work {
    /// A record to run.
    Run(Record),
    /// A line that cannot run: recorded as failed, with its line number.
    Invalid {
        id: Option<Value>,
        line: u64,
        error: String,
    },
}

/// One line dealt with: a record run, or an invalid line.
pub(super) struct Done {
    pub(super) id: Option<Value>,
    pub(super) line: u64,
    pub(super) outcome: Outcome,
    /// An input line that could not be run (recorded with its line number).
    pub(super) invalid: bool,
    /// When the record was started.
    pub(super) started: tokio::time::Instant,
}

/// The stream of work: each input line parsed, records of other shards passed over, records an
/// earlier run recorded skipped, duplicates flagged. Ends at the end of the input, at a read error
/// (left in `read_error`), or when `stop` is set.
#[allow(clippy::too_many_arguments)]
pub(super) fn work_stream<'a>(
    lines: source::LineReader,
    parser: &'a Parser,
    done: &'a KeySet,
    on_skip: &'a (dyn Fn() + Sync),
    stop: &'a AtomicBool,
    read_error: &'a std::sync::Mutex<Option<std::io::Error>>,
    max_line: usize,
    shard: Option<Shard>,
) -> impl futures::Stream<Item = Work> + 'a {
    // Whether this shard runs the line with this id (`None`: a line without a readable id).
    let mine = move |key: Option<&str>| match (shard, key) {
        (None, _) => true,
        (Some(s), Some(k)) => s.takes(k),
        (Some(s), None) => s.takes_lines_without_id(),
    };
    let state = (lines, KeySet::default());
    futures::stream::unfold(state, move |(mut lines, mut seen)| async move {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let (line_no, line) = match lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => {
                    *read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return None;
                }
            };
            let parsed = match line {
                Line::TooLong(len) => Parsed::Invalid {
                    id: None,
                    error: format!(
                        "line {line_no}: {len} bytes long, over the limit of {} bytes (not read)",
                        max_line
                    ),
                },
                Line::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => parser.parse(line_no, text),
                    Err(_) => Parsed::Invalid {
                        id: None,
                        error: format!("line {line_no}: not UTF-8"),
                    },
                },
            };
            let key = match &parsed {
                Parsed::Blank => continue,
                Parsed::Draft(d) => Some(d.key()),
                Parsed::Invalid {
                    id: Some((_, k)), ..
                } => Some(k.as_str()),
                Parsed::Invalid { id: None, .. } => None,
            };
            if !mine(key) {
                continue;
            }
            let item = match parsed {
                Parsed::Blank => continue,
                Parsed::Draft(d) => {
                    if !seen.insert(d.key()) {
                        keyed_invalid(
                            done,
                            line_no,
                            format!(
                                "line {line_no}: duplicate id {} (an earlier line has it)",
                                crate::error::excerpt(d.key(), 200)
                            ),
                        )
                    } else if done.contains(d.key()) {
                        None
                    } else {
                        // Where it goes is checked only for what runs.
                        Some(match parser.confine(d) {
                            Ok(r) => Work::Run(r),
                            Err(((id, _), error)) => Work::Invalid {
                                id: Some(id),
                                line: line_no,
                                error,
                            },
                        })
                    }
                }
                Parsed::Invalid {
                    id: Some((id, key)),
                    error,
                } => {
                    if !seen.insert(&key) {
                        keyed_invalid(
                            done,
                            line_no,
                            format!(
                                "{error}; also a duplicate id {}",
                                crate::error::excerpt(&id.to_string(), 200)
                            ),
                        )
                    } else if done.contains(&key) {
                        None
                    } else {
                        Some(Work::Invalid {
                            id: Some(id),
                            line: line_no,
                            error,
                        })
                    }
                }
                Parsed::Invalid { id: None, error } => keyed_invalid(done, line_no, error),
            };
            match item {
                Some(w) => return Some((w, (lines, seen))),
                None => {
                    on_skip();
                }
            }
        }
    })
}

/// An invalid line keyed by its position; `None` (skip) if an earlier run recorded it.
fn keyed_invalid(done: &KeySet, line: u64, error: String) -> Option<Work> {
    if done.contains(&line_key(line)) {
        return None;
    }
    Some(Work::Invalid {
        id: None,
        line,
        error,
    })
}
