//! The ids of one job run, from the store to the lanes, and what became of each: the state a
//! checkpoint is a snapshot of.
//!
//! Ids come in two kinds: `replay` (the pending ids of an earlier run, posted first) and page
//! ids, taken in the store's order, so that "everything up to the last id taken" is a cursor.
//! An id taken is in flight until its lane settles it: done (delivered, gone, refused), or
//! handed back (`later`, `transient`). A checkpoint's `pending` is every id taken or replayed
//! and not done; the ids of the page not yet taken are covered by the cursor.
//!
//! Lanes may run at most `window` takes ahead of the last durable checkpoint (`allow`), replayed
//! ids included, so a crash re-posts at most that many plus what was in flight.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

/// Ids waiting to be handed back before the run stops taking more: an outage ends the run
/// early instead of growing checkpoints and the hand-off (4,096 of API Gateway's ids is about
/// 80 KB). The progress record holds them twice (in a list, and with the time each began to
/// fail), so their bytes are bounded too, for longer ids.
pub(super) const MAX_HANDED_BACK: usize = 4_096;
pub(super) const MAX_HANDED_BACK_BYTES: usize = 64 * 1024;

pub(super) struct Feed {
    state: Mutex<State>,
    /// Ids were added, the take limit was raised, or the feed closed.
    filled: Notify,
    /// The queue of page ids ran empty.
    drained: Notify,
    /// An id was taken (the checkpointer watches the count).
    taken: Notify,
}

#[derive(Default)]
struct State {
    replay: VecDeque<String>,
    page: VecDeque<String>,
    /// The last page id taken: the cursor position.
    last_taken: Option<String>,
    /// Takes so far (replayed and page ids), and how many are allowed before the next
    /// checkpoint.
    taken_count: usize,
    allowed: usize,
    in_flight: HashSet<String>,
    later: Vec<String>,
    throttled: Vec<String>,
    transient: Vec<String>,
    /// The bytes of `later`, `throttled` and `transient`.
    handed_back_bytes: usize,
    /// No more ids will be pushed.
    closed: bool,
    /// Lanes take nothing more (deadline, lost lease, too much to hand back).
    halted: bool,
    /// The run is over: every lane has ended.
    finished: bool,
}

/// How a lane settled an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Done,
    /// Not posted, or abandoned at the backstop: handed back at once.
    Later,
    /// Posted, with no answer but 429s until the deadline.
    Throttled,
    /// 5xx or timeouts past this run's retries: handed back as a later attempt.
    Transient,
}

/// A consistent view of the feed for a checkpoint.
pub(super) struct Snapshot {
    pub last_taken: Option<String>,
    pub pending: Vec<String>,
    pub taken_count: usize,
}

/// What the feed holds when the run ends.
pub(super) struct Leftovers {
    pub last_taken: Option<String>,
    /// Page ids never taken.
    pub untaken: Vec<String>,
    /// Handed back at the same attempt: replayed ids not taken, ids in flight at the end
    /// (lanes that were aborted), and lanes' `later`.
    pub later: Vec<String>,
    pub throttled: Vec<String>,
    pub transient: Vec<String>,
}

impl Feed {
    pub fn new(replay: Vec<String>, window: usize) -> Self {
        Self {
            state: Mutex::new(State {
                replay: replay.into(),
                allowed: window.max(1),
                ..State::default()
            }),
            filled: Notify::new(),
            drained: Notify::new(),
            taken: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, ids: Vec<String>) {
        self.lock().page.extend(ids);
        self.filled.notify_waiters();
    }

    /// No more ids will come: lanes finish once the feed is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_waiters();
    }

    /// Lanes take nothing more.
    pub fn halt(&self) {
        self.lock().halted = true;
        self.filled.notify_waiters();
        self.drained.notify_waiters();
        self.taken.notify_waiters();
    }

    pub fn halted(&self) -> bool {
        self.lock().halted
    }

    /// Every lane has ended: the checkpointer stops.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.taken.notify_waiters();
    }

    pub fn finished(&self) -> bool {
        self.lock().finished
    }

    /// Ids waiting for a lane: replayed and page ids.
    pub fn queued(&self) -> usize {
        let state = self.lock();
        state.replay.len() + state.page.len()
    }

    /// A checkpoint covering the first `through` takes is durable: `window` more may go.
    pub fn allow(&self, through: usize, window: usize) {
        let mut state = self.lock();
        state.allowed = state.allowed.max(through + window.max(1));
        drop(state);
        self.filled.notify_waiters();
    }

    /// Waits until the page queue is empty; `false` if `stop_at` came or the feed halted first.
    pub async fn drained(&self, stop_at: Instant) -> bool {
        loop {
            let notified = self.drained.notified();
            {
                let state = self.lock();
                if state.halted {
                    return false;
                }
                if state.page.is_empty() {
                    return true;
                }
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until(stop_at) => return false,
            }
        }
    }

    /// Waits until more than `count` ids have been taken, or the run finished or halted.
    pub async fn taken_beyond(&self, count: usize) {
        loop {
            let notified = self.taken.notified();
            {
                let state = self.lock();
                if state.taken_count > count || state.finished || state.halted {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until the run finished.
    pub async fn until_finished(&self) {
        loop {
            let notified = self.taken.notified();
            if self.lock().finished {
                return;
            }
            notified.await;
        }
    }

    /// The next id, now in flight; `None` once the feed is closed and empty, halted, or at
    /// `stop_at`.
    pub async fn take(&self, stop_at: Instant) -> Option<String> {
        loop {
            let notified = self.filled.notified();
            {
                let mut state = self.lock();
                if state.halted {
                    return None;
                }
                // A held job may replay thousands of ids: they count against the window too.
                if state.taken_count < state.allowed
                    && let Some(id) = state.replay.pop_front()
                {
                    state.taken_count += 1;
                    state.in_flight.insert(id.clone());
                    drop(state);
                    self.taken.notify_waiters();
                    return Some(id);
                }
                if state.taken_count < state.allowed
                    && let Some(id) = state.page.pop_front()
                {
                    if state.page.is_empty() {
                        self.drained.notify_waiters();
                    }
                    state.taken_count += 1;
                    state.last_taken = Some(id.clone());
                    state.in_flight.insert(id.clone());
                    drop(state);
                    self.taken.notify_waiters();
                    return Some(id);
                }
                if state.closed && state.page.is_empty() && state.replay.is_empty() {
                    return None;
                }
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until(stop_at) => return None,
            }
        }
    }

    pub fn settle(&self, id: String, settled: Settled) {
        let mut state = self.lock();
        state.in_flight.remove(&id);
        if settled != Settled::Done {
            state.handed_back_bytes += id.len();
        }
        match settled {
            Settled::Done => return,
            Settled::Later => state.later.push(id),
            Settled::Throttled => state.throttled.push(id),
            Settled::Transient => state.transient.push(id),
        }
        let handed_back = state.later.len() + state.throttled.len() + state.transient.len();
        if handed_back >= MAX_HANDED_BACK || state.handed_back_bytes >= MAX_HANDED_BACK_BYTES {
            drop(state);
            self.halt();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let pending = state
            .replay
            .iter()
            .chain(&state.in_flight)
            .chain(&state.later)
            .chain(&state.throttled)
            .chain(&state.transient)
            .cloned()
            .collect();
        Snapshot {
            last_taken: state.last_taken.clone(),
            pending,
            taken_count: state.taken_count,
        }
    }

    /// Empties the feed at the end of the run.
    pub fn leftovers(&self) -> Leftovers {
        let mut state = self.lock();
        let state = &mut *state;
        let mut later: Vec<String> = state.replay.drain(..).collect();
        later.extend(state.in_flight.drain());
        later.append(&mut state.later);
        Leftovers {
            last_taken: state.last_taken.clone(),
            untaken: std::mem::take(&mut state.page).into(),
            later,
            throttled: std::mem::take(&mut state.throttled),
            transient: std::mem::take(&mut state.transient),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn handing_back_too_many_ids_or_bytes_halts_the_feed() {
        for (id_bytes, halts_at) in [(4, MAX_HANDED_BACK), (32, MAX_HANDED_BACK_BYTES / 32)] {
            let feed = Feed::new(Vec::new(), 1);
            for i in 1..=halts_at {
                assert!(!feed.halted(), "{id_bytes}-byte ids: halted at {i}");
                feed.settle(format!("{i:0id_bytes$}"), Settled::Transient);
            }
            assert!(
                feed.halted(),
                "{id_bytes}-byte ids: not halted at {halts_at}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replays_first_then_takes_pages_up_to_the_allowed_window() {
        let feed = Feed::new(ids(&["old"]), 3);
        feed.push(ids(&["a", "b", "c"]));
        let stop = Instant::now() + Duration::from_secs(1);
        assert_eq!(feed.take(stop).await.as_deref(), Some("old"));
        assert_eq!(feed.take(stop).await.as_deref(), Some("a"));
        assert_eq!(feed.take(stop).await.as_deref(), Some("b"));
        // The window (the replayed id included) is spent until a checkpoint allows more: waits
        // to the stop.
        assert_eq!(feed.take(stop).await, None);
        assert_eq!(Instant::now(), stop);

        feed.settle("a".into(), Settled::Done);
        feed.settle("old".into(), Settled::Transient);
        let snapshot = feed.snapshot();
        assert_eq!(snapshot.last_taken.as_deref(), Some("b"));
        assert_eq!(snapshot.taken_count, 3);
        let mut pending = snapshot.pending;
        pending.sort();
        assert_eq!(pending, ids(&["b", "old"]));

        feed.allow(3, 2);
        let stop = Instant::now() + Duration::from_secs(1);
        assert_eq!(feed.take(stop).await.as_deref(), Some("c"));
        feed.close();
        assert_eq!(feed.take(stop).await, None);
        let left = feed.leftovers();
        let mut later = left.later;
        later.sort();
        assert_eq!(later, ids(&["b", "c"]));
        assert_eq!(left.transient, ids(&["old"]));
        assert_eq!(left.last_taken.as_deref(), Some("c"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_halted_feed_gives_nothing_and_stops_waiting() {
        let feed = Feed::new(Vec::new(), 10);
        feed.push(ids(&["a"]));
        feed.halt();
        let stop = Instant::now() + Duration::from_secs(1);
        assert_eq!(feed.take(stop).await, None);
        assert!(!feed.drained(stop).await);
        assert!(Instant::now() < stop, "returned without waiting");
        assert_eq!(feed.leftovers().untaken, ids(&["a"]));
    }
}

#[cfg(test)]
mod record_size {
    use super::*;
    use crate::config::settings;
    use crate::domain::job::MAX_CONNECTION_ID_BYTES;
    use crate::domain::{Checkpoint, Handoff, Rest, Retries};

    /// The largest record a held job writes: the ids in flight when its run ended (at most
    /// `FANOUT_CONCURRENCY`) and all it may hand back, each in a list and with its failure
    /// clock, at API Gateway's id length and at the longest a job accepts.
    #[test]
    fn the_largest_held_record_fits_in_a_dynamodb_item() {
        const DYNAMODB_ITEM_BYTES: usize = 400 * 1024;
        for id_bytes in [16, MAX_CONNECTION_ID_BYTES] {
            let in_flight = settings::FANOUT_CONCURRENCY.max as usize;
            let handed_back = MAX_HANDED_BACK.min(MAX_HANDED_BACK_BYTES.div_ceil(id_bytes));
            let ids: Vec<String> = (0..in_flight + handed_back)
                .map(|i| format!("{i:0id_bytes$}"))
                .collect();
            let cursor = Some("c".repeat(2_048));
            let record = Checkpoint {
                cursor: cursor.clone(),
                handoff: Some(Handoff {
                    rest: Some(Rest {
                        cursor,
                        after_failure: true,
                    }),
                    later: ids[..in_flight].to_vec(),
                    transient: ids[in_flight..].to_vec(),
                    forbidden: true,
                    planned_at: i64::MAX,
                    ..Handoff::default()
                }),
                retry: Some(Retries {
                    attempt: u32::MAX,
                    failing: ids.iter().map(|id| (id.clone(), i64::MAX)).collect(),
                    pages_since: Some(i64::MAX),
                }),
                ..Checkpoint::default()
            };
            let bytes = record.to_json().len();
            assert!(
                bytes < DYNAMODB_ITEM_BYTES * 3 / 4,
                "{id_bytes}-byte ids: {bytes} bytes"
            );
        }
    }
}
