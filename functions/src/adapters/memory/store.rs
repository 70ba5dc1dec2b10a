use crate::domain::job::stable_hash;
use crate::domain::{Allowance, Connection, Membership, RoomName, Segment};
use crate::ports::{Allowances, ConnectionStore, Join, Page, StaleDelete, StoreError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// The connections and memberships tables, in memory, paged like DynamoDB: a cursor is the
/// last key returned, and a page holds at most `page_size` ids.
pub struct MemoryStore {
    page_size: usize,
    tables: RwLock<Tables>,
}

#[derive(Default)]
struct Tables {
    /// Ordered so that Scan pages are stable between calls.
    by_id: BTreeMap<String, Connection>,
    /// The memberships table: each room's members by connection id.
    rooms: BTreeMap<RoomName, BTreeMap<String, Membership>>,
}

impl Tables {
    fn remove(&mut self, connection_id: &str) {
        if let Some(old) = self.by_id.remove(connection_id) {
            for room in &old.rooms {
                self.remove_member(room, connection_id);
            }
        }
    }

    fn add_member(&mut self, membership: Membership) {
        self.rooms
            .entry(membership.room.clone())
            .or_default()
            .insert(membership.connection_id.clone(), membership);
    }

    fn remove_member(&mut self, room: &RoomName, connection_id: &str) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(connection_id);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }
}

impl MemoryStore {
    /// Roughly what fits in DynamoDB's 1 MB page of KEYS_ONLY index items.
    pub const DEFAULT_PAGE_SIZE: usize = 10_000;

    pub fn new() -> Self {
        Self::with_page_size(Self::DEFAULT_PAGE_SIZE)
    }

    pub fn with_page_size(page_size: usize) -> Self {
        assert!(page_size > 0, "page size must be at least 1");
        Self {
            page_size,
            tables: RwLock::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the connection is stored.
    pub fn contains(&self, connection_id: &str) -> bool {
        self.read().by_id.contains_key(connection_id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps half-updated (each write is a
        // single insert/remove pair), so a poisoned lock is still consistent.
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn page<'a>(&self, ids: impl Iterator<Item = &'a String>) -> Page {
        let mut ids = ids.peekable();
        let page: Vec<String> = ids.by_ref().take(self.page_size).cloned().collect();
        let next = match ids.peek() {
            Some(_) => page.last().cloned(),
            None => None,
        };
        Page { ids: page, next }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Which Scan segment an id falls in: a stable hash, like DynamoDB's partition hashing.
fn segment_of(connection_id: &str, total: u32) -> u32 {
    (stable_hash(connection_id.as_bytes()) % u64::from(total)) as u32
}

fn after(cursor: Option<&str>) -> (Bound<String>, Bound<String>) {
    match cursor {
        Some(cursor) => (Bound::Excluded(cursor.to_owned()), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

#[async_trait]
impl Allowances for MemoryStore {
    async fn swap_allowance(
        &self,
        connection_id: &str,
        expected: Option<Allowance>,
        new: Allowance,
    ) -> Result<bool, StoreError> {
        let mut tables = self.write();
        match tables.by_id.get_mut(connection_id) {
            Some(connection) if connection.allowance == expected => {
                connection.allowance = Some(new);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut tables = self.write();
        tables.remove(&connection.connection_id);
        for room in &connection.rooms {
            tables.add_member(connection.membership(room));
        }
        tables
            .by_id
            .insert(connection.connection_id.clone(), connection.clone());
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.read().by_id.get(connection_id).cloned())
    }

    async fn join(
        &self,
        connection: &Connection,
        room: &RoomName,
        max_rooms: usize,
    ) -> Result<Join, StoreError> {
        let mut tables = self.write();
        let Some(stored) = tables.by_id.get_mut(&connection.connection_id) else {
            return Ok(Join::NotConnected);
        };
        if !stored.rooms.contains(room) && stored.rooms.len() >= max_rooms {
            return Ok(Join::TooManyRooms);
        }
        stored.rooms.insert(room.clone());
        let membership = stored.membership(room);
        tables.add_member(membership);
        Ok(Join::Joined)
    }

    async fn leave(&self, connection_id: &str, room: &RoomName) -> Result<(), StoreError> {
        let mut tables = self.write();
        tables.remove_member(room, connection_id);
        if let Some(stored) = tables.by_id.get_mut(connection_id) {
            stored.rooms.remove(room);
        }
        Ok(())
    }

    async fn delete(&self, connection_id: &str) -> Result<(), StoreError> {
        self.write().remove(connection_id);
        Ok(())
    }

    async fn delete_stale(
        &self,
        connection_id: &str,
        connected_before: i64,
    ) -> Result<StaleDelete, StoreError> {
        let mut tables = self.write();
        if tables
            .by_id
            .get(connection_id)
            .is_some_and(|connection| connection.connected_at >= connected_before)
        {
            return Ok(StaleDelete::TooYoung);
        }
        tables.remove(connection_id);
        Ok(StaleDelete::Gone)
    }

    async fn room_page(
        &self,
        room: &RoomName,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Page, StoreError> {
        let tables = self.read();
        let Some(members) = tables.rooms.get(room) else {
            return Ok(Page::default());
        };
        // A range whose start is past its end is empty (BTreeMap::range would panic on it).
        Ok(match until {
            Some(until) if cursor.is_some_and(|cursor| cursor >= until) => Page::default(),
            Some(until) => self.page(
                members
                    .range(after(cursor))
                    .map(|(id, _)| id)
                    .take_while(|id| id.as_str() <= until),
            ),
            None => self.page(members.range(after(cursor)).map(|(id, _)| id)),
        })
    }

    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError> {
        let tables = self.read();
        let ids = tables
            .by_id
            .range(after(cursor))
            .map(|(id, _)| id)
            .filter(|id| segment_of(id, segment.total) == segment.index);
        Ok(self.page(ids))
    }

    fn cursor_after(&self, _room: Option<&RoomName>, connection_id: &str) -> String {
        // A cursor is the last id returned, in the room and in the Scan alike.
        connection_id.to_owned()
    }
}
