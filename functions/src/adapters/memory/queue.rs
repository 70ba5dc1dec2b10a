use crate::domain::Job;
use crate::ports::{JobQueue, MAX_QUEUE_DELAY, QueueError};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// A FIFO of jobs in memory, with a dead-letter list. Enforces SQS's message size limit so that
/// what works here works against SQS. Delays are recorded, not waited for: a test decides when
/// to run what was queued. [`MemoryQueue::keeping_order`] stands for an SQS FIFO queue.
pub struct MemoryQueue {
    state: Mutex<State>,
    keeps_order: bool,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<(Job, Duration)>,
    dead: Vec<DeadLetter>,
    retried: Vec<(String, Duration)>,
}

/// A message parked in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            keeps_order: false,
        }
    }

    /// A queue that keeps each room's jobs in order, as SQS FIFO does; it refuses a delay, as
    /// SQS FIFO refuses `DelaySeconds` per message.
    pub fn keeping_order() -> Self {
        Self {
            keeps_order: true,
            ..Self::new()
        }
    }

    /// Removes and returns everything queued, oldest first.
    pub fn drain(&self) -> Vec<Job> {
        self.drain_with_delays()
            .into_iter()
            .map(|(job, _)| job)
            .collect()
    }

    /// Removes and returns everything queued with the delay it was sent with.
    pub fn drain_with_delays(&self) -> Vec<(Job, Duration)> {
        self.lock().jobs.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything dead-lettered so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Receipt handles made visible again early, with their delays.
    pub fn retried_later(&self) -> Vec<(String, Duration)> {
        self.lock().retried.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        job.to_queue_body()?;
        if self.keeps_order && !delay.is_zero() {
            return Err(QueueError::Unavailable(
                "a FIFO queue takes no per-message delay".into(),
            ));
        }
        self.lock()
            .jobs
            .push_back((job.clone(), delay.min(MAX_QUEUE_DELAY)));
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.lock().dead.push(DeadLetter {
            body: body.to_owned(),
            reason: reason.to_owned(),
        });
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.lock().retried.push((receipt_handle.to_owned(), delay));
        Ok(())
    }

    fn keeps_order(&self) -> bool {
        self.keeps_order
    }
}
