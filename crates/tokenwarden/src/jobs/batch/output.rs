//! The output file: one writer at a time, created only when its first line is ready, private to
//! its owner.
//!
//! - **One writer, whatever the command.** The run takes the output's claim (see
//!   [`ownership`](crate::jobs::ownership): the lock file `out.jsonl.twlock`, shared with `paginate` and
//!   `export`) for its whole duration; a second run on the same output fails at once with
//!   [`JobError::Busy`] and touches nothing. The lock dies with the process, so a `kill -9`
//!   never leaves a stale lock behind.
//! - **The job file** beside the output (`out.jsonl.twjob`, 0600) records which job the output
//!   belongs to, and, at the end of each run, a [`Fingerprint`] of the output: a resume refuses an
//!   output that is not what the job file describes ([`Refusal::Changed`]), and one that
//!   `paginate` or `export` keeps ([`Refusal::OtherCommand`]). A run that creates or
//!   replaces the output removes the other command's sidecars with it.
//! - **Nothing behind on early failure.** The output is created when its first line is written
//!   (or at the end of a run whose input held no record). A run that ends before (a typo'd
//!   input, a wrong secret, Ctrl-C) removes the job file it created and leaves the directory as
//!   it found it; an existing output is left as it was.
//! - **Private.** The output and the job file are created with mode 0600: they hold the
//!   organisation's data. A job file or a journal to resume must be private files of the user's
//!   (the one rule of [`crate::fs`]: no link, nothing for group or others), or it is refused.
//! - **Only regular files are journals.** An output that is not a regular file (`/dev/null`, a
//!   FIFO, a terminal, `/dev/stdout`) is written as a stream: no job file, no lock, no resume.

use super::job::JobIdentity;
use crate::fs::{self, Access};
use crate::jobs::identity::{self, Decision};
use crate::jobs::ownership::{self, Claim, ClaimError, Fingerprint, JOB_SUFFIX, Writer};
use crate::jobs::{JobError, Mode, Refusal, Step};
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The job file's name beside `output`: `out.jsonl` → `out.jsonl.twjob`.
pub fn job_file_path(output: &Path) -> PathBuf {
    ownership::sidecar(output, JOB_SUFFIX)
}

/// How the output is opened when its first line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// It does not exist: create it.
    Create,
    /// It exists and may be replaced.
    Replace,
    /// It is this job's journal: append.
    Append,
}

/// Where the result lines go.
pub(crate) enum Output {
    Journal(Box<Journal>),
    /// Not a regular file: written as it is.
    Stream {
        path: PathBuf,
        file: File,
    },
}

/// A regular output file with its job file, claimed for this run.
pub(crate) struct Journal {
    path: PathBuf,
    job_path: PathBuf,
    job: File,
    /// The job this output belongs to, when resuming it.
    recorded: Option<JobIdentity>,
    /// The job as this run recorded it (its fingerprint is added at the end).
    written: Option<JobIdentity>,
    plan: Plan,
    writer: Option<io::BufWriter<File>>,
    /// A line reached the output in this run (or the run finished without one).
    wrote: bool,
    /// The job file held no job at the start: remove it if this run records nothing.
    job_file_was_empty: bool,
    /// This run created the output file: remove it if no line reached it.
    created_output: bool,
    /// Held for the whole run; released (and its lock file removed) after the cleanup above.
    _claim: Claim,
}

impl Output {
    /// Takes `path` for this run: claims it and decides how it will be written.
    ///
    /// # Errors
    /// [`JobError::Busy`] when the output is busy, [`JobError::Refused`] when it exists (without `resume` or `overwrite`), or is
    /// not this job's journal (with `resume`); [`JobError::Io`] when its directory is missing or a
    /// file cannot be created or locked.
    pub(crate) fn acquire(path: &Path, resume: bool, overwrite: bool) -> Result<Output, JobError> {
        let refuse = |reason| JobError::refused(Writer::Batch, path, reason);
        if ownership::is_stream(path) {
            if resume {
                return Err(refuse(Refusal::NotResumable));
            }
            let file = crate::fs::open_stream(path)
                .map_err(|e| JobError::io(Step::CreateOutput, path, e))?;
            return Ok(Output::Stream {
                path: path.to_path_buf(),
                file,
            });
        }
        let exists = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(JobError::io(
                    Step::CreateOutput,
                    path,
                    io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
                ));
            }
            Ok(_) if resume && is_symlink(path) => {
                // Resuming cuts a torn tail and appends: never through a link someone may have
                // planted.
                return Err(JobError::io(
                    Step::CreateOutput,
                    path,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "is a symbolic link: a journal is resumed only in place (give the link's target)",
                    ),
                ));
            }
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if is_symlink(path) {
                    return Err(JobError::io(
                        Step::CreateOutput,
                        path,
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "is a symbolic link to a file that does not exist (not followed)",
                        ),
                    ));
                }
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(dir) = dir
                    && !dir.is_dir()
                {
                    return Err(JobError::io(
                        Step::OutputDirectory,
                        dir,
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            "does not exist (it is not created: check the path)",
                        ),
                    ));
                }
                false
            }
            Err(e) => return Err(JobError::io(Step::CreateOutput, path, e)),
        };
        let claim = Claim::take(path).map_err(|e| match e {
            ClaimError::Busy { .. } => JobError::Busy(path.to_path_buf()),
            ClaimError::Io { lock, source, .. } => JobError::io(Step::LockOutput, &lock, source),
        })?;
        // Another command's output is never resumed as a batch journal.
        if resume
            && exists
            && let Some(sidecar) = ownership::written_by(path, Writer::Export)
        {
            return Err(refuse(Refusal::OtherCommand { sidecar }));
        }
        let job_path = job_file_path(path);
        let job = open_job_file(&job_path)?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            job_path: job_path.clone(),
            job,
            recorded: None,
            written: None,
            plan: Plan::Create,
            writer: None,
            wrote: false,
            job_file_was_empty: false,
            created_output: false,
            _claim: claim,
        };
        // A job file is a few hundred bytes; a bigger one is not ours and is not read whole.
        let mut contents = Vec::new();
        if let Err(e) = (&journal.job).take(64 * 1024).read_to_end(&mut contents) {
            return Err(JobError::io(Step::ReadJournal, &job_path, e));
        }
        // A job file that holds no job (just created, or left by a run killed before its first
        // line) is not worth keeping; from here on, an error drops `journal`, which removes it.
        journal.job_file_was_empty = contents.iter().all(u8::is_ascii_whitespace);
        let recorded = JobIdentity::parse(&contents);
        let mode = Mode::of(resume, overwrite);
        journal.plan = match identity::decide(mode, exists, recorded, job_path.clone()) {
            Err(reason) => return Err(refuse(reason)),
            Ok(Decision::Create) => Plan::Create,
            Ok(Decision::Replace) => Plan::Replace,
            Ok(Decision::Resume(job)) => {
                if let Some(detail) = job.output_mismatch(path) {
                    return Err(refuse(Refusal::Changed {
                        sidecar: job_path,
                        detail,
                    }));
                }
                // Checked now, before any record is sent (the output is opened at the first
                // line), and again on the descriptor it is appended through.
                check_journal(path)?;
                journal.recorded = Some(job);
                Plan::Append
            }
        };
        Ok(Output::Journal(Box::new(journal)))
    }

    /// The job recorded for the output, when this run resumes it.
    pub(crate) fn resuming(&self) -> Option<&JobIdentity> {
        match self {
            Output::Journal(j) => j.recorded.as_ref(),
            Output::Stream { .. } => None,
        }
    }

    /// Replaces the recorded job (a resume that corrected its definition, or one about to
    /// rewrite the output: the recorded fingerprint no longer holds).
    pub(crate) fn redefine(&mut self, identity: JobIdentity) -> Result<(), JobError> {
        match self {
            Output::Journal(j) => {
                j.record_job(&identity)?;
                j.recorded = Some(identity);
                Ok(())
            }
            Output::Stream { .. } => Ok(()),
        }
    }

    /// Whether the output exists (this run wrote a line, or it resumes one).
    pub(crate) fn exists(&self) -> bool {
        match self {
            Output::Journal(j) => j.wrote || j.plan == Plan::Append,
            Output::Stream { .. } => false,
        }
    }

    /// Writes one complete line (with its newline) straight to the OS, so that a kill loses at
    /// most the records in flight. The first line first records the job (`identity`) and creates
    /// the output.
    pub(crate) fn write_line(
        &mut self,
        line: &[u8],
        identity: impl FnOnce() -> JobIdentity,
    ) -> Result<(), JobError> {
        match self {
            Output::Stream { path, file } => file
                .write_all(line)
                .map_err(|e| JobError::io(Step::WriteOutput, &*path, e)),
            Output::Journal(j) => j.write_line(line, identity),
        }
    }

    /// Ends the run: flushes what was written to the disk, and records in the job file what the
    /// output now holds. A run that went through its whole input (`complete`) without a line to
    /// write still leaves its (empty) output and job file: the job is done, and scripts find the
    /// file they named.
    pub(crate) fn finish(
        &mut self,
        complete: bool,
        identity: impl FnOnce() -> JobIdentity,
    ) -> Result<(), JobError> {
        match self {
            Output::Journal(j) => {
                if complete && j.writer.is_none() {
                    j.open(identity)?;
                    j.wrote = true;
                }
                j.sync()?;
                j.record_fingerprint()
            }
            Output::Stream { .. } => Ok(()),
        }
    }
}

impl Journal {
    fn write_line(
        &mut self,
        line: &[u8],
        identity: impl FnOnce() -> JobIdentity,
    ) -> Result<(), JobError> {
        if self.writer.is_none() {
            self.open(identity)?;
        }
        let path = &self.path;
        let w = self.writer.as_mut().expect("opened above");
        w.write_all(line)
            .and_then(|()| w.flush())
            .map_err(|e| JobError::io(Step::WriteOutput, path, e))?;
        self.wrote = true;
        Ok(())
    }

    /// Records the job (unless resuming it) and opens the output for writing. An output created
    /// or replaced here takes the place of whatever `paginate` or `export` kept beside it.
    fn open(&mut self, identity: impl FnOnce() -> JobIdentity) -> Result<(), JobError> {
        if self.plan != Plan::Append {
            ownership::remove_sidecars(&self.path, Writer::Batch.other())
                .map_err(|(p, e)| JobError::io(Step::CreateOutput, &p, e))?;
            // The job file first: an output without one could not be resumed.
            let identity = identity();
            self.record_job(&identity)?;
            self.written = Some(identity);
        }
        let file = match self.plan {
            // Checked not to be a link in `acquire`; `fs::open` closes the window between that
            // check and this open (no link followed), and checks the descriptor.
            Plan::Append => open_private(&self.path, Access::Append)?,
            Plan::Replace => {
                // A new file rather than a truncated one: it is private and follows no link.
                match std::fs::remove_file(&self.path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(JobError::io(Step::CreateOutput, &self.path, e));
                    }
                    _ => {}
                }
                fs::create_new(&self.path)
                    .map_err(|e| JobError::io(Step::CreateOutput, &self.path, e))?
            }
            Plan::Create => fs::create_new(&self.path)
                .map_err(|e| JobError::io(Step::CreateOutput, &self.path, e))?,
        };
        self.created_output = self.plan != Plan::Append;
        self.writer = Some(io::BufWriter::with_capacity(64 * 1024, file));
        Ok(())
    }

    /// Writes `identity` into the job file.
    fn record_job(&mut self, identity: &JobIdentity) -> Result<(), JobError> {
        let bytes = identity.to_bytes();
        let job = &mut self.job;
        job.set_len(0)
            .and_then(|()| job.seek(SeekFrom::Start(0)))
            .and_then(|_| job.write_all(&bytes))
            .and_then(|()| job.sync_data())
            .map_err(|e| JobError::io(Step::WriteOutput, &self.job_path, e))?;
        Ok(())
    }

    /// Records what the output holds now, so that a resume can tell it is still this file.
    fn record_fingerprint(&mut self) -> Result<(), JobError> {
        let Some(job) = self.written.as_ref().or(self.recorded.as_ref()) else {
            return Ok(());
        };
        if !self.wrote && self.plan != Plan::Append {
            return Ok(());
        }
        let fp = Fingerprint::of_whole(&self.path)
            .map_err(|e| JobError::io(Step::WriteOutput, &self.path, e))?;
        let job = job.with_output(fp);
        self.record_job(&job)
    }

    fn sync(&mut self) -> Result<(), JobError> {
        match &mut self.writer {
            Some(w) => w
                .flush()
                .and_then(|()| w.get_ref().sync_data())
                .map_err(|e| JobError::io(Step::WriteOutput, &self.path, e)),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A run that recorded nothing leaves nothing. Still holding the claim: nobody else is
        // looking at these files.
        if !self.wrote {
            if self.created_output {
                let _ = std::fs::remove_file(&self.path);
            }
            if self.job_file_was_empty {
                let _ = std::fs::remove_file(&self.job_path);
            }
        }
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens the private file `path` (see [`crate::fs`]): a job file or journal that is a link, not
/// a regular file, another user's or open to others is not trusted to say which job the output
/// belongs to, nor continued.
fn open_private(path: &Path, access: Access) -> Result<File, JobError> {
    fs::open(path, access).map_err(|e| {
        JobError::io(
            Step::CreateOutput,
            path,
            e.into_io("tokenwarden only continues its own files"),
        )
    })
}

/// Opens (creating it 0600 if needed) the job file. The claim makes this run the only one that
/// touches it.
fn open_job_file(job_path: &Path) -> Result<File, JobError> {
    open_private(job_path, Access::ReadWriteCreate)
}

/// Refuses to resume into a journal that is not this user's own private file.
fn check_journal(path: &Path) -> Result<(), JobError> {
    open_private(path, Access::Read).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::batch::InputFormat;

    fn identity() -> JobIdentity {
        JobIdentity::new(
            "in",
            &InputFormat::Jsonl,
            &url::Url::parse("http://127.0.0.1:1").unwrap(),
            b"x",
        )
    }

    #[test]
    fn a_second_taker_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let mut first = Output::acquire(&out, false, false).unwrap();
        let second = Output::acquire(&out, true, false).err().unwrap();
        assert!(matches!(&second, JobError::Busy(_)), "{second}");
        first.write_line(b"{}\n", identity).unwrap();
        drop(first);
        // Released with the run.
        assert!(
            Output::acquire(&out, true, false)
                .unwrap()
                .resuming()
                .is_some()
        );
    }

    #[test]
    fn nothing_is_left_when_no_line_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        drop(Output::acquire(&out, false, false).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_job_file_planted_as_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, job_file_path(&out)).unwrap();
        let e = Output::acquire(&out, false, false).err().unwrap();
        assert!(
            matches!(
                e,
                JobError::Io {
                    step: Step::CreateOutput,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[cfg(unix)]
    #[test]
    fn created_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let mut o = Output::acquire(&out, false, false).unwrap();
        o.write_line(b"{}\n", identity).unwrap();
        for p in [&out, &job_file_path(&out)] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
}
