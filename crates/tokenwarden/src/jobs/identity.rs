//! Whether an existing output is the job asked for: the decision both engines make before they
//! write, written once.
//!
//! - [`Identity`]: what a job is (the API it talks to and what it was asked: a batch's shard,
//!   API origin and input format; an export's source, API base and format), one named field
//!   each, compared field by field. Each engine builds the identity it records in its sidecar
//!   (a batch's job file, an export's state) and the one a run asks for, and words the first
//!   field that differs ([`Refusal::OtherJob`]) in its own terms.
//! - [`decide`]: the one table of what to do with the output then, whose refusals are the
//!   [`Refusal`]s both engines share.
//!
//! The sidecars' layouts on disk are the engines' own (a job file of version 1, a state of layout
//! 1) and do not change with this: the identity is built from what they record.

use super::Refusal;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// What a job is: named fields, in the order they are compared (the first that differs is the
/// one a refusal names). Built by each engine from its options (the job asked for) and from its
/// sidecar (the job recorded).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Identity {
    fields: Vec<(String, Value)>,
}

/// The first field in which two [`Identity`]s differ: its name, and its value in each (`None`
/// where that identity has no such field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Difference<'a> {
    pub(crate) field: &'a str,
    pub(crate) recorded: Option<&'a Value>,
    pub(crate) asked: Option<&'a Value>,
}

impl Identity {
    /// An identity of no fields yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// This identity with `field` (last in the comparison order) set to `value`.
    pub(crate) fn with(mut self, field: &str, value: impl serde::Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some((_, v)) => *v = value,
            None => self.fields.push((field.to_string(), value)),
        }
        self
    }

    /// The identity a JSON object records (its fields in the object's order); `None` for
    /// anything else.
    pub(crate) fn recorded(value: &Value) -> Option<Self> {
        let fields = value
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Self { fields })
    }

    /// The identity as a JSON object, as a sidecar records it.
    pub(crate) fn to_value(&self) -> Value {
        Value::Object(self.fields.iter().cloned().collect::<Map<_, _>>())
    }

    /// The value of `field`, if this identity has it.
    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, v)| v)
    }

    /// The first field (in this recorded identity's order, then in `asked`'s) whose value
    /// differs between the two; `None`: the same job.
    pub(crate) fn difference<'a>(&'a self, asked: &'a Identity) -> Option<Difference<'a>> {
        self.fields
            .iter()
            .chain(&asked.fields)
            .map(|(f, _)| f.as_str())
            .find(|f| self.get(f) != asked.get(f))
            .map(|field| Difference {
                field,
                recorded: self.get(field),
                asked: asked.get(field),
            })
    }
}

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

    #[test]
    fn the_first_field_that_differs_is_named() {
        let base = |api: &str| {
            Identity::new()
                .with("origin", api)
                .with("format", serde_json::json!({"kind": "jsonl"}))
        };
        let a = base("https://a.example");
        assert_eq!(a.difference(&a.clone()), None);
        // Fields compare in the order they were added: the origin first, whatever else differs.
        let b = base("https://b.example").with("format", "ids");
        let d = a.difference(&b).unwrap();
        assert_eq!(d.field, "origin");
        assert_eq!(d.recorded, Some(&Value::from("https://a.example")));
        assert_eq!(d.asked, Some(&Value::from("https://b.example")));
        // A field only one side has differs.
        let c = a.clone().with("shard", "1/2");
        let d = a.difference(&c).unwrap();
        assert_eq!(
            (d.field, d.recorded, d.asked),
            ("shard", None, Some(&"1/2".into()))
        );
        let d = c.difference(&a).unwrap();
        assert_eq!((d.field, d.asked), ("shard", None));
        // `with` on a field already there replaces its value, in its place.
        assert_eq!(
            a.clone().with("origin", "x").get("origin"),
            Some(&"x".into())
        );
        // What a sidecar records round-trips, in the object's order.
        let v = serde_json::json!({"b": 1, "a": {"x": [1, 2]}});
        let r = Identity::recorded(&v).unwrap();
        assert_eq!(r.to_value(), v);
        assert_eq!(Identity::recorded(&Value::from(3)), None);
    }
}
