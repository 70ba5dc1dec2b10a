//! What one invocation did, for logs and metrics.

use std::ops::AddAssign;

/// Counts for one batch (or one job, or one page); they add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Frames the management API accepted.
    pub delivered: u64,
    /// Connections that answered 410 and were deleted.
    pub stale: u64,
    /// Deliveries given up on: other 4xx, or transient failures past every retry.
    pub failed: u64,
    /// Posts repeated after a 429, 5xx or timeout.
    pub retried: u64,
    /// Jobs handed back to the queue: continuations and retries of transient failures.
    pub continuations: u64,
    /// Pages read from the store.
    pub pages: u64,
    /// Jobs reported in `batchItemFailures`.
    pub failed_jobs: u64,
    /// Milliseconds from the message's `sentAt` to its last delivery, the largest in the batch.
    pub fanout_latency_ms: Option<u64>,
}

impl AddAssign for FanoutStats {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.stale += other.stale;
        self.failed += other.failed;
        self.retried += other.retried;
        self.continuations += other.continuations;
        self.pages += other.pages;
        self.failed_jobs += other.failed_jobs;
        self.fanout_latency_ms = self.fanout_latency_ms.max(other.fanout_latency_ms);
    }
}
