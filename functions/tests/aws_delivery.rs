//! What delivery under faults needs from DynamoDB and SQS, against moto: conditional deletes of
//! gone connections, cursors made from a connection id, progress records with leases, delayed
//! messages, dead letters with their reason, and early redelivery.

use fanout::adapters::dynamodb::{DynamoStore, TableConfig};
use fanout::adapters::progress_table::{DynamoProgress, ProgressTableConfig};
use fanout::adapters::sqs::SqsQueue;
use fanout::domain::{Checkpoint, Connection, Job, RoomName, Segment};
use fanout::ports::{Claim, ConnectionStore, JobQueue, ProgressStore, StaleDelete, StoreError};
use fanout_test_support::moto::{create_queue, moto_sdk_config, unique};
use fanout_test_support::pages::ids;
use std::time::Duration;

async fn connections(page_limit: Option<i32>) -> DynamoStore {
    let sdk = moto_sdk_config().await;
    let table = unique("connections");
    let store = DynamoStore::from_client(
        aws_sdk_dynamodb::Client::new(&sdk),
        TableConfig {
            table: table.clone(),
            memberships_table: format!("{table}-memberships"),
            page_limit,
        },
    );
    store
        .create_table()
        .await
        .expect("create the table in moto");
    store
}

fn connection(id: &str, connected_at: i64) -> Connection {
    Connection::in_room(
        id,
        RoomName::parse("general").unwrap(),
        connected_at,
        1_795_788_300,
    )
}

#[tokio::test]
async fn a_gone_connection_is_deleted_only_if_it_connected_before_the_cutoff() {
    let store = connections(None).await;
    store.put(&connection("old", 1_000)).await.unwrap();
    store.put(&connection("young", 9_000)).await.unwrap();

    let gone = |id| store.delete_stale(id, 5_000);
    assert_eq!(gone("old").await.unwrap(), StaleDelete::Gone);
    assert_eq!(gone("young").await.unwrap(), StaleDelete::TooYoung);
    assert_eq!(
        gone("never-was").await.unwrap(),
        StaleDelete::Gone,
        "a connection whose $disconnect ran is gone too"
    );

    assert!(store.get("old").await.unwrap().is_none());
    assert!(store.get("young").await.unwrap().is_some());
}

#[tokio::test]
async fn a_cursor_after_an_id_goes_on_with_exactly_the_ids_after_it() {
    let store = connections(Some(4)).await;
    let room = RoomName::parse("general").unwrap();
    for i in 0..11 {
        store
            .put(&connection(&format!("c{i:02}"), 1))
            .await
            .unwrap();
    }
    let mut everyone = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .room_page(&room, cursor.as_deref(), None)
            .await
            .unwrap();
        everyone.extend(page.ids.clone());
        let Some(next) = page.next else { break };
        cursor = Some(next);
    }
    assert_eq!(everyone.len(), 11);

    // Stop after the 6th id, mid-page, and go on from a cursor made from it.
    let after = store.cursor_after(Some(&room), &everyone[5]);
    let mut rest = Vec::new();
    let mut cursor = Some(after);
    while let Some(at) = cursor {
        let page = store.room_page(&room, Some(&at), None).await.unwrap();
        rest.extend(page.ids);
        cursor = page.next;
    }
    assert_eq!(rest, everyone[6..].to_vec());

    // The same for the Scan.
    let scanned = ids(fanout_test_support::pages::scan_pages(&store, 1).await);
    let after = store.cursor_after(None, &scanned[2]);
    let page = store.scan_page(Segment::WHOLE, Some(&after)).await.unwrap();
    assert_eq!(page.ids.first(), scanned.get(3));
}

async fn progress() -> DynamoProgress {
    let sdk = moto_sdk_config().await;
    let progress = DynamoProgress::new(
        &sdk,
        ProgressTableConfig {
            table: unique("progress"),
            ttl: Duration::from_secs(3600),
        },
    );
    progress
        .create_table()
        .await
        .expect("create the table in moto");
    progress
}

#[tokio::test]
async fn a_progress_record_is_held_by_one_run_until_its_lease_ends_or_it_lets_go() {
    let records = progress().await;
    let (now, lease) = (1_000_000, 1_060_000);

    assert_eq!(
        records.claim("m1", "a", now, lease).await.unwrap(),
        Claim::Fresh
    );
    assert_eq!(
        records.claim("m1", "b", now + 1, lease).await.unwrap(),
        Claim::Busy
    );
    let checkpoint = Checkpoint {
        cursor: Some("{\"connectionId\":\"c05\"}".into()),
        pending: vec!["c03".into()],
        ..Checkpoint::default()
    };
    records.save("m1", "a", 2, &checkpoint).await.unwrap();
    // The same write again (the SDK's retry of a write whose answer was lost) lands harmlessly.
    records.save("m1", "a", 2, &checkpoint).await.unwrap();
    assert!(matches!(
        records.save("m1", "b", 3, &checkpoint).await,
        Err(StoreError::Conflict(_))
    ));
    // A write that arrives after a later one of the same run (delayed in the network) is
    // refused: it cannot undo what came after it.
    let stale = Checkpoint {
        pending: vec!["c01".into()],
        ..Checkpoint::default()
    };
    assert!(matches!(
        records.save("m1", "a", 1, &stale).await,
        Err(StoreError::Conflict(_))
    ));

    // After the lease, another run resumes from the checkpoint.
    assert_eq!(
        records
            .claim("m1", "b", lease + 1, lease + 60_000)
            .await
            .unwrap(),
        Claim::Resume(Box::new(checkpoint))
    );
    // A run that lets go makes room at once.
    records.release("m1", "b").await.unwrap();
    assert!(matches!(
        records
            .claim("m1", "c", lease + 2, lease + 60_000)
            .await
            .unwrap(),
        Claim::Resume(_)
    ));
    records
        .save(
            "m1",
            "c",
            1,
            &Checkpoint {
                finished: true,
                ..Checkpoint::default()
            },
        )
        .await
        .unwrap();
    records.release("m1", "c").await.unwrap();
    assert_eq!(
        records
            .claim("m1", "d", lease + 3, lease + 60_000)
            .await
            .unwrap(),
        Claim::Finished
    );
}

async fn queues() -> (aws_sdk_sqs::Client, String, String) {
    let client = aws_sdk_sqs::Client::new(&moto_sdk_config().await);
    let mut urls = Vec::new();
    for name in [unique("fanout"), unique("fanout-dlq")] {
        urls.push(create_queue(&client, &name).await);
    }
    let dlq = urls.pop().unwrap();
    (client, urls.pop().unwrap(), dlq)
}

async fn receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(url)
        .message_attribute_names("All")
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

fn job() -> Job {
    Job::parse(
        r#"{"v":1,"id":"m1","target":{"room":"general"},"payload":{"text":"hi"},"sentAt":5}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn a_delayed_job_is_not_received_before_its_delay() {
    let (client, url, _) = queues().await;
    let queue = SqsQueue::from_client(client.clone(), url.clone());

    queue.enqueue(&job(), Duration::from_secs(2)).await.unwrap();
    assert!(receive(&client, &url).await.is_empty(), "visible at once");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(receive(&client, &url).await.len(), 1);
}

#[tokio::test]
async fn a_dead_letter_carries_its_reason_and_a_failed_record_comes_back_early() {
    let (client, url, dlq) = queues().await;
    let queue =
        SqsQueue::from_client(client.clone(), url.clone()).with_dead_letter_queue(dlq.clone());

    queue
        .dead_letter("not json", "job is not valid JSON")
        .await
        .unwrap();
    let parked = receive(&client, &dlq).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_deref(), Some("not json"));
    let reason = parked[0]
        .message_attributes
        .as_ref()
        .and_then(|attributes| attributes.get("reason"))
        .and_then(|value| value.string_value.clone());
    assert_eq!(reason.as_deref(), Some("job is not valid JSON"));

    queue.enqueue(&job(), Duration::ZERO).await.unwrap();
    let received = receive(&client, &url).await;
    let receipt = received[0].receipt_handle.clone().unwrap();
    queue
        .retry_later(&receipt, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(receive(&client, &url).await.is_empty());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        receive(&client, &url).await.len(),
        1,
        "back after 1 s, not 30"
    );

    let unconfigured = SqsQueue::from_client(client, url);
    assert!(unconfigured.dead_letter("x", "y").await.is_err());
}
