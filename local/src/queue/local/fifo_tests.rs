//! The in-memory queue as SQS FIFO (`--ordering per_room`): groups, order, deduplication, no
//! delays, redelivery to the head of a group, and the dead-letter queue.

use super::*;
use crate::queue::groups::DEDUPLICATION_INTERVAL;
use std::sync::Arc;

const VISIBILITY: Duration = Duration::from_secs(30);

fn fifo(max_receive_count: u32) -> LocalQueue {
    LocalQueue::new(QueueSettings {
        fifo: true,
        visibility_timeout: VISIBILITY,
        max_receive_count,
        max_depth: 100,
    })
}

fn job(id: &str, room: &str) -> Job {
    Job::parse(&format!(
        r#"{{"v":1,"id":"{id}","target":{{"room":"{room}"}},"payload":1,"sentAt":1}}"#
    ))
    .unwrap()
}

async fn send(queue: &LocalQueue, id: &str, room: &str) {
    queue.enqueue(&job(id, room), Duration::ZERO).await.unwrap();
}

async fn receive(queue: &LocalQueue, max: usize, wait: Duration) -> Vec<SqsMessage> {
    queue.receive(max, wait).await.unwrap()
}

/// Each record's job id.
fn ids(records: &[SqsMessage]) -> Vec<String> {
    records
        .iter()
        .map(|record| match Job::parse(record.body.as_deref().unwrap()) {
            Ok(job) => job.id,
            Err(_) => record.body.clone().unwrap(),
        })
        .collect()
}

fn receipts(records: &[SqsMessage]) -> Vec<String> {
    records
        .iter()
        .map(|record| record.receipt_handle.clone().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_goes_to_its_rooms_group_and_records_say_so() {
    let queue = fifo(5);
    assert!(queue.keeps_order(), "the engine holds jobs on a FIFO queue");
    let standard = LocalQueue::new(QueueSettings {
        fifo: false,
        ..queue.settings.clone()
    });
    assert!(!standard.keeps_order());
    send(&queue, "a", "lobby").await;
    send(&queue, "b", "lobby").await;
    let got = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(ids(&got), ["a", "b"]);
    let attributes = &got[0].attributes;
    assert_eq!(attributes["MessageGroupId"], "lobby");
    assert_eq!(
        attributes["MessageDeduplicationId"],
        job("a", "lobby").deduplication_id()
    );
    let sequence =
        |record: &SqsMessage| -> u64 { record.attributes["SequenceNumber"].parse().unwrap() };
    assert!(sequence(&got[0]) < sequence(&got[1]));
    assert!(
        got[0]
            .event_source_arn
            .as_deref()
            .unwrap()
            .ends_with(".fifo")
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_gives_its_messages_in_order_and_nothing_more_while_one_is_in_flight() {
    let queue = fifo(5);
    for id in ["a1", "a2", "a3"] {
        send(&queue, id, "a").await;
    }
    send(&queue, "b1", "b").await;
    send(&queue, "a4", "a").await;
    // One at a time: a1, then room a waits for it while room b goes on.
    let first = receive(&queue, 1, Duration::ZERO).await;
    assert_eq!(ids(&first), ["a1"]);
    assert_eq!(ids(&receive(&queue, 10, Duration::ZERO).await), ["b1"]);
    assert!(receive(&queue, 10, Duration::ZERO).await.is_empty());
    assert_eq!(queue.depths().await.unwrap().ready, 3, "waiting, not lost");
    queue.delete(receipts(&first)).await.unwrap();
    // As SQS: as many of one group as there are, in order.
    assert_eq!(
        ids(&receive(&queue, 10, Duration::ZERO).await),
        ["a2", "a3", "a4"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receive_gets_the_next_of_a_group_when_its_head_is_deleted() {
    let queue = Arc::new(fifo(5));
    send(&queue, "a1", "a").await;
    send(&queue, "a2", "a").await;
    let first = receive(&queue, 1, Duration::ZERO).await;
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { receive(&queue, 10, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    queue.delete(receipts(&first)).await.unwrap();
    assert_eq!(ids(&waiting.await.unwrap()), ["a2"]);
}

#[tokio::test(start_paused = true)]
async fn a_message_whose_visibility_ends_comes_back_at_the_head_of_its_group() {
    let queue = fifo(5);
    send(&queue, "a1", "a").await;
    send(&queue, "a2", "a").await;
    assert_eq!(ids(&receive(&queue, 1, Duration::ZERO).await), ["a1"]);
    // Not deleted: nothing of the group until the visibility timeout, then a1 again, first.
    assert!(
        receive(&queue, 10, VISIBILITY - Duration::from_secs(1))
            .await
            .is_empty()
    );
    let again = receive(&queue, 10, Duration::from_secs(2)).await;
    assert_eq!(ids(&again), ["a1", "a2"]);
    assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
    assert_eq!(again[1].attributes["ApproximateReceiveCount"], "1");
}

#[tokio::test(start_paused = true)]
async fn retry_later_brings_a_held_job_back_first_and_its_group_waits_for_all_in_flight() {
    let queue = fifo(5);
    for id in ["a1", "a2", "a3"] {
        send(&queue, id, "a").await;
    }
    let got = receive(&queue, 2, Duration::ZERO).await;
    assert_eq!(ids(&got), ["a1", "a2"]);
    // The engine holds a1 (and reports a2 failed behind it): a2 comes back first, yet the
    // group waits until a1 is visible too, then gives both out in their order.
    let started = Instant::now();
    queue
        .retry_later(
            &got[1].receipt_handle.clone().unwrap(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    queue
        .retry_later(
            &got[0].receipt_handle.clone().unwrap(),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let again = receive(&queue, 10, Duration::from_secs(10)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(ids(&again), ["a1", "a2", "a3"]);
}

#[tokio::test(start_paused = true)]
async fn a_job_sent_again_within_five_minutes_is_taken_once() {
    let queue = fifo(5);
    send(&queue, "m", "lobby").await;
    send(&queue, "m", "lobby").await;
    assert_eq!(queue.depths().await.unwrap().ready, 1);
    // A hand-off of the same job is another message; the same hand-off twice is one.
    let mut hand_off = job("m", "lobby");
    hand_off.hop = Some(hand_off.child_hop("c"));
    for _ in 0..2 {
        queue.enqueue(&hand_off, Duration::ZERO).await.unwrap();
    }
    let got = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(got.len(), 2);
    queue.delete(receipts(&got)).await.unwrap();
    // Still within the interval after it was deleted; not any more after it.
    tokio::time::sleep(DEDUPLICATION_INTERVAL - Duration::from_secs(1)).await;
    send(&queue, "m", "lobby").await;
    assert_eq!(queue.depths().await.unwrap().ready, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    send(&queue, "m", "lobby").await;
    assert_eq!(queue.depths().await.unwrap().ready, 1);
}

#[tokio::test(start_paused = true)]
async fn a_delay_is_ignored() {
    let queue = fifo(5);
    queue
        .enqueue(&job("a", "lobby"), Duration::from_secs(60))
        .await
        .unwrap();
    queue.send("raw".into(), Duration::from_secs(60));
    assert_eq!(queue.depths().await.unwrap().delayed, 0);
    assert_eq!(receive(&queue, 10, Duration::ZERO).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_raw_body_is_a_group_of_its_own() {
    let queue = fifo(5);
    queue.send_raw("{not a job");
    queue.send_raw("{not a job");
    let first = receive(&queue, 1, Duration::ZERO).await;
    let second = receive(&queue, 1, Duration::ZERO).await;
    assert_eq!(second.len(), 1, "not held behind the first");
    assert_ne!(
        first[0].attributes["MessageGroupId"],
        second[0].attributes["MessageGroupId"]
    );
    assert!(!first[0].attributes.contains_key("MessageDeduplicationId"));
}

#[tokio::test(start_paused = true)]
async fn a_message_parked_after_its_receives_no_longer_holds_its_group_and_redrives_into_it() {
    let queue = fifo(1);
    send(&queue, "a1", "a").await;
    send(&queue, "a2", "a").await;
    assert_eq!(ids(&receive(&queue, 1, Duration::ZERO).await), ["a1"]);
    // a1 is back after its visibility timeout, has had its receives, and is parked: a2 goes on.
    let next = receive(&queue, 10, VISIBILITY + Duration::from_secs(1)).await;
    assert_eq!(ids(&next), ["a2"]);
    let parked = queue.parked();
    assert_eq!(parked.len(), 1);
    assert!(parked[0].reason.contains("received 1 times"), "{parked:?}");

    // Redriven, a1 joins the end of its group: after a2, which is still in flight.
    assert_eq!(queue.redrive(None).moved, 1);
    assert!(receive(&queue, 10, Duration::ZERO).await.is_empty());
    queue.delete(receipts(&next)).await.unwrap();
    let back = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(ids(&back), ["a1"]);
    assert_eq!(back[0].attributes["MessageGroupId"], "a");
}

#[tokio::test(start_paused = true)]
async fn what_the_worker_parks_redrives_into_its_jobs_group() {
    let queue = fifo(5);
    queue
        .dead_letter(&job("p", "lobby").to_queue_body().unwrap(), "gave up")
        .await
        .unwrap();
    queue.dead_letter("{bad", "not JSON").await.unwrap();
    send(&queue, "a1", "lobby").await;
    let held = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(ids(&held), ["a1"]);
    assert_eq!(queue.redrive(None).moved, 2);
    // The job waits behind its room's message in flight; the malformed body behind nothing.
    let got = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(ids(&got), ["{bad"]);
    queue.delete(receipts(&held)).await.unwrap();
    let got = receive(&queue, 10, Duration::ZERO).await;
    assert_eq!(ids(&got), ["p"]);
    assert_eq!(got[0].attributes["MessageGroupId"], "lobby");
}

#[tokio::test(start_paused = true)]
async fn past_its_depth_it_refuses_new_jobs_but_takes_hand_offs() {
    let queue = LocalQueue::new(QueueSettings {
        fifo: true,
        visibility_timeout: VISIBILITY,
        max_receive_count: 5,
        max_depth: 1,
    });
    send(&queue, "a", "lobby").await;
    let refused = queue
        .enqueue(&job("b", "lobby"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(refused, QueueError::Full(_)), "{refused:?}");
    // Refused is not sent: the same job is taken once there is room.
    let got = receive(&queue, 10, Duration::ZERO).await;
    let mut hand_off = job("a", "lobby");
    hand_off.hop = Some(hand_off.child_hop("c"));
    queue.enqueue(&hand_off, Duration::ZERO).await.unwrap();
    queue.delete(receipts(&got)).await.unwrap();
    assert!(
        queue
            .enqueue(&job("b", "lobby"), Duration::ZERO)
            .await
            .is_err()
    );
    let got = receive(&queue, 10, Duration::ZERO).await;
    queue.delete(receipts(&got)).await.unwrap();
    send(&queue, "b", "lobby").await;
    assert_eq!(queue.depths().await.unwrap().ready, 1);
}
