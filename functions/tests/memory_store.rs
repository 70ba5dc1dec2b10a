//! The in-memory connection store through its port, paged like DynamoDB: the same paging
//! helpers as the DynamoDB adapter's tests in `aws_adapters.rs`.

use fanout::adapters::memory::MemoryStore;
use fanout::domain::{Connection, RoomName};
use fanout::ports::ConnectionStore;
use fanout_test_support::pages::{ids, room_pages, scan_pages};

fn connection(id: &str, room: &str) -> Connection {
    Connection::in_room(id, RoomName::parse(room).unwrap(), 0, 0)
}

/// The room's ids and how many pages they took.
async fn all_room_ids(store: &MemoryStore, room: &str) -> (Vec<String>, usize) {
    let pages = room_pages(store, &RoomName::parse(room).unwrap()).await;
    let count = pages.len();
    (ids(pages), count)
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
    let mut seen = ids(scan_pages(&store, 4).await);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 100);
}
