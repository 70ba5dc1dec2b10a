//! A real SQS queue as the worker's source (moto in tests): redelivery and dead-lettering after
//! `maxReceiveCount` are SQS's own.

use super::source::{JobSource, QueueDepths};
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use fanout::adapters::aws::describe;
use fanout::adapters::sqs::{QueueCounts, queue_counts};
use fanout::ports::QueueError;
use std::time::Duration;

/// A real SQS queue and its dead-letter queue.
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

    async fn count(&self, url: &str) -> Result<QueueCounts, QueueError> {
        queue_counts(&self.client, url)
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))
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
            // ApproximateReceiveCount among them: the worker's wait before a failed record
            // comes back grows with it.
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
        let queue = self.count(&self.queue_url).await?;
        let dead = match &self.dlq_url {
            Some(url) => self.count(url).await?.visible,
            None => 0,
        };
        Ok(QueueDepths {
            ready: queue.visible,
            in_flight: queue.not_visible,
            delayed: queue.delayed,
            dead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout::adapters::sqs::SqsQueue;
    use fanout::domain::Job;
    use fanout::ports::JobQueue;
    use fanout_test_support::moto::{create_fifo_queue, create_queue, moto_sdk_config, unique};

    /// What the worker handler reads from each record is there, and the engine's calls on the
    /// producer side (retry_later, dead_letter) act on the queues this source reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_carry_receipt_handles_and_receive_counts() {
        let sdk = moto_sdk_config().await;
        let client = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = create_queue(&client, &unique("source")).await;
        let dlq_url = create_queue(&client, &unique("source-dlq")).await;
        let producer = SqsQueue::from_client(client.clone(), queue_url.clone())
            .with_dead_letter_queue(dlq_url.clone());
        let source = SqsSource::new(client, queue_url, Some(dlq_url));
        let job =
            Job::parse(r#"{"v":1,"id":"m","target":{"room":"r"},"payload":1,"sentAt":1}"#).unwrap();
        producer.enqueue(&job, Duration::ZERO).await.unwrap();

        let first = source.receive(10, Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attributes["ApproximateReceiveCount"], "1");
        let receipt = first[0].receipt_handle.clone().expect("a receipt handle");
        producer
            .retry_later(&receipt, Duration::ZERO)
            .await
            .unwrap();
        let again = source.receive(10, Duration::from_secs(5)).await.unwrap();
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
        source
            .delete(vec![again[0].receipt_handle.clone().unwrap()])
            .await
            .unwrap();

        producer.dead_letter("{bad", "not JSON").await.unwrap();
        let depths = source.depths().await.unwrap();
        assert_eq!((depths.ready, depths.in_flight, depths.dead), (0, 0, 1));
    }

    /// On a FIFO queue (`--ordering per_room`) each record carries its message group, which
    /// the worker handler gives the engine to run a room's records in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_records_carry_their_message_group() {
        let sdk = moto_sdk_config().await;
        let client = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = create_fifo_queue(&client, "source").await;
        let producer = SqsQueue::from_client(client.clone(), queue_url.clone());
        assert!(producer.keeps_order());
        let source = SqsSource::new(client, queue_url, None);
        for id in ["m1", "m2"] {
            let job = Job::parse(&format!(
                r#"{{"v":1,"id":"{id}","target":{{"room":"lobby"}},"payload":1,"sentAt":1}}"#
            ))
            .unwrap();
            producer.enqueue(&job, Duration::ZERO).await.unwrap();
        }
        let got = source.receive(10, Duration::from_secs(5)).await.unwrap();
        let bodies: Vec<Job> = got
            .iter()
            .map(|record| Job::parse(record.body.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(bodies.len(), 2);
        assert_eq!((bodies[0].id.as_str(), bodies[1].id.as_str()), ("m1", "m2"));
        for (record, job) in got.iter().zip(&bodies) {
            assert_eq!(record.attributes["MessageGroupId"], "lobby");
            assert_eq!(
                record.attributes["MessageDeduplicationId"],
                job.deduplication_id()
            );
        }
    }
}
