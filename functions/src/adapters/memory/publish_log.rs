//! Idempotency keys in memory, as the history table keeps them: a key expires, a claim that
//! placed nothing is free once its lease ran out, every write is fenced by its claimant.

use crate::domain::{IdempotencyKey, Job};
use crate::ports::{KeyState, PublishLog, Settled, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryPublishLog {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<IdempotencyKey, Record>,
    /// Claims since the last sweep of expired keys.
    since_sweep: usize,
}

struct Record {
    claimant: String,
    lease_until_ms: i64,
    /// Epoch seconds.
    expires_at: i64,
    job: Option<Job>,
    enqueued: bool,
}

impl MemoryPublishLog {
    /// Expired keys are swept every this many claims, so memory stays bounded by the keys of
    /// the last day.
    const SWEEP_EVERY: usize = 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key's record, if `claimant` holds it.
    fn held<'a>(
        state: &'a mut State,
        key: &IdempotencyKey,
        claimant: &str,
    ) -> Option<&'a mut Record> {
        state
            .keys
            .get_mut(key)
            .filter(|record| record.claimant == claimant)
    }
}

#[async_trait]
impl PublishLog for MemoryPublishLog {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
        expires_at: i64,
    ) -> Result<KeyState, StoreError> {
        let now = now_ms.div_euclid(1000);
        let mut state = self.lock();
        state.since_sweep += 1;
        if state.since_sweep >= Self::SWEEP_EVERY {
            state.since_sweep = 0;
            state.keys.retain(|_, record| record.expires_at > now);
        }
        if let Some(record) = state.keys.get(key)
            && record.expires_at > now
        {
            match &record.job {
                Some(job) => {
                    return Ok(KeyState::Placed {
                        job: Box::new(job.clone()),
                        enqueued: record.enqueued,
                        lease_until_ms: record.lease_until_ms,
                    });
                }
                None if record.claimant == claimant => return Ok(KeyState::Claimed),
                None if record.lease_until_ms > now_ms => {
                    return Ok(KeyState::Held {
                        lease_until_ms: record.lease_until_ms,
                    });
                }
                None => {}
            }
        }
        state.keys.insert(
            key.clone(),
            Record {
                claimant: claimant.to_owned(),
                lease_until_ms,
                expires_at,
                job: None,
                enqueued: false,
            },
        );
        Ok(KeyState::Claimed)
    }

    async fn place(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        job: &Job,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        Ok(match Self::held(&mut state, key, claimant) {
            Some(record) => match &record.job {
                None => {
                    record.job = Some(job.clone());
                    true
                }
                Some(placed) => placed.id == job.id,
            },
            None => false,
        })
    }

    async fn retake(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        Ok(match state.keys.get_mut(key) {
            Some(record) if record.claimant == claimant => record.lease_until_ms == lease_until_ms,
            Some(record)
                if record.job.is_some() && !record.enqueued && record.lease_until_ms <= now_ms =>
            {
                record.claimant = claimant.to_owned();
                record.lease_until_ms = lease_until_ms;
                true
            }
            _ => false,
        })
    }

    async fn settle(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        how: Settled,
    ) -> Result<(), StoreError> {
        if let Some(record) = Self::held(&mut self.lock(), key, claimant) {
            match how {
                Settled::Enqueued => record.enqueued = true,
                Settled::Unsure => record.lease_until_ms = 0,
            }
        }
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey, claimant: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if Self::held(&mut state, key, claimant).is_some() {
            state.keys.remove(key);
        }
        Ok(())
    }
}
