//! The engine's tuning, with defaults that are safe for API Gateway.

use crate::config::settings::{self as s, Setting};
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
        // The settings' defaults, as their variables unset give them (`config::settings`).
        let count = |setting: &Setting| setting.default_value();
        Self {
            concurrency: count(&s::FANOUT_CONCURRENCY) as usize,
            post_timeout: s::POST_TIMEOUT_MS.default_duration(),
            max_post_attempts: count(&s::MAX_POST_ATTEMPTS) as u32,
            backoff_base: s::BACKOFF_BASE_MS.default_duration(),
            backoff_cap: s::BACKOFF_CAP_MS.default_duration(),
            deadline_margin: s::DEADLINE_MARGIN_MS.default_duration(),
            handoff_reserve: s::HANDOFF_RESERVE_MS.default_duration(),
            delivery_mode: DeliveryMode::Envelope,
            scan_segments: count(&s::SCAN_SEGMENTS) as u32,
            room_split_ways: count(&s::ROOM_SPLIT_WAYS) as u32,
            account_post_rate: count(&s::ACCOUNT_POST_RATE) as u32,
            retry_budget: s::RETRY_BUDGET_SECONDS.default_duration(),
            retry_delay_base: s::RETRY_DELAY_BASE_MS.default_duration(),
            gone_grace: s::GONE_GRACE_SECONDS.default_duration(),
            checkpoint_every: count(&s::CHECKPOINT_EVERY) as usize,
        }
    }
}
