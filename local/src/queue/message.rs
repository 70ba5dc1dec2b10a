//! A message of the in-memory queue, and on a FIFO queue its group and place: what the queue
//! (`local`) and its order of delivery (`groups`) both hold, so neither imports the other.

use fanout::domain::now_epoch_millis;

/// Where a message of a FIFO queue stands.
#[derive(Debug, Clone)]
pub struct Order {
    /// Its message group (`MessageGroupId`): a job's room.
    pub group: String,
    /// `MessageDeduplicationId`: a job's; none for a raw body.
    pub deduplication_id: Option<String>,
    /// When it was sent relative to the others (`SequenceNumber`): a group gives its messages
    /// out by it.
    pub sequence: u64,
}

/// A message as the queue holds it.
pub(super) struct Message {
    pub(super) id: String,
    pub(super) body: String,
    pub(super) receive_count: u32,
    pub(super) sent_at_ms: u64,
    pub(super) first_received_ms: Option<u64>,
    /// On a FIFO queue, its group and place.
    pub(super) order: Option<Order>,
}

impl Message {
    pub(super) fn new(body: String, order: Option<Order>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            body,
            receive_count: 0,
            sent_at_ms: now_epoch_millis().unsigned_abs(),
            first_received_ms: None,
            order,
        }
    }
}
