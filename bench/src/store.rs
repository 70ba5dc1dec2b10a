//! A synthetic connection store: one room of N members, paged like a DynamoDB Query on the
//! `room-index` GSI (whole, or a split part's range of it), without holding N ids in memory.
//!
//! Why synthetic: the benchmark measures the worker (engine, SDK, HTTP), and a million real items
//! in DynamoDB Local or moto would measure them instead (and need minutes to load). The store
//! computes each page from the cursor: ids sort in index order (see `ids`), so the ids of a page
//! are those of the indexes `start..start + page`, and the worker's memory is what the engine
//! holds, not what the store holds.
//!
//! Paging follows DynamoDB: a page holds as many KEYS_ONLY index items as fit in 1 MB (or a given
//! limit), the cursor is the last key of the page (`LastEvaluatedKey`) and the next page starts
//! after it (`ExclusiveStartKey`), which may be any string, as a split part's lower bound is; an
//! `until` bound ends the range, as the part's key condition does.

use crate::ids::{ID_LEN, IdSpace};
use async_trait::async_trait;
use fanout::domain::{Connection, RoomName, Segment};
use fanout::ports::{ConnectionStore, Join, Page, StaleDelete, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// DynamoDB's limit on the data one Query reads.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// The size DynamoDB counts for one KEYS_ONLY `room-index` item: attribute names plus values.
/// The table key (`connectionId`) is also the index's sort key, so it is stored once.
pub fn index_item_bytes(room: &str) -> usize {
    "connectionId".len() + ID_LEN + "room".len() + room.len()
}

/// How many index items fit in one 1 MB page.
pub fn items_per_page(room: &str) -> usize {
    PAGE_BYTES / index_item_bytes(room)
}

pub struct SyntheticStore {
    room: RoomName,
    ids: IdSpace,
    page_size: u64,
    /// How long each page read takes (a Query returning 1 MB is not free).
    page_latency: Duration,
    /// 410s the engine deleted: counted, not stored (memory stays O(1)).
    deleted: AtomicU64,
    /// Deletes of ids that are not members: a bug in whoever sent them.
    foreign_deletes: AtomicU64,
    pages: AtomicU64,
}

impl SyntheticStore {
    pub fn new(room: RoomName, members: u64, page_size: usize, page_latency: Duration) -> Self {
        assert!(page_size > 0, "page size must be at least 1");
        Self {
            room,
            ids: IdSpace::new(members),
            page_size: page_size as u64,
            page_latency,
            deleted: AtomicU64::new(0),
            foreign_deletes: AtomicU64::new(0),
            pages: AtomicU64::new(0),
        }
    }

    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    pub fn foreign_deletes(&self) -> u64 {
        self.foreign_deletes.load(Ordering::Relaxed)
    }

    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// The page of members after `cursor` and through `until` (both any string), computed, not
    /// looked up.
    fn page_after(&self, cursor: Option<&str>, until: Option<&str>) -> Page {
        let start = cursor.map_or(0, |cursor| self.ids.count_through(cursor));
        let limit = until.map_or(self.ids.members(), |until| self.ids.count_through(until));
        let end = (start + self.page_size).min(limit).max(start);
        let ids: Vec<String> = (start..end).map(|i| self.ids.id_of(i)).collect();
        let next = if end < limit {
            ids.last().cloned()
        } else {
            None
        };
        self.pages.fetch_add(1, Ordering::Relaxed);
        Page { ids, next }
    }
}

#[async_trait]
impl ConnectionStore for SyntheticStore {
    async fn put(&self, _connection: &Connection) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "the benchmark's store is read-only".into(),
        ))
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .ids
            .index_of(connection_id)
            .map(|_| Connection::in_room(connection_id, self.room.clone(), 0, 0)))
    }

    async fn join(
        &self,
        _connection: &Connection,
        _room: &RoomName,
        _max_rooms: usize,
    ) -> Result<Join, StoreError> {
        Err(StoreError::Unavailable(
            "the benchmark's store is read-only".into(),
        ))
    }

    async fn leave(&self, _connection_id: &str, _room: &RoomName) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "the benchmark's store is read-only".into(),
        ))
    }

    async fn delete(&self, connection_id: &str) -> Result<(), StoreError> {
        match self.ids.index_of(connection_id) {
            Some(_) => self.deleted.fetch_add(1, Ordering::Relaxed),
            None => self.foreign_deletes.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    }

    async fn delete_stale(
        &self,
        connection_id: &str,
        _before: i64,
    ) -> Result<StaleDelete, StoreError> {
        // Every synthetic member connected long ago.
        self.delete(connection_id).await.map(|()| StaleDelete::Gone)
    }

    async fn room_page(
        &self,
        room: &RoomName,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Page, StoreError> {
        if !self.page_latency.is_zero() {
            tokio::time::sleep(self.page_latency).await;
        }
        if *room != self.room {
            return Ok(Page::default());
        }
        Ok(self.page_after(cursor, until))
    }

    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError> {
        // The room is the whole table: one segment gets it all, the others nothing.
        if segment.index != 0 {
            return Ok(Page::default());
        }
        if !self.page_latency.is_zero() {
            tokio::time::sleep(self.page_latency).await;
        }
        Ok(self.page_after(cursor, None))
    }

    fn cursor_after(&self, _room: Option<&RoomName>, connection_id: &str) -> String {
        // A cursor is the last id of a page, as `page_after` reads it.
        connection_id.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn every_id(
        store: &SyntheticStore,
        room: &RoomName,
        from: Option<&str>,
        until: Option<&str>,
    ) -> (Vec<String>, u64) {
        let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, from.map(str::to_owned));
        loop {
            let page = store
                .room_page(room, cursor.as_deref(), until)
                .await
                .unwrap();
            pages += 1;
            ids.extend(page.ids);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return (ids, pages),
            }
        }
    }

    #[tokio::test]
    async fn paging_covers_every_member_exactly_once_in_id_order() {
        let room = RoomName::parse("bench").unwrap();
        for (members, page_size, pages) in
            [(0, 3, 1), (1, 3, 1), (9, 3, 3), (10, 3, 4), (1000, 7, 143)]
        {
            let store = SyntheticStore::new(room.clone(), members, page_size, Duration::ZERO);
            let (ids, read) = every_id(&store, &room, None, None).await;
            assert_eq!(read, pages, "{members} members, pages of {page_size}");
            assert!(
                ids.windows(2).all(|pair| pair[0] < pair[1]),
                "sorted, once each"
            );
            let space = IdSpace::new(members);
            let indexes: Vec<u64> = ids.iter().map(|id| space.index_of(id).unwrap()).collect();
            assert_eq!(indexes, (0..members).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn a_split_rooms_ranges_cover_it_once_between_bounds_that_are_not_ids() {
        let room = RoomName::parse("bench").unwrap();
        let store = SyntheticStore::new(room.clone(), 10_000, 100, Duration::ZERO);
        let bounds = ["F+", "U+", "k+"];
        let mut seen = Vec::new();
        let starts = [None, Some("F+"), Some("U+"), Some("k+")];
        let ends = [Some("F+"), Some("U+"), Some("k+"), None];
        for (from, until) in starts.into_iter().zip(ends) {
            let (ids, _) = every_id(&store, &room, from, until).await;
            assert!(
                (2_000..3_000).contains(&ids.len()),
                "{from:?}..{until:?}: {}",
                ids.len()
            );
            seen.extend(ids);
        }
        assert!(bounds.iter().all(|b| !seen.iter().any(|id| id == b)));
        assert_eq!(seen.len(), 10_000);
        assert!(
            seen.windows(2).all(|pair| pair[0] < pair[1]),
            "no one twice"
        );
        let (none, _) = every_id(&store, &room, Some("k+"), Some("F+")).await;
        assert!(none.is_empty(), "a start past the end is an empty range");
    }

    #[tokio::test]
    async fn other_rooms_are_empty() {
        let room = RoomName::parse("bench").unwrap();
        let store = SyntheticStore::new(room.clone(), 10, 3, Duration::ZERO);
        let other = RoomName::parse("lobby").unwrap();
        assert_eq!(
            store.room_page(&other, None, None).await.unwrap(),
            Page::default()
        );
    }

    #[tokio::test]
    async fn deletes_are_counted_and_foreign_ones_apart() {
        let store = SyntheticStore::new(RoomName::parse("bench").unwrap(), 10, 3, Duration::ZERO);
        let space = IdSpace::new(10);
        store.delete(&space.id_of(3)).await.unwrap();
        store.delete(&IdSpace::new(11).id_of(10)).await.unwrap();
        assert_eq!((store.deleted(), store.foreign_deletes()), (1, 1));
    }

    #[test]
    fn a_one_megabyte_page_holds_the_documented_number_of_ids() {
        assert_eq!(index_item_bytes("bench"), 37);
        assert_eq!(items_per_page("bench"), 28_339);
    }
}
