//! Rooms' sequences and history: one contract, held by the in-memory adapter and by the
//! DynamoDB one against moto.

use fanout::adapters::history_table::{DynamoHistory, HistoryTableConfig};
use fanout::adapters::memory::MemoryHistory;
use fanout::domain::{HistoryEntry, Position, RoomName};
use fanout::ports::History;
use fanout_test_support::moto::{moto_sdk_config, unique};
use serde_json::value::RawValue;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Seconds, on a clock of the test's own.
const NOW: i64 = 1_800_000_000;
const LATER: i64 = NOW + 3_600;

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn entry(position: &Position, text: &str, expires_at: i64) -> HistoryEntry {
    HistoryEntry {
        offset: position.offset,
        epoch: position.epoch.clone(),
        id: format!("id-{}", position.offset),
        payload: RawValue::from_string(format!("{{\"text\":{text:?}}}")).unwrap(),
        sender: Some("Dx4sXe1ZoAMCJvw=".into()),
        user: position
            .offset
            .is_multiple_of(2)
            .then(|| "alice".to_owned()),
        sent_at: NOW * 1000 + i64::try_from(position.offset).unwrap(),
        expires_at,
    }
}

/// Forty sends take offsets: at once (`concurrently`), or one after the other. DynamoDB
/// applies one item's `ADD`s one at a time; moto does not (its threads race on the item, and two
/// calls can read the same value), so against moto the calls go one at a time.
async fn offsets_are_distinct_and_increasing(history: Arc<dyn History>, concurrently: bool) {
    let lobby = room("lobby");
    let mut taken = Vec::new();
    if concurrently {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (history, lobby) = (history.clone(), lobby.clone());
                tokio::spawn(
                    async move { history.next_position(&lobby, NOW, LATER).await.unwrap() },
                )
            })
            .collect();
        for task in tasks {
            taken.push(task.await.unwrap());
        }
    } else {
        for _ in 0..40 {
            taken.push(history.next_position(&lobby, NOW, LATER).await.unwrap());
        }
    }
    let epochs: BTreeSet<&str> = taken.iter().map(|p| p.epoch.as_str()).collect();
    assert_eq!(epochs.len(), 1, "one epoch: {epochs:?}");
    let offsets: BTreeSet<u64> = taken.iter().map(|p| p.offset).collect();
    assert_eq!(
        offsets,
        (1..=40).collect(),
        "each its own offset, none skipped"
    );
    // One task's offsets grow: the sequence is one counter.
    let next = history.next_position(&lobby, NOW, LATER).await.unwrap();
    assert_eq!(next.offset, 41);
    assert_eq!(
        history.position(&lobby, NOW).await.unwrap(),
        Some(next.clone())
    );
    // Another room has its own sequence.
    let other = history
        .next_position(&room("other"), NOW, LATER)
        .await
        .unwrap();
    assert_eq!(other.offset, 1);
    assert_ne!(other.epoch, next.epoch);
}

async fn reads_keep_offset_order_and_skip_other_epochs_expired_and_removed(
    history: Arc<dyn History>,
) {
    let r = room("reads");
    let mut positions = Vec::new();
    for _ in 0..12 {
        positions.push(history.next_position(&r, NOW, LATER).await.unwrap());
    }
    let epoch = positions[0].epoch.clone();
    for (i, position) in positions.iter().enumerate().rev() {
        // 1 and 2 expire at NOW + 10; the rest an hour later.
        let expires_at = if i < 2 { NOW + 10 } else { LATER };
        history
            .append(&r, &entry(position, "hi", expires_at))
            .await
            .unwrap();
    }
    // Written twice: harmless.
    history
        .append(&r, &entry(&positions[5], "hi", LATER))
        .await
        .unwrap();
    history.remove(&r, 7).await.unwrap();

    let read = |range, limit, now_ms| {
        let (history, r, epoch) = (history.clone(), r.clone(), epoch.clone());
        async move {
            history
                .read(&r, &epoch, range, limit, now_ms)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.offset)
                .collect::<Vec<u64>>()
        }
    };
    assert_eq!(
        read((1, 12), 100, NOW * 1000).await,
        [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    );
    assert_eq!(read((3, 9), 100, NOW * 1000).await, [3, 4, 5, 6, 8, 9]);
    assert_eq!(
        read((3, 12), 4, NOW * 1000).await,
        [3, 4, 5, 6],
        "at most the limit"
    );
    assert_eq!(
        read((1, 12), 3, (NOW + 10) * 1000).await,
        [3, 4, 5],
        "expired entries are skipped, and the limit counts what is returned"
    );
    assert!(read((13, 20), 10, NOW * 1000).await.is_empty());

    let full = history
        .read(&r, &epoch, (4, 4), 1, NOW * 1000)
        .await
        .unwrap();
    assert_eq!(
        full,
        [entry(&positions[3], "hi", LATER)],
        "every field comes back"
    );
    assert!(
        history
            .read(&r, "another", (1, 12), 100, NOW * 1000)
            .await
            .unwrap()
            .is_empty(),
        "another epoch's reads find nothing"
    );
}

async fn an_expired_sequence_starts_over_under_a_new_epoch(history: Arc<dyn History>) {
    let r = room("expiring");
    let first = history.next_position(&r, NOW, NOW + 100).await.unwrap();
    history
        .append(&r, &entry(&first, "old", NOW + 50))
        .await
        .unwrap();
    history.next_position(&r, NOW, NOW + 100).await.unwrap();
    assert_eq!(
        history
            .position(&r, NOW + 99)
            .await
            .unwrap()
            .map(|p| p.offset),
        Some(2)
    );
    assert_eq!(
        history.position(&r, NOW + 100).await.unwrap(),
        None,
        "expired"
    );
    let restarted = history
        .next_position(&r, NOW + 100, NOW + 200)
        .await
        .unwrap();
    assert_eq!(restarted.offset, 1);
    assert_ne!(restarted.epoch, first.epoch);
    assert!(
        history
            .read(&r, &restarted.epoch, (1, 10), 10, NOW * 1000)
            .await
            .unwrap()
            .is_empty(),
        "the old epoch's message is not the new one's"
    );
}

async fn contract(history: Arc<dyn History>, concurrently: bool) {
    offsets_are_distinct_and_increasing(history.clone(), concurrently).await;
    reads_keep_offset_order_and_skip_other_epochs_expired_and_removed(history.clone()).await;
    an_expired_sequence_starts_over_under_a_new_epoch(history).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_history_keeps_the_contract() {
    contract(Arc::new(MemoryHistory::new(100)), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dynamodb_history_keeps_the_contract() {
    let history = DynamoHistory::new(
        &moto_sdk_config().await,
        HistoryTableConfig {
            table: unique("history"),
        },
    );
    history.create_table().await.unwrap();
    contract(Arc::new(history), false).await;
}

#[tokio::test]
async fn the_memory_history_keeps_only_a_rooms_last_messages() {
    let history = MemoryHistory::new(3);
    let r = room("small");
    for _ in 0..10 {
        let position = history.next_position(&r, NOW, LATER).await.unwrap();
        history
            .append(&r, &entry(&position, "x", LATER))
            .await
            .unwrap();
    }
    assert_eq!(
        history.kept(&r),
        3,
        "memory stays bounded by the history's size"
    );
}
