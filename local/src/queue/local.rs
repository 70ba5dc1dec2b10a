//! The worker's side of the queue: receive a batch, delete what was processed. Two sources:
//! [`LocalQueue`], an in-memory queue with the SQS semantics the pipeline relies on, and
//! [`SqsSource`], a real SQS queue (moto in tests).

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use fanout::adapters::aws::describe;
use fanout::domain::{Job, now_epoch_millis};
use fanout::ports::{JobQueue, QueueError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Messages by state, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Visible, waiting for the worker.
    pub ready: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

#[async_trait]
pub trait JobSource: Send + Sync {
    /// Up to `max` messages; waits up to `wait` for the first one (long polling).
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<SqsMessage>, QueueError>;
    /// Deletes processed messages by receipt handle.
    async fn delete(&self, receipt_handles: Vec<String>) -> Result<(), QueueError>;
    async fn depths(&self) -> Result<QueueDepths, QueueError>;
}

/// How the in-memory queue behaves, from the command line (`--visibility-timeout`,
/// `--max-receive-count`), whose defaults mirror the Terraform stack.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

struct Message {
    id: String,
    body: String,
    receive_count: u32,
    sent_at_ms: u64,
    first_received_ms: Option<u64>,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Message>,
    /// By receipt handle, with when the message becomes visible again.
    in_flight: HashMap<String, (Message, Instant)>,
    dead: Vec<Message>,
}

/// An SQS-like queue in memory: at-least-once delivery, a visibility timeout, redelivery of
/// whatever is not deleted, and a dead-letter queue after `max_receive_count` receives.
pub struct LocalQueue {
    settings: QueueSettings,
    state: Mutex<State>,
    arrived: Notify,
}

impl LocalQueue {
    pub fn new(settings: QueueSettings) -> Self {
        Self {
            settings,
            state: Mutex::default(),
            arrived: Notify::new(),
        }
    }

    /// Puts a raw body on the queue, as any producer may (a malformed one included).
    pub fn send_raw(&self, body: impl Into<String>) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.lock().ready.push_back(Message {
            id: id.clone(),
            body: body.into(),
            receive_count: 0,
            sent_at_ms: now_epoch_millis().unsigned_abs(),
            first_received_ms: None,
        });
        self.arrived.notify_waiters();
        id
    }

    /// The bodies in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        self.lock()
            .dead
            .iter()
            .map(|message| message.body.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what is visible now; returns the messages and when the next invisible one
    /// reappears.
    fn take(&self, max: usize) -> (Vec<SqsMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.lock();
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, (_, visible_at))| *visible_at <= now)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((message, _)) = state.in_flight.remove(&receipt) {
                state.ready.push_back(message);
            }
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(mut message) = state.ready.pop_front() else {
                break;
            };
            if message.receive_count >= self.settings.max_receive_count {
                state.dead.push(message);
                continue;
            }
            message.receive_count += 1;
            let first_received = *message
                .first_received_ms
                .get_or_insert_with(|| now_epoch_millis().unsigned_abs());
            let receipt = uuid::Uuid::now_v7().to_string();
            let mut record = SqsMessage::default();
            record.message_id = Some(message.id.clone());
            record.receipt_handle = Some(receipt.clone());
            record.body = Some(message.body.clone());
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some("arn:aws:sqs:local:000000000000:fanout-local".into());
            record.attributes = HashMap::from([
                (
                    "ApproximateReceiveCount".into(),
                    message.receive_count.to_string(),
                ),
                ("SentTimestamp".into(), message.sent_at_ms.to_string()),
                (
                    "ApproximateFirstReceiveTimestamp".into(),
                    first_received.to_string(),
                ),
            ]);
            batch.push(record);
            state
                .in_flight
                .insert(receipt, (message, now + self.settings.visibility_timeout));
        }
        let next_visible = state.in_flight.values().map(|(_, at)| *at).min();
        (batch, next_visible)
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.send_raw(job.to_queue_body()?);
        Ok(())
    }
}

#[async_trait]
impl JobSource for LocalQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<SqsMessage>, QueueError> {
        let give_up = Instant::now() + wait;
        loop {
            // Registered before looking, so a message sent in between still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (batch, next_visible) = self.take(max);
            if !batch.is_empty() || Instant::now() >= give_up {
                return Ok(batch);
            }
            let until = next_visible.map_or(give_up, |at| at.min(give_up));
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete(&self, receipt_handles: Vec<String>) -> Result<(), QueueError> {
        let mut state = self.lock();
        for receipt in receipt_handles {
            state.in_flight.remove(&receipt);
        }
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let state = self.lock();
        Ok(QueueDepths {
            ready: state.ready.len() as u64,
            in_flight: state.in_flight.len() as u64,
            dead: state.dead.len() as u64,
        })
    }
}

/// A real SQS queue and its dead-letter queue (redelivery and dead-lettering are SQS's own).
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: Option<String>,
}

impl SqsSource {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, dlq_url: Option<String>) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
        }
    }

    async fn count(&self, url: &str) -> Result<(u64, u64), QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        let attributes = output.attributes.unwrap_or_default();
        let read = |name| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            read(ApproximateNumberOfMessages),
            read(ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

#[async_trait]
impl JobSource for SqsSource {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<SqsMessage>, QueueError> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| {
                let mut record = SqsMessage::default();
                record.message_id = message.message_id;
                record.receipt_handle = message.receipt_handle;
                record.body = message.body;
                record.md5_of_body = message.md5_of_body;
                record.event_source = Some("aws:sqs".into());
                record.attributes = message
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name.as_str().to_owned(), value))
                    .collect();
                record
            })
            .collect())
    }

    async fn delete(&self, receipt_handles: Vec<String>) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        }
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let (ready, in_flight) = self.count(&self.queue_url).await?;
        let dead = match &self.dlq_url {
            Some(url) => self.count(url).await?.0,
            None => 0,
        };
        Ok(QueueDepths {
            ready,
            in_flight,
            dead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_receive_count: u32) -> LocalQueue {
        LocalQueue::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_undeleted_message_reappears_after_the_visibility_timeout() {
        let queue = queue(5);
        queue.send_raw("a");
        let first = queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            queue
                .receive(10, Duration::from_secs(29))
                .await
                .unwrap()
                .is_empty()
        );
        let again = queue.receive(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
        queue
            .delete(vec![again[0].receipt_handle.clone().unwrap()])
            .await
            .unwrap();
        assert_eq!(queue.depths().await.unwrap(), QueueDepths::default());
    }

    #[tokio::test(start_paused = true)]
    async fn moves_to_the_dead_letter_queue_after_max_receives() {
        let queue = queue(2);
        queue.send_raw("poison");
        for _ in 0..2 {
            assert_eq!(
                queue
                    .receive(10, Duration::from_secs(31))
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        assert!(
            queue
                .receive(10, Duration::from_secs(31))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(queue.dead_letters(), vec!["poison"]);
        assert_eq!(queue.depths().await.unwrap().dead, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_receive_wakes_when_a_message_arrives() {
        let queue = std::sync::Arc::new(queue(5));
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.receive(10, Duration::from_secs(20)).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        queue.send_raw("late");
        assert_eq!(waiting.await.unwrap().len(), 1);
    }
}
