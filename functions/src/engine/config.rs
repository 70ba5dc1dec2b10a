//! The engine's tuning, with defaults that are safe for API Gateway.

use crate::domain::DeliveryMode;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Posts in flight at once across the whole batch (`FANOUT_CONCURRENCY`).
    pub concurrency: usize,
    /// Each post gives up after this long and counts as a transient failure.
    pub post_timeout: Duration,
    /// Tries per connection within one invocation, the first included.
    pub max_post_attempts: u32,
    /// Full-jitter backoff: the n-th retry waits up to `min(cap, base * 2^(n-1))`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Stop taking pages this long before the Lambda deadline, leaving time for the posts in
    /// flight to finish and the continuation to be enqueued.
    pub deadline_margin: Duration,
    pub delivery_mode: DeliveryMode,
    /// Overrides the endpoint carried in jobs (custom domains, other producers).
    pub management_endpoint: Option<String>,
    /// An `all` job without a segment is split into this many parallel Scan segments.
    pub scan_segments: u32,
    /// How many times transient failures of one message are re-enqueued before they count as
    /// failed.
    pub max_job_attempts: u32,
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
            delivery_mode: DeliveryMode::Envelope,
            management_endpoint: None,
            scan_segments: 1,
            max_job_attempts: 3,
        }
    }
}
