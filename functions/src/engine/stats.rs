//! What one invocation did, for logs and metrics.

use std::ops::AddAssign;

/// Counts for one batch (or one job, or one page); they add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Frames the management API accepted.
    pub delivered: u64,
    /// Connections that answered 410 and were settled as gone.
    pub stale: u64,
    /// 410s from connections inside the grace period (`$connect` may still be running): tried
    /// again, not deleted.
    pub stale_young: u64,
    /// Deletes of gone connections that failed or timed out.
    pub delete_failed: u64,
    /// Deliveries refused for good: a 4xx other than 410 and 429.
    pub failed: u64,
    /// Posts the management API answered with 403; the first one stops the job.
    pub forbidden: u64,
    /// Deliveries given up after the retry budget: their ids are in the dead-letter queue.
    pub abandoned: u64,
    /// Posts repeated after a 429, 5xx or timeout.
    pub retried: u64,
    /// Posts abandoned at the backstop and handed back as possibly delivered.
    pub interrupted: u64,
    /// Jobs handed back to the queue: continuations, retries, Scan segments and room parts.
    pub continuations: u64,
    /// Rooms too big for one page, split into ranges for several workers.
    pub rooms_split: u64,
    /// Pages read from the store.
    pub pages: u64,
    /// Jobs that went on from an earlier run's checkpoint.
    pub resumed: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Jobs reported in `batchItemFailures`.
    pub failed_jobs: u64,
    /// Jobs that kept their queue message to go on when it is received again (a queue that
    /// keeps order): the rest of a room, or posts waiting for a retry.
    pub held: u64,
    /// Jobs whose hand-off (or dead-lettering) could not be written in time: SQS redelivers
    /// them, and until then the rest of their room waits.
    pub handoffs_failed: u64,
    /// Messages parked in the dead-letter queue: invalid jobs and retries past the budget.
    pub dead_lettered: u64,
    /// Milliseconds from the message's `sentAt` to its last delivery, the largest in the batch.
    pub fanout_latency_ms: Option<u64>,
}

impl AddAssign for FanoutStats {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.stale += other.stale;
        self.stale_young += other.stale_young;
        self.delete_failed += other.delete_failed;
        self.failed += other.failed;
        self.forbidden += other.forbidden;
        self.abandoned += other.abandoned;
        self.retried += other.retried;
        self.interrupted += other.interrupted;
        self.continuations += other.continuations;
        self.rooms_split += other.rooms_split;
        self.pages += other.pages;
        self.resumed += other.resumed;
        self.checkpoints += other.checkpoints;
        self.failed_jobs += other.failed_jobs;
        self.held += other.held;
        self.handoffs_failed += other.handoffs_failed;
        self.dead_lettered += other.dead_lettered;
        self.fanout_latency_ms = self.fanout_latency_ms.max(other.fanout_latency_ms);
    }
}
