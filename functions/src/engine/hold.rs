//! Ordered delivery: on a queue that keeps order (SQS FIFO, the room as message group), a job
//! keeps its queue message until it is done. A run that cannot finish does not hand its rest
//! on, which would queue it behind the room's later messages: it writes what is left to the
//! job's progress record and reports the message for redelivery, and the next receive of the
//! same message goes on from there. SQS gives out none of the room's later messages meanwhile.
//!
//! Failed posts wait the same way: the message comes back after the retry delay, while the
//! retry budget lasts (the clock is in the progress record, [`RetryClock`]); once it is spent,
//! their ids go to the dead-letter queue with the reason and the room's next message may start.

use super::batch::{Batch, Engine, JobFailure, Ran};
use super::handoff::{self, FORBIDDEN, by, chunk_for_queue, with_retries};
use super::stats::FanoutStats;
use crate::domain::{Checkpoint, Handoff, Job, RetryClock, Target};
use crate::ports::StoreError;
use std::collections::HashSet;
use std::time::Duration;
use tracing::warn;

/// What a held job was retrying as a run began: the ids that failed in its last run and
/// whether its pages did. The retry clock goes on only while one of them is still failing (or
/// not yet tried again), so a room under a steady trickle of failures, each soon resolved,
/// never runs one clock out.
#[derive(Debug, Default)]
pub(super) struct Retrying {
    ids: HashSet<String>,
    pages: bool,
}

impl Retrying {
    pub(super) fn of(held: &Handoff) -> Self {
        Self {
            ids: held
                .throttled
                .iter()
                .chain(&held.transient)
                .cloned()
                .collect(),
            pages: held.rest.as_ref().is_some_and(|rest| rest.after_failure),
        }
    }
}

/// Where the next receive of a held job starts: the ids left pending first, then the rest of
/// the target (none once it is read to its end).
pub(super) fn resume(held: Handoff, retry: Option<RetryClock>) -> Checkpoint {
    let mut pending = held.later;
    pending.extend(held.throttled);
    pending.extend(held.transient);
    Checkpoint {
        cursor: held.rest.as_ref().and_then(|rest| rest.cursor.clone()),
        pending,
        read_all: held.rest.is_none(),
        retry,
        ..Checkpoint::default()
    }
}

impl Engine {
    /// Ends a run on a queue that keeps order: finished if nothing is left; otherwise what is
    /// left is written to the progress record and the job is held, to come back at once (more
    /// to read or post) or after the retry delay (only failures left). `clock` is the retry
    /// clock the run began with, and what it was retrying (`None`: not known, so the clock
    /// goes on).
    pub(super) async fn hold(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        job: &Job,
        mut left: Handoff,
        clock: (Option<RetryClock>, Option<&Retrying>),
    ) -> Result<Ran, JobFailure> {
        let (retry, before) = clock;
        let now = match left.planned_at {
            0 => self.now_ms(),
            at => at,
        };
        let page_failed = left.rest.as_ref().is_some_and(|rest| rest.after_failure);
        let failing = page_failed || !left.throttled.is_empty() || !left.transient.is_empty();
        // Throttling holds the attempt, as a hand-off's retry does: it slows the sender down.
        let grows = page_failed || !left.transient.is_empty();
        let goes_on = before.is_none_or(|before| {
            (page_failed && before.pages)
                || left
                    .throttled
                    .iter()
                    .chain(&left.transient)
                    .chain(&left.later)
                    .any(|id| before.ids.contains(id))
        });
        let mut retry = retry.filter(|_| goes_on);
        if failing {
            let clock = retry.get_or_insert(RetryClock {
                attempt: 0,
                since: now,
            });
            // A start in the future (a clock that went back) counts from now.
            clock.since = clock.since.min(now);
            if grows {
                clock.attempt = clock.attempt.saturating_add(1);
            }
        }
        let mut stats = FanoutStats::default();
        if let Some(clock) = retry {
            let spent = Duration::from_millis(now.saturating_sub(clock.since).unsigned_abs());
            if spent >= self.config.retry_budget {
                stats += self
                    .give_up(batch, job, &mut left, (clock, spent), before)
                    .await?;
                // What is still failing failed for the first time: its clock starts now.
                let page_failed = left.rest.as_ref().is_some_and(|rest| rest.after_failure);
                let failing =
                    page_failed || !left.throttled.is_empty() || !left.transient.is_empty();
                let grows = page_failed || !left.transient.is_empty();
                retry = failing.then_some(RetryClock {
                    attempt: u32::from(grows),
                    since: now,
                });
            }
        }
        if left.is_empty() {
            self.mark_finished(batch, owner, key).await;
            return Ok(stats.into());
        }
        let page_failed = left.rest.as_ref().is_some_and(|rest| rest.after_failure);
        let more_now = !left.later.is_empty() || (left.rest.is_some() && !page_failed);
        let delay = match (more_now, retry) {
            (false, Some(clock)) => {
                handoff::retry_delay(self.config.retry_delay_base, clock.attempt.max(1))
            }
            _ => Duration::ZERO,
        };
        let held = Checkpoint {
            handoff: Some(left),
            retry,
            ..Checkpoint::default()
        };
        with_retries(
            batch.finish_by,
            self.config.backoff_base,
            StoreError::is_transient,
            || self.save(key, owner, &held),
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => JobFailure::LeaseLost,
            other => JobFailure::Progress(other),
        })?;
        // The message may come back at once: let that receive take the record now.
        let release = self.progress.release(key, owner);
        if let Err(error) = by::<_, StoreError, _>(batch.finish_by, release).await {
            warn!(%error, "could not release the progress record");
        }
        Ok(Ran {
            stats,
            held: Some(delay),
        })
    }

    /// Parks what keeps failing past the retry budget in the dead-letter queue, with the
    /// reason: the failed posts as `connections` jobs, an unreadable rest as the job from its
    /// cursor. Each is named after the clock it gave up on, so that a later give-up of the same
    /// job is another job, not a duplicate of this one.
    /// What has failed since the clock started is parked: the ids the run began retrying
    /// (all, when that is not known) and the rest if the pages kept failing; a first failure
    /// stays, under a clock of its own.
    async fn give_up(
        &self,
        batch: &Batch,
        job: &Job,
        left: &mut Handoff,
        (clock, spent): (RetryClock, Duration),
        before: Option<&Retrying>,
    ) -> Result<FanoutStats, JobFailure> {
        let budget = self.config.retry_budget;
        let tag = format!("{}x{}", clock.since.unsigned_abs(), clock.attempt);
        let long_failing = |id: &String| before.is_none_or(|before| before.ids.contains(id));
        let pages_long_failing = before.is_none_or(|before| before.pages);
        let mut parked = Vec::new();
        if let Some(rest) = left
            .rest
            .take_if(|rest| rest.after_failure && pages_long_failing)
        {
            let why = if left.forbidden {
                FORBIDDEN
            } else {
                "its pages could not be read"
            };
            let rest_job = Job {
                cursor: rest.cursor,
                hop: Some(job.child_hop(&format!("g{tag}c"))),
                attempt: clock.attempt,
                retry_since: Some(clock.since),
                ..job.clone()
            };
            parked.push((
                rest_job,
                handoff::budget_spent(budget, why, spent, clock.attempt),
                0,
            ));
        }
        let (throttled, still_throttled) = std::mem::take(&mut left.throttled)
            .into_iter()
            .partition(long_failing);
        let (transient, still_transient) = std::mem::take(&mut left.transient)
            .into_iter()
            .partition(long_failing);
        left.throttled = still_throttled;
        left.transient = still_transient;
        let failures: [(Vec<String>, &str, &str); 2] = [
            (throttled, "API Gateway kept throttling", "t"),
            (
                transient,
                if left.forbidden {
                    FORBIDDEN
                } else {
                    "posts kept failing"
                },
                "r",
            ),
        ];
        for (ids, why, step) in failures {
            for (i, ids) in chunk_for_queue(job, ids).into_iter().enumerate() {
                let count = ids.len() as u64;
                let retry_job = Job {
                    target: Target::Connections {
                        ids,
                        room: job.target.room().cloned(),
                    },
                    hop: Some(job.child_hop(&format!("g{tag}{step}{i}"))),
                    attempt: clock.attempt,
                    retry_since: Some(clock.since),
                    ..job.retarget(Target::All)
                };
                parked.push((
                    retry_job,
                    handoff::budget_spent(budget, why, spent, clock.attempt),
                    count,
                ));
            }
        }
        let mut stats = FanoutStats::default();
        for (parked_job, reason, ids) in parked {
            stats += self.give_up_on(batch, &parked_job, &reason, ids).await?;
        }
        Ok(stats)
    }
}
