//! The job queue on SQS.

use super::aws::describe;
use crate::domain::Job;
use crate::ports::{JobQueue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::Client;

pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: Client::new(sdk),
            queue_url,
        }
    }

    pub fn from_client(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let body = job.to_queue_body()?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|error| QueueError::Unavailable(describe(&error)))?;
        Ok(())
    }
}
