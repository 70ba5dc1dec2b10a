//! The [`Backend`] of a deployed workspace: SQS for the queues, DynamoDB for the connections,
//! CloudWatch for the age of the oldest job, and API Gateway's management API to close a
//! connection. Every client takes the SDK's standard configuration (credentials, region,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, how tests point it at moto) with the
//! library's HTTP client and timeouts; the management API's endpoint is the workspace's.
//!
//! Its private modules: `queues` what SQS and CloudWatch say about a queue; `rooms` the Scan
//! of the connections table; `dlq` reading and redriving the dead-letter queue; `errors` an
//! SDK failure as an [`OpsError`].

mod dlq;
mod errors;
mod queues;
mod rooms;

use crate::backend::{
    Backend, DeadLetter, DeadLetters, OpsError, QueueStatus, Redrive, Rooms, Status,
};
use crate::progress::Progress;
use crate::resources::{Resources, region_of_queue_url};
use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use errors::unavailable;
use fanout::adapters::aws::{describe, https_client, timeouts};

use fanout::domain::Published;

use std::time::Duration;

/// The SDK configuration: the standard chain (credentials, profile, `AWS_REGION`, endpoint
/// variables) with the library's HTTP client and timeouts; `region` when given, else the
/// chain's, else the queue URL's.
pub async fn sdk_config(region: Option<&str>, queue_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let sdk = loader.load().await;
    match (sdk.region(), queue_url.and_then(region_of_queue_url)) {
        (None, Some(region)) => sdk.to_builder().region(Region::new(region)).build(),
        _ => sdk,
    }
}

/// A deployed workspace.
pub struct AwsBackend {
    resources: Resources,
    sdk: SdkConfig,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// How long `dlq redrive --max` keeps a message it moves invisible: enough to send and
    /// delete it. A body that is not a job outlasts it when a run does, and comes back.
    move_visibility: Duration,
}

impl AwsBackend {
    pub fn new(sdk: &SdkConfig, resources: Resources) -> Self {
        Self {
            resources,
            sdk: sdk.clone(),
            sqs: aws_sdk_sqs::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            move_visibility: dlq::MOVE_VISIBILITY,
        }
    }

    /// With another invisibility for the messages `dlq redrive --max` moves (60 s): a test
    /// shortens it to see what comes back within a run.
    pub fn with_move_visibility(mut self, visibility: Duration) -> Self {
        self.move_visibility = visibility;
        self
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }
}

#[async_trait]
impl Backend for AwsBackend {
    async fn status(&self, top: usize, progress: &Progress) -> Result<Status, OpsError> {
        let (queue, dlq) = (self.resources.queue_url()?, self.resources.dlq_url()?);
        let table = self.resources.table()?;
        let (queue_counts, dlq_counts, age, rooms) = tokio::join!(
            queues::counts(&self.sqs, queue),
            queues::counts(&self.sqs, dlq),
            queues::oldest_age_ms(&self.cloudwatch, queue),
            rooms::scan(&self.dynamodb, table, progress),
        );
        let queue_counts = queue_counts?;
        let dead = dlq_counts?.total();
        let rooms = rooms?;
        let mut notes = Vec::new();
        let oldest_age_ms = match age {
            Ok(age) => Some(age),
            Err(why) => {
                notes.push(why);
                None
            }
        };
        Ok(Status {
            queue: QueueStatus {
                ready: queue_counts.visible,
                in_flight: queue_counts.not_visible,
                delayed: queue_counts.delayed,
                dead,
                oldest_age_ms,
            },
            connections: rooms.connections,
            open_sockets: None,
            rooms: rooms.rooms.into_iter().take(top).collect(),
            notes,
        })
    }

    async fn rooms(&self, progress: &Progress) -> Result<Rooms, OpsError> {
        rooms::scan(&self.dynamodb, self.resources.table()?, progress).await
    }

    async fn dlq_list(&self, max: usize, progress: &Progress) -> Result<DeadLetters, OpsError> {
        let dlq = self.resources.dlq_url()?;
        let total = queues::counts(&self.sqs, dlq).await?.total();
        let messages = dlq::peek(&self.sqs, dlq, total, max, progress).await?;
        Ok(DeadLetters { total, messages })
    }

    async fn dlq_show(&self, id: &str, progress: &Progress) -> Result<DeadLetter, OpsError> {
        let list = self.dlq_list(dlq::SHOW_MAX, progress).await?;
        let read = list.messages.len();
        list.messages
            .into_iter()
            .find(|letter| letter.id == id)
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "no message {id} among the {read} read from the dead-letter queue"
                ))
            })
    }

    async fn dlq_redrive(
        &self,
        max: Option<u64>,
        wait: Duration,
        progress: &Progress,
    ) -> Result<Redrive, OpsError> {
        let dlq = self.resources.dlq_url()?;
        let queue = self.resources.queue_url()?;
        let (moved, method, task_status, not_jobs) = match max {
            Some(max) => {
                let (moved, not_jobs) =
                    dlq::move_some(&self.sqs, queue, dlq, max, self.move_visibility, progress)
                        .await?;
                (moved, "receive, send, delete", None, not_jobs)
            }
            None => {
                let (moved, status) = dlq::move_all(&self.sqs, queue, dlq, wait, progress).await?;
                (moved, "StartMessageMoveTask", Some(status), Vec::new())
            }
        };
        let remaining = queues::counts(&self.sqs, dlq)
            .await
            .ok()
            .map(|counts| counts.total());
        Ok(Redrive {
            moved,
            remaining,
            method: method.to_owned(),
            task_status,
            not_jobs,
        })
    }

    async fn publish(&self, body: String) -> Result<Published, OpsError> {
        crate::publish::send(&self.sdk, None, self.resources.publish_url()?, body).await
    }

    async fn kick(&self, connection_id: &str) -> Result<(), OpsError> {
        let endpoint = self.resources.management_endpoint()?;
        delete_connection(&self.sdk, endpoint, connection_id).await
    }
}

/// `DeleteConnection` on the management API at `endpoint`, signed with `sdk`'s credentials.
pub async fn delete_connection(
    sdk: &SdkConfig,
    endpoint: &str,
    connection_id: &str,
) -> Result<(), OpsError> {
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
        .endpoint_url(endpoint)
        .build();
    let client = aws_sdk_apigatewaymanagement::Client::from_conf(config);
    match client
        .delete_connection()
        .connection_id(connection_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            Err(match status {
                Some(410) => OpsError::NotFound(format!(
                    "connection {connection_id} is gone (410): not connected, or already closed"
                )),
                Some(403) => OpsError::Unavailable(format!(
                    "the management API refused (403): these credentials may not \
                     execute-api:ManageConnections on {endpoint}: {}",
                    describe(&error)
                )),
                _ => unavailable(
                    &format!("could not close {connection_id} through {endpoint}"),
                    &error,
                ),
            })
        }
    }
}
