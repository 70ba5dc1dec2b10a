//! The job queue and its dead-letter queue on SQS.

use super::aws::describe;
use crate::domain::Job;
use crate::ports::{JobQueue, MAX_QUEUE_DELAY, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::time::Duration;

/// SQS's longest message attribute we write; a longer reason is cut (the body carries the job).
const MAX_REASON_BYTES: usize = 1024;

/// The fan-out queue on SQS: jobs as message bodies (at most 256 KiB, checked before the
/// call), delays as `DelaySeconds`, and early redelivery of a failed record by
/// `ChangeMessageVisibility`.
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// Where the worker parks what it gives up on (`DEAD_LETTER_QUEUE_URL`); the same queue
    /// SQS's redrive policy moves messages to after maxReceiveCount.
    dead_letter_url: Option<String>,
}

impl SqsQueue {
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self::from_client(Client::new(sdk), queue_url)
    }

    pub fn from_client(client: Client, queue_url: String) -> Self {
        Self {
            client,
            queue_url,
            dead_letter_url: None,
        }
    }

    pub fn with_dead_letter_queue(mut self, url: String) -> Self {
        self.dead_letter_url = Some(url);
        self
    }
}

fn unavailable(error: impl std::error::Error + 'static) -> QueueError {
    QueueError::Unavailable(describe(&error))
}

fn seconds(delay: Duration) -> i32 {
    i32::try_from(delay.min(MAX_QUEUE_DELAY).as_secs()).unwrap_or(0)
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let body = job.to_queue_body()?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds(delay))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| QueueError::Unavailable("no dead-letter queue is configured".into()))?;
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(if reason.is_empty() {
                "unknown"
            } else {
                &reason[..end]
            })
            .build()
            .expect("type and value are set");
        // A body that is not a job (what an invalid message may be) still fits: it came
        // through the same queue.
        self.client
            .send_message()
            .queue_url(url)
            .message_body(if body.is_empty() { "(empty)" } else { body })
            .message_attributes("reason", reason)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
