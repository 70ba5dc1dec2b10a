//! Fault injection for engine tests: the in-memory adapters behind switches that make them
//! fail or hang, and an SQS-like loop that redelivers, delays and crashes invocations.

use super::*;
use crate::domain::Checkpoint;
use crate::ports::{Claim, JobQueue, Join, ProgressStore, QueueError, StaleDelete, StoreError};
use std::sync::Mutex;

/// What is broken right now. Every switch is off by default.
#[derive(Default)]
pub(super) struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Default, Clone)]
pub(super) struct FaultState {
    /// Page reads fail once this many have succeeded (`Some(0)`: every read fails).
    pub pages_fail_after: Option<usize>,
    pub pages_hang: bool,
    pub deletes_hang: bool,
    /// Within each window, every post fails with the error, or hangs (`None`).
    pub posts: Vec<(Instant, Instant, Option<PostError>)>,
    /// Within each window, page reads fail.
    pub pages_down: Vec<(Instant, Instant)>,
    /// Within each window, enqueues fail.
    pub enqueue_down: Vec<(Instant, Instant)>,
    /// Within each window, progress writes take 200 ms.
    pub progress_slow: Vec<(Instant, Instant)>,
    /// Within each window, progress writes fail (claims still succeed).
    pub saves_down: Vec<(Instant, Instant)>,
    pub enqueue_fails: bool,
    pub enqueue_hangs: bool,
    pub progress_fails: bool,
    /// Page reads so far.
    pub pages_read: usize,
}

impl Faults {
    pub fn set(&self, change: impl FnOnce(&mut FaultState)) {
        change(&mut self.state.lock().unwrap());
    }

    fn get(&self) -> FaultState {
        self.state.lock().unwrap().clone()
    }
}

fn within(windows: &[(Instant, Instant)], now: Instant) -> bool {
    windows
        .iter()
        .any(|(from, until)| (*from..*until).contains(&now))
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("injected".into()))
}

struct Store(Arc<MemoryStore>, Arc<Faults>);

#[async_trait]
impl ConnectionStore for Store {
    async fn put(&self, connection: &Connection) -> Result<(), StoreError> {
        self.0.put(connection).await
    }
    async fn get(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        self.0.get(id).await
    }
    async fn join(
        &self,
        connection: &Connection,
        room: &RoomName,
        max_rooms: usize,
    ) -> Result<Join, StoreError> {
        self.0.join(connection, room, max_rooms).await
    }
    async fn leave(&self, id: &str, room: &RoomName) -> Result<(), StoreError> {
        self.0.leave(id, room).await
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.0.delete(id).await
    }
    async fn delete_stale(&self, id: &str, before: i64) -> Result<StaleDelete, StoreError> {
        if self.1.get().deletes_hang {
            std::future::pending::<()>().await;
        }
        self.0.delete_stale(id, before).await
    }
    async fn room_page(
        &self,
        room: &RoomName,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.page_fault().await?;
        self.0.room_page(room, cursor, until).await
    }
    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError> {
        self.page_fault().await?;
        self.0.scan_page(segment, cursor).await
    }
    fn cursor_after(&self, room: Option<&RoomName>, id: &str) -> String {
        self.0.cursor_after(room, id)
    }
}

impl Store {
    async fn page_fault(&self) -> Result<(), StoreError> {
        let state = self.1.get();
        if state.pages_hang {
            std::future::pending::<()>().await;
        }
        if state
            .pages_fail_after
            .is_some_and(|after| state.pages_read >= after)
            || within(&state.pages_down, Instant::now())
        {
            return down();
        }
        self.1.set(|s| s.pages_read += 1);
        Ok(())
    }
}

struct Gateway(Arc<MemoryGateway>, Arc<Faults>);

#[async_trait]
impl ConnectionGateway for Gateway {
    async fn post(&self, endpoint: &str, id: &str, frame: Bytes) -> Result<(), PostError> {
        let now = Instant::now();
        if let Some((_, _, fault)) = self
            .1
            .get()
            .posts
            .into_iter()
            .find(|(from, until, _)| (*from..*until).contains(&now))
        {
            tokio::time::sleep(LATENCY).await;
            match fault {
                Some(error) => return Err(error),
                None => std::future::pending::<()>().await,
            }
        }
        self.0.post(endpoint, id, frame).await
    }
}

struct Queue(Arc<MemoryQueue>, Arc<Faults>);

impl Queue {
    async fn fault(&self) -> Result<(), QueueError> {
        let state = self.1.get();
        if state.enqueue_hangs {
            std::future::pending::<()>().await;
        }
        if state.enqueue_fails || within(&state.enqueue_down, Instant::now()) {
            return Err(QueueError::Unavailable("injected".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for Queue {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        self.fault().await?;
        self.0.enqueue(job, delay).await
    }
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.fault().await?;
        self.0.dead_letter(body, reason).await
    }
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.0.retry_later(receipt, delay).await
    }
    fn keeps_order(&self) -> bool {
        self.0.keeps_order()
    }
}

struct Progress(Arc<MemoryProgress>, Arc<Faults>);

#[async_trait]
impl ProgressStore for Progress {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Claim, StoreError> {
        if self.1.get().progress_fails {
            return down();
        }
        self.0.claim(key, owner, now, until).await
    }
    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let state = self.1.get();
        if state.progress_fails || within(&state.saves_down, Instant::now()) {
            return down();
        }
        if within(&state.progress_slow, Instant::now()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.0.save(key, owner, seq, checkpoint).await
    }
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        if self.1.get().progress_fails {
            return down();
        }
        self.0.release(key, owner).await
    }
}

/// A fixture whose engine works through switchable faults; the fixture's own adapters are the
/// healthy ones underneath, for assertions.
pub(super) fn faulty(page_size: usize, config: EngineConfig) -> (Fixture, Arc<Faults>) {
    faulty_on(MemoryQueue::new(), page_size, config)
}

/// [`faulty`] over a queue of its own (one that keeps order).
pub(super) fn faulty_on(
    queue: MemoryQueue,
    page_size: usize,
    config: EngineConfig,
) -> (Fixture, Arc<Faults>) {
    let healthy = fixture_on(queue, page_size, config.clone());
    let faults = Arc::new(Faults::default());
    let engine = Engine::new(
        Arc::new(Store(healthy.store.clone(), faults.clone())),
        Arc::new(Gateway(healthy.gateway.clone(), faults.clone())),
        Arc::new(Queue(healthy.queue.clone(), faults.clone())),
        Arc::new(Progress(healthy.progress.clone(), faults.clone())),
        config,
        ENDPOINT,
    );
    (Fixture { engine, ..healthy }, faults)
}

/// A message in the simulated queue.
struct Message {
    id: String,
    body: String,
    visible_at: Instant,
    receives: u32,
    /// Its message group (FIFO): the job's room, or its id for a job of no room.
    group: String,
}

/// SQS as the worker sees it: batches of up to ten visible messages, redelivery of failed
/// records after their `retry_later` delay (else the visibility timeout), of a crashed
/// invocation's whole batch after the visibility timeout, and delays on sends.
pub(super) struct Sqs {
    messages: Vec<Message>,
    next_id: usize,
    /// Each invocation's time limit.
    pub invocation: Duration,
    pub visibility: Duration,
    pub invocations: usize,
    pub crashes: usize,
    /// Every invocation returned before its deadline.
    pub overran: usize,
    /// SQS FIFO: a group's messages are given out in order, none while an earlier one of the
    /// group is in flight.
    pub fifo: bool,
    /// Messages the engine sent (hand-offs), as opposed to the test's.
    pub handed_on: usize,
}

impl Sqs {
    pub fn new(invocation: Duration) -> Self {
        Self {
            messages: Vec::new(),
            next_id: 0,
            invocation,
            visibility: invocation * 6,
            invocations: 0,
            crashes: 0,
            overran: 0,
            fifo: false,
            handed_on: 0,
        }
    }

    /// A FIFO queue, as `ordering = "per_room"` makes.
    pub fn fifo(invocation: Duration) -> Self {
        Self {
            fifo: true,
            ..Self::new(invocation)
        }
    }

    pub fn send(&mut self, body: String, delay: Duration) {
        self.next_id += 1;
        let id = format!("msg-{}", self.next_id);
        let group = Job::parse(&body).map_or_else(|_| id.clone(), |job| job.order_group());
        self.messages.push(Message {
            id,
            body,
            visible_at: Instant::now() + delay,
            receives: 0,
            group,
        });
    }

    fn collect(&mut self, f: &Fixture) {
        for (job, delay) in f.queue.drain_with_delays() {
            self.handed_on += 1;
            self.send(job.to_json(), delay);
        }
    }

    /// The messages a receive gives out now, at most ten: any visible one; on a FIFO queue,
    /// only a group's oldest messages, and none of a group whose oldest is in flight.
    fn receivable(&self, now: Instant) -> Vec<usize> {
        let mut locked = BTreeSet::new();
        let mut batch = Vec::new();
        for (i, message) in self.messages.iter().enumerate() {
            if self.fifo && locked.contains(&message.group) {
                continue;
            }
            if message.visible_at <= now {
                batch.push(i);
            } else if self.fifo {
                locked.insert(message.group.clone());
            }
        }
        batch.truncate(10);
        batch
    }

    /// Runs invocations until the queue is empty. `crash` is asked before each invocation
    /// whether to kill it after some time (the future is dropped, as a killed process stops).
    pub async fn run(
        &mut self,
        f: &Fixture,
        mut crash: impl FnMut(usize) -> Option<Duration>,
    ) -> FanoutStats {
        let mut stats = FanoutStats::default();
        loop {
            self.collect(f);
            let Some(first) = self.messages.iter().map(|m| m.visible_at).min() else {
                return stats;
            };
            assert!(self.invocations < 5_000, "the queue never drained");
            tokio::time::sleep_until(first).await;
            let now = Instant::now();
            let batch = self.receivable(now);
            if batch.is_empty() {
                // Every visible message waits behind one in flight (FIFO).
                let next = self
                    .messages
                    .iter()
                    .map(|m| m.visible_at)
                    .filter(|at| *at > now);
                tokio::time::sleep_until(next.min().expect("a message in flight")).await;
                continue;
            }
            let items: Vec<BatchItem> = batch
                .iter()
                .map(|&i| {
                    let message = &mut self.messages[i];
                    message.receives += 1;
                    // Invisible while the invocation runs.
                    message.visible_at = now + self.visibility;
                    BatchItem {
                        message_id: message.id.clone(),
                        body: message.body.clone(),
                        receipt_handle: Some(format!("{}#{}", message.id, message.receives)),
                        receive_count: message.receives,
                        group: self.fifo.then(|| message.group.clone()),
                    }
                })
                .collect();
            self.invocations += 1;
            let deadline = now + self.invocation;
            let run = f.engine.run_batch(items, deadline);
            let report = match crash(self.invocations) {
                Some(after) => match tokio::time::timeout(after, run).await {
                    Ok(report) => Some(report),
                    Err(_) => {
                        self.crashes += 1;
                        None
                    }
                },
                None => Some(run.await),
            };
            if Instant::now() > deadline {
                self.overran += 1;
            }
            let Some(report) = report else {
                // Killed: the whole batch comes back after the visibility timeout.
                continue;
            };
            stats += report.stats;
            let retried: HashMap<String, Duration> = f.queue.retried_later().into_iter().collect();
            let in_batch: BTreeSet<String> =
                batch.iter().map(|&i| self.messages[i].id.clone()).collect();
            self.messages.retain_mut(|message| {
                if !in_batch.contains(&message.id) {
                    return true;
                }
                if !report.failed_message_ids.contains(&message.id) {
                    return false;
                }
                let receipt = format!("{}#{}", message.id, message.receives);
                if let Some(delay) = retried.get(&receipt) {
                    message.visible_at = Instant::now() + *delay;
                }
                true
            });
        }
    }
}
