//! DynamoDB's limit on one partition, emulated: a room's sequence and its messages share a
//! partition key in the history table, and one partition takes about 1,000 write units a
//! second. With `--room-write-rate N`, each room's history writes (taking an offset, keeping or
//! removing a message: a unit per KB) go through a token bucket of N a second, and a write
//! beyond it is refused as DynamoDB refuses it (`ProvisionedThroughputExceededException`, after
//! the SDK's retries): sendmessage and publish then answer `unavailable`.

use async_trait::async_trait;
use fanout::domain::{Allowance, HistoryEntry, Position, RateLimit, RoomName, now_epoch_millis};
use fanout::ports::{History, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct ThrottledHistory {
    inner: Arc<dyn History>,
    limit: RateLimit,
    /// Each room's bucket, in milli-units.
    buckets: Mutex<HashMap<RoomName, Allowance>>,
}

impl ThrottledHistory {
    /// `inner`, each room's writes held to `units_per_second` (with as much again in a burst,
    /// as DynamoDB keeps unused capacity for a moment).
    pub fn new(inner: Arc<dyn History>, units_per_second: u32) -> Self {
        Self {
            inner,
            limit: RateLimit {
                per_second: units_per_second,
                burst: units_per_second,
            },
            buckets: Mutex::default(),
        }
    }

    /// Takes `units` from the room's bucket, or refuses the write.
    fn spend(&self, room: &RoomName, units: u32) -> Result<(), StoreError> {
        let now = now_epoch_millis();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut current = buckets.get(room).copied();
        for _ in 0..units {
            match self.limit.take(current, now) {
                Some(next) => current = Some(next),
                None => {
                    return Err(StoreError::Unavailable(format!(
                        "ProvisionedThroughputExceededException: room {room}'s partition takes \
                         {} write units a second (--room-write-rate)",
                        self.limit.per_second
                    )));
                }
            }
        }
        if let Some(left) = current {
            buckets.insert(room.clone(), left);
        }
        Ok(())
    }
}

/// Write units of an item: one per KB, at least one.
fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

#[async_trait]
impl History for ThrottledHistory {
    async fn next_position(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<Position, StoreError> {
        self.spend(room, 1)?;
        self.inner.next_position(room, now, keep_until).await
    }

    async fn position(&self, room: &RoomName, now: i64) -> Result<Option<Position>, StoreError> {
        self.inner.position(room, now).await
    }

    async fn append(&self, room: &RoomName, entry: &HistoryEntry) -> Result<(), StoreError> {
        self.spend(room, units(entry.payload.get().len() + 200))?;
        self.inner.append(room, entry).await
    }

    async fn remove(&self, room: &RoomName, offset: u64) -> Result<(), StoreError> {
        self.spend(room, 1)?;
        self.inner.remove(room, offset).await
    }

    async fn read(
        &self,
        room: &RoomName,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.read(room, epoch, range, limit, now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout::adapters::memory::MemoryHistory;

    #[tokio::test]
    async fn a_rooms_writes_beyond_its_rate_are_refused_and_other_rooms_go_on() {
        let history = ThrottledHistory::new(Arc::new(MemoryHistory::new(100)), 5);
        let (busy, quiet) = (
            RoomName::parse("busy").unwrap(),
            RoomName::parse("quiet").unwrap(),
        );
        let mut taken = Vec::new();
        let refused = loop {
            match history.next_position(&busy, 0, i64::MAX).await {
                Ok(position) => taken.push(position.offset),
                Err(error) => break error.to_string(),
            }
        };
        assert_eq!(taken, vec![1, 2, 3, 4, 5], "a second's burst");
        assert!(
            refused.contains("ProvisionedThroughputExceeded"),
            "{refused}"
        );
        assert!(history.next_position(&quiet, 0, i64::MAX).await.is_ok());
    }
}
