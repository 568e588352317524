//! Conversation exports in slices: one analytics job per slice, the next one submitted while the
//! current one's results are read, each conversation kept in the slice it started in.

use super::Event;
use super::journal::{Phase, SliceState};
use super::sink::Sink;
use crate::client::ApiClient;
use crate::error::Error;
use crate::jobs::{JobError, Refusal};
use crate::paginate::analytics::{delete, results, submit, wait_for};
use crate::paginate::{Interval, JobOptions, Position};
use futures::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

/// The pieces of a conversation export that every slice uses.
pub(super) struct JobRun<'a> {
    pub(super) client: &'a ApiClient,
    pub(super) jobs_path: &'a str,
    pub(super) filter: &'a Value,
    pub(super) options: &'a JobOptions,
}

impl JobRun<'_> {
    fn body(&self, slice: &Interval) -> Value {
        let mut body = match self.filter {
            Value::Object(m) => Value::Object(m.clone()),
            _ => json!({}),
        };
        body["interval"] = json!(slice.to_string());
        body
    }
}

/// Whether a job error means "run the slice again": the job is gone (404, expired) or failed on
/// the server's side. A job that is merely slow (still running after `max_wait`) is not
/// submitted again.
fn job_gone(e: &Error) -> bool {
    match e {
        Error::Status { status: 404, .. } => true,
        Error::JobFailed { state, .. } => {
            matches!(state.as_str(), "FAILED" | "CANCELLED" | "EXPIRED")
        }
        _ => false,
    }
}

pub(super) async fn conversations(
    job: &JobRun<'_>,
    interval: &Interval,
    slice_len: Duration,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), JobError> {
    let slices = interval
        .slices(slice_len)
        .map_err(|e| super::refuse(sink.out_path(), Refusal::Slices(e)))?;
    let count = slices.len();
    sink.report.slices = count;
    if sink.state.slice.is_none() {
        sink.state.slice = Some(SliceState {
            index: 0,
            start_bytes: sink.state.bytes,
            start_items: sink.state.items,
            next_job: None,
        });
    }
    // Each slice is run again at most once per run (a job that keeps failing is an error).
    let mut redone = vec![false; count];
    while sink.state.phase == Phase::Fetching {
        let Some(k) = sink.state.slice.as_ref().map(|s| s.index) else {
            break;
        };
        let Some(slice) = slices.get(k) else {
            return Err(super::refuse(sink.out_path(), Refusal::SliceOutside));
        };
        on_event(Event::SliceStarted {
            index: k,
            count,
            interval: *slice,
        });
        let (job_id, cursor) = match sink.state.position.clone() {
            Some(Position::Job { job_id, cursor }) => (job_id, cursor),
            _ => {
                let id = submit(job.client, job.jobs_path, &job.body(slice)).await?;
                sink.state.position = Some(Position::Job {
                    job_id: id.clone(),
                    cursor: None,
                });
                sink.save()?;
                on_event(Event::JobSubmitted {
                    slice: k,
                    job_id: id.clone(),
                });
                (id, None)
            }
        };
        let outcome = read_slice(job, &slices, interval, k, &job_id, cursor, sink, on_event).await;
        match outcome {
            Ok(()) => {
                // Recorded first: deleting the job before would make a resume redo the slice.
                let _ = delete(job.client, job.jobs_path, &job_id).await;
            }
            Err(JobError::Api(e)) if job_gone(&e) && !redone[k] && sink.can_restart_slice() => {
                redone[k] = true;
                sink.report.slices_redone += 1;
                on_event(Event::SliceRedone {
                    index: k,
                    reason: e.to_string(),
                });
                sink.restart_slice()?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits for slice `k`'s job, submits the next slice's, and writes the results this slice owns.
#[allow(clippy::too_many_arguments)]
async fn read_slice(
    job: &JobRun<'_>,
    slices: &[Interval],
    interval: &Interval,
    k: usize,
    job_id: &str,
    cursor: Option<String>,
    sink: &mut Sink,
    on_event: &mut impl FnMut(Event),
) -> Result<(), JobError> {
    wait_for(job.client, job.jobs_path, job_id, job.options).await?;
    // The next slice's job runs on the server while this one's results are read.
    let wants_next = sink
        .state
        .slice
        .as_ref()
        .is_some_and(|s| s.next_job.is_none());
    if let Some(next) = slices.get(k + 1).filter(|_| wants_next) {
        let id = submit(job.client, job.jobs_path, &job.body(next)).await?;
        if let Some(s) = sink.state.slice.as_mut() {
            s.next_job = Some((k + 1, id.clone()));
        }
        sink.save()?;
        on_event(Event::JobSubmitted {
            slice: k + 1,
            job_id: id,
        });
    }
    let mut pages = results(
        job.client,
        job.jobs_path,
        job_id,
        job.options.page_size,
        cursor,
    )
    .boxed();
    while let Some(page) = pages.try_next().await? {
        let mut items = page.items;
        let before = items.len();
        items.retain(|c| owner(slices, interval, c).is_none_or(|o| o == k));
        sink.report.left_to_other_slices += (before - items.len()) as u64;
        sink.write_items(&items)?;
        match page.next {
            Some(p) => sink.state.position = Some(p),
            None => sink.next_slice(k, slices.len()),
        }
        sink.page_done()?;
        on_event(sink.page_event());
        if sink.state.slice.as_ref().is_none_or(|s| s.index != k) {
            on_event(Event::SliceDone {
                index: k,
                count: slices.len(),
                items: sink.state.items,
            });
            return Ok(());
        }
    }
    // The results ended without a last page (an empty stream): the slice is done all the same.
    sink.next_slice(k, slices.len());
    sink.save()
}

/// The slice a conversation belongs to: the one its start falls in, clamped to the interval (a
/// conversation that began before the interval and runs into it belongs to the first slice).
/// `None` when it has no readable `conversationStart` (it is kept).
fn owner(slices: &[Interval], interval: &Interval, conversation: &Value) -> Option<usize> {
    let start: Timestamp = conversation
        .get("conversationStart")?
        .as_str()?
        .parse()
        .ok()?;
    let last = interval
        .end_ts()
        .checked_sub(jiff::SignedDuration::from_nanos(1))
        .ok()?;
    let t = start.clamp(interval.start_ts(), last);
    Some(slices.partition_point(|s| s.end_ts() <= t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_that_is_gone_or_failed_is_submitted_again() {
        let failed = |state: &str| Error::JobFailed {
            job_id: "j".into(),
            state: state.into(),
        };
        assert!(job_gone(&failed("EXPIRED")) && job_gone(&failed("FAILED")));
        assert!(!job_gone(&failed(
            "PENDING (still running after 2h; gave up)"
        )));
        let status = |status| Error::Status {
            method: "GET".into(),
            path: "/x".into(),
            status,
            body: String::new(),
        };
        assert!(job_gone(&status(404)) && !job_gone(&status(400)));
    }

    #[test]
    fn a_conversation_belongs_to_the_slice_it_started_in() {
        let week: Interval = "2024-01-01/2024-01-08".parse().unwrap();
        let days = week.slices(Duration::from_secs(86_400)).unwrap();
        let at = |t: &str| json!({"conversationStart": t});
        assert_eq!(
            owner(&days, &week, &at("2024-01-01T00:00:00.000Z")),
            Some(0)
        );
        assert_eq!(
            owner(&days, &week, &at("2024-01-02T23:59:59.999Z")),
            Some(1)
        );
        assert_eq!(owner(&days, &week, &at("2024-01-03T00:00:00Z")), Some(2));
        // Started before the interval: the first slice; at or after its end: the last.
        assert_eq!(owner(&days, &week, &at("2023-12-31T23:50:00Z")), Some(0));
        assert_eq!(owner(&days, &week, &at("2024-01-08T00:00:00Z")), Some(6));
        assert_eq!(owner(&days, &week, &json!({"id": 1})), None);
        assert_eq!(owner(&days, &week, &at("yesterday")), None);
    }
}
