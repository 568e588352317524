//! `--summary-json FILE`: where a job's summary may be written, and writing it safely.
//!
//! - **Never one of the job's own files.** A path that is (or will be) the input, the output or
//!   one of the output's sidecars is refused up front (exit 2): a typo must not destroy the data.
//! - **Never someone else's file.** The summary is written to a temporary file beside its name
//!   (0600, an unpredictable name) and renamed over it: a symbolic link planted at the name is
//!   replaced, not followed, and no existing file is ever truncated in place.
//! - **Only our own summaries are replaced silently.** An existing file is replaced when it is a
//!   tokenwarden summary (it carries [`KIND`]); any other file only with `--force`.
//! - **Checked before the job.** The directory must exist and take a new file now, not after a
//!   job of hours.

use crate::exit::UsageError;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The field that marks a file as a tokenwarden summary.
const KIND_FIELD: &str = "kind";
/// Its value.
const KIND: &str = "tokenwarden batch summary";

/// Refuses a summary path that would destroy something, or that cannot be written, before the job
/// starts.
///
/// # Errors
/// A [`UsageError`] saying which file it would be and what to do.
pub(crate) fn check(path: &Path, output: &Path, input: Option<&Path>, force: bool) -> Result<()> {
    let mut own: Vec<(PathBuf, &str)> = vec![(output.to_path_buf(), "the output")];
    own.extend(
        tokenwarden::jobs::ownership::sidecars(output)
            .into_iter()
            .map(|p| (p, "a file tokenwarden keeps beside the output")),
    );
    if let Some(i) = input.filter(|i| i.as_os_str() != "-") {
        own.push((i.to_path_buf(), "the input"));
    }
    check_replaceable(path, "--summary-json", &own, force, "summary", is_summary)
}

/// The rules of a file a job writes beside its output (the summary, the report), for the flag
/// that names it: never one of the job's `own` files, in a directory that exists and takes a new
/// file now, and replacing only a regular file that `is_ours` recognises as a tokenwarden `noun`
/// (any file, and a symbolic link, with `force`).
///
/// # Errors
/// A [`UsageError`] saying which file it would be and what to do.
pub(crate) fn check_replaceable(
    path: &Path,
    flag: &str,
    own: &[(PathBuf, &str)],
    force: bool,
    noun: &str,
    is_ours: fn(&Path) -> bool,
) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        Err(UsageError(format!("{flag} {}: {why}", path.display())).into())
    };
    for (p, what) in own {
        if same_file(path, p) {
            return refuse(format!("is {what}; choose another file for the {noun}"));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return refuse(format!(
            "directory {} does not exist (it is not created)",
            dir.display()
        ));
    }
    if let Err(e) = tempfile::Builder::new()
        .prefix(".tw-summary-")
        .tempfile_in(dir)
    {
        return refuse(format!(
            "a file cannot be created in {}: {e}; choose another directory",
            dir.display()
        ));
    }
    match path.symlink_metadata() {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => refuse("is a directory: give a file name".into()),
        Ok(m) if m.file_type().is_symlink() && !force => refuse(
            "is a symbolic link (it is replaced, never followed): use --force to replace it".into(),
        ),
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
            refuse("is not a regular file".into())
        }
        Ok(_) if force || is_ours(path) => Ok(()),
        Ok(_) => refuse(format!(
            "already exists and is not a tokenwarden {noun}: choose another file, or use --force to replace it"
        )),
    }
}

/// Writes `summary` (marked as a tokenwarden summary) to `path`, atomically and private
/// ([`tokenwarden::fs::replace`]: a 0600 temporary file beside it, synced, renamed over it).
///
/// # Errors
/// The file cannot be created, written or renamed.
pub(crate) fn write(path: &Path, summary: &serde_json::Value) -> std::io::Result<()> {
    let mut summary = summary.clone();
    if let Some(o) = summary.as_object_mut() {
        o.insert(KIND_FIELD.into(), KIND.into());
    }
    let mut text = serde_json::to_vec_pretty(&summary)?;
    text.push(b'\n');
    tokenwarden::fs::replace(path, &text)
}

/// Whether the file at `path` is a summary tokenwarden wrote (a small JSON object with the mark).
fn is_summary(path: &Path) -> bool {
    use std::io::Read as _;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut bytes = Vec::new();
    if f.take(1 << 20).read_to_end(&mut bytes).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v.get(KIND_FIELD).and_then(|k| k.as_str()) == Some(KIND))
}

/// Whether `a` and `b` name the same file: the same file on disk when both exist, otherwise the
/// same absolute path once their directories are resolved (`./out.jsonl` and `out.jsonl`).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// `path` with its directory made absolute and free of links (the file itself may not exist).
fn resolved(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}
