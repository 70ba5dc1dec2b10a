//! What a run hands back when it ends, as jobs: the rest of the target, the posts not made
//! (at once, same attempt) and the transient failures (after a growing delay, as a later
//! attempt, while the retry budget lasts; past it, to the dead-letter queue with their ids).
//!
//! Every job handed off has a hop named after its place among its parent's hand-offs, so a
//! hand-off written twice (a run redone from its checkpoint) is the same job twice: the second
//! finds the first's progress record and does nothing. Chains never fork.

use crate::domain::job::MAX_JOB_BYTES;
use crate::domain::{Handoff, Job, Rest, Target};
use crate::ports::MAX_QUEUE_DELAY;
use rand::Rng;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// One message of a hand-off.
#[derive(Debug, Clone)]
pub(super) enum Planned {
    Enqueue {
        job: Job,
        delay: Duration,
    },
    /// Past the retry budget: these ids are given up, with the reason.
    DeadLetter {
        job: Job,
        reason: String,
        ids: u64,
    },
}

/// Why a job refused with 403 is retried, and dead-lettered once the budget is spent.
const FORBIDDEN: &str = "the management API answered 403 Forbidden (does the worker's role allow \
     execute-api:ManageConnections on MANAGEMENT_ENDPOINT's API?)";

/// Why a job's rest is retried (or parked): its pages could not be read, or 403.
pub(super) fn why_pages(forbidden: bool) -> &'static str {
    if forbidden {
        FORBIDDEN
    } else {
        "its pages could not be read"
    }
}

/// Why failed posts are retried (or parked): 5xx and timeouts, or 403.
pub(super) fn why_posts(forbidden: bool) -> &'static str {
    if forbidden {
        FORBIDDEN
    } else {
        "posts kept failing"
    }
}

/// Why throttled posts are retried (or parked).
pub(super) const WHY_THROTTLED: &str = "API Gateway kept throttling";

/// `parent` retargeted at exactly these ids of its room, as hop `hop`: a retry of them.
pub(super) fn connections_job(parent: &Job, ids: Vec<String>, hop: String) -> Job {
    Job {
        target: Target::Connections {
            ids,
            room: parent.target.room().cloned(),
        },
        hop: Some(hop),
        ..parent.retarget(Target::All)
    }
}

/// A `connections` job's ids after `cursor` (one of them), all of them without one.
pub(super) fn ids_after(job: &Job, cursor: Option<&str>) -> Vec<String> {
    let Target::Connections { ids, .. } = &job.target else {
        return Vec::new();
    };
    let from = cursor.map_or(0, |cursor| {
        ids.iter()
            .position(|id| id == cursor)
            .map_or(ids.len(), |at| at + 1)
    });
    ids[from..].to_vec()
}

/// What retry delays and the budget are measured with.
pub(super) struct Policy {
    pub now_ms: i64,
    pub retry_budget: Duration,
    pub retry_delay_base: Duration,
}

/// The jobs and dead letters that carry out `handoff` for `job`.
///
/// What a hand-off inherits: a `connections` job is itself a retry, so what it hands back
/// keeps its attempt and `retrySince`; what a `room` or `all` job hands back is new work, so
/// the budget of a failure starts with that failure, not with an earlier one elsewhere in the
/// room (the rest of a room after a failed page read carries that failure's clock on).
pub(super) fn plan(job: &Job, handoff: &Handoff, policy: &Policy) -> Vec<Planned> {
    let mut planned = Vec::new();
    let fresh = Job {
        attempt: 0,
        retry_since: None,
        ..job.clone()
    };
    let parent = match job.target {
        Target::Connections { .. } => job,
        _ => &fresh,
    };
    let mut later = handoff.later.clone();
    let mut transient = handoff.transient.clone();
    let mut rest = handoff.rest.as_ref();
    // A `connections` job's rest goes on by name, in jobs that fit a message and keep the
    // job's retry clock: the job itself, cursor and all, may be as big as a message.
    if let (
        Some(Rest {
            cursor,
            after_failure,
        }),
        Target::Connections { .. },
    ) = (rest, &job.target)
    {
        let ids = ids_after(job, cursor.as_deref());
        match after_failure {
            true => transient.extend(ids),
            false => later.extend(ids),
        }
        rest = None;
    }
    if let Some(Rest {
        cursor,
        after_failure,
    }) = rest
    {
        let from = if *after_failure { job } else { &fresh };
        let rest = Job {
            cursor: cursor.clone(),
            hop: Some(job.child_hop("c")),
            ..from.clone()
        };
        planned.push(if *after_failure {
            retry(rest, policy, why_pages(handoff.forbidden), Growth::Grow)
        } else {
            Planned::Enqueue {
                job: rest,
                delay: Duration::ZERO,
            }
        });
    }
    let as_connections =
        |ids: Vec<String>, step: String| connections_job(parent, ids, job.child_hop(&step));
    for (i, ids) in chunk_for_queue(job, later).into_iter().enumerate() {
        planned.push(Planned::Enqueue {
            job: as_connections(ids, format!("l{i}")),
            delay: Duration::ZERO,
        });
    }
    for (i, ids) in chunk_for_queue(job, handoff.throttled.clone())
        .into_iter()
        .enumerate()
    {
        planned.push(retry(
            as_connections(ids, format!("t{i}")),
            policy,
            WHY_THROTTLED,
            Growth::Hold,
        ));
    }
    for (i, ids) in chunk_for_queue(job, transient).into_iter().enumerate() {
        planned.push(retry(
            as_connections(ids, format!("r{i}")),
            policy,
            why_posts(handoff.forbidden),
            Growth::Grow,
        ));
    }
    planned
}

/// Whether a retry counts as another attempt (growing the delay) or holds its place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Growth {
    Grow,
    Hold,
}

/// `job` tried again after a delay, or to the dead-letter queue once the retry budget is spent.
fn retry(mut job: Job, policy: &Policy, why: &str, growth: Growth) -> Planned {
    if growth == Growth::Grow {
        job.attempt = job.attempt.saturating_add(1);
    }
    // A start in the future (another producer's clock) counts from now.
    let since = job.retry_since.unwrap_or(policy.now_ms).min(policy.now_ms);
    job.retry_since = Some(since);
    let spent =
        Duration::from_millis(u64::try_from(policy.now_ms.saturating_sub(since)).unwrap_or(0));
    if spent >= policy.retry_budget {
        let ids = match &job.target {
            Target::Connections { ids, .. } => ids.len() as u64,
            _ => 0,
        };
        let reason = budget_spent(policy.retry_budget, why, spent, job.attempt);
        return Planned::DeadLetter { job, reason, ids };
    }
    let delay = retry_delay(policy.retry_delay_base, job.attempt.max(1));
    Planned::Enqueue { job, delay }
}

/// Why deliveries went to the dead-letter queue once the retry budget was spent.
pub(super) fn budget_spent(budget: Duration, why: &str, spent: Duration, attempts: u32) -> String {
    format!(
        "retry budget of {} s spent: {why} for {} s over {attempts} attempts",
        budget.as_secs(),
        spent.as_secs(),
    )
}

/// The wait before attempt `attempt` comes back: `base * 2^(attempt-1)` capped at SQS's
/// 900 s, half of it fixed and half jittered, so retries after an outage spread out but never
/// come back at once.
pub(super) fn retry_delay(base: Duration, attempt: u32) -> Duration {
    retry_delay_within(base, attempt, MAX_QUEUE_DELAY)
}

/// [`retry_delay`] with its growth stopped at `cap` (still half jittered there).
pub(super) fn retry_delay_within(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(cap);
    let half = ceiling / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

pub(super) use crate::ports::by;

/// Runs `call` until it succeeds, fails for good (`retryable` says no), or `until` comes,
/// backing off between tries.
pub(super) async fn with_retries<T, E, F, Fut>(
    until: Instant,
    base: Duration,
    retryable: impl Fn(&E) -> bool,
    mut call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<tokio::time::error::Elapsed>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match timeout_at(until, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if retryable(&error) => error,
            Ok(Err(error)) => return Err(error),
            Err(elapsed) => return Err(E::from(elapsed)),
        };
        let wait = super::backoff::full_jitter(base, base * 40, tries);
        if Instant::now() + wait >= until {
            return Err(error);
        }
        tokio::time::sleep(wait).await;
    }
}

/// Splits ids into lists that each fit in one queue message alongside the rest of `template`.
pub(super) fn chunk_for_queue(template: &Job, ids: Vec<String>) -> Vec<Vec<String>> {
    // Room for the ids: the message limit less the job without them (and with the longest
    // hop and attempt fields a hand-off adds), less slack for the separators' rounding.
    let empty = Job {
        target: Target::Connections {
            ids: Vec::new(),
            room: template.target.room().cloned(),
        },
        cursor: None,
        hop: Some("0".repeat(crate::domain::job::MAX_HOP_BYTES)),
        attempt: u32::MAX,
        retry_since: Some(i64::MAX),
        ..template.clone()
    };
    let budget = MAX_JOB_BYTES
        .saturating_sub(empty.to_json().len() + 64)
        .max(1);
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for id in ids {
        let cost = serde_json::to_string(&id).map_or(id.len() + 3, |quoted| quoted.len() + 1);
        if !current.is_empty() && used + cost > budget {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(id);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}
