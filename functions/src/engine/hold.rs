//! Ordered delivery: on a queue that keeps order (SQS FIFO, the room as message group), a job
//! keeps its queue message until it is done. A run that cannot finish does not hand its rest
//! on, which would queue it behind the room's later messages: it writes what is left to the
//! job's progress record and reports the message for redelivery, and the next receive of the
//! same message goes on from there. SQS gives out none of the room's later messages meanwhile.
//!
//! Failed posts wait the same way: the message comes back after the retry delay. Each failing
//! id carries the time of its first failure ([`Retries`]) until it is done, whether it was
//! tried again or not; once the retry budget has passed for it, it goes to the dead-letter
//! queue with the reason, and the room's next message may start once nothing else is left.

use super::batch::{Batch, Engine, JobFailure, Ran};
use super::handoff::{self, chunk_for_queue};
use super::stats::FanoutStats;
use crate::domain::job::stable_hash;
use crate::domain::{Checkpoint, Handoff, Job, Retries, Target};
use std::collections::HashSet;
use std::time::Duration;

/// Where the next receive of a held job starts: the ids left pending first, then the rest of
/// the target (none once it is read to its end).
pub(super) fn resume(held: Handoff, retry: Option<Retries>) -> Checkpoint {
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

/// Updates the failures with what a run left: an id no longer left is done and forgotten, a
/// new failure starts its clock, an id still left keeps its own (tried again or not).
fn update(mut retries: Retries, left: &Handoff, now: i64) -> Retries {
    let still: HashSet<&String> = left
        .later
        .iter()
        .chain(&left.throttled)
        .chain(&left.transient)
        .collect();
    retries.failing.retain(|id, _| still.contains(id));
    for id in left.throttled.iter().chain(&left.transient) {
        let since = retries.failing.entry(id.clone()).or_insert(now);
        // A start in the future (a clock that went back) counts from now.
        *since = (*since).min(now);
    }
    let page_failed = left.pages_failed();
    retries.pages_since = page_failed.then(|| retries.pages_since.unwrap_or(now).min(now));
    // Throttling holds the attempt, as it holds a retry job's: it slows the sender down.
    if page_failed || !left.transient.is_empty() {
        retries.attempt = retries.attempt.saturating_add(1);
    } else if retries.failing.is_empty() {
        retries.attempt = 0;
    }
    retries
}

impl Engine {
    /// Ends a run on a queue that keeps order: finished if nothing is left; otherwise what is
    /// left is written to the progress record and the job is held, to come back at once (more
    /// to read or post) or after the retry delay (only failures left). `retries` are the
    /// failures the run began with.
    pub(super) async fn hold(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        job: &Job,
        mut left: Handoff,
        retries: Retries,
    ) -> Result<Ran, JobFailure> {
        let now = match left.planned_at {
            0 => self.now_ms(),
            at => at,
        };
        let mut retries = update(retries, &left, now);
        let stats = self
            .give_up(batch, job, &mut left, &mut retries, now)
            .await?;
        if left.is_empty() {
            self.mark_finished(batch, owner, key).await;
            return Ok(stats.into());
        }
        let page_failed = left.pages_failed();
        let more_now = !left.later.is_empty() || (left.rest.is_some() && !page_failed);
        let delay = match more_now {
            true => Duration::ZERO,
            false => handoff::retry_delay(self.config.retry_delay_base, retries.attempt.max(1)),
        };
        let held = Checkpoint {
            handoff: Some(left),
            retry: Some(retries),
            ..Checkpoint::default()
        };
        self.save_by(batch, owner, key, &held).await?;
        // The message may come back at once: let that receive take the record now.
        self.release_by(batch, owner, key).await;
        Ok(Ran {
            stats,
            held: Some(delay),
        })
    }

    /// Parks in the dead-letter queue, with the reason, every id that has been failing for the
    /// retry budget (whichever list it is in now) and the rest if the pages have, and takes
    /// them out of `left` and `retries`. Each parked job is named after what it holds, so that
    /// a run redone (the hold not written) parks the same ids under the same name, and other
    /// ids under another: none shadows another's progress record.
    async fn give_up(
        &self,
        batch: &Batch,
        job: &Job,
        left: &mut Handoff,
        retries: &mut Retries,
        now: i64,
    ) -> Result<FanoutStats, JobFailure> {
        let budget = self.config.retry_budget;
        let age = |since: i64| Duration::from_millis(now.saturating_sub(since).unsigned_abs());
        let expired: HashSet<String> = retries
            .failing
            .iter()
            .filter(|(_, since)| age(**since) >= budget)
            .map(|(id, _)| id.clone())
            .collect();
        let mut parked = Vec::new();
        // A `connections` job's rest is parked by name, with the failures below.
        let mut rest_ids = Vec::new();
        if let Some(since) = retries.pages_since
            && age(since) >= budget
            && let Some(rest) = left.rest.take_if(|rest| rest.after_failure)
        {
            retries.pages_since = None;
            if let Target::Connections { .. } = job.target {
                rest_ids = handoff::ids_after(job, rest.cursor.as_deref());
                for id in &rest_ids {
                    retries.failing.entry(id.clone()).or_insert(since);
                }
            } else {
                let why = handoff::why_pages(left.forbidden);
                let name = format!(
                    "gc{:016x}",
                    stable_hash(rest.cursor.as_deref().unwrap_or("").as_bytes())
                );
                let rest_job = Job {
                    cursor: rest.cursor,
                    hop: Some(job.child_hop(&name)),
                    attempt: retries.attempt,
                    retry_since: Some(since),
                    ..job.clone()
                };
                let reason = handoff::budget_spent(budget, why, age(since), retries.attempt);
                parked.push((rest_job, reason, 0));
            }
        }
        let take = |ids: &mut Vec<String>| {
            let (gone, kept) = std::mem::take(ids)
                .into_iter()
                .partition(|id| expired.contains(id));
            *ids = kept;
            gone
        };
        let failures: [(Vec<String>, &str); 2] = [
            (take(&mut left.throttled), handoff::WHY_THROTTLED),
            (
                {
                    let mut failed = take(&mut left.transient);
                    failed.extend(take(&mut left.later));
                    failed.extend(rest_ids);
                    failed
                },
                handoff::why_posts(left.forbidden),
            ),
        ];
        for (ids, why) in failures {
            for ids in chunk_for_queue(job, ids) {
                let since = ids
                    .iter()
                    .filter_map(|id| retries.failing.remove(id))
                    .min()
                    .unwrap_or(now);
                let name = format!("g{:016x}", stable_hash(ids.join("\n").as_bytes()));
                let count = ids.len() as u64;
                let retry_job = Job {
                    attempt: retries.attempt,
                    retry_since: Some(since),
                    ..handoff::connections_job(job, ids, job.child_hop(&name))
                };
                let reason = handoff::budget_spent(budget, why, age(since), retries.attempt);
                parked.push((retry_job, reason, count));
            }
        }
        let mut stats = FanoutStats::default();
        for (parked_job, reason, ids) in parked {
            stats += self.give_up_on(batch, &parked_job, &reason, ids).await?;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn an_id_keeps_its_first_failure_until_it_is_done_tried_again_or_not() {
        let left = Handoff {
            throttled: ids(&["a"]),
            transient: ids(&["b"]),
            ..Handoff::default()
        };
        let first = update(Retries::default(), &left, 100);
        assert_eq!(first.failing.get("a"), Some(&100));
        assert_eq!(first.attempt, 1, "a 5xx grows the wait");
        // `a` waits untried, `b` failed again, `c` is new; none is done.
        let left = Handoff {
            later: ids(&["a"]),
            transient: ids(&["b", "c"]),
            ..Handoff::default()
        };
        let second = update(first, &left, 200);
        assert_eq!(
            second
                .failing
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            [("a", 100), ("b", 100), ("c", 200)]
        );
        // All done but `c`, which is not tried: `a` and `b` are forgotten.
        let left = Handoff {
            later: ids(&["c"]),
            ..Handoff::default()
        };
        let third = update(second, &left, 300);
        assert_eq!(third.failing.keys().collect::<Vec<_>>(), ["c"]);
        let done = update(third, &Handoff::default(), 400);
        assert_eq!(
            done,
            Retries::default(),
            "nothing failing: the attempt starts again"
        );
    }
}
