//! An SQS-like queue in memory, both ends: the `JobQueue` the handlers and the engine send to,
//! and the `JobSource` the worker loop receives from. Standard, or FIFO ([`super::groups`]).

use super::groups::Ready;
use super::message::{Message, Order};
use super::source::{JobSource, MAX_VISIBILITY_TIMEOUT, QueueDepths};
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use fanout::domain::{Job, now_epoch_millis};
use fanout::ports::{JobQueue, MAX_QUEUE_DELAY, QueueError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How the in-memory queue behaves, from the command line (`--visibility-timeout`,
/// `--max-receive-count`, `--ordering`), whose defaults mirror the Terraform stack.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// SQS FIFO (`--ordering per_room`): a job goes to its room's message group
    /// ([`Job::order_group`]), a group's messages are received one batch at a time in the order
    /// sent, a job sent again within five minutes ([`Job::deduplication_id`]) is queued once, and
    /// there are no per-message delays. Otherwise a standard queue.
    pub fifo: bool,
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

/// The queue's name in each record's `eventSourceARN` (a FIFO queue's ends in `.fifo`, as SQS
/// requires).
fn queue_name(fifo: bool) -> &'static str {
    if fifo {
        "fanout-local.fifo"
    } else {
        "fanout-local"
    }
}

/// A message group of its own, for a message that waits behind nothing.
fn own_group() -> String {
    uuid::Uuid::now_v7().to_string()
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
    ready: Ready,
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
            self.ready.push(message);
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

    /// A new message's place on a FIFO queue, at the end of `group`; none on a standard one.
    fn place(
        &mut self,
        group: impl FnOnce() -> String,
        deduplication_id: Option<String>,
    ) -> Option<Order> {
        match &mut self.ready {
            Ready::Groups(groups) => Some(groups.place(group(), deduplication_id)),
            Ready::Line(_) => None,
        }
    }

    /// Where a parked message goes back to on a FIFO queue: the group it came from; for a
    /// message the worker parked (which came with its body only), its job's group.
    fn redriven_place(&mut self, parked: &Message) -> Option<Order> {
        let (group, deduplication_id) = match &parked.order {
            Some(order) => (order.group.clone(), order.deduplication_id.clone()),
            None => match Job::parse(&parked.body) {
                Ok(job) => (job.order_group(), Some(job.deduplication_id())),
                Err(_) => (own_group(), None),
            },
        };
        self.place(|| group, deduplication_id)
    }
}

/// An SQS-like queue in memory: at-least-once delivery, delays (`DelaySeconds`), a visibility
/// timeout that a consumer may change per message (`ChangeMessageVisibility`), redelivery of
/// whatever is not deleted, and a dead-letter queue, after `max_receive_count` receives or
/// when the worker parks a message there. Or, with [`QueueSettings::fifo`], SQS FIFO's order
/// and deduplication instead of delays.
pub struct LocalQueue {
    settings: QueueSettings,
    state: Mutex<State>,
    /// Wakes waiting receives when a message is sent or a visibility changes.
    changed: Notify,
}

impl LocalQueue {
    pub fn new(settings: QueueSettings) -> Self {
        let state = State {
            ready: Ready::new(settings.fifo),
            ..State::default()
        };
        Self {
            settings,
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    /// Puts a raw body on the queue, as any producer may (a malformed one included).
    pub fn send_raw(&self, body: impl Into<String>) -> String {
        self.send(body.into(), Duration::ZERO)
    }

    /// Puts a body on the queue, visible after `delay` (at most SQS's 15 minutes). On a FIFO
    /// queue, in a group of its own (it may not even be a job), and at once.
    pub fn send(&self, body: String, delay: Duration) -> String {
        let delay = self.delay(delay);
        let mut state = self.lock();
        let order = state.place(own_group, None);
        let message = Message::new(body, order);
        let id = message.id.clone();
        state.push(message, delay);
        drop(state);
        self.changed.notify_waiters();
        id
    }

    /// A FIFO queue takes no per-message delay (SQS refuses one; the engine asks for none with
    /// such a queue): the message is visible at once.
    fn delay(&self, delay: Duration) -> Duration {
        if !self.settings.fifo {
            return delay;
        }
        if !delay.is_zero() {
            tracing::warn!(?delay, "a FIFO queue takes no delay; queued at once");
        }
        Duration::ZERO
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
                let order = state.redriven_place(&dead.message);
                state
                    .ready
                    .push(Message::new(dead.message.body.clone(), order));
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
        let ready = state.ready.messages();
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
                state.ready.put_back(message);
            }
        }
        state.delayed.sort_by_key(|(_, at)| *at);
        let due = state.delayed.partition_point(|(_, at)| *at <= now);
        for (message, _) in state.delayed.drain(..due) {
            state.ready.push(message);
        }
        let mut batch = Vec::new();
        let mut group = None;
        while batch.len() < max {
            let Some(mut message) = state.ready.pop(&mut group) else {
                break;
            };
            if message.receive_count >= self.settings.max_receive_count {
                let reason = format!(
                    "received {} times (--max-receive-count {})",
                    message.receive_count, self.settings.max_receive_count
                );
                state.ready.parked(&message);
                state.dead.push(Dead::new(message, reason));
                continue;
            }
            message.receive_count += 1;
            let first_received = *message
                .first_received_ms
                .get_or_insert_with(|| now_epoch_millis().unsigned_abs());
            let receipt = uuid::Uuid::now_v7().to_string();
            batch.push(record(
                &message,
                &receipt,
                first_received,
                self.settings.fifo,
            ));
            state.ready.received(&message);
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
fn record(message: &Message, receipt: &str, first_received_ms: u64, fifo: bool) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.id.clone());
    record.receipt_handle = Some(receipt.to_owned());
    record.body = Some(message.body.clone());
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(format!(
        "arn:aws:sqs:local:000000000000:{}",
        queue_name(fifo)
    ));
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
    if let Some(order) = &message.order {
        // The worker handler runs a batch's records of one group in order by this.
        record
            .attributes
            .insert("MessageGroupId".into(), order.group.clone());
        record
            .attributes
            .insert("SequenceNumber".into(), order.sequence.to_string());
        if let Some(id) = &order.deduplication_id {
            record
                .attributes
                .insert("MessageDeduplicationId".into(), id.clone());
        }
    }
    record
}

#[async_trait]
impl JobQueue for LocalQueue {
    /// A new job (no hop) is refused when the queue holds `max_depth` messages; a hand-off
    /// (a hop) never is (see [`QueueSettings::max_depth`]). On a FIFO queue, a job sent within
    /// five minutes of the same job is accepted and not queued again.
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let body = job.to_queue_body()?;
        let delay = self.delay(delay);
        {
            let mut state = self.lock();
            let now = Instant::now();
            let deduplication_id = self.settings.fifo.then(|| job.deduplication_id());
            if let (Ready::Groups(groups), Some(id)) = (&mut state.ready, &deduplication_id)
                && groups.is_duplicate(id, now)
            {
                tracing::debug!(job = job.id, "sent again within five minutes: taken once");
                return Ok(());
            }
            let depth = state.depth();
            if job.hop.is_none() && depth >= self.settings.max_depth {
                return Err(QueueError::Full(format!(
                    "{depth} messages held, --max-queue-depth {}",
                    self.settings.max_depth
                )));
            }
            if let (Ready::Groups(groups), Some(id)) = (&mut state.ready, &deduplication_id) {
                groups.sent(id, now);
            }
            let order = state.place(|| job.order_group(), deduplication_id);
            state.push(Message::new(body, order), delay);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// Kept apart from the fan-out queue's groups: on a FIFO queue, a message parked after its
    /// receives no longer holds its group up, nor does one the worker parks.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.lock().dead.push(Dead::new(
            Message::new(body.to_owned(), None),
            reason.to_owned(),
        ));
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

    fn keeps_order(&self) -> bool {
        self.settings.fifo
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
        {
            let mut state = self.lock();
            for receipt in receipt_handles {
                if let Some((message, _)) = state.in_flight.remove(&receipt) {
                    state.ready.deleted(&message);
                }
            }
        }
        if self.settings.fifo {
            // A group held up by what was deleted gives out its next message now.
            self.changed.notify_waiters();
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
mod fifo_tests;

#[cfg(test)]
mod tests;
