use crate::domain::Checkpoint;
use crate::ports::{Claim, ProgressStore, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Progress records in memory, with the same claim and lease rules as the DynamoDB table.
#[derive(Default)]
pub struct MemoryProgress {
    /// Every call takes this long (on tokio's clock), as DynamoDB's would: the cost of
    /// checkpointing in the benchmark.
    latency: Duration,
    records: Mutex<HashMap<String, Record>>,
}

#[derive(Debug, Clone)]
struct Record {
    owner: String,
    lease_until: i64,
    /// The last write's sequence number, reset by a claim.
    seq: u64,
    checkpoint: Option<Checkpoint>,
}

impl MemoryProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call takes `latency`.
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// The checkpoint last saved under `key`.
    pub fn checkpoint(&self, key: &str) -> Option<Checkpoint> {
        self.lock()
            .get(key)
            .and_then(|record| record.checkpoint.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ProgressStore for MemoryProgress {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, StoreError> {
        self.wait().await;
        let mut records = self.lock();
        let record = records.entry(key.to_owned()).or_insert_with(|| Record {
            owner: owner.to_owned(),
            lease_until,
            seq: 0,
            checkpoint: None,
        });
        if record.owner != owner && record.lease_until >= now {
            return Ok(Claim::Busy);
        }
        record.owner = owner.to_owned();
        record.lease_until = lease_until;
        record.seq = 0;
        Ok(match &record.checkpoint {
            None => Claim::Fresh,
            Some(checkpoint) if checkpoint.finished => Claim::Finished,
            Some(checkpoint) => Claim::Resume(Box::new(checkpoint.clone())),
        })
    }

    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.wait().await;
        match self.lock().get_mut(key) {
            Some(record) if record.owner == owner && record.seq <= seq => {
                record.seq = seq;
                record.checkpoint = Some(checkpoint.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!(
                "progress record {key} is not held by {owner}, or a later write landed"
            ))),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.wait().await;
        if let Some(record) = self.lock().get_mut(key)
            && record.owner == owner
        {
            record.lease_until = i64::MIN;
        }
        Ok(())
    }
}
