use crate::domain::job::stable_hash;
use crate::domain::{Connection, RoomName, Segment};
use crate::ports::{ConnectionStore, Page, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::RwLock;

/// The connections table and its room index, in memory, paged like DynamoDB: a cursor is the
/// last key returned, and a page holds at most `page_size` ids.
pub struct MemoryStore {
    page_size: usize,
    tables: RwLock<Tables>,
}

#[derive(Default)]
struct Tables {
    /// Ordered so that Scan pages are stable between calls.
    by_id: BTreeMap<String, Connection>,
    rooms: BTreeMap<RoomName, BTreeSet<String>>,
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
impl ConnectionStore for MemoryStore {
    async fn put(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut tables = self.write();
        if let Some(old) = tables
            .by_id
            .insert(connection.connection_id.clone(), connection.clone())
            && let Some(members) = tables.rooms.get_mut(&old.room)
        {
            members.remove(&old.connection_id);
        }
        tables
            .rooms
            .entry(connection.room.clone())
            .or_default()
            .insert(connection.connection_id.clone());
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.read().by_id.get(connection_id).cloned())
    }

    async fn delete(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut tables = self.write();
        if let Some(old) = tables.by_id.remove(connection_id)
            && let Some(members) = tables.rooms.get_mut(&old.room)
        {
            members.remove(connection_id);
            if members.is_empty() {
                tables.rooms.remove(&old.room);
            }
        }
        Ok(())
    }

    async fn delete_stale(
        &self,
        connection_id: &str,
        connected_before: i64,
    ) -> Result<bool, StoreError> {
        let stale = self
            .read()
            .by_id
            .get(connection_id)
            .is_some_and(|connection| connection.connected_at < connected_before);
        if stale {
            self.delete(connection_id).await?;
        }
        Ok(stale)
    }

    async fn room_page(&self, room: &RoomName, cursor: Option<&str>) -> Result<Page, StoreError> {
        let tables = self.read();
        Ok(match tables.rooms.get(room) {
            Some(members) => self.page(members.range(after(cursor))),
            None => Page::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str, room: &str) -> Connection {
        Connection {
            connection_id: id.into(),
            room: RoomName::parse(room).unwrap(),
            connected_at: 0,
            expires_at: 0,
            principal: None,
        }
    }

    async fn all_room_ids(store: &MemoryStore, room: &str) -> (Vec<String>, usize) {
        let room = RoomName::parse(room).unwrap();
        let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None);
        loop {
            let page = store.room_page(&room, cursor.as_deref()).await.unwrap();
            pages += 1;
            ids.extend(page.ids);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return (ids, pages),
            }
        }
    }

    #[tokio::test]
    async fn pages_through_a_room_and_moves_members_between_rooms() {
        let store = MemoryStore::with_page_size(3);
        for i in 0..10 {
            store
                .put(&connection(&format!("c{i:02}"), "a"))
                .await
                .unwrap();
        }
        store.put(&connection("other", "b")).await.unwrap();
        let (ids, pages) = all_room_ids(&store, "a").await;
        assert_eq!(ids.len(), 10);
        assert_eq!(pages, 4);

        store.put(&connection("c00", "b")).await.unwrap();
        assert_eq!(all_room_ids(&store, "a").await.0.len(), 9);
        assert_eq!(all_room_ids(&store, "b").await.0, vec!["c00", "other"]);

        store.delete("c00").await.unwrap();
        store.delete("c00").await.unwrap();
        assert!(!store.contains("c00"));
        assert_eq!(store.len(), 10);
    }

    #[tokio::test]
    async fn scan_segments_partition_the_table() {
        let store = MemoryStore::with_page_size(7);
        for i in 0..100 {
            store
                .put(&connection(
                    &format!("c{i}"),
                    if i % 2 == 0 { "a" } else { "b" },
                ))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        for index in 0..4 {
            let mut cursor = None;
            loop {
                let page = store
                    .scan_page(Segment { index, total: 4 }, cursor.as_deref())
                    .await
                    .unwrap();
                seen.extend(page.ids);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100);
    }
}
