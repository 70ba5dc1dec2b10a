//! What sendmessage and publish share: a message takes its room's next offset and is kept in
//! the room's history before its job is enqueued, and is taken back out if the queue refused it.

use crate::domain::history::HistoryConfig;
use crate::domain::{ClientError, ErrorCode, HistoryEntry, Job, RoomName, epoch_millis};
use crate::ports::History;
use std::time::SystemTime;
use tracing::{error, warn};

pub(super) struct Sequencer<'a> {
    pub history: &'a dyn History,
    pub config: &'a HistoryConfig,
}

impl Sequencer<'_> {
    /// Takes the room's next offset for the message and keeps it in the room's history. A
    /// failure after the offset was taken leaves that offset unused: no one receives a message
    /// under it, and recoveries pass over it.
    pub async fn place(
        &self,
        room: &RoomName,
        job: Job,
        now: SystemTime,
    ) -> Result<Job, ClientError> {
        let now_ms = epoch_millis(now);
        let position = self
            .history
            .next_position(
                room,
                now_ms.div_euclid(1000),
                self.config.sequence_expiry(now_ms),
            )
            .await
            .map_err(|failure| {
                error!(%room, error = %failure, "could not take the room's next offset");
                unavailable()
            })?;
        let job = job.at(position);
        if self.config.size > 0
            && let Some(entry) = HistoryEntry::of(&job, self.config.entry_expiry(job.sent_at))
            && let Err(failure) = self.history.append(room, &entry).await
        {
            error!(%room, offset = entry.offset, error = %failure, "could not keep the message in history");
            return Err(unavailable());
        }
        Ok(job)
    }

    /// Takes a message the queue refused for certain back out of its room's history, so that
    /// no one recovers a message its sender was told failed. Best effort: if this fails too, a
    /// member may recover it (and see it twice if the sender sends it again).
    pub async fn forget(&self, room: &RoomName, job: &Job) {
        if self.config.size == 0 {
            return;
        }
        if let Some(offset) = job.offset
            && let Err(failure) = self.history.remove(room, offset).await
        {
            warn!(%room, offset, error = %failure, "a refused message stays in history");
        }
    }
}

/// A dependency failed; the sender may send again.
pub(super) fn unavailable() -> ClientError {
    ClientError::new(
        ErrorCode::Unavailable,
        "the message could not be accepted right now; send it again",
    )
}
