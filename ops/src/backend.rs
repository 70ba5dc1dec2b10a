//! What every command needs from where the pipeline runs: the [`Backend`] trait, with an AWS
//! implementation ([`crate::aws::AwsBackend`]) and one for the local stack
//! ([`crate::local::LocalBackend`]), and the answers they give, which `--json` prints as they
//! are serialized here.

use crate::progress::Progress;
use async_trait::async_trait;

use serde::Serialize;
use std::time::Duration;

/// Why a command failed: shown to the operator as it reads, with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The command line, or the resources it names, cannot work: nothing was done.
    #[error("{0}")]
    Usage(String),
    /// A service (SQS, DynamoDB, CloudWatch, the management API, the local stack) failed or did
    /// not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// What was asked for does not exist (a parked message, a connection).
    #[error("{0}")]
    NotFound(String),
}

/// The fan-out queue's messages by state, and the dead-letter queue's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Waiting to be received.
    pub ready: u64,
    /// Received by the worker and not yet deleted.
    pub in_flight: u64,
    /// Sent with a delay (the worker's retries) that has not passed yet.
    pub delayed: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// How long the oldest job has waited: on AWS, SQS's `ApproximateAgeOfOldestMessage`
    /// (CloudWatch, its latest minute); on the local stack, the oldest job ready to be
    /// received. `None` when unknown or when there is none.
    pub oldest_age_ms: Option<u64>,
}

/// A room and how many connections it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCount {
    pub room: String,
    pub members: u64,
}

/// `wsfanout status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub queue: QueueStatus,
    /// Connections in the store (what a fan-out to everyone reaches).
    pub connections: u64,
    /// Sockets open now (the local stack only: API Gateway does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_sockets: Option<u64>,
    /// The largest rooms, most members first.
    pub rooms: Vec<RoomCount>,
    /// What could not be read, and why (the rest still is).
    pub notes: Vec<String>,
}

/// `wsfanout rooms`: every room by members, most first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rooms {
    pub connections: u64,
    pub rooms: Vec<RoomCount>,
}

/// One message of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// SQS's message id (the local queue's, on the local stack).
    pub id: String,
    /// The worker's `reason` attribute; none for a job SQS moved after `maxReceiveCount`
    /// receives (its worker log lines say why it failed).
    pub reason: Option<String>,
    pub body: String,
    /// Epoch ms: when it was sent to the dead-letter queue (SQS's `SentTimestamp`; for a job SQS
    /// moved there itself, when it was first sent to the fan-out queue).
    pub parked_at_ms: Option<u64>,
}

/// `wsfanout dlq list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetters {
    /// How many the dead-letter queue holds (SQS: approximately).
    pub total: u64,
    /// Oldest first, at most `--max`.
    pub messages: Vec<DeadLetter>,
}

/// `wsfanout dlq redrive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redrive {
    /// Messages moved back to the fan-out queue (SQS's move task: approximately).
    pub moved: u64,
    /// Messages left in the dead-letter queue, when known.
    pub remaining: Option<u64>,
    /// How: `StartMessageMoveTask`, `receive, send, delete` (`--max N` on AWS) or `local`.
    pub method: String,
    /// The move task's status when the command returned (`COMPLETED`, or `RUNNING` when
    /// `--wait` ran out first), for `StartMessageMoveTask`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    /// Messages `--max N` left in the dead-letter queue because they are not jobs a worker
    /// would run: each id with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_jobs: Vec<String>,
}

/// `wsfanout publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The message id, in every frame delivered.
    pub id: String,
    /// `room NAME` or `all`.
    pub target: String,
    /// The message's place in its room's sequence (none for `all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The key it was published under: publishing again with it publishes nothing new.
    pub idempotency_key: String,
}

/// `wsfanout kick`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kicked {
    pub connection_id: String,
}

/// Where the pipeline runs: a deployed workspace (SQS, DynamoDB, CloudWatch, the management
/// API) or the local stack (its `/admin` API and its management API). Every call is bounded in
/// time.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Queue depths, age of the oldest job, dead-letter depth, connections and the `top`
    /// largest rooms.
    async fn status(&self, top: usize, progress: &Progress) -> Result<Status, OpsError>;
    /// Every room by members.
    async fn rooms(&self, progress: &Progress) -> Result<Rooms, OpsError>;
    /// Up to `max` messages of the dead-letter queue, left there.
    async fn dlq_list(&self, max: usize, progress: &Progress) -> Result<DeadLetters, OpsError>;
    /// One message of the dead-letter queue, by id.
    async fn dlq_show(&self, id: &str, progress: &Progress) -> Result<DeadLetter, OpsError>;
    /// Moves up to `max` (all when `None`) parked messages back to the fan-out queue, waiting
    /// at most `wait` for a move that runs on the service's side.
    async fn dlq_redrive(
        &self,
        max: Option<u64>,
        wait: Duration,
        progress: &Progress,
    ) -> Result<Redrive, OpsError>;
    /// Sends a publish request's body ([`crate::publish::request_body`]) to the publish
    /// endpoint, signed; the endpoint's answer.
    async fn publish(&self, body: String) -> Result<fanout::domain::Published, OpsError>;
    /// Closes a connection through the management API (`DELETE @connections/{id}`).
    async fn kick(&self, connection_id: &str) -> Result<(), OpsError>;
}

/// Rooms by members, most first, then by name.
pub fn sort_rooms(rooms: impl IntoIterator<Item = (String, u64)>) -> Vec<RoomCount> {
    let mut rooms: Vec<RoomCount> = rooms
        .into_iter()
        .map(|(room, members)| RoomCount { room, members })
        .collect();
    rooms.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
    rooms
}
