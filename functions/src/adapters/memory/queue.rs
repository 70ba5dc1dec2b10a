use crate::domain::Job;
use crate::ports::{JobQueue, QueueError};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A FIFO of jobs in memory. Enforces SQS's message size limit so that what works here works
/// against SQS.
pub struct MemoryQueue {
    jobs: Mutex<VecDeque<Job>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self {
            jobs: Mutex::default(),
        }
    }

    /// Removes and returns everything queued, oldest first.
    pub fn drain(&self) -> Vec<Job> {
        self.lock().drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.jobs
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
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        job.to_queue_body()?;
        self.lock().push_back(job.clone());
        Ok(())
    }
}
