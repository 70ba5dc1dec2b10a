//! What sendmessage and publish share: a message takes its room's next offset and is kept in
//! the room's history before its job is enqueued, and is taken back out if the queue refused it.

use crate::domain::history::HistoryConfig;
use crate::domain::{ClientError, ErrorCode, HistoryEntry, Job, RoomName, epoch_millis};
use crate::ports::{History, by};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{error, warn};

/// How long each call to the history (and publish's to its keys and the queue) may take: a
/// send stays well inside API Gateway's 29 s (WebSocket) and 30 s (HTTP) integration timeouts.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Sequencer<'a> {
    pub history: &'a dyn History,
    pub config: &'a HistoryConfig,
}

impl Sequencer<'_> {
    /// Takes the room's next offset for the message and keeps it in the room's history. A
    /// failure after the offset was taken leaves that offset unused: no one receives a message
    /// under it, and recoveries pass over it. A history write that failed may have landed all
    /// the same (an answer lost, a timeout): it is taken back out, so that no one recovers a
    /// message its sender was told failed.
    pub async fn place(
        &self,
        room: &RoomName,
        job: Job,
        now: SystemTime,
    ) -> Result<Job, ClientError> {
        let now_ms = epoch_millis(now);
        let position = by(
            deadline(),
            self.history.next_position(
                room,
                now_ms.div_euclid(1000),
                self.config.sequence_expiry(now_ms),
            ),
        )
        .await
        .map_err(|failure| {
            error!(%room, error = %failure, "could not take the room's next offset");
            unavailable()
        })?;
        let job = job.at(position);
        if self.config.size > 0
            && let Some(entry) = HistoryEntry::of(&job, self.config.entry_expiry(job.sent_at))
            && let Err(failure) = by(deadline(), self.history.append(room, &entry)).await
        {
            error!(%room, offset = entry.offset, error = %failure, "could not keep the message in history");
            self.forget(room, &job).await;
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
            && let Err(failure) = by(deadline(), self.history.remove(room, offset)).await
        {
            warn!(%room, offset, error = %failure, "a refused message stays in history");
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + CALL_TIMEOUT
}

/// A dependency failed; the sender may send again.
pub(super) fn unavailable() -> ClientError {
    ClientError::new(
        ErrorCode::Unavailable,
        "the message could not be accepted right now; send it again",
    )
}
