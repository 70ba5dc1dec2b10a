//! How far a job has got: the progress record a worker writes as it goes, so that a job
//! delivered again (SQS at-least-once, an invocation killed at its deadline or by a crash, a
//! hand-off that failed) resumes where it was instead of starting over.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job's progress, as its record holds it. A fresh job has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Where to go on reading the target: the store's cursor right after the last id taken.
    /// Absent: from the job's own cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Ids taken but not yet settled (in flight, or waiting to be handed back): a run that
    /// resumes posts these first. At most the in-flight limit plus what waits for hand-off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// The run has ended and this is what it hands back; written before the first hand-off is
    /// enqueued, so a run that dies while enqueueing is redone from here, to the same jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// The job splits into parts, planned so: written before the first part is enqueued, so a
    /// job redelivered mid-split enqueues exactly these parts again (whatever the settings are
    /// now, and whatever its first page now says), never posts itself beside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Everything is handed off: a redelivered job has nothing left to do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
    /// On a queue that keeps order, a job goes on at the next receive of its own message
    /// instead of handing on: the target is read to its end, and only `pending` is left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_all: bool,
    /// On a queue that keeps order, the failures the job carries from one receive to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retries>,
}

/// How a job was split into parts that run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Split {
    /// An `all` job, into Scan segments.
    Scan { total: u32 },
    /// A room, into ranges of ids.
    Room { ways: u32 },
}

/// A held job's failures: since when each id has been failing (kept while it is not done,
/// tried again or not), and its pages; the retry budget runs per id from there. At most the
/// ids a run hands back (`MAX_HANDED_BACK`, and its bytes) and those in flight when it ended
/// (`FANOUT_CONCURRENCY`), so the record stays well under DynamoDB's 400 KB (a test in
/// engine/feed.rs computes the largest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Runs in a row with failures that grow the wait (5xx, timeouts, unreadable pages): the
    /// retry delay grows with it. Throttling holds it, as it holds a retry job's attempt.
    #[serde(default)]
    pub attempt: u32,
    /// Each failing id with the epoch ms of its first failure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failing: BTreeMap<String, i64>,
    /// Epoch ms since when the pages cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_since: Option<i64>,
}

/// What a run hands back to the queue when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handoff {
    /// The part of the target not yet read, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<Rest>,
    /// Posts not made or not finished (the deadline came first): tried again at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<String>,
    /// Posts that got nothing but 429s until the deadline: tried again soon, at the same
    /// attempt (throttling slows the sender, it does not grow the delay), while the retry
    /// budget lasts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled: Vec<String>,
    /// Posts that failed transiently (5xx, timeouts): tried again after a growing delay, while
    /// the retry budget lasts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transient: Vec<String>,
    /// The management API refused the worker (403): the rest and the transient posts wait for
    /// its permission to be fixed, and say so if they reach the dead-letter queue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forbidden: bool,
    /// When the hand-off was planned (epoch ms): a run that redoes it plans it as of then, so
    /// it enqueues the same jobs.
    #[serde(default)]
    pub planned_at: i64,
}

/// The part of a room or table a run did not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rest {
    /// From this cursor; absent, from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The store failed: the rest is tried again after a growing delay, as a later attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_failure: bool,
}

impl Handoff {
    /// The rest is left because its pages could not be read.
    pub fn pages_failed(&self) -> bool {
        self.rest.as_ref().is_some_and(|rest| rest.after_failure)
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_none()
            && self.later.is_empty()
            && self.throttled.is_empty()
            && self.transient.is_empty()
    }
}

impl Checkpoint {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("checkpoints always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_omits_what_is_empty() {
        assert_eq!(Checkpoint::default().to_json(), "{}");
        let checkpoint = Checkpoint {
            cursor: Some("c".into()),
            pending: vec!["a".into()],
            handoff: Some(Handoff {
                transient: vec!["b".into()],
                ..Handoff::default()
            }),
            split: Some(Split::Room { ways: 4 }),
            finished: false,
            read_all: true,
            retry: Some(Retries {
                attempt: 2,
                failing: BTreeMap::from([("b".to_owned(), 7)]),
                pages_since: Some(9),
            }),
        };
        let again: Checkpoint = serde_json::from_str(&checkpoint.to_json()).unwrap();
        assert_eq!(again, checkpoint);
        assert!(
            checkpoint
                .to_json()
                .contains(r#""split":{"kind":"room","ways":4}"#)
        );
    }
}
