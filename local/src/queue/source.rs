//! What the worker loop consumes: a source of SQS-shaped messages, whichever queue is behind it.

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use fanout::ports::QueueError;
use std::time::Duration;

/// SQS's longest visibility timeout, for the queue and for `ChangeMessageVisibility`.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Messages by state, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Visible, waiting for the worker.
    pub ready: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Sent with a delay (`DelaySeconds`) that has not passed yet.
    pub delayed: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

/// What the event source mapping does with a queue. Each record carries its `receiptHandle`
/// and its `ApproximateReceiveCount` attribute, which the worker handler passes to the engine
/// (to make a failed record visible again soon, after a wait that grows with the count).
#[async_trait]
pub trait JobSource: Send + Sync {
    /// Up to `max` messages; waits up to `wait` for the first one (long polling).
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<SqsMessage>, QueueError>;
    /// Deletes processed messages by receipt handle.
    async fn delete(&self, receipt_handles: Vec<String>) -> Result<(), QueueError>;
    async fn depths(&self) -> Result<QueueDepths, QueueError>;
}
