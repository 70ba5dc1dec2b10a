//! Posting a job's ids: a fixed set of lanes, spawned once per job run, take ids from the
//! [`Feed`]; each waits for a permit from the batch-wide semaphore, posts (retrying transient
//! failures with backoff, deleting the connection on 410), settles the id and takes the next.
//!
//! Lanes outlive page boundaries: the next page is fed as soon as every id of the current one
//! has been taken, so the posts in flight do not drain to zero between pages. And a lane is one
//! task for many posts, not one task per post.
//!
//! Every wait is bounded: no turn of the pacer, no post and no backoff starts past `stop_at`,
//! and whatever is still running at `cutoff` (a hung post, a slow delete) is abandoned and
//! handed back as possibly delivered.

use super::backoff;
use super::config::EngineConfig;
use super::feed::{Feed, Settled};
use super::handoff::by;
use super::pacer::Pacer;
use super::stats::FanoutStats;
use crate::domain::now_epoch_millis;
use crate::ports::{ConnectionGateway, ConnectionStore, PostError, StaleDelete};
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::{debug, error, warn};

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
    pub cutoff: Instant,
}

enum Delivery {
    Delivered,
    /// 410 from a connection past the grace period: deleted, unless the delete failed.
    Gone {
        delete_failed: bool,
    },
    Refused,
    /// 403: the worker may not post here; the job stops.
    Forbidden,
    Later,
    Throttled,
    Transient,
}

/// Takes ids from the feed and posts to each, one at a time, each under a permit.
pub(super) async fn lane(post: Arc<Post>, feed: Arc<Feed>) -> FanoutStats {
    let mut stats = FanoutStats::default();
    while let Some(id) = feed.take(post.stop_at).await {
        let permit = tokio::select! {
            biased;
            permit = post.permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = sleep_until(post.stop_at) => {
                feed.settle(id, Settled::Later);
                break;
            }
        };
        if Instant::now() >= post.stop_at {
            feed.settle(id, Settled::Later);
            break;
        }
        let mut tries = Tries::default();
        // A panicking gateway is a bug; count the delivery as refused rather than lose the
        // lane. The backstop: a post still running at the cutoff is abandoned.
        let attempt = AssertUnwindSafe(deliver_one(&post, &id, &mut tries)).catch_unwind();
        let delivery = match timeout_at(post.cutoff, attempt).await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(_)) => {
                warn!(connection_id = %id, "delivery panicked");
                Delivery::Refused
            }
            Err(_) => {
                stats.interrupted += 1;
                Delivery::Later
            }
        };
        drop(permit);
        stats.retried += u64::from(tries.retries);
        stats.stale_young += u64::from(tries.young_gone);
        let settled = match delivery {
            Delivery::Delivered => {
                stats.delivered += 1;
                Settled::Done
            }
            Delivery::Gone { delete_failed } => {
                stats.stale += 1;
                stats.delete_failed += u64::from(delete_failed);
                Settled::Done
            }
            Delivery::Refused => {
                stats.failed += 1;
                Settled::Done
            }
            Delivery::Forbidden => {
                stats.forbidden += 1;
                // No other member would fare better: stop taking ids, hand the rest back.
                feed.halt();
                Settled::Transient
            }
            Delivery::Later => Settled::Later,
            Delivery::Throttled => Settled::Throttled,
            Delivery::Transient => Settled::Transient,
        };
        feed.settle(id, settled);
    }
    stats
}

/// What one delivery's posts ran into, besides its outcome.
#[derive(Default)]
struct Tries {
    /// Posts repeated after the first.
    retries: u32,
    /// 410s from a connection inside the grace period.
    young_gone: u32,
}

/// Posts to one connection, counting what it took into `tries`.
async fn deliver_one(post: &Post, id: &str, tries: &mut Tries) -> Delivery {
    // 5xx and timeouts: bounded by `max_post_attempts`, then handed back to be retried within
    // the retry budget. 429s are not counted: they slow the whole worker through the pacer, and
    // the id goes back at the same attempt if time runs out.
    let (mut failures, mut throttles) = (0, 0);
    let mut first = true;
    let give_back = |failures: u32, throttles: u32| match (failures, throttles) {
        (0, 0) => Delivery::Later,
        (0, _) => Delivery::Throttled,
        _ => Delivery::Transient,
    };
    loop {
        if !post.pacer.acquire(post.stop_at).await {
            return give_back(failures, throttles);
        }
        if !first {
            tries.retries += 1;
        }
        first = false;
        // Past the cutoff the backstop takes over: the post is abandoned as possibly delivered.
        let answer_by = Instant::now() + post.config.post_timeout;
        let call = post.gateway.post(&post.endpoint, id, post.frame.clone());
        let result = timeout_at(answer_by, call).await.unwrap_or_else(|_| {
            Err(PostError::Transport(format!(
                "no answer within {} ms",
                post.config.post_timeout.as_millis()
            )))
        });
        let wait = match result {
            Ok(()) => {
                post.pacer.on_success();
                return Delivery::Delivered;
            }
            Err(PostError::Gone) => {
                return delete_gone(post, id).await.unwrap_or_else(|| {
                    // API Gateway answers 410 until `$connect` returns: the member joins in a
                    // moment and must get the message, tried again after the retry delay. Not
                    // here and now: a young connection that is really gone (its `$disconnect`
                    // not yet run) would hold a lane and its permit through every backoff.
                    // Past the grace period, or once its item is gone, a 410 is final.
                    tries.young_gone += 1;
                    Delivery::Transient
                });
            }
            Err(PostError::Forbidden(reason)) => {
                error!(connection_id = %id, %reason, "the management API refuses the worker (403); stopping the job");
                return Delivery::Forbidden;
            }
            Err(PostError::Throttled) => {
                throttles += 1;
                post.pacer.on_throttled();
                backoff::full_jitter(post.config.backoff_base, post.config.backoff_cap, 1)
            }
            Err(error) if error.is_transient() => {
                failures += 1;
                if failures >= post.config.max_post_attempts {
                    debug!(connection_id = %id, %error, "out of retries in this run");
                    return Delivery::Transient;
                }
                backoff::full_jitter(post.config.backoff_base, post.config.backoff_cap, failures)
            }
            Err(error) => {
                warn!(connection_id = %id, %error, "delivery refused; not retrying");
                return Delivery::Refused;
            }
        };
        if Instant::now() + wait >= post.stop_at {
            return give_back(failures, throttles);
        }
        tokio::time::sleep(wait).await;
    }
}

/// 410: deletes the connection, unless it connected within the grace period (its `$connect`
/// may still be running): then `None`, and the post is worth trying again. A failed delete is
/// counted, not fatal: the TTL removes the item, and the next message tries again.
async fn delete_gone(post: &Post, id: &str) -> Option<Delivery> {
    let grace = i64::try_from(post.config.gone_grace.as_millis()).unwrap_or(i64::MAX);
    let connected_before = now_epoch_millis().saturating_sub(grace);
    let answer_by = Instant::now() + post.config.post_timeout;
    match by(answer_by, post.store.delete_stale(id, connected_before)).await {
        Ok(StaleDelete::Gone) => Some(Delivery::Gone {
            delete_failed: false,
        }),
        Ok(StaleDelete::TooYoung) => None,
        Err(error) => {
            warn!(connection_id = %id, %error, "could not delete a gone connection");
            Some(Delivery::Gone {
                delete_failed: true,
            })
        }
    }
}
