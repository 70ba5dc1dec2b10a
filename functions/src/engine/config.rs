//! The engine's tuning, with defaults that are safe for API Gateway.

use crate::domain::DeliveryMode;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Posts in flight at once across the whole batch (`FANOUT_CONCURRENCY`).
    pub concurrency: usize,
    /// Each post gives up after this long and counts as a transient failure.
    pub post_timeout: Duration,
    /// Tries per connection within one invocation for 5xx and timeouts, the first included.
    /// 429s do not count: they slow the whole worker down instead (see `pacer`).
    pub max_post_attempts: u32,
    /// Full-jitter backoff: the n-th retry waits up to `min(cap, base * 2^(n-1))`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Stop taking pages and starting posts this long before the Lambda deadline, leaving
    /// time for the posts in flight to finish and the hand-off to be written.
    pub deadline_margin: Duration,
    /// Posts still running this long before the deadline are abandoned and handed back as
    /// possibly delivered: the time the hand-off is sure to have. Less than `deadline_margin`.
    pub handoff_reserve: Duration,
    pub delivery_mode: DeliveryMode,
    /// An `all` job without a segment is split into this many parallel Scan segments.
    pub scan_segments: u32,
    /// A room bigger than one page is split into this many ranges of ids, each its own job
    /// for a worker of its own (`ROOM_SPLIT_WAYS`); 1 never splits.
    pub room_split_ways: u32,
    /// The account's PostToConnection rate (API Gateway's default is 10,000/s): the parts of a
    /// split room start paced at their share of it (`ACCOUNT_POST_RATE`).
    pub account_post_rate: u32,
    /// How long transient failures of a delivery are retried, from the first hand-back, before
    /// its ids go to the dead-letter queue.
    pub retry_budget: Duration,
    /// Re-enqueued transient failures wait about `base * 2^attempt` (with jitter, at most
    /// SQS's 900 s) before they are tried again.
    pub retry_delay_base: Duration,
    /// A connection that answers 410 is deleted only if it connected longer ago than this: API
    /// Gateway answers 410 while a `$connect` is still running.
    pub gone_grace: Duration,
    /// A checkpoint is written at least every this many posts started, which bounds what a
    /// crash can make a job post twice; 0 means `concurrency`.
    pub checkpoint_every: usize,
}

impl EngineConfig {
    /// The most parts a room is split into.
    pub const MAX_ROOM_SPLIT_WAYS: u32 = 256;
    /// `FANOUT_CONCURRENCY`'s bounds. A Lambda may open 1,024 files, and each post in flight
    /// holds a connection; the progress record holds at most this many ids in flight.
    pub const CONCURRENCY: std::ops::RangeInclusive<usize> = 1..=1_000;
    /// `RETRY_BUDGET_SECONDS`'s bounds: a minute to a day.
    pub const RETRY_BUDGET_SECONDS: std::ops::RangeInclusive<u64> = 60..=86_400;

    /// Posts started between checkpoints.
    pub fn checkpoint_window(&self) -> usize {
        match self.checkpoint_every {
            0 => self.concurrency.max(1),
            every => every,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            concurrency: 256,
            post_timeout: Duration::from_secs(3),
            max_post_attempts: 5,
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(2),
            deadline_margin: Duration::from_secs(5),
            handoff_reserve: Duration::from_secs(2),
            delivery_mode: DeliveryMode::Envelope,
            scan_segments: 1,
            room_split_ways: 1,
            account_post_rate: 10_000,
            retry_budget: Duration::from_secs(15 * 60),
            retry_delay_base: Duration::from_secs(1),
            gone_grace: Duration::from_secs(60),
            checkpoint_every: 0,
        }
    }
}
