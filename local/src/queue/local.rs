//! An SQS-like queue in memory, both ends: the `JobQueue` the handlers and the engine send to,
//! and the `JobSource` the worker loop receives from.

use super::source::{JobSource, MAX_VISIBILITY_TIMEOUT, QueueDepths};
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use fanout::domain::{Job, now_epoch_millis};
use fanout::ports::{JobQueue, MAX_QUEUE_DELAY, QueueError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How the in-memory queue behaves, from the command line (`--visibility-timeout`,
/// `--max-receive-count`), whose defaults mirror the Terraform stack.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Messages held at most (ready, delayed or in flight; `--max-queue-depth`): a new job
    /// beyond is refused with [`QueueError::Full`], and sendmessage tells its sender to send
    /// it again. A job with a hop, the worker's hand-off of a message already accepted (the
    /// rest of a room, a retry, a Scan segment), is never refused: the worker deletes the
    /// message it came from once the hand-off is enqueued, so refusing it could lose the rest
    /// of a room. Hand-offs can take the depth past the bound, by what the jobs in flight hand
    /// off; new messages wait until it is back under.
    pub max_depth: usize,
}

struct Message {
    id: String,
    body: String,
    receive_count: u32,
    sent_at_ms: u64,
    first_received_ms: Option<u64>,
}

impl Message {
    fn new(body: String) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            body,
            receive_count: 0,
            sent_at_ms: now_epoch_millis().unsigned_abs(),
            first_received_ms: None,
        }
    }
}

/// A message in the dead-letter queue.
struct Dead {
    message: Message,
    /// Why it is there.
    reason: String,
    /// Epoch ms when it was parked.
    parked_at_ms: u64,
}

impl Dead {
    fn new(message: Message, reason: String) -> Self {
        Self {
            message,
            reason,
            parked_at_ms: now_epoch_millis().unsigned_abs(),
        }
    }
}

/// One message of the dead-letter queue, as [`LocalQueue::parked`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The message id (the same as when it was on the fan-out queue, for a message moved
    /// after `--max-receive-count` receives; a new one for a message the worker parked).
    pub id: String,
    pub body: String,
    /// The worker's reason, or the receives that exhausted `--max-receive-count`.
    pub reason: String,
    /// Epoch ms when it was parked.
    pub parked_at_ms: u64,
    /// Epoch ms when it was first sent to the fan-out queue (for a message the worker parked:
    /// when it parked it).
    pub sent_at_ms: u64,
}

/// What [`LocalQueue::redrive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved back to the fan-out queue.
    pub moved: u64,
    /// Messages left in the dead-letter queue.
    pub remaining: u64,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Message>,
    /// Sent with a delay, with when each becomes visible.
    delayed: Vec<(Message, Instant)>,
    /// By receipt handle, with when the message becomes visible again.
    in_flight: HashMap<String, (Message, Instant)>,
    /// Oldest first.
    dead: Vec<Dead>,
}

impl State {
    /// Visible after `delay` (at most SQS's 15 minutes).
    fn push(&mut self, message: Message, delay: Duration) {
        if delay.is_zero() {
            self.ready.push_back(message);
        } else {
            self.delayed
                .push((message, Instant::now() + delay.min(MAX_QUEUE_DELAY)));
        }
    }

    /// What `--max-queue-depth` bounds: every message not deleted, the dead-letter queue's
    /// aside.
    fn depth(&self) -> usize {
        self.ready.len() + self.delayed.len() + self.in_flight.len()
    }
}

/// An SQS-like queue in memory: at-least-once delivery, delays (`DelaySeconds`), a visibility
/// timeout that a consumer may change per message (`ChangeMessageVisibility`), redelivery of
/// whatever is not deleted, and a dead-letter queue, after `max_receive_count` receives or
/// when the worker parks a message there.
pub struct LocalQueue {
    settings: QueueSettings,
    state: Mutex<State>,
    /// Wakes waiting receives when a message is sent or a visibility changes.
    changed: Notify,
}

impl LocalQueue {
    pub fn new(settings: QueueSettings) -> Self {
        Self {
            settings,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Puts a raw body on the queue, as any producer may (a malformed one included).
    pub fn send_raw(&self, body: impl Into<String>) -> String {
        self.send(body.into(), Duration::ZERO)
    }

    /// Puts a body on the queue, visible after `delay` (at most SQS's 15 minutes).
    pub fn send(&self, body: String, delay: Duration) -> String {
        let message = Message::new(body);
        let id = message.id.clone();
        self.lock().push(message, delay);
        self.changed.notify_waiters();
        id
    }

    /// The dead-letter queue: each body with the reason it is there (the worker's reason, or
    /// the receives that exhausted `--max-receive-count`).
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.lock()
            .dead
            .iter()
            .map(|dead| (dead.message.body.clone(), dead.reason.clone()))
            .collect()
    }

    /// The dead-letter queue, oldest first, with ids and when each was parked.
    pub fn parked(&self) -> Vec<Parked> {
        self.lock()
            .dead
            .iter()
            .map(|dead| Parked {
                id: dead.message.id.clone(),
                body: dead.message.body.clone(),
                reason: dead.reason.clone(),
                parked_at_ms: dead.parked_at_ms,
                sent_at_ms: dead.message.sent_at_ms,
            })
            .collect()
    }

    /// Moves up to `max` parked messages (all when `None`), oldest first, back to the fan-out
    /// queue, as SQS's redrive (`StartMessageMoveTask`) does: each is a new message with the
    /// same body, visible at once, its receive count starting again from zero.
    pub fn redrive(&self, max: Option<usize>) -> Redriven {
        let moved = {
            let mut state = self.lock();
            let count = max.unwrap_or(usize::MAX).min(state.dead.len());
            let moved: Vec<Dead> = state.dead.drain(..count).collect();
            for dead in &moved {
                state
                    .ready
                    .push_back(Message::new(dead.message.body.clone()));
            }
            Redriven {
                moved: moved.len() as u64,
                remaining: state.dead.len() as u64,
            }
        };
        if moved.moved > 0 {
            self.changed.notify_waiters();
        }
        moved
    }

    /// How long the oldest message that is ready to be received (visible, not delayed, not in
    /// flight) has been on the queue, from when it was sent: what SQS's
    /// `ApproximateAgeOfOldestMessage` measures, less the messages in flight. `None` when none
    /// is ready.
    pub fn oldest_ready_age(&self) -> Option<Duration> {
        let now = Instant::now();
        let state = self.lock();
        let ready = state.ready.iter();
        let due = state
            .delayed
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(message, _)| message);
        let visible_again = state
            .in_flight
            .values()
            .filter(|(_, at)| *at <= now)
            .map(|(message, _)| message);
        let oldest = ready
            .chain(due)
            .chain(visible_again)
            .map(|message| message.sent_at_ms)
            .min()?;
        let now_ms = now_epoch_millis().unsigned_abs();
        Some(Duration::from_millis(now_ms.saturating_sub(oldest)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what is visible now; returns the messages and when the next invisible one
    /// (received or delayed) becomes visible.
    fn take(&self, max: usize) -> (Vec<SqsMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, (_, visible_at))| *visible_at <= now)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((message, _)) = state.in_flight.remove(&receipt) {
                state.ready.push_back(message);
            }
        }
        state.delayed.sort_by_key(|(_, at)| *at);
        let due = state.delayed.partition_point(|(_, at)| *at <= now);
        state
            .ready
            .extend(state.delayed.drain(..due).map(|(message, _)| message));
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(mut message) = state.ready.pop_front() else {
                break;
            };
            if message.receive_count >= self.settings.max_receive_count {
                let reason = format!(
                    "received {} times (--max-receive-count {})",
                    message.receive_count, self.settings.max_receive_count
                );
                state.dead.push(Dead::new(message, reason));
                continue;
            }
            message.receive_count += 1;
            let first_received = *message
                .first_received_ms
                .get_or_insert_with(|| now_epoch_millis().unsigned_abs());
            let receipt = uuid::Uuid::now_v7().to_string();
            batch.push(record(&message, &receipt, first_received));
            state
                .in_flight
                .insert(receipt, (message, now + self.settings.visibility_timeout));
        }
        let next_visible = state
            .in_flight
            .values()
            .map(|(_, at)| *at)
            .chain(state.delayed.first().map(|(_, at)| *at))
            .min();
        (batch, next_visible)
    }
}

/// The record the event source mapping gives the worker, as SQS's receive has it.
fn record(message: &Message, receipt: &str, first_received_ms: u64) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.id.clone());
    record.receipt_handle = Some(receipt.to_owned());
    record.body = Some(message.body.clone());
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some("arn:aws:sqs:local:000000000000:fanout-local".into());
    record.attributes = HashMap::from([
        (
            "ApproximateReceiveCount".into(),
            message.receive_count.to_string(),
        ),
        ("SentTimestamp".into(), message.sent_at_ms.to_string()),
        (
            "ApproximateFirstReceiveTimestamp".into(),
            first_received_ms.to_string(),
        ),
    ]);
    record
}

#[async_trait]
impl JobQueue for LocalQueue {
    /// A new job (no hop) is refused when the queue holds `max_depth` messages; a hand-off
    /// (a hop) never is (see [`QueueSettings::max_depth`]).
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let message = Message::new(job.to_queue_body()?);
        {
            let mut state = self.lock();
            let depth = state.depth();
            if job.hop.is_none() && depth >= self.settings.max_depth {
                return Err(QueueError::Full(format!(
                    "{depth} messages held, --max-queue-depth {}",
                    self.settings.max_depth
                )));
            }
            state.push(message, delay);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.lock()
            .dead
            .push(Dead::new(Message::new(body.to_owned()), reason.to_owned()));
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            let (_, visible_at) = state.in_flight.get_mut(receipt_handle).ok_or_else(|| {
                // SQS answers MessageNotInflight (or ReceiptHandleIsInvalid) here too.
                QueueError::Unavailable(format!(
                    "receipt handle {receipt_handle} is not in flight: deleted, or visible again"
                ))
            })?;
            *visible_at = Instant::now() + delay.min(MAX_VISIBILITY_TIMEOUT);
        }
        self.changed.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl JobSource for LocalQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<SqsMessage>, QueueError> {
        let give_up = Instant::now() + wait;
        loop {
            // Registered before looking, so a change in between still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (batch, next_visible) = self.take(max);
            if !batch.is_empty() || Instant::now() >= give_up {
                return Ok(batch);
            }
            let until = next_visible.map_or(give_up, |at| at.min(give_up));
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete(&self, receipt_handles: Vec<String>) -> Result<(), QueueError> {
        let mut state = self.lock();
        for receipt in receipt_handles {
            state.in_flight.remove(&receipt);
        }
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let state = self.lock();
        Ok(QueueDepths {
            ready: state.ready.len() as u64,
            in_flight: state.in_flight.len() as u64,
            delayed: state.delayed.len() as u64,
            dead: state.dead.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_receive_count: u32) -> LocalQueue {
        LocalQueue::new(QueueSettings {
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
}
