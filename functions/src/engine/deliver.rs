//! Posting a job's ids: they flow through a [`Feed`], a page at a time, to a fixed set of lanes
//! spawned once per job. A lane takes an id, waits for a permit from the batch-wide semaphore,
//! posts (retrying transient failures with backoff, deleting the connection on 410), and takes
//! the next id.
//!
//! Lanes outlive page boundaries: the next page is fed as soon as every id of the current one
//! has been taken, so the posts in flight do not drain to zero between pages (with a long-tailed
//! latency that drain cost a tenth of the throughput at a page a second). And a lane is one task
//! for many posts, not one task per post: no spawn, and no wake-up of the page loop, per post.

use super::{EngineConfig, FanoutStats, Pacer, backoff};
use crate::ports::{ConnectionGateway, ConnectionStore, PostError};
use bytes::Bytes;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, warn};

/// What every job of a batch shares.
pub(super) struct Batch {
    /// The in-flight limit for the whole batch: a post runs only while holding a permit.
    pub permits: Arc<Semaphore>,
    /// Slows every post down together once API Gateway throttles.
    pub pacer: Arc<Pacer>,
    /// Past this instant no post starts and no page is taken.
    pub stop_at: Instant,
}

impl Batch {
    pub fn stopping(&self) -> bool {
        Instant::now() >= self.stop_at
    }
}

#[derive(Default)]
pub(super) struct Outcome {
    pub stats: FanoutStats,
    /// Never posted: the deadline came first.
    pub not_started: Vec<String>,
    /// Posted, failed transiently, and out of retries or out of time.
    pub transient: Vec<String>,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.stats += other.stats;
        self.not_started.extend(other.not_started);
        self.transient.extend(other.transient);
    }
}

/// The ids of one job waiting for a lane: at most the current page (the next one is fetched
/// meanwhile and fed once this one is all taken), so memory stays O(page).
pub(super) struct Feed {
    state: Mutex<FeedState>,
    /// Ids were added, or the feed closed.
    filled: Notify,
    /// The last id was taken.
    drained: Notify,
}

#[derive(Default)]
struct FeedState {
    ids: VecDeque<String>,
    closed: bool,
}

impl Feed {
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            filled: Notify::new(),
            drained: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        // Every critical section is a single push, pop or flag: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, ids: Vec<String>) {
        self.lock().ids.extend(ids);
        self.filled.notify_waiters();
    }

    /// No more ids will come: lanes finish once the feed is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_waiters();
    }

    /// Waits until every id fed so far has been taken; `false` if `stop_at` came first.
    pub async fn drained(&self, stop_at: Instant) -> bool {
        loop {
            // Registered before the check, so a take in between is not missed.
            let notified = self.drained.notified();
            if self.lock().ids.is_empty() {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until(stop_at) => return false,
            }
        }
    }

    /// The next id; `None` once the feed is closed and empty, or at `stop_at`.
    async fn take(&self, stop_at: Instant) -> Option<String> {
        loop {
            let notified = self.filled.notified();
            {
                let mut state = self.lock();
                if let Some(id) = state.ids.pop_front() {
                    if state.ids.is_empty() {
                        self.drained.notify_waiters();
                    }
                    return Some(id);
                }
                if state.closed {
                    return None;
                }
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until(stop_at) => return None,
            }
        }
    }

    /// Whatever no lane took.
    pub fn rest(&self) -> Vec<String> {
        self.lock().ids.drain(..).collect()
    }
}

enum Delivery {
    Delivered,
    Stale,
    Failed,
    Transient(String),
}

/// Everything a lane needs, owned so the lane can be spawned.
pub(super) struct Post {
    pub gateway: Arc<dyn ConnectionGateway>,
    pub store: Arc<dyn ConnectionStore>,
    pub pacer: Arc<Pacer>,
    pub permits: Arc<Semaphore>,
    pub endpoint: Arc<str>,
    pub frame: Bytes,
    pub config: EngineConfig,
    pub stop_at: Instant,
}

/// Takes ids from the feed and posts to each, one at a time, each under a permit.
pub(super) async fn lane(post: Arc<Post>, feed: Arc<Feed>) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(id) = feed.take(post.stop_at).await {
        let permit = tokio::select! {
            biased;
            permit = post.permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = sleep_until(post.stop_at) => {
                outcome.not_started.push(id);
                break;
            }
        };
        if Instant::now() >= post.stop_at {
            outcome.not_started.push(id);
            break;
        }
        // A panicking gateway is a bug; count the delivery as failed rather than lose the lane.
        match AssertUnwindSafe(deliver_one(&post, id, permit))
            .catch_unwind()
            .await
        {
            Ok((delivery, retries)) => {
                outcome.stats.retried += u64::from(retries);
                match delivery {
                    Delivery::Delivered => outcome.stats.delivered += 1,
                    Delivery::Stale => outcome.stats.stale += 1,
                    Delivery::Failed => outcome.stats.failed += 1,
                    Delivery::Transient(id) => outcome.transient.push(id),
                }
            }
            Err(_) => {
                warn!("delivery panicked");
                outcome.stats.failed += 1;
            }
        }
    }
    outcome
}

/// Posts to one connection; returns the result and how many retries it took.
async fn deliver_one(post: &Post, id: String, _permit: OwnedSemaphorePermit) -> (Delivery, u32) {
    let mut attempts = 0;
    loop {
        post.pacer.acquire().await;
        attempts += 1;
        let retries = attempts - 1;
        let call = post.gateway.post(&post.endpoint, &id, post.frame.clone());
        let result = timeout(post.config.post_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(PostError::Transport(format!(
                    "no answer within {} ms",
                    post.config.post_timeout.as_millis()
                )))
            });
        match result {
            Ok(()) => {
                post.pacer.on_success();
                return (Delivery::Delivered, retries);
            }
            Err(PostError::Gone) => {
                if let Err(error) = post.store.delete(&id).await {
                    // The TTL removes it eventually; the next broadcast tries again.
                    warn!(connection_id = %id, %error, "could not delete a gone connection");
                }
                return (Delivery::Stale, retries);
            }
            Err(error) if error.is_transient() => {
                if error == PostError::Throttled {
                    post.pacer.on_throttled();
                }
                if attempts >= post.config.max_post_attempts {
                    debug!(connection_id = %id, %error, "out of retries in this run");
                    return (Delivery::Transient(id), retries);
                }
                let wait = backoff::full_jitter(
                    post.config.backoff_base,
                    post.config.backoff_cap,
                    attempts,
                );
                if Instant::now() + wait >= post.stop_at {
                    return (Delivery::Transient(id), retries);
                }
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                warn!(connection_id = %id, %error, "delivery refused; not retrying");
                return (Delivery::Failed, retries);
            }
        }
    }
}
