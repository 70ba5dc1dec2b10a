//! The publish endpoint's idempotency keys: one contract, held by the in-memory adapter and by
//! the DynamoDB one (in the history table) against moto.

use fanout::adapters::history_table::{DynamoHistory, HistoryTableConfig};
use fanout::adapters::memory::MemoryPublishLog;
use fanout::adapters::publish_log_table::DynamoPublishLog;
use fanout::domain::{IdempotencyKey, Job, Position, RoomName, Target};
use fanout::ports::{KeyState, PublishLog, Settled};
use fanout_test_support::moto::{moto_sdk_config, unique};
use serde_json::value::RawValue;

/// Milliseconds, on a clock of the test's own.
const NOW: i64 = 1_800_000_000_000;
const LEASE: i64 = 35_000;
const DAY: i64 = 86_400;

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

fn job() -> Job {
    Job::message(
        Target::Room(RoomName::parse("news").unwrap()),
        RawValue::from_string("{\"t\":1}".into()).unwrap(),
        None,
        None,
        NOW,
    )
    .at(Position {
        offset: 7,
        epoch: "e1".into(),
    })
}

async fn claim(log: &dyn PublishLog, key: &IdempotencyKey, who: &str, now: i64) -> KeyState {
    log.claim(key, who, now, now + LEASE, now / 1000 + DAY)
        .await
        .unwrap()
}

async fn contract(log: &dyn PublishLog) {
    let (k, job) = (key("order-17/a#b"), job());
    assert!(matches!(claim(log, &k, "a", NOW).await, KeyState::Claimed));
    // The same claim again (an SDK retry of a write that landed) still holds it.
    assert!(matches!(claim(log, &k, "a", NOW).await, KeyState::Claimed));
    // Held by that claim until its lease ends.
    assert!(matches!(
        claim(log, &k, "b", NOW + 1).await,
        KeyState::Held { lease_until_ms } if lease_until_ms == NOW + LEASE
    ));
    // A claim whose lease ran out with nothing placed is taken over, and the old claimant can
    // no longer place, settle or release.
    let later = NOW + LEASE;
    assert!(matches!(
        claim(log, &k, "b", later).await,
        KeyState::Claimed
    ));
    assert!(!log.place(&k, "a", &job).await.unwrap());
    log.release(&k, "a").await.unwrap();
    assert!(log.place(&k, "b", &job).await.unwrap());
    assert!(
        log.place(&k, "b", &job).await.unwrap(),
        "the same write again"
    );
    let mut other = job.clone();
    other.id = "another-id".into();
    assert!(!log.place(&k, "b", &other).await.unwrap(), "placed once");
    log.settle(&k, "a", Settled::Enqueued).await.unwrap();
    match claim(log, &k, "c", later + 1).await {
        KeyState::Placed {
            job: kept,
            enqueued: false,
            lease_until_ms,
        } => {
            assert_eq!((kept.id.as_str(), kept.offset), (job.id.as_str(), Some(7)));
            assert_eq!(kept.epoch.as_deref(), Some("e1"));
            assert_eq!(kept.payload.get(), job.payload.get());
            assert_eq!(lease_until_ms, later + LEASE);
        }
        other => panic!("{other:?}"),
    }
    // Placed is never claimed anew, even past its lease; it is retaken, once its lease ran out,
    // by one publish at a time.
    assert!(matches!(
        claim(log, &k, "c", later + 10 * LEASE).await,
        KeyState::Placed { .. }
    ));
    assert!(
        !log.retake(&k, "c", later + 1, later + 1 + LEASE)
            .await
            .unwrap()
    );
    log.settle(&k, "b", Settled::Unsure).await.unwrap();
    assert!(matches!(
        claim(log, &k, "c", later + 1).await,
        KeyState::Placed {
            enqueued: false,
            lease_until_ms: 0,
            ..
        }
    ));
    let retaken_until = later + 2 + LEASE;
    assert!(log.retake(&k, "c", later + 2, retaken_until).await.unwrap());
    assert!(
        log.retake(&k, "c", later + 2, retaken_until).await.unwrap(),
        "again"
    );
    assert!(
        !log.retake(&k, "d", later + 3, later + 3 + LEASE)
            .await
            .unwrap()
    );
    log.settle(&k, "b", Settled::Enqueued).await.unwrap();
    assert!(matches!(
        claim(log, &k, "d", later + 4).await,
        KeyState::Placed {
            enqueued: false,
            ..
        }
    ));
    log.settle(&k, "c", Settled::Enqueued).await.unwrap();
    assert!(matches!(
        claim(log, &k, "d", later + 5).await,
        KeyState::Placed { enqueued: true, .. }
    ));
    assert!(
        !log.retake(&k, "d", later + 10 * LEASE, later + 11 * LEASE)
            .await
            .unwrap()
    );
    // A day later the key is free again.
    let tomorrow = later + (DAY + 1) * 1000;
    assert!(matches!(
        claim(log, &k, "e", tomorrow).await,
        KeyState::Claimed
    ));

    // Released by its claimant: free at once; settling a released key brings nothing back.
    let other = key("other");
    assert!(matches!(
        claim(log, &other, "a", NOW).await,
        KeyState::Claimed
    ));
    log.release(&other, "a").await.unwrap();
    log.settle(&other, "a", Settled::Enqueued).await.unwrap();
    assert!(matches!(
        claim(log, &other, "b", NOW + 1).await,
        KeyState::Claimed
    ));
}

#[tokio::test]
async fn the_memory_publish_log_keeps_the_contract() {
    contract(&MemoryPublishLog::default()).await;
}

#[tokio::test]
async fn the_dynamodb_publish_log_keeps_the_contract_in_the_history_table() {
    let sdk = moto_sdk_config().await;
    let table = HistoryTableConfig {
        table: unique("history"),
    };
    DynamoHistory::new(&sdk, table.clone())
        .create_table()
        .await
        .unwrap();
    contract(&DynamoPublishLog::new(&sdk, table)).await;
}
