//! What job a journal belongs to: the fingerprint kept in the job file beside the output
//! (`out.jsonl.twjob`), so that a resume never mixes two jobs' records in one file.
//!
//! The fingerprint is the input format (JSON Lines, or ids with their path template and method),
//! the API origin the records went to, and a SHA-256 of the input's first bytes: as many as had
//! been read when the first output line was written (up to 64 KiB; for a regular file that is
//! its first 64 KiB, or all of it). A resume reads that many bytes of its input before it sends
//! anything and compares. This works for pipes too (which cannot be read twice): `seq 1 1000 |
//! tokenwarden batch --ids - ...` resumes with the same command. An input that only grew at its
//! end (more records appended) is still the same job; an input that differs within its first
//! bytes is not.

use super::{InputFormat, Shard};
use crate::jobs::identity::Identity;
use crate::jobs::ownership::Fingerprint;
use sha2::{Digest as _, Sha256};
use url::Url;

/// What the job file says about the job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct JobIdentity {
    /// Always [`KIND`]: what this file is, for whoever finds it.
    kind: String,
    /// Format version of this file.
    version: u32,
    /// The input as it was named (informational: a job may be resumed from a moved file).
    input: String,
    format: FormatIdentity,
    /// `scheme://host:port` of the API the records were sent to.
    origin: String,
    /// How many of the input's first bytes are fingerprinted.
    prefix_len: u64,
    /// SHA-256 of those bytes, in hex.
    prefix_sha256: String,
    /// The shard (`INDEX/COUNT`) whose records this journal holds, if the job is split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    /// What the output held when a run last ended (absent until then, and while a resume
    /// rewrites it): a resume refuses an output that is not this file any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Fingerprint>,
}

const KIND: &str = "tokenwarden batch job";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum FormatIdentity {
    Jsonl,
    Ids {
        path_template: String,
        method: String,
    },
}

impl FormatIdentity {
    fn of(format: &InputFormat) -> Self {
        match format {
            InputFormat::Jsonl => FormatIdentity::Jsonl,
            InputFormat::Ids {
                path_template,
                method,
            } => FormatIdentity::Ids {
                path_template: path_template.clone(),
                method: method.to_string(),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            FormatIdentity::Jsonl => "JSON Lines records".to_string(),
            FormatIdentity::Ids {
                path_template,
                method,
            } => format!("ids for {method} {path_template}"),
        }
    }
}

/// How a run differs from the job recorded for its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// Another job: another shard, another API or another kind of input.
    Job(String),
    /// The same ids with another path template or method: a correction, acceptable when every
    /// recorded record failed and they all run again.
    Definition(String),
}

impl Mismatch {
    pub(crate) fn into_detail(self) -> String {
        match self {
            Mismatch::Job(d) | Mismatch::Definition(d) => d,
        }
    }
}

/// `scheme://host:port`, the part of a URL that decides where a request goes.
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl JobIdentity {
    /// The identity of a job reading `input` in `format`, sending to `base`, whose input began
    /// with `prefix`.
    pub(crate) fn new(input: &str, format: &InputFormat, base: &Url, prefix: &[u8]) -> Self {
        JobIdentity {
            kind: KIND.to_string(),
            version: VERSION,
            input: input.to_string(),
            format: FormatIdentity::of(format),
            origin: origin(base),
            prefix_len: prefix.len() as u64,
            prefix_sha256: sha256_hex(prefix),
            shard: None,
            output: None,
        }
    }

    /// This job, recording that the output holds what `output` describes.
    pub(crate) fn with_output(&self, output: Fingerprint) -> Self {
        JobIdentity {
            output: Some(output),
            ..self.clone()
        }
    }

    /// This job without a record of the output (about to be rewritten).
    pub(crate) fn without_output(&self) -> Self {
        JobIdentity {
            output: None,
            ..self.clone()
        }
    }

    /// Why the output at `path` is not the one this job last recorded, if it is not. An output
    /// that only grew (records appended by a run that was killed) is still the same.
    pub(crate) fn output_mismatch(&self, path: &std::path::Path) -> Option<String> {
        let fp = self.output.as_ref()?;
        match fp.mismatch(path) {
            Ok(why) => why,
            Err(e) => Some(format!("it cannot be read: {e}")),
        }
    }

    /// This identity for the records of `shard` only.
    pub(crate) fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard.map(|s| s.to_string());
        self
    }

    /// Reads a job file's contents; `None` for anything that is not one.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|j| j.kind == KIND && j.version == VERSION)
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// How many input bytes [`same_input`](Self::same_input) needs.
    pub(crate) fn prefix_len(&self) -> usize {
        usize::try_from(self.prefix_len).unwrap_or(usize::MAX)
    }

    /// The [`Identity`] of a batch, in the order it is compared: the shard whose records it
    /// holds, the API origin the records go to, the input format.
    fn identity(shard: &Option<String>, origin: &str, format: &FormatIdentity) -> Identity {
        Identity::new()
            .with("shard", shard)
            .with("origin", origin)
            .with("format", format)
    }

    /// How a run of `shard` reading `format` and sending to `base` differs from this job, if
    /// it does: the first field of their [`Identity`]s that differs, in words.
    pub(crate) fn mismatch(
        &self,
        format: &InputFormat,
        base: &Url,
        shard: Option<Shard>,
    ) -> Option<Mismatch> {
        let (shard, origin, format) = (
            shard.map(|s| s.to_string()),
            origin(base),
            FormatIdentity::of(format),
        );
        let recorded = Self::identity(&self.shard, &self.origin, &self.format);
        let asked = Self::identity(&shard, &origin, &format);
        let difference = recorded.difference(&asked)?;
        Some(match difference.field {
            "shard" => {
                let say = |s: &Option<String>| match s {
                    Some(s) => format!("shard {s}"),
                    None => "the whole input".to_string(),
                };
                Mismatch::Job(format!(
                    "it holds the records of {}, and this run is for {}",
                    say(&self.shard),
                    say(&shard)
                ))
            }
            "origin" => Mismatch::Job(format!(
                "its records were sent to {}, and this run talks to {origin}",
                self.origin
            )),
            _ => {
                let why = format!(
                    "it holds the results of {} (input {}), and this run reads {}",
                    self.format.describe(),
                    self.input,
                    format.describe()
                );
                match (&self.format, &format) {
                    (FormatIdentity::Ids { .. }, FormatIdentity::Ids { .. }) => {
                        Mismatch::Definition(why)
                    }
                    _ => Mismatch::Job(why),
                }
            }
        })
    }

    /// This job with `format` instead (a corrected path template or method).
    pub(crate) fn redefined(&self, format: &InputFormat) -> Self {
        JobIdentity {
            format: FormatIdentity::of(format),
            ..self.clone()
        }
    }

    /// Whether an input that begins with `prefix` (read up to [`prefix_len`](Self::prefix_len)
    /// bytes) is this job's input; `Some(why not)` if it is not.
    pub(crate) fn same_input(&self, prefix: &[u8]) -> Option<String> {
        if prefix.len() as u64 == self.prefix_len && sha256_hex(prefix) == self.prefix_sha256 {
            return None;
        }
        Some(format!(
            "it holds the results of another input (input {}): this input's first {} bytes differ",
            self.input, self.prefix_len
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.com/").unwrap()
    }

    #[test]
    fn round_trips_and_recognises_the_same_job() {
        let j = JobIdentity::new("in.jsonl", &InputFormat::Jsonl, &base(), b"{\"id\":1}\n");
        let back = JobIdentity::parse(&j.to_bytes()).unwrap();
        assert_eq!(back, j);
        assert_eq!(back.mismatch(&InputFormat::Jsonl, &base(), None), None);
        assert_eq!(back.redefined(&InputFormat::Jsonl), back);
        assert_eq!(back.same_input(b"{\"id\":1}\n"), None);
        // The port is part of the origin.
        let other = Url::parse("https://api.example.com:8443/").unwrap();
        assert!(back.mismatch(&InputFormat::Jsonl, &other, None).is_some());
    }

    #[test]
    fn another_format_template_or_input_is_another_job() {
        let ids = |t: &str| InputFormat::Ids {
            path_template: t.into(),
            method: http::Method::GET,
        };
        let j = JobIdentity::new("ids.txt", &ids("/a/{id}"), &base(), b"1\n2\n");
        let Some(Mismatch::Definition(why)) = j.mismatch(&ids("/b/{id}"), &base(), None) else {
            panic!()
        };
        assert!(why.contains("/a/{id}"), "{why}");
        assert!(matches!(
            j.mismatch(&InputFormat::Jsonl, &base(), None),
            Some(Mismatch::Job(_))
        ));
        assert!(j.same_input(b"1\n3\n").is_some());
        assert!(j.same_input(b"1\n").is_some(), "a shorter input differs");
    }

    /// What differs is named in one order (the shard, then the API, then the input format),
    /// in the words a refusal has always used.
    #[test]
    fn the_first_difference_is_named() {
        let ids = |t: &str| InputFormat::Ids {
            path_template: t.into(),
            method: http::Method::GET,
        };
        let shard = |i| Some(Shard::new(i, 2).unwrap());
        let other = Url::parse("https://api.example.com:8443/").unwrap();
        let j = JobIdentity::new("ids.txt", &ids("/a/{id}"), &base(), b"1\n").with_shard(shard(0));
        let job = |s: &str| Some(Mismatch::Job(s.to_string()));
        assert_eq!(
            j.mismatch(&ids("/b/{id}"), &other, shard(1)),
            job("it holds the records of shard 0/2, and this run is for shard 1/2")
        );
        assert_eq!(
            j.mismatch(&ids("/a/{id}"), &base(), None),
            job("it holds the records of shard 0/2, and this run is for the whole input")
        );
        assert_eq!(
            j.mismatch(&ids("/b/{id}"), &other, shard(0)),
            job(
                "its records were sent to https://api.example.com, and this run talks to https://api.example.com:8443"
            )
        );
        assert_eq!(
            j.mismatch(&ids("/b/{id}"), &base(), shard(0)),
            Some(Mismatch::Definition(
                "it holds the results of ids for GET /a/{id} (input ids.txt), and this run reads ids for GET /b/{id}"
                    .into()
            ))
        );
        assert_eq!(
            j.mismatch(&InputFormat::Jsonl, &base(), shard(0)),
            job(
                "it holds the results of ids for GET /a/{id} (input ids.txt), and this run reads JSON Lines records"
            )
        );
        assert_eq!(j.mismatch(&ids("/a/{id}"), &base(), shard(0)), None);
    }

    #[test]
    fn anything_else_is_not_a_job_file() {
        assert_eq!(JobIdentity::parse(b""), None);
        assert_eq!(JobIdentity::parse(b"hello"), None);
        assert_eq!(JobIdentity::parse(br#"{"kind":"x","version":1}"#), None);
    }

    /// A job file as version 1 writes it (the layout on disk since the first release): still
    /// read, still this job, and written again byte for byte.
    #[test]
    fn a_job_file_written_before_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        std::fs::write(&out, b"{\"id\":1,\"status\":200}\n").unwrap();
        let on_disk = r#"{
  "kind": "tokenwarden batch job",
  "version": 1,
  "input": "in.jsonl",
  "format": {
    "kind": "jsonl"
  },
  "origin": "https://api.example.com",
  "prefix_len": 9,
  "prefix_sha256": "51bc513113548e062ada62b03efea153cae2abdf46b051c551c3e62a4dfb88cf",
  "output": {
    "len": 22,
    "head_sha256": "HASH",
    "tail_sha256": "HASH"
  }
}
"#
        .replace(
            "HASH",
            "76208b940c3aeccc2e274307080c03af1921fce4d178d79400e57f49c03ee142",
        );
        let job = JobIdentity::parse(on_disk.as_bytes()).expect("a job file of version 1");
        assert_eq!(job.mismatch(&InputFormat::Jsonl, &base(), None), None);
        assert_eq!(job.same_input(b"{\"id\":1}\n"), None);
        assert_eq!(job.output_mismatch(&out), None);
        assert_eq!(String::from_utf8(job.to_bytes()).unwrap(), on_disk);
        let same = JobIdentity::new("in.jsonl", &InputFormat::Jsonl, &base(), b"{\"id\":1}\n");
        assert_eq!(job.without_output(), same);
    }

    /// The job file each input format writes, for fixed inputs (ids of a shard to an API with a
    /// port and a path; JSON Lines to the default port), pinned as version 1 writes them: a job
    /// file on disk keeps resuming only while these stay the same.
    #[test]
    fn the_recorded_identity_is_pinned() {
        let ids = InputFormat::Ids {
            path_template: "/api/v2/users/{id}".into(),
            method: http::Method::DELETE,
        };
        let shard = Some(Shard::new(2, 4).unwrap());
        let with_port = Url::parse("https://API.example.com:8443/api/").unwrap();
        let got = [
            JobIdentity::new("ids.txt", &ids, &with_port, b"1\n2\n3\n").with_shard(shard),
            JobIdentity::new("-", &InputFormat::Jsonl, &base(), b""),
        ]
        .map(|j| String::from_utf8(j.to_bytes()).unwrap());
        assert_eq!(got, PINNED);
    }

    const PINNED: [&str; 2] = [
        r#"{
  "kind": "tokenwarden batch job",
  "version": 1,
  "input": "ids.txt",
  "format": {
    "kind": "ids",
    "path_template": "/api/v2/users/{id}",
    "method": "DELETE"
  },
  "origin": "https://api.example.com:8443",
  "prefix_len": 6,
  "prefix_sha256": "14c5e74c4b96ccef41cd94db73a9ec3348038ac094feca4fd897cecffa07cdae",
  "shard": "2/4"
}
"#,
        r#"{
  "kind": "tokenwarden batch job",
  "version": 1,
  "input": "-",
  "format": {
    "kind": "jsonl"
  },
  "origin": "https://api.example.com",
  "prefix_len": 0,
  "prefix_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
"#,
    ];
}
