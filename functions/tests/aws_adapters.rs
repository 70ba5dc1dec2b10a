//! The AWS adapters against moto server (DynamoDB, SQS). The management API's gateways are in
//! management_wire.rs.

use fanout::adapters::dynamodb::DynamoStore;
use fanout::adapters::dynamodb::TableConfig;
use fanout::adapters::sqs::SqsQueue;
use fanout::domain::{Allowance, Connection, Job, RoomName};
use fanout::ports::{
    Allowances, ConnectionStore, JobQueue, Join, QueueError, StaleDelete, StoreError,
};
use fanout_test_support::moto::{
    connections_table, create_fifo_queue, create_queue, moto_sdk_config, receive_with_groups,
    unique,
};
use fanout_test_support::pages::{ids, room_pages, scan_pages};
use std::collections::BTreeSet;
use std::time::Duration;

mod dynamodb {
    use super::*;

    /// A fresh connections table in moto.
    async fn store(page_limit: Option<i32>) -> DynamoStore {
        let sdk = moto_sdk_config().await;
        connections_table(&sdk, "connections", page_limit).await.1
    }

    fn connection(id: &str, room: &str) -> Connection {
        Connection::in_room(
            id,
            RoomName::parse(room).unwrap(),
            1_795_780_800_123,
            1_795_788_300,
        )
    }

    async fn join(store: &DynamoStore, room: &str, count: usize) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for i in 0..count {
            let id = format!("{room}-{i:03}=");
            store.put(&connection(&id, room)).await.unwrap();
            ids.insert(id);
        }
        ids
    }

    #[tokio::test]
    async fn stores_reads_and_deletes_a_connection() {
        let store = store(None).await;
        let mut stored = connection("Dx4sXe1ZoAMCJvw=", "general");
        stored.principal = Some("user-42".into());
        store.put(&stored).await.unwrap();

        assert_eq!(store.get("Dx4sXe1ZoAMCJvw=").await.unwrap(), Some(stored));
        assert_eq!(store.get("nobody").await.unwrap(), None);

        store.delete("Dx4sXe1ZoAMCJvw=").await.unwrap();
        assert_eq!(store.get("Dx4sXe1ZoAMCJvw=").await.unwrap(), None);
        store
            .delete("Dx4sXe1ZoAMCJvw=")
            .await
            .expect("deleting twice is fine");
    }

    /// One connection in several rooms: each room pages it, a join past the limit changes
    /// nothing, leaving takes it out of that room only, and a delete (plain or stale) takes
    /// it out of all of them.
    #[tokio::test]
    async fn joins_and_leaves_rooms_and_a_delete_takes_every_membership() {
        let store = store(None).await;
        let room = |name: &str| RoomName::parse(name).unwrap();
        let members = |name: &'static str| {
            let store = &store;
            async move { store.room_page(&room(name), None, None).await.unwrap().ids }
        };
        let mut stored = connection("multi=", "general");
        stored.principal = Some("user-42".into());
        store.put(&stored).await.unwrap();
        for name in ["ops", "dev"] {
            assert_eq!(
                store.join(&stored, &room(name), 3).await.unwrap(),
                Join::Joined
            );
        }
        assert_eq!(
            store.join(&stored, &room("dev"), 3).await.unwrap(),
            Join::Joined
        );
        assert_eq!(
            store.join(&stored, &room("more"), 3).await.unwrap(),
            Join::TooManyRooms
        );
        assert!(members("more").await.is_empty());
        for name in ["general", "ops", "dev"] {
            assert_eq!(members(name).await, ["multi="], "{name}");
        }
        let read = store.get("multi=").await.unwrap().unwrap();
        assert_eq!(
            read.rooms,
            [room("dev"), room("general"), room("ops")].into()
        );

        store.leave("multi=", &room("ops")).await.unwrap();
        store.leave("multi=", &room("never")).await.unwrap();
        assert!(members("ops").await.is_empty());
        let read = store.get("multi=").await.unwrap().unwrap();
        assert_eq!(read.rooms, [room("dev"), room("general")].into());

        let gone = connection("gone=", "dev");
        assert_eq!(
            store.join(&gone, &room("ops"), 3).await.unwrap(),
            Join::NotConnected
        );
        assert!(members("ops").await.is_empty());

        assert_eq!(
            store.delete_stale("multi=", 0).await.unwrap(),
            StaleDelete::TooYoung
        );
        assert_eq!(members("dev").await, ["multi="]);
        assert_eq!(
            store.delete_stale("multi=", i64::MAX).await.unwrap(),
            StaleDelete::Gone
        );
        for name in ["general", "dev"] {
            assert!(members(name).await.is_empty(), "{name}");
        }

        store.put(&stored).await.unwrap();
        store.join(&stored, &room("ops"), 3).await.unwrap();
        store.delete("multi=").await.unwrap();
        for name in ["general", "ops"] {
            assert!(members(name).await.is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn swaps_an_allowance_only_from_what_was_read_and_only_on_a_connection() {
        let store = store(None).await;
        store.put(&connection("fast=", "general")).await.unwrap();
        let first = Allowance {
            milli: 19_000,
            at: 1_000,
        };
        let second = Allowance {
            milli: 18_000,
            at: 1_000,
        };

        assert!(store.swap_allowance("fast=", None, first).await.unwrap());
        assert!(
            !store.swap_allowance("fast=", None, second).await.unwrap(),
            "another send went first"
        );
        assert!(
            store
                .swap_allowance("fast=", Some(first), second)
                .await
                .unwrap()
        );
        assert!(
            !store
                .swap_allowance("fast=", Some(first), first)
                .await
                .unwrap()
        );
        let read = store.get("fast=").await.unwrap().unwrap();
        assert_eq!(read.allowance, Some(second));
        assert_eq!(
            read.rooms,
            [RoomName::parse("general").unwrap()].into(),
            "the rest of the item is kept"
        );

        assert!(!store.swap_allowance("gone=", None, first).await.unwrap());
        assert_eq!(
            store.get("gone=").await.unwrap(),
            None,
            "no item is created for a connection that is gone"
        );
    }

    #[tokio::test]
    async fn pages_through_a_room_on_the_index() {
        let store = store(Some(7)).await;
        let members = join(&store, "big", 30).await;
        join(&store, "small", 4).await;

        let pages = room_pages(&store, &RoomName::parse("big").unwrap()).await;
        for page in &pages {
            assert!(page.ids.len() <= 7);
        }
        let pages_read = pages.len();
        assert!(pages_read < 20, "paging does not end");
        assert!(
            pages_read >= 5,
            "30 members at 7 a page took {pages_read} pages"
        );
        let seen = ids(pages);
        assert_eq!(seen.len(), 30, "no member twice");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), members);
    }

    /// A part of a split room: from a bound that is no member (the position after it) up to
    /// another, inclusive, paged.
    #[tokio::test]
    async fn reads_a_range_of_a_room_between_bounds_that_are_not_members() {
        let store = store(Some(4)).await;
        join(&store, "big", 30).await;
        let room = RoomName::parse("big").unwrap();
        let range = |from: &str, until: &'static str| {
            let (store, room) = (&store, &room);
            let mut cursor = Some(store.cursor_after(Some(room), from));
            async move {
                let mut seen = Vec::new();
                for _ in 0..20 {
                    let page = store
                        .room_page(room, cursor.as_deref(), Some(until))
                        .await
                        .unwrap();
                    seen.extend(page.ids);
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => return seen,
                    }
                }
                panic!("paging does not end");
            }
        };
        let expected: Vec<String> = (10..20).map(|i| format!("big-{i:03}=")).collect();
        assert_eq!(range("big-009x", "big-019x").await, expected);
        assert_eq!(range("big-009x", "big-019=").await, expected, "inclusive");
        assert!(
            range("big-019x", "big-009x").await.is_empty(),
            "start past end"
        );
    }

    #[tokio::test]
    async fn scans_the_whole_table_in_segments() {
        let store = store(Some(5)).await;
        let mut everyone = join(&store, "a", 12).await;
        everyone.extend(join(&store, "b", 9).await);

        let seen = ids(scan_pages(&store, 3).await);
        assert_eq!(seen.len(), 21);
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), everyone);
    }

    #[tokio::test]
    async fn errors_are_reported_not_swallowed() {
        let store = store(None).await;
        let room = RoomName::lobby();
        assert!(matches!(
            store.room_page(&room, Some("not a cursor"), None).await,
            Err(StoreError::BadCursor(_))
        ));

        let sdk = moto_sdk_config().await;
        let missing = DynamoStore::from_client(
            aws_sdk_dynamodb::Client::new(&sdk),
            TableConfig {
                table: unique("missing"),
                memberships_table: unique("missing-memberships"),
                page_limit: None,
            },
        );
        let error = missing.get("x").await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        assert!(error.to_string().contains("ResourceNotFound"), "{error}");
    }
}

mod sqs {
    use super::*;

    fn job() -> Job {
        Job::parse(
            r#"{"v":1,"id":"m1","target":{"room":"general"},"payload":{"text":"hi"},"sender":"c1","sentAt":5}"#,
        )
        .unwrap()
    }

    /// A new queue in moto, and a client for it.
    async fn fresh_queue() -> (aws_sdk_sqs::Client, String) {
        let client = aws_sdk_sqs::Client::new(&moto_sdk_config().await);
        let url = create_queue(&client, &unique("fanout")).await;
        (client, url)
    }

    #[tokio::test]
    async fn a_job_round_trips_through_the_queue() {
        let (client, url) = fresh_queue().await;
        let queue = SqsQueue::from_client(client.clone(), url.clone());

        queue.enqueue(&job(), Duration::ZERO).await.unwrap();

        let received = client
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        assert_eq!(messages.len(), 1);
        let body = messages[0].body.as_deref().unwrap();
        let back = Job::parse(body).unwrap();
        assert_eq!(back.to_json(), job().to_json());
    }

    #[tokio::test]
    async fn a_fifo_queue_groups_jobs_by_room_in_order_and_drops_a_resent_one() {
        let client = aws_sdk_sqs::Client::new(&moto_sdk_config().await);
        let url = create_fifo_queue(&client, "ordered").await;
        let dlq = create_fifo_queue(&client, "ordered-dlq").await;
        let queue =
            SqsQueue::from_client(client.clone(), url.clone()).with_dead_letter_queue(dlq.clone());
        assert!(queue.keeps_order());
        let message = |id: &str, room: &str| {
            Job::parse(&format!(
                r#"{{"v":1,"id":"{id}","target":{{"room":"{room}"}},"payload":1,"sentAt":5}}"#
            ))
            .unwrap()
        };

        for (id, room) in [("m1", "general"), ("m2", "general"), ("m1", "general")] {
            queue
                .enqueue(&message(id, room), Duration::ZERO)
                .await
                .unwrap();
        }
        queue
            .enqueue(&message("s1", "side"), Duration::ZERO)
            .await
            .unwrap();
        queue.dead_letter("not a job", "why").await.unwrap();

        let seen: Vec<(String, String)> = receive_with_groups(&client, &url)
            .await
            .into_iter()
            .map(|(body, group)| (Job::parse(&body).unwrap().id, group))
            .collect();
        let general: Vec<_> = seen.iter().filter(|(_, g)| g == "general").collect();
        assert_eq!(
            general,
            [
                &("m1".into(), "general".into()),
                &("m2".into(), "general".into())
            ],
            "in order, and m1 sent again is dropped as a duplicate"
        );
        assert!(seen.contains(&("s1".into(), "side".into())));
        let parked = receive_with_groups(&client, &dlq).await;
        assert_eq!(parked[0].0, "not a job");
    }

    #[tokio::test]
    async fn refuses_oversized_jobs_and_reports_a_missing_queue() {
        let (client, url) = fresh_queue().await;
        let queue = SqsQueue::from_client(client.clone(), url);
        let mut big = job();
        big.payload =
            serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(300_000)))
                .unwrap();
        assert!(matches!(
            queue.enqueue(&big, Duration::ZERO).await,
            Err(QueueError::TooLarge(_))
        ));

        let gone = SqsQueue::from_client(
            client,
            format!(
                "{}/000000000000/{}",
                fanout_test_support::moto::moto_endpoint(),
                unique("none")
            ),
        );
        assert!(matches!(
            gone.enqueue(&job(), Duration::ZERO).await,
            Err(QueueError::Unavailable(_))
        ));
    }
}
