//! Posting one page: each id gets a permit from the batch-wide semaphore, then its own task
//! that posts, retries transient failures with backoff, and deletes the connection on 410.

use super::{EngineConfig, FanoutStats, Pacer, backoff};
use crate::ports::{ConnectionGateway, ConnectionStore, PostError};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
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
pub(super) struct PageOutcome {
    pub stats: FanoutStats,
    /// Never posted: the deadline came first.
    pub not_started: Vec<String>,
    /// Posted, failed transiently, and out of retries or out of time.
    pub transient: Vec<String>,
}

enum Delivery {
    Delivered,
    Stale,
    Failed,
    Transient(String),
}

/// Everything a delivery task needs, owned so the task can be spawned.
struct Post {
    gateway: Arc<dyn ConnectionGateway>,
    store: Arc<dyn ConnectionStore>,
    pacer: Arc<Pacer>,
    endpoint: Arc<str>,
    frame: Bytes,
    config: EngineConfig,
    stop_at: Instant,
}

pub(super) async fn deliver_page(
    batch: &Batch,
    config: &EngineConfig,
    gateway: &Arc<dyn ConnectionGateway>,
    store: &Arc<dyn ConnectionStore>,
    endpoint: &str,
    frame: &Bytes,
    ids: Vec<String>,
) -> PageOutcome {
    let post = Arc::new(Post {
        gateway: gateway.clone(),
        store: store.clone(),
        pacer: batch.pacer.clone(),
        endpoint: endpoint.into(),
        frame: frame.clone(),
        config: config.clone(),
        stop_at: batch.stop_at,
    });
    let mut outcome = PageOutcome::default();
    let mut tasks = JoinSet::new();
    let mut ids = ids.into_iter();
    for id in ids.by_ref() {
        let permit = tokio::select! {
            biased;
            permit = batch.permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = sleep_until(batch.stop_at) => {
                outcome.not_started.push(id);
                break;
            }
        };
        if batch.stopping() {
            outcome.not_started.push(id);
            break;
        }
        tasks.spawn(deliver_one(post.clone(), id, permit));
        // Reap what has finished so the set stays as small as the in-flight limit.
        while let Some(done) = tasks.try_join_next() {
            record(&mut outcome, done);
        }
    }
    outcome.not_started.extend(ids);
    while let Some(done) = tasks.join_next().await {
        record(&mut outcome, done);
    }
    outcome
}

fn record(outcome: &mut PageOutcome, done: Result<(Delivery, u32), tokio::task::JoinError>) {
    match done {
        Ok((delivery, retries)) => {
            outcome.stats.retried += u64::from(retries);
            match delivery {
                Delivery::Delivered => outcome.stats.delivered += 1,
                Delivery::Stale => outcome.stats.stale += 1,
                Delivery::Failed => outcome.stats.failed += 1,
                Delivery::Transient(id) => outcome.transient.push(id),
            }
        }
        // A panicking gateway is a bug; count the delivery as failed rather than lose the
        // whole batch.
        Err(error) => {
            warn!(%error, "delivery task panicked");
            outcome.stats.failed += 1;
        }
    }
}

/// Posts to one connection; returns the result and how many retries it took.
async fn deliver_one(
    post: Arc<Post>,
    id: String,
    _permit: OwnedSemaphorePermit,
) -> (Delivery, u32) {
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
