//! Whether an existing output is the job asked for: the decision both engines make before they
//! write, written once. A batch's job file and an export's state each record the job's identity
//! (what defines it: a batch's input format, API origin and input prefix; an export's definition),
//! and each engine compares that with the job asked for; what to do with the output then follows
//! one table, [`decide`], whose refusals are the [`Refusal`]s both engines share.

use super::Refusal;
use std::path::PathBuf;

/// What to do when the output file exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse ([`JobError::Refused`](super::JobError::Refused) with [`Refusal::Exists`]) if the
    /// output or one of its sidecars exists.
    #[default]
    New,
    /// Start over, replacing the output.
    Overwrite,
    /// Continue the job recorded beside the output (start one if there is none and no output).
    Resume,
}

impl Mode {
    /// The mode of a run asked to `resume` (first) or to `overwrite`.
    pub(crate) fn of(resume: bool, overwrite: bool) -> Self {
        match (resume, overwrite) {
            (true, _) => Mode::Resume,
            (false, true) => Mode::Overwrite,
            (false, false) => Mode::New,
        }
    }
}

/// How an output will be written, decided by [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision<R> {
    /// Nothing is there: create it.
    Create,
    /// It is there, and may be replaced.
    Replace,
    /// It is there, recorded as `R` (the engine's identity of the job it holds): the engine
    /// compares that with the job asked for (refusing [`Refusal::OtherJob`] or
    /// [`Refusal::Changed`]) and continues it.
    Resume(R),
}

/// The one table: what a run in `mode` does with an output that `exists` (it, or a sidecar of
/// it), whose engine's sidecar (at `sidecar`) records `recorded`, if it does.
pub(crate) fn decide<R>(
    mode: Mode,
    exists: bool,
    recorded: Option<R>,
    sidecar: PathBuf,
) -> Result<Decision<R>, Refusal> {
    match (exists, mode, recorded) {
        (false, _, _) => Ok(Decision::Create),
        (true, Mode::Resume, Some(job)) => Ok(Decision::Resume(job)),
        (true, Mode::Resume, None) => Err(Refusal::NotAJournal { sidecar }),
        (true, Mode::Overwrite, _) => Ok(Decision::Replace),
        (true, Mode::New, _) => Err(Refusal::Exists),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let side = || PathBuf::from("out.sidecar");
        for mode in [Mode::New, Mode::Overwrite, Mode::Resume] {
            assert_eq!(decide(mode, false, Some(1), side()), Ok(Decision::Create));
            assert_eq!(
                decide::<u8>(mode, false, None, side()),
                Ok(Decision::Create)
            );
        }
        assert_eq!(
            decide(Mode::New, true, Some(1), side()),
            Err(Refusal::Exists)
        );
        assert_eq!(
            decide(Mode::Overwrite, true, Some(1), side()),
            Ok(Decision::Replace)
        );
        assert_eq!(
            decide::<u8>(Mode::Overwrite, true, None, side()),
            Ok(Decision::Replace)
        );
        assert_eq!(
            decide(Mode::Resume, true, Some(7), side()),
            Ok(Decision::Resume(7))
        );
        assert_eq!(
            decide::<u8>(Mode::Resume, true, None, side()),
            Err(Refusal::NotAJournal { sidecar: side() })
        );
        assert_eq!(Mode::of(true, true), Mode::Resume);
        assert_eq!(Mode::of(false, true), Mode::Overwrite);
        assert_eq!(Mode::of(false, false), Mode::New);
    }
}
