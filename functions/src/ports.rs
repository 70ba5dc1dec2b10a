//! Ports: what the handlers and the engine need from the outside world.
//!
//! Each port has an AWS adapter (`adapters::dynamodb`, `adapters::sqs`, `adapters::management`)
//! and an in-memory one (`adapters::memory`). Handlers and the engine see only these traits.
//! Every method may hang or fail: callers bound each call by their own deadline.

use crate::domain::job::JobTooLarge;
use crate::domain::{
    Allowance, Checkpoint, Connection, HistoryEntry, IdempotencyKey, Job, Position, RoomName,
    Segment,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// Runs a port's `call`, failing with the timeout's error if `until` comes first: how callers
/// bound each call by their own deadline.
pub async fn by<T, E, Fut>(until: Instant, call: Fut) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: From<tokio::time::error::Elapsed>,
{
    timeout_at(until, call)
        .await
        .unwrap_or_else(|elapsed| Err(E::from(elapsed)))
}

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
    /// A conditional write found the record held by another run.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl StoreError {
    /// Worth trying again: the store did not answer, or refused for now.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<tokio::time::error::Elapsed> for StoreError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        StoreError::Unavailable("no answer in time".into())
    }
}

/// The `connections` table and the `memberships` table: each connection with its rooms, and
/// each room's members.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores the connection and a membership in each of its rooms.
    async fn put(&self, connection: &Connection) -> Result<(), StoreError>;
    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError>;
    /// Adds `room` to the connection's rooms (unless it already holds `max_rooms` others),
    /// then records its membership. Joining a room again succeeds.
    async fn join(
        &self,
        connection: &Connection,
        room: &RoomName,
        max_rooms: usize,
    ) -> Result<Join, StoreError>;
    /// Takes the connection out of `room`: its membership first, so that no message fanned out
    /// after this returns reaches it there. Leaving a room it is not in succeeds.
    async fn leave(&self, connection_id: &str, room: &RoomName) -> Result<(), StoreError>;
    /// Deletes the connection and its memberships. Deleting a connection that is already gone
    /// succeeds.
    async fn delete(&self, connection_id: &str) -> Result<(), StoreError>;
    /// Deletes the connection (and its memberships) only if it connected before
    /// `connected_before` (epoch ms): API Gateway answers 410 for a connection whose
    /// `$connect` is still running, and that one must stay.
    async fn delete_stale(
        &self,
        connection_id: &str,
        connected_before: i64,
    ) -> Result<StaleDelete, StoreError>;
    /// One page of the room's members, from the memberships table, in connection-id order: those after
    /// `cursor` and, with `until`, up to that id (inclusive; a bound, not necessarily a member).
    async fn room_page(
        &self,
        room: &RoomName,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Page, StoreError>;
    /// One page of one Scan segment of the whole table.
    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError>;
    /// The cursor that goes on right after `connection_id`, in the room's pages (`Some(room)`)
    /// or the Scan's (`None`): how a run that stopped mid-page hands on exactly the rest.
    fn cursor_after(&self, room: Option<&RoomName>, connection_id: &str) -> String;
}

/// What [`ConnectionStore::join`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// It is in the room now (or was already).
    Joined,
    /// It already holds the most rooms it may; nothing changed.
    TooManyRooms,
    /// The connection is not in the store (it left, or expired).
    NotConnected,
}

/// What [`ConnectionStore::delete_stale`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleDelete {
    /// The connection is not in the store any more: deleted now, or already gone (its
    /// `$disconnect` ran, or an earlier 410 deleted it).
    Gone,
    /// Kept: it connected at or after the bound, so its `$connect` may still be running and a
    /// post to it is worth trying again.
    TooYoung,
}

/// Each connection's sending allowance ([`Allowance`], sendmessage's rate limit), kept on its
/// item so that every instance of sendmessage sees the same one.
#[async_trait]
pub trait Allowances: Send + Sync {
    /// Replaces the connection's allowance with `new` if it is still `expected` (`None`: never
    /// set). `false` if another send changed it first, or the connection is gone.
    async fn swap_allowance(
        &self,
        connection_id: &str,
        expected: Option<Allowance>,
        new: Allowance,
    ) -> Result<bool, StoreError>;
}

/// Rooms' sequences and their history (the `history` table): every message accepted for a room
/// takes the room's next offset, and is kept for recovery (`domain::history`).
#[async_trait]
pub trait History: Send + Sync {
    /// Takes the room's next offset: one more than the last, in the room's epoch. A room with
    /// no sequence, or whose sequence expired by `now` (epoch seconds), starts a new epoch at 1.
    /// Calls running at once each get their own offset. The sequence is kept until
    /// `keep_until` (epoch seconds), renewed by every call.
    async fn next_position(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<Position, StoreError>;
    /// The room's last offset and epoch, if it has a sequence that has not expired by `now`
    /// (epoch seconds).
    async fn position(&self, room: &RoomName, now: i64) -> Result<Option<Position>, StoreError>;
    /// Keeps a message under its offset; writing the same entry twice is harmless.
    async fn append(&self, room: &RoomName, entry: &HistoryEntry) -> Result<(), StoreError>;
    /// Forgets a message whose send failed after it was kept.
    async fn remove(&self, room: &RoomName, offset: u64) -> Result<(), StoreError>;
    /// The kept entries of `epoch` with offsets `from..=to` that are live at `now_ms` (epoch
    /// milliseconds), in offset order, at most `limit`.
    async fn read(
        &self,
        room: &RoomName,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
}

/// What the publish endpoint remembers of an idempotency key.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// The key was free (unknown, expired, or claimed by a publish that placed nothing before
    /// its lease ran out): this call now holds it, until the lease it asked for.
    Claimed,
    /// Another publish holds the key until `lease_until_ms` and has not placed its message yet.
    Held { lease_until_ms: i64 },
    /// The key's message has its place: its job, and whether it is known to be on the queue.
    Placed {
        job: Box<Job>,
        enqueued: bool,
        lease_until_ms: i64,
    },
}

/// How a publish that placed its message under a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job is on the queue: the key answers with it from now on.
    Enqueued,
    /// The queue's answer was lost: the lease ends now, so that the next try with the key
    /// enqueues the same job (same id and offset) again.
    Unsure,
}

/// The publish endpoint's idempotency keys (kept in the history table): the same key within
/// [`crate::domain::IdempotencyKey::KEPT_SECONDS`] answers the first publish's answer and
/// publishes nothing new. Each publish acts as a `claimant` (its message's id); every write is
/// fenced by it, and repeating a write that already landed (an SDK retry after a lost answer)
/// succeeds again.
#[async_trait]
pub trait PublishLog: Send + Sync {
    /// Claims `key` for `claimant` until `lease_until_ms` (epoch milliseconds), to be forgotten
    /// at `expires_at` (epoch seconds), unless another publish holds it or placed a message
    /// under it: then what that one left.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
        expires_at: i64,
    ) -> Result<KeyState, StoreError>;
    /// Records the job placed under a key `claimant` holds; `false`, recording nothing, if it
    /// no longer holds it.
    async fn place(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        job: &Job,
    ) -> Result<bool, StoreError>;
    /// Takes over, for `claimant` until `lease_until_ms`, a key whose job's enqueue is unknown
    /// and whose lease ran out by `now_ms`; `false` if another publish holds it.
    async fn retake(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records how the enqueue of the key's job ended, if `claimant` still holds the key.
    async fn settle(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        how: Settled,
    ) -> Result<(), StoreError>;
    /// Forgets the key, if `claimant` still holds it: its message was refused for certain,
    /// and may be published anew.
    async fn release(&self, key: &IdempotencyKey, claimant: &str) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    /// The queue holds as many messages as it may and refuses new ones for now (the local
    /// stack's in-memory queue, `--max-queue-depth`; SQS has no such bound).
    #[error("job queue full: {0}")]
    Full(String),
    #[error(transparent)]
    TooLarge(#[from] JobTooLarge),
}

impl QueueError {
    /// Worth trying again: the queue did not answer, or refused for now.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_) | QueueError::Full(_))
    }
}

impl From<tokio::time::error::Elapsed> for QueueError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        QueueError::Unavailable("no answer in time".into())
    }
}

/// SQS's largest `DelaySeconds`.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// The SQS fan-out queue and its dead-letter queue.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Puts a job on the queue, to be received no sooner than `delay` from now (at most
    /// [`MAX_QUEUE_DELAY`]; adapters cap it). A queue that keeps order takes no delay: the job
    /// is received in its turn.
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError>;
    /// Parks a message the worker gives up on in the dead-letter queue, with the reason.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError>;
    /// Makes a received message visible again after `delay` instead of the queue's visibility
    /// timeout (SQS `ChangeMessageVisibility`); for a job reported failed.
    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError>;
    /// Whether the queue keeps each room's jobs in order (SQS FIFO, the room as message group:
    /// Terraform's `ordering = "per_room"`): it gives a group's messages out one at a time, in
    /// the order they were sent, and takes no per-message delay. The engine then keeps a job's
    /// message until the job is done, instead of handing its rest on behind later messages.
    fn keeps_order(&self) -> bool {
        false
    }
}

/// What claiming a job's progress record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No run has recorded anything: start from the job itself.
    Fresh,
    /// An earlier run stopped here.
    /// Boxed: a held job's checkpoint carries its failures.
    Resume(Box<Checkpoint>),
    /// Everything is done and handed off.
    Finished,
    /// Another run holds the record and its lease has not expired.
    Busy,
}

/// Jobs' progress records (see [`Checkpoint`]): one per job hop, kept for a while after it
/// finishes so that a late redelivery finds it.
#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// Takes the record `key` for `owner` until `lease_until`, unless another owner holds it
    /// and its lease has not expired by `now` (both epoch ms, on the caller's clock).
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, StoreError>;
    /// Writes the checkpoint if `owner` still holds the record and no write of a higher `seq`
    /// has landed; [`StoreError::Conflict`] if not. `seq` grows with every write of a run, so
    /// a write that arrives late (an earlier attempt, delayed in the network) cannot undo a
    /// later one, such as the hand-off or the finished marker; the same write twice (a retry
    /// of one that landed) is harmless.
    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError>;
    /// Gives the record up before the lease ends, so that a redelivery need not wait for it:
    /// for a run that failed and asked SQS to redeliver soon.
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError>;
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
    /// 403: the worker may not post to this endpoint (its role lacks
    /// `execute-api:ManageConnections`, or the endpoint is another API's). It holds for every
    /// connection, so the job stops at once rather than count a failure per member.
    #[error("forbidden (403): {0}")]
    Forbidden(String),
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
