//! The in-memory queue as a standard SQS queue: visibility, delays, depth, dead letters and
//! redrive.

use super::*;

fn queue(max_receive_count: u32) -> LocalQueue {
    LocalQueue::new(QueueSettings {
        fifo: false,
        visibility_timeout: Duration::from_secs(30),
        max_receive_count,
        max_depth: 100,
    })
}

fn job(id: &str) -> Job {
    Job::parse(&format!(
        r#"{{"v":1,"id":"{id}","target":{{"room":"lobby"}},"payload":1,"sentAt":1}}"#
    ))
    .unwrap()
}

async fn receive(queue: &LocalQueue, wait: Duration) -> Vec<SqsMessage> {
    queue.receive(10, wait).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn past_its_depth_it_refuses_new_jobs_but_takes_hand_offs() {
    let queue = LocalQueue::new(QueueSettings {
        fifo: false,
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
        max_depth: 2,
    });
    queue.enqueue(&job("a"), Duration::ZERO).await.unwrap();
    queue
        .enqueue(&job("b"), Duration::from_secs(60))
        .await
        .unwrap();
    // Delayed messages count: the queue is full.
    let refused = queue.enqueue(&job("c"), Duration::ZERO).await.unwrap_err();
    assert!(matches!(refused, QueueError::Full(_)), "{refused:?}");
    let text = refused.to_string();
    assert!(
        text.contains("full") && text.contains("--max-queue-depth 2"),
        "{text}"
    );
    assert!(refused.is_transient(), "send it again later");

    // The worker's hand-off of an accepted message (it has a hop) is taken past the bound.
    let mut hand_off = job("a");
    hand_off.hop = Some(hand_off.child_hop("c"));
    queue.enqueue(&hand_off, Duration::ZERO).await.unwrap();
    assert_eq!(queue.depths().await.unwrap().ready, 2);

    // In flight still counts; once deleted, new messages are taken again.
    let got = receive(&queue, Duration::ZERO).await;
    assert_eq!(got.len(), 2);
    assert!(queue.enqueue(&job("d"), Duration::ZERO).await.is_err());
    queue
        .delete(
            got.iter()
                .filter_map(|m| m.receipt_handle.clone())
                .collect(),
        )
        .await
        .unwrap();
    queue.enqueue(&job("d"), Duration::ZERO).await.unwrap();
    assert!(queue.enqueue(&job("e"), Duration::ZERO).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn an_undeleted_message_reappears_after_the_visibility_timeout() {
    let queue = queue(5);
    queue.send_raw("a");
    let first = receive(&queue, Duration::ZERO).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attributes["ApproximateReceiveCount"], "1");
    assert!(receive(&queue, Duration::from_secs(29)).await.is_empty());
    let again = receive(&queue, Duration::from_secs(2)).await;
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
    queue
        .delete(vec![again[0].receipt_handle.clone().unwrap()])
        .await
        .unwrap();
    assert_eq!(queue.depths().await.unwrap(), QueueDepths::default());
}

#[tokio::test(start_paused = true)]
async fn moves_to_the_dead_letter_queue_after_max_receives() {
    let queue = queue(2);
    queue.send_raw("poison");
    for _ in 0..2 {
        assert_eq!(receive(&queue, Duration::from_secs(31)).await.len(), 1);
    }
    assert!(receive(&queue, Duration::from_secs(31)).await.is_empty());
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "poison");
    assert!(dead[0].1.contains("received 2 times"), "{}", dead[0].1);
    assert_eq!(queue.depths().await.unwrap().dead, 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receive_wakes_when_a_message_arrives() {
    let queue = std::sync::Arc::new(queue(5));
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { receive(&queue, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    queue.send_raw("late");
    assert_eq!(waiting.await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_message_is_invisible_until_its_delay_passes() {
    let queue = queue(5);
    queue
        .enqueue(&job("later"), Duration::from_secs(10))
        .await
        .unwrap();
    queue
        .enqueue(&job("much-later"), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(queue.depths().await.unwrap().delayed, 2);
    let started = Instant::now();
    assert!(receive(&queue, Duration::from_secs(9)).await.is_empty());
    // A receive waiting when the delay passes gets it then, not at the end of its wait.
    let got = receive(&queue, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].body.as_deref().unwrap().contains("\"later\""));
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    queue
        .delete(vec![got[0].receipt_handle.clone().unwrap()])
        .await
        .unwrap();
    // Capped at SQS's 15 minutes.
    let capped = receive(&queue, Duration::from_secs(900)).await;
    assert_eq!(capped.len(), 1);
    assert_eq!(started.elapsed(), MAX_QUEUE_DELAY);
}

#[tokio::test(start_paused = true)]
async fn retry_later_brings_a_received_message_back_after_its_delay() {
    let queue = std::sync::Arc::new(queue(5));
    queue.send_raw("failed");
    let first = receive(&queue, Duration::ZERO).await;
    let receipt = first[0].receipt_handle.clone().unwrap();
    let started = Instant::now();
    // A receive already waiting (until the 30 s visibility timeout) wakes for the change.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { receive(&queue, Duration::from_secs(60)).await }
    });
    tokio::task::yield_now().await;
    queue
        .retry_later(&receipt, Duration::from_secs(2))
        .await
        .unwrap();
    let again = waiting.await.unwrap();
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // Not in flight any more (visible again, then received under a new handle).
    assert!(queue.retry_later(&receipt, Duration::ZERO).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn dead_letters_keep_their_reason() {
    let queue = queue(5);
    queue.dead_letter("{bad", "not JSON").await.unwrap();
    assert_eq!(
        queue.dead_letters(),
        vec![("{bad".to_owned(), "not JSON".to_owned())]
    );
    assert!(receive(&queue, Duration::ZERO).await.is_empty());
    assert_eq!(queue.depths().await.unwrap().dead, 1);
}

#[tokio::test(start_paused = true)]
async fn redrive_moves_the_oldest_parked_messages_back_as_new_ones() {
    let queue = queue(1);
    queue.send_raw("first");
    assert_eq!(receive(&queue, Duration::ZERO).await.len(), 1);
    // Not deleted: back after the visibility timeout, then parked on the next receive.
    assert!(receive(&queue, Duration::from_secs(31)).await.is_empty());
    queue.dead_letter("second", "why").await.unwrap();
    queue.dead_letter("third", "why").await.unwrap();
    let parked = queue.parked();
    let bodies: Vec<&str> = parked.iter().map(|p| p.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    assert!(parked[0].reason.contains("received 1 times"), "{parked:?}");
    assert_eq!(parked[1].reason, "why");
    assert_ne!(parked[1].id, parked[2].id);

    assert_eq!(
        queue.redrive(Some(2)),
        Redriven {
            moved: 2,
            remaining: 1
        }
    );
    assert_eq!(queue.parked()[0].body, "third");
    let back = receive(&queue, Duration::ZERO).await;
    let bodies: Vec<&str> = back.iter().map(|m| m.body.as_deref().unwrap()).collect();
    assert_eq!(bodies, ["first", "second"]);
    assert_eq!(
        back[0].attributes["ApproximateReceiveCount"], "1",
        "the receive count starts again"
    );
    assert_eq!(
        queue.redrive(None),
        Redriven {
            moved: 1,
            remaining: 0
        }
    );
    assert_eq!(queue.redrive(None).moved, 0);
}

#[tokio::test(start_paused = true)]
async fn the_oldest_ready_age_counts_only_what_can_be_received() {
    let queue = queue(5);
    assert_eq!(queue.oldest_ready_age(), None);
    queue.send("later".into(), Duration::from_secs(60));
    assert_eq!(queue.oldest_ready_age(), None, "delayed is not ready");
    queue.send_raw("now");
    assert!(queue.oldest_ready_age().is_some());
    let got = receive(&queue, Duration::ZERO).await;
    assert_eq!(got.len(), 1);
    assert_eq!(queue.oldest_ready_age(), None, "in flight is not ready");
}
