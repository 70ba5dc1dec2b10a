use crate::domain::history::new_epoch;
use crate::domain::{HistoryEntry, Position, RoomName};
use crate::ports::{History, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Rooms' sequences and history in memory, as the DynamoDB table keeps them: a sequence that
/// expired is gone (the next message starts a new epoch), and reads skip expired entries. Each
/// room keeps at most `keep` entries (its history size), and expired rooms are swept, so memory
/// stays bounded by the rooms in use.
pub struct MemoryHistory {
    keep: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomName, Sequence>,
    /// Calls since the last sweep of expired rooms.
    since_sweep: usize,
}

struct Sequence {
    position: Position,
    /// Epoch seconds.
    expires_at: i64,
    entries: BTreeMap<u64, HistoryEntry>,
}

impl MemoryHistory {
    /// Expired rooms are swept every this many new offsets.
    const SWEEP_EVERY: usize = 1024;

    /// A history that keeps each room's last `keep` messages.
    pub fn new(keep: u64) -> Self {
        Self {
            keep: usize::try_from(keep).unwrap_or(usize::MAX),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries kept for `room`, expired ones included (for tests).
    pub fn kept(&self, room: &RoomName) -> usize {
        self.lock()
            .rooms
            .get(room)
            .map_or(0, |sequence| sequence.entries.len())
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn next_position(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<Position, StoreError> {
        let mut state = self.lock();
        state.since_sweep += 1;
        if state.since_sweep >= Self::SWEEP_EVERY {
            state.since_sweep = 0;
            state.rooms.retain(|_, sequence| sequence.expires_at > now);
        }
        let sequence = state
            .rooms
            .entry(room.clone())
            .and_modify(|sequence| {
                if sequence.expires_at <= now {
                    *sequence = Sequence::fresh();
                }
            })
            .or_insert_with(Sequence::fresh);
        sequence.position.offset += 1;
        sequence.expires_at = keep_until;
        Ok(sequence.position.clone())
    }

    async fn position(&self, room: &RoomName, now: i64) -> Result<Option<Position>, StoreError> {
        Ok(self
            .lock()
            .rooms
            .get(room)
            .filter(|sequence| sequence.expires_at > now && sequence.position.offset > 0)
            .map(|sequence| sequence.position.clone()))
    }

    async fn append(&self, room: &RoomName, entry: &HistoryEntry) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(sequence) = state.rooms.get_mut(room) else {
            return Ok(());
        };
        if sequence.position.epoch != entry.epoch {
            return Ok(());
        }
        sequence.entries.insert(entry.offset, entry.clone());
        while sequence.entries.len() > self.keep {
            sequence.entries.pop_first();
        }
        Ok(())
    }

    async fn remove(&self, room: &RoomName, offset: u64) -> Result<(), StoreError> {
        if let Some(sequence) = self.lock().rooms.get_mut(room) {
            sequence.entries.remove(&offset);
        }
        Ok(())
    }

    async fn read(
        &self,
        room: &RoomName,
        epoch: &str,
        (from, to): (u64, u64),
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let state = self.lock();
        let Some(sequence) = state.rooms.get(room) else {
            return Ok(Vec::new());
        };
        if sequence.position.epoch != epoch || from > to {
            return Ok(Vec::new());
        }
        Ok(sequence
            .entries
            .range(from..=to)
            .map(|(_, entry)| entry)
            .filter(|entry| entry.is_live(now_ms))
            .take(limit)
            .cloned()
            .collect())
    }
}

impl Sequence {
    fn fresh() -> Self {
        Self {
            position: Position {
                offset: 0,
                epoch: new_epoch(),
            },
            expires_at: 0,
            entries: BTreeMap::new(),
        }
    }
}
