//! The files of an export to disk: the data file (the output itself for JSON Lines, a spool beside
//! it for CSV) and the state sidecar `OUT.twstate` that records how far the data file is good and
//! where the listing continues.
//!
//! Every file is created 0600 (the organisation's data, read by its owner only). The output is
//! claimed for the whole run by the protocol every command shares ([`crate::jobs::ownership`]), so a
//! second run on it, of any command (a batch too), is refused instead of interleaving; a run that
//! replaces the output removes a batch's job file with it, and a resume refuses an output that a
//! batch keeps, or whose data file is not the one the state describes (its fingerprint).
//! The state is replaced atomically (a temporary file, then a rename) after each page, and only
//! after the page's items reached the data file; a resume cuts the data file back to the recorded
//! length, so an item written after the last record is written again, once.

use super::refuse;
use crate::fs::{self, Access, OpenError, Untrusted};
use crate::jobs::identity::{self, Decision, Identity};
use crate::jobs::ownership::{
    self, Claim, ClaimError, Fingerprint, SPOOL_SUFFIX, STATE_SUFFIX, Writer, sidecar,
};
use crate::jobs::{JobError, Mode, Refusal, Step};
use crate::paginate::Position;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::File;
use std::io::{Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// Layout version of the state file.
const STATE_VERSION: u32 = 1;

/// How far an export to a file got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    /// Marks the file as a tokenwarden export state, with its layout version.
    tokenwarden_export: u32,
    /// What was asked (source, API base, format): a resume of another export is refused.
    pub(super) definition: Value,
    pub(super) phase: Phase,
    /// Length of the good part of the data file.
    pub(super) bytes: u64,
    /// Items in that part.
    pub(super) items: u64,
    /// Pages read (all runs).
    pub(super) pages: u64,
    /// Where fetching continues; `None`: from the beginning (of the current slice).
    pub(super) position: Option<Position>,
    /// For sliced exports: the slice under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) slice: Option<SliceState>,
    /// What the data file's good part holds (the output itself once complete): a resume
    /// refuses a file that is not this one any more (replaced by another command, edited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fingerprint: Option<Fingerprint>,
}

/// Where an export stands overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Phase {
    /// Pages are being read.
    Fetching,
    /// Every item is in the data file; the CSV is still to be written.
    Fetched,
    /// The output is complete.
    Complete,
}

/// The slice under way of a sliced export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SliceState {
    /// 0-based index of the slice being read.
    pub(super) index: usize,
    /// Length of the data file when this slice started (a redo cuts back to it).
    pub(super) start_bytes: u64,
    /// Items before this slice.
    pub(super) start_items: u64,
    /// A job already submitted for a later slice: (slice index, job id).
    pub(super) next_job: Option<(usize, String)>,
}

impl State {
    pub(super) fn new(definition: Value) -> Self {
        Self {
            tokenwarden_export: STATE_VERSION,
            definition,
            phase: Phase::Fetching,
            bytes: 0,
            items: 0,
            pages: 0,
            position: None,
            slice: None,
            fingerprint: None,
        }
    }
}

/// The files of one export to disk.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    /// The output the user named.
    pub(super) out: PathBuf,
    /// The state sidecar.
    pub(super) state: PathBuf,
    /// Where items go while fetching: `out` itself, or the CSV spool.
    pub(super) data: PathBuf,
}

impl Paths {
    pub(super) fn new(out: &Path, spooled: bool) -> Self {
        Self {
            out: out.to_path_buf(),
            state: sidecar(out, STATE_SUFFIX),
            data: if spooled {
                sidecar(out, SPOOL_SUFFIX)
            } else {
                out.to_path_buf()
            },
        }
    }
}

/// How the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// No earlier run: everything is new.
    Fresh,
    /// An earlier run's state is continued; `cut` bytes after its last record were dropped.
    Resumed { cut: u64 },
}

/// The opened data file, positioned at the end of its good part, with the output's claim.
pub(super) struct Opened {
    /// Held for the whole run.
    pub(super) claim: Claim,
    pub(super) data: File,
    pub(super) state: State,
    pub(super) start: Start,
}

/// What [`open`] found.
pub(super) enum Found {
    /// The export was already complete: nothing to do.
    Complete(State, Claim),
    /// Ready to write.
    Ready(Opened),
}

/// Opens the data file for a run in `want` mode (see [`super::Mode`]).
pub(super) fn open(paths: &Paths, want: Mode, definition: Value) -> Result<Found, JobError> {
    check_directory(&paths.out)?;
    let claim = Claim::take(&paths.out).map_err(|e| match e {
        ClaimError::Busy { out } => JobError::Busy(out),
        ClaimError::Io { lock, source, .. } => JobError::io_at(Step::Lock, lock)(source),
    })?;
    if want == Mode::Resume
        && let Some(job) = ownership::written_by(&paths.out, Writer::Batch)
    {
        return Err(refuse(&paths.out, Refusal::OtherCommand { sidecar: job }));
    }
    let recorded = read_state(&paths.state)?;
    let exists = |p: &Path| p.symlink_metadata().is_ok();
    let existing: Vec<&Path> = [&paths.out, &paths.state, &paths.data]
        .into_iter()
        .map(PathBuf::as_path)
        .filter(|p| exists(p))
        .collect();
    let decision = identity::decide(want, !existing.is_empty(), recorded, paths.state.clone());
    match decision.map_err(|reason| refuse(existing[0], reason))? {
        Decision::Create => {
            let data = create_new(&paths.data)?;
            fresh(paths, claim, data, definition)
        }
        Decision::Replace => {
            let data = overwrite(&paths.data)?;
            if paths.data != paths.out {
                // A CSV from an earlier run must not pass for this one's while it runs.
                match std::fs::remove_file(&paths.out) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(JobError::io_at(Step::Remove, &paths.out)(e));
                    }
                    _ => {}
                }
            }
            fresh(paths, claim, data, definition)
        }
        Decision::Resume(state) => resume(paths, claim, state, &definition),
    }
}

/// Starts the output over: whatever a batch kept beside it describes another file now.
fn fresh(paths: &Paths, claim: Claim, data: File, definition: Value) -> Result<Found, JobError> {
    ownership::remove_sidecars(&paths.out, Writer::Batch)
        .map_err(|(p, e)| JobError::io_at(Step::Remove, p)(e))?;
    let state = State::new(definition);
    save_state(&paths.state, &state)?;
    Ok(Found::Ready(Opened {
        claim,
        data,
        state,
        start: Start::Fresh,
    }))
}

fn resume(
    paths: &Paths,
    claim: Claim,
    state: State,
    definition: &Value,
) -> Result<Found, JobError> {
    if let Some(diff) = difference(&state.definition, definition) {
        return Err(refuse(&paths.state, Refusal::OtherJob { detail: diff }));
    }
    if state.phase == Phase::Complete {
        changed(&paths.out, &paths.state, state.fingerprint.as_ref())?;
        return Ok(Found::Complete(state, claim));
    }
    let mut data = match open_owned(&paths.data) {
        Ok(f) => f,
        Err(JobError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(
                &paths.data,
                Refusal::DataMissing {
                    state: paths.state.clone(),
                    items: state.items,
                },
            ));
        }
        Err(e) => return Err(e),
    };
    let len = data
        .metadata()
        .map_err(JobError::io_at(Step::Read, &paths.data))?
        .len();
    if len < state.bytes {
        return Err(refuse(
            &paths.data,
            Refusal::Shorter {
                len,
                recorded: state.bytes,
            },
        ));
    }
    changed(&paths.data, &paths.state, state.fingerprint.as_ref())?;
    data.set_len(state.bytes)
        .map_err(JobError::io_at(Step::Truncate, &paths.data))?;
    data.seek(SeekFrom::Start(state.bytes))
        .map_err(JobError::io_at(Step::Seek, &paths.data))?;
    Ok(Found::Ready(Opened {
        claim,
        data,
        start: Start::Resumed {
            cut: len - state.bytes,
        },
        state,
    }))
}

/// Refuses a file that is not the one `state` fingerprinted (a state written before fingerprints
/// were recorded has none, and is trusted on its length alone).
fn changed(file: &Path, state: &Path, fp: Option<&Fingerprint>) -> Result<(), JobError> {
    let Some(fp) = fp else { return Ok(()) };
    let why = fp
        .mismatch(file)
        .map_err(JobError::io_at(Step::Read, file))?;
    match why {
        None => Ok(()),
        Some(why) => Err(refuse(
            file,
            Refusal::Changed {
                sidecar: state.to_path_buf(),
                detail: why.to_string(),
            },
        )),
    }
}

/// After a run on `out` was stopped from outside (Ctrl-C): whether a resume has anything to
/// continue. A run stopped before its first page (still fetching a token) leaves an empty
/// output and a state of nothing: they are removed here, so that the same command runs again
/// as if new, instead of "already exists". Anything else is left as it is.
pub fn resumable_after_stop(out: &Path) -> bool {
    let state_path = sidecar(out, STATE_SUFFIX);
    let Ok(Some(state)) = read_state(&state_path) else {
        return false;
    };
    if state.items > 0 || state.pages > 0 || state.bytes > 0 {
        return true;
    }
    for data in [out.to_path_buf(), sidecar(out, SPOOL_SUFFIX)] {
        if data
            .symlink_metadata()
            .is_ok_and(|m| m.is_file() && m.len() == 0)
        {
            let _ = std::fs::remove_file(&data);
        }
    }
    let _ = std::fs::remove_file(&state_path);
    false
}

/// The first field where two definitions (the [`Identity`]s they record) differ, in words;
/// `None` if they are the same.
fn difference(recorded: &Value, asked: &Value) -> Option<String> {
    let (Some(r), Some(a)) = (Identity::recorded(recorded), Identity::recorded(asked)) else {
        return (recorded != asked).then(|| "a different definition".into());
    };
    let d = r.difference(&a)?;
    let show = |v: Option<&Value>| {
        crate::error::excerpt(
            &v.map_or_else(
                || "nothing".to_string(),
                |v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            ),
            100,
        )
    };
    let (k, r, a) = (d.field, d.recorded, d.asked);
    Some(match k {
        // Recorded in seconds; typed as --slice.
        "slice_seconds" => {
            let secs = |v: Option<&Value>| {
                v.and_then(Value::as_f64).map_or_else(
                    || "nothing".to_string(),
                    |s| crate::error::human_duration(std::time::Duration::from_secs_f64(s)),
                )
            };
            format!("--slice {}, not {}", secs(r), secs(a))
        }
        "interval" | "filter" | "body" | "format" => {
            format!("--{k} {}, not {}", show(r), show(a))
        }
        "page_size" => format!("--page-size {}, not {}", show(r), show(a)),
        _ => format!("{k} {}, not {}", show(r), show(a)),
    })
}

/// Refuses an output in a directory that does not exist (it is not created: a typo should not
/// make a new tree).
fn check_directory(out: &Path) -> Result<(), JobError> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(JobError::NoDirectory(out.to_path_buf()));
    }
    if out.is_dir() {
        return Err(refuse(out, Refusal::IsADirectory));
    }
    Ok(())
}

/// An output that cannot be created or opened for lack of permission is a usage problem: another
/// place must be given.
fn no_permission(path: &Path) -> JobError {
    refuse(path, Refusal::NoPermission)
}

/// A file [`fs::open`] found not private.
fn not_private(path: &Path, why: Untrusted) -> JobError {
    refuse(
        path,
        Refusal::NotPrivate {
            why: why.to_string(),
        },
    )
}

/// Creates `path`, which must not exist (not even as a symbolic link), 0600.
fn create_new(path: &Path) -> Result<File, JobError> {
    fs::create_new(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => refuse(path, Refusal::JustCreated),
        std::io::ErrorKind::NotFound => JobError::NoDirectory(path.to_path_buf()),
        std::io::ErrorKind::PermissionDenied => no_permission(path),
        _ => JobError::io_at(Step::Create, path)(e),
    })
}

/// Opens the existing data file of a resume, refusing anything that is not a private file of this
/// user's (see [`crate::fs`]): a symbolic link (planted in a shared directory, it would point the
/// writes elsewhere), something other than a regular file, another user's file, a file open to
/// others.
fn open_owned(path: &Path) -> Result<File, JobError> {
    fs::open(path, Access::ReadWrite).map_err(|e| refused(path, e))
}

/// The data file of a run that starts over (`--force`), empty and private. A file of this user's
/// that others may read is not written in place (a descriptor opened on it earlier would read
/// the new data): it is replaced by a new private file.
fn overwrite(path: &Path) -> Result<File, JobError> {
    match fs::open(path, Access::ReadWrite) {
        Ok(file) => {
            file.set_len(0)
                .map_err(JobError::io_at(Step::Truncate, path))?;
            Ok(file)
        }
        Err(e) if e.is_not_found() => create_new(path),
        Err(OpenError::Untrusted(Untrusted::ReadableByOthers { .. })) => {
            std::fs::remove_file(path).map_err(JobError::io_at(Step::Replace, path))?;
            create_new(path)
        }
        Err(e) => Err(refused(path, e)),
    }
}

/// The message for a file [`fs::open`] refused, or its error.
fn refused(path: &Path, e: OpenError) -> JobError {
    match e {
        OpenError::Untrusted(Untrusted::Symlink) => refuse(path, Refusal::Symlink),
        OpenError::Untrusted(why) => not_private(path, why),
        OpenError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => no_permission(path),
        OpenError::Io(e) => JobError::io_at(Step::Open, path)(e),
    }
}

/// Largest state file read (a state is a few hundred bytes).
const MAX_STATE_BYTES: u64 = 1 << 20;

/// The recorded state, if there is one; checked to be this user's own file before it is trusted.
fn read_state(path: &Path) -> Result<Option<State>, JobError> {
    let file = match fs::open(path, Access::Read) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(OpenError::Untrusted(Untrusted::Symlink)) => {
            return Err(refuse(path, Refusal::StateSymlink));
        }
        Err(OpenError::Untrusted(why)) => {
            return Err(not_private(path, why));
        }
        Err(OpenError::Io(e)) => return Err(JobError::io_at(Step::Read, path)(e)),
    };
    let mut text = Vec::new();
    use std::io::Read as _;
    file.take(MAX_STATE_BYTES)
        .read_to_end(&mut text)
        .map_err(JobError::io_at(Step::Read, path))?;
    let state: State = serde_json::from_slice(&text).map_err(|e| {
        refuse(
            path,
            Refusal::NotAState {
                detail: e.to_string(),
            },
        )
    })?;
    if state.tokenwarden_export != STATE_VERSION {
        return Err(refuse(
            path,
            Refusal::OtherVersion {
                layout: state.tokenwarden_export,
            },
        ));
    }
    Ok(Some(state))
}

/// Replaces the state file atomically ([`fs::replace`]: a private temporary file beside it,
/// synced, renamed over it, the directory synced).
pub(super) fn save_state(path: &Path, state: &State) -> Result<(), JobError> {
    let mut json = serde_json::to_vec_pretty(state).unwrap_or_default();
    json.push(b'\n');
    fs::replace_with_prefix(path, ".twstate-", &json)
        .map_err(JobError::io_at(Step::SaveState, path))
}

/// Makes the finished files durable (a power cut after "complete" loses nothing).
pub(super) fn sync(file: &File, path: &Path) -> Result<(), JobError> {
    file.sync_all().map_err(JobError::io_at(Step::Sync, path))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write as _;
    use tokenwarden_test_support::{chmod, mode};

    #[test]
    fn a_fresh_run_creates_0600_files_and_refuses_a_second_one() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("out.jsonl"), false);
        let def = json!({"command": "paginate", "path": "/a"});
        let Found::Ready(first) = open(&paths, Mode::New, def.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(mode(&paths.out), 0o600);
        assert_eq!(mode(&paths.state), 0o600);
        // Another run while the first holds the lock: refused, whatever the mode.
        for want in [Mode::New, Mode::Overwrite, Mode::Resume] {
            let e = open(&paths, want, def.clone()).err().unwrap();
            assert!(matches!(e, JobError::Busy(_)), "{want:?}: {e}");
        }
        drop(first);
        let e = open(&paths, Mode::New, def.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--resume") && e.contains("--force"), "{e}");
        // Another export's state is not continued.
        let other = json!({"command": "paginate", "path": "/b"});
        let e = open(&paths, Mode::Resume, other).err().unwrap().to_string();
        assert!(e.contains("path /a, not /b"), "{e}");
        assert!(matches!(
            open(&paths, Mode::Resume, def).unwrap(),
            Found::Ready(Opened {
                start: Start::Resumed { cut: 0 },
                ..
            })
        ));
    }

    #[test]
    fn resume_cuts_back_to_the_recorded_length() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("out.jsonl"), false);
        let def = json!({"x": 1});
        let Found::Ready(o) = open(&paths, Mode::New, def.clone()).unwrap() else {
            panic!()
        };
        let mut data = o.data;
        data.write_all(b"{\"id\":1}\n{\"id\":2}\n{\"id\":3,\"torn")
            .unwrap();
        let mut st = o.state;
        st.bytes = 18;
        st.items = 2;
        save_state(&paths.state, &st).unwrap();
        drop(data);
        drop(o.claim);
        let Found::Ready(o) = open(&paths, Mode::Resume, def.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(o.start, Start::Resumed { cut: 13 });
        drop(o);
        assert_eq!(
            std::fs::read(&paths.out).unwrap(),
            b"{\"id\":1}\n{\"id\":2}\n"
        );
        // A data file shorter than recorded is refused, not "repaired".
        std::fs::write(&paths.out, b"{").unwrap();
        let e = open(&paths, Mode::Resume, def).err().unwrap().to_string();
        assert!(e.contains("shorter"), "{e}");
    }

    #[test]
    fn files_of_others_and_links_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out.jsonl");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        let paths = Paths::new(&out, false);
        let def = json!({});
        for want in [Mode::New, Mode::Overwrite, Mode::Resume] {
            assert!(open(&paths, want, def.clone()).is_err(), "{want:?}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A state file planted as a link is refused too.
        let out2 = dir.path().join("two.jsonl");
        std::os::unix::fs::symlink(&victim, sidecar(&out2, STATE_SUFFIX)).unwrap();
        let e = open(&Paths::new(&out2, false), Mode::Resume, def.clone())
            .err()
            .unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // A state others may write is not trusted.
        let out3 = dir.path().join("three.jsonl");
        let st = sidecar(&out3, STATE_SUFFIX);
        save_state(&st, &State::new(def.clone())).unwrap();
        chmod(&st, 0o666);
        let e = open(&Paths::new(&out3, false), Mode::Resume, def)
            .err()
            .unwrap();
        assert!(e.to_string().contains("writable by other users"), "{e}");
    }

    /// A resume of another export names the first field that differs, in the flag's words.
    #[test]
    fn the_first_difference_is_named_as_its_flag() {
        let said = |r: Value, a: Value| difference(&r, &a);
        assert_eq!(said(json!({"x": 1}), json!({"x": 1})), None);
        assert_eq!(
            said(
                json!({"path": "/a", "slice_seconds": 86400.0}),
                json!({"path": "/a", "slice_seconds": 3600.0})
            ),
            Some("--slice 1 d, not 1 h".into())
        );
        assert_eq!(
            said(
                json!({"format": "csv", "path": "/a"}),
                json!({"format": "jsonl", "path": "/b"})
            ),
            Some("--format csv, not jsonl".into())
        );
        assert_eq!(
            said(json!({}), json!({"page_size": 5})),
            Some("--page-size nothing, not 5".into())
        );
        assert_eq!(
            said(
                json!({"api_base": "https://a.example/"}),
                json!({"api_base": "https://b.example/"})
            ),
            Some("api_base https://a.example/, not https://b.example/".into())
        );
        assert_eq!(
            said(json!(3), json!({})),
            Some("a different definition".into())
        );
        assert_eq!(said(json!(3), json!(3)), None);
    }

    #[test]
    fn a_missing_directory_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("no-such-dir").join("out.jsonl");
        let e = open(&Paths::new(&out, false), Mode::New, json!({}))
            .err()
            .unwrap();
        assert!(matches!(e, JobError::NoDirectory(_)), "{e}");
        assert!(!dir.path().join("no-such-dir").exists());
    }

    /// A state as the first layout wrote it, before fingerprints were recorded: still read, and
    /// the export resumes where it records (the torn page after it cut).
    #[test]
    fn a_state_written_before_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("out.jsonl"), false);
        fs::create_new(&paths.out)
            .unwrap()
            .write_all(b"{\"id\":1}\n{\"id\":2}\n{\"id\":3,\"to")
            .unwrap();
        let on_disk = r#"{
  "tokenwarden_export": 1,
  "definition": {
    "command": "paginate",
    "path": "/a"
  },
  "phase": "fetching",
  "bytes": 18,
  "items": 2,
  "pages": 1,
  "position": null
}
"#;
        fs::create_new(&paths.state)
            .unwrap()
            .write_all(on_disk.as_bytes())
            .unwrap();
        let def = json!({"command": "paginate", "path": "/a"});
        let Found::Ready(o) = open(&paths, Mode::Resume, def).unwrap() else {
            panic!("a state of layout 1 is continued")
        };
        assert_eq!(o.start, Start::Resumed { cut: 11 });
        assert_eq!((o.state.items, o.state.pages, o.state.bytes), (2, 1, 18));
        let mut again = serde_json::to_vec_pretty(&o.state).unwrap();
        again.push(b'\n');
        assert_eq!(
            String::from_utf8(again).unwrap(),
            on_disk,
            "the same layout"
        );
    }
}
