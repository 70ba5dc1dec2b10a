//! The job queue and its dead-letter queue on SQS.

use super::aws::describe;
use crate::domain::Job;
use crate::domain::job::MAX_JOB_BYTES;
use crate::ports::{JobQueue, MAX_QUEUE_DELAY, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use std::time::Duration;

/// SQS's longest message attribute we write; a longer reason is cut (the body carries the job).
const MAX_REASON_BYTES: usize = 1024;

/// The fan-out queue on SQS: jobs as message bodies (at most 256 KiB, checked before the
/// call), delays as `DelaySeconds`, and early redelivery of a failed record by
/// `ChangeMessageVisibility`. A FIFO queue (its name ends in `.fifo`, as SQS requires) keeps
/// order: each job goes to its room's message group, deduplicated by its progress key.
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// Where the worker parks what it gives up on (`DEAD_LETTER_QUEUE_URL`); the same queue
    /// SQS's redrive policy moves messages to after maxReceiveCount.
    dead_letter_url: Option<String>,
}

/// Whether the queue at `url` is FIFO: SQS requires a FIFO queue's name, and so its URL, to
/// end so.
pub fn is_fifo(url: &str) -> bool {
    url.ends_with(".fifo")
}

/// The message group a body goes to on a FIFO queue: its job's ([`Job::order_group`]), or one
/// of its own for a body that is not a job (it waits behind nothing).
pub fn order_group_of(body: &str) -> String {
    Job::parse(body).map_or_else(
        |_| uuid::Uuid::now_v7().to_string(),
        |job| job.order_group(),
    )
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

/// A queue's messages by state, as SQS approximates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// `ApproximateNumberOfMessages`: ready to be received.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received and not yet deleted (in flight).
    pub not_visible: u64,
    /// `ApproximateNumberOfMessagesDelayed`: sent with a delay not yet over.
    pub delayed: u64,
}

impl QueueCounts {
    /// Every message on the queue, whatever its state.
    pub fn total(&self) -> u64 {
        self.visible + self.not_visible + self.delayed
    }
}

/// The visible, not visible (in flight) and delayed messages of the queue at `url`; a count
/// SQS leaves out, or gives as something other than a number, is 0.
pub async fn queue_counts(
    client: &Client,
    url: &str,
) -> Result<QueueCounts, SdkError<GetQueueAttributesError>> {
    use QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesDelayed,
        ApproximateNumberOfMessagesNotVisible,
    };
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .attribute_names(ApproximateNumberOfMessagesDelayed)
        .send()
        .await?;
    let attributes = output.attributes.unwrap_or_default();
    let read = |name| {
        attributes
            .get(&name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueCounts {
        visible: read(ApproximateNumberOfMessages),
        not_visible: read(ApproximateNumberOfMessagesNotVisible),
        delayed: read(ApproximateNumberOfMessagesDelayed),
    })
}

fn unavailable(error: impl std::error::Error + 'static) -> QueueError {
    QueueError::Unavailable(describe(&error))
}

/// Whole seconds, rounded up: a wait of half a second must not become none.
fn seconds(delay: Duration) -> i32 {
    let whole = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    i32::try_from(whole).unwrap_or(i32::MAX)
}

/// The reason as SQS takes a String attribute: only the characters it allows in a message
/// (others become `?`), and no longer than what the body leaves of the message size limit.
fn reason_attribute(reason: &str, body_len: usize) -> Option<String> {
    let allowed = crate::domain::message::queueable;
    let room = MAX_JOB_BYTES
        .saturating_sub(body_len + "reason".len() + "String".len())
        .min(MAX_REASON_BYTES);
    let mut text = String::new();
    for c in reason.chars().map(|c| if allowed(c) { c } else { '?' }) {
        if text.len() + c.len_utf8() > room {
            break;
        }
        text.push(c);
    }
    (!text.is_empty()).then_some(text)
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let body = job.to_queue_body()?;
        let send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        let send = if is_fifo(&self.queue_url) {
            if !delay.is_zero() {
                // SQS refuses a per-message delay on a FIFO queue; the engine asks for none.
                tracing::warn!(?delay, "a FIFO queue takes no delay; sent at once");
            }
            send.message_group_id(job.order_group())
                .message_deduplication_id(job.deduplication_id())
        } else {
            send.delay_seconds(seconds(delay.min(MAX_QUEUE_DELAY)))
        };
        send.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| QueueError::Unavailable("no dead-letter queue is configured".into()))?;
        let body = if body.is_empty() { "(empty)" } else { body };
        // A body that is not a job (what an invalid message may be) still fits: it came
        // through the same queue. The reason fits beside it, or is only logged.
        let mut send = self.client.send_message().queue_url(url).message_body(body);
        if is_fifo(url) {
            // In its room's group, so that a redrive keeps a room's parked jobs in the order
            // they were parked; never taken for a duplicate of another.
            send = send
                .message_group_id(order_group_of(body))
                .message_deduplication_id(uuid::Uuid::now_v7().to_string());
        }
        match reason_attribute(reason, body.len()) {
            Some(text) => {
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(text)
                    .build()
                    .expect("type and value are set");
                send = send.message_attributes("reason", attribute);
            }
            None => tracing::warn!(reason, "no room for the reason beside a full-size body"),
        }
        send.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds(delay))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn keeps_order(&self) -> bool {
        is_fifo(&self.queue_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_keeps_to_what_sqs_accepts() {
        assert_eq!(
            reason_attribute("bad \u{1} field", 10).as_deref(),
            Some("bad ? field")
        );
        let long = "é".repeat(2_000);
        let cut = reason_attribute(&long, 10).unwrap();
        assert!(cut.len() <= MAX_REASON_BYTES && cut.chars().all(|c| c == 'é'));
        assert_eq!(reason_attribute("why", MAX_JOB_BYTES), None);
    }

    #[test]
    fn delays_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(500)), 1);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds(Duration::ZERO), 0);
    }
}
