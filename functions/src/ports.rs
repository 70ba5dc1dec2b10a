//! Ports: what the handlers and the engine need from the outside world.
//!
//! Each port has an AWS adapter (`adapters::dynamodb`, `adapters::sqs`, `adapters::management`)
//! and an in-memory one (`adapters::memory`). Handlers and the engine see only these traits.

use crate::domain::job::JobTooLarge;
use crate::domain::{Connection, Job, RoomName, Segment};
use async_trait::async_trait;
use bytes::Bytes;

/// One page of connection ids and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub ids: Vec<String>,
    /// Opaque; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the call after the client's own retries.
    #[error("connection store unavailable: {0}")]
    Unavailable(String),
    /// A cursor that this store did not produce.
    #[error("invalid page cursor: {0}")]
    BadCursor(String),
    /// An item that does not have the shape of a connection.
    #[error("malformed connection item: {0}")]
    Malformed(String),
}

/// The `connections` table.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn put(&self, connection: &Connection) -> Result<(), StoreError>;
    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError>;
    /// Deleting a connection that is already gone succeeds.
    async fn delete(&self, connection_id: &str) -> Result<(), StoreError>;
    /// One page of the room's members, from the room index.
    async fn room_page(&self, room: &RoomName, cursor: Option<&str>) -> Result<Page, StoreError>;
    /// One page of one Scan segment of the whole table.
    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    TooLarge(#[from] JobTooLarge),
}

/// The SQS fan-out queue.
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
}

/// How a post to one connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is gone; delete it.
    #[error("connection is gone (410)")]
    Gone,
    /// 429: throttled; back off.
    #[error("throttled (429)")]
    Throttled,
    /// 5xx from the management API.
    #[error("management API error ({0})")]
    Server(u16),
    /// Another 4xx: retrying will not help.
    #[error("rejected ({status}): {reason}")]
    Rejected { status: u16, reason: String },
    /// No response: connect failure, reset, or the per-call timeout.
    #[error("transport error: {0}")]
    Transport(String),
}

impl PostError {
    /// Worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PostError::Throttled | PostError::Server(_) | PostError::Transport(_)
        )
    }
}

/// API Gateway's management API (`POST @connections/{id}`).
#[async_trait]
pub trait ConnectionGateway: Send + Sync {
    /// Posts one frame. `endpoint` is `https://{domain}/{stage}`.
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        frame: Bytes,
    ) -> Result<(), PostError>;
}
