//! The fan-out engine: turns jobs into posts, page by page, within one shared in-flight limit,
//! and hands whatever it cannot finish back to the queue so no one is skipped.
//!
//! - [`Engine::run_batch`] runs every job of an SQS batch concurrently under one
//!   [`tokio::sync::Semaphore`] (`FANOUT_CONCURRENCY`) and one [`pacer::Pacer`].
//! - A job reads its targets a page at a time and fetches the next page while the current one is
//!   being posted, so memory is O(page), not O(room). Its posts run in `concurrency` lanes that
//!   carry on across page boundaries (see [`deliver`]).
//! - Near the deadline it stops taking pages and enqueues a continuation (the cursor) plus a
//!   `connections` job for the posts it did not start or that failed transiently.
//! - A job that fails before delivering anything is reported for SQS to redeliver.

mod backoff;
mod config;
mod deliver;
mod pacer;
mod stats;

pub use config::EngineConfig;
pub use pacer::Pacer;
pub use stats::FanoutStats;

use crate::domain::job::MAX_JOB_BYTES;
use crate::domain::{Job, Segment, Target, now_epoch_millis};
use crate::ports::{ConnectionGateway, ConnectionStore, JobQueue, Page, QueueError, StoreError};
use bytes::Bytes;
use deliver::{Batch, Feed, Outcome, Post};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

/// One SQS record, as the engine needs it.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub message_id: String,
    pub body: String,
}

/// What a batch did: the records SQS should redeliver, and the counts.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub failed_message_ids: Vec<String>,
    pub stats: FanoutStats,
}

/// Why a job could not be processed; it goes back to SQS.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(transparent)]
    Invalid(#[from] crate::domain::job::InvalidJob),
    #[error("no management endpoint: the job carries none and MANAGEMENT_ENDPOINT is not set")]
    NoEndpoint,
    #[error("could not read the first page: {0}")]
    Store(#[from] StoreError),
    #[error("could not hand the rest of the job back to the queue: {0}")]
    Handoff(#[from] QueueError),
}

pub struct Engine {
    store: Arc<dyn ConnectionStore>,
    gateway: Arc<dyn ConnectionGateway>,
    queue: Arc<dyn JobQueue>,
    config: EngineConfig,
}

impl Engine {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        gateway: Arc<dyn ConnectionGateway>,
        queue: Arc<dyn JobQueue>,
        config: EngineConfig,
    ) -> Self {
        Self {
            store,
            gateway,
            queue,
            config,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Runs a batch of jobs; must return before `deadline` (the Lambda's).
    pub async fn run_batch(&self, items: Vec<BatchItem>, deadline: Instant) -> BatchReport {
        let batch = Batch {
            permits: Arc::new(Semaphore::new(self.config.concurrency.max(1))),
            pacer: Arc::new(Pacer::new()),
            stop_at: deadline
                .checked_sub(self.config.deadline_margin)
                .unwrap_or_else(Instant::now),
        };
        let runs = items.into_iter().map(|item| {
            let span = info_span!("job", message_id = %item.message_id);
            let batch = &batch;
            async move {
                let result = match Job::parse(&item.body) {
                    Ok(job) => self.run_job(batch, job).await,
                    Err(invalid) => Err(JobFailure::Invalid(invalid)),
                };
                (item.message_id, result)
            }
            .instrument(span)
        });
        let mut report = BatchReport::default();
        for (message_id, result) in futures::future::join_all(runs).await {
            match result {
                Ok(stats) => report.stats += stats,
                Err(failure) => {
                    warn!(%message_id, error = %failure, "job failed; SQS will redeliver it");
                    report.stats.failed_jobs += 1;
                    report.failed_message_ids.push(message_id);
                }
            }
        }
        report
    }

    async fn run_job(&self, batch: &Batch, job: Job) -> Result<FanoutStats, JobFailure> {
        let endpoint = self
            .config
            .management_endpoint
            .clone()
            .or_else(|| job.endpoint.clone())
            .ok_or(JobFailure::NoEndpoint)?;
        let mut stats = FanoutStats::default();

        if job.target == Target::All && job.segment.is_none() && self.config.scan_segments > 1 {
            return self.split_scan(&job).await;
        }

        let frame: Bytes = job.render(self.config.delivery_mode);
        let mut page = self.fetch(&job, job.cursor.as_deref()).await?;
        let post = Arc::new(Post {
            gateway: self.gateway.clone(),
            store: self.store.clone(),
            pacer: batch.pacer.clone(),
            permits: batch.permits.clone(),
            endpoint: endpoint.into(),
            frame,
            config: self.config.clone(),
            stop_at: batch.stop_at,
        });
        let feed = Arc::new(Feed::new());
        // As many lanes as posts may be in flight; fewer for a job that fits in fewer.
        let lanes = match page.next {
            Some(_) => self.config.concurrency.max(1),
            None => self.config.concurrency.max(1).min(page.ids.len()),
        };
        let mut tasks = JoinSet::new();
        for _ in 0..lanes {
            tasks.spawn(deliver::lane(post.clone(), feed.clone()).in_current_span());
        }
        let mut continuation = None;
        loop {
            stats.pages += 1;
            let next = page.next.take();
            feed.push(std::mem::take(&mut page.ids));
            let Some(cursor) = next else { break };
            // Fetch the next page while this one is posted; feed it once this one is all taken.
            let prefetch = async {
                if batch.stopping() {
                    None
                } else {
                    Some(self.fetch(&job, Some(&cursor)).await)
                }
            };
            let (prefetched, drained) = tokio::join!(prefetch, feed.drained(batch.stop_at));
            match prefetched {
                Some(Ok(fetched)) if drained && !batch.stopping() => page = fetched,
                Some(Err(error)) => {
                    warn!(%error, "page read failed mid-job; continuing from this cursor in a new job");
                    continuation = Some(cursor);
                    break;
                }
                _ => {
                    continuation = Some(cursor);
                    break;
                }
            }
        }
        feed.close();
        let mut outcome = Outcome::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(lane) => outcome.merge(lane),
                // Lanes catch panics of the gateway; anything else is a bug in the lane itself.
                Err(error) => warn!(%error, "delivery lane failed"),
            }
        }
        outcome.not_started.extend(feed.rest());
        stats += outcome.stats;
        let (not_started, transient) = (outcome.not_started, outcome.transient);

        if stats.delivered > 0 {
            let latency = now_epoch_millis().saturating_sub(job.sent_at.max(0));
            stats.fanout_latency_ms = Some(latency.unsigned_abs());
        }
        stats += self
            .hand_off(&job, continuation, not_started, transient)
            .await?;
        Ok(stats)
    }

    async fn fetch(&self, job: &Job, cursor: Option<&str>) -> Result<Page, StoreError> {
        match &job.target {
            Target::Room(room) => self.store.room_page(room, cursor).await,
            Target::All => {
                self.store
                    .scan_page(job.segment.unwrap_or(Segment::WHOLE), cursor)
                    .await
            }
            // The ids are the job itself: one page, already in memory.
            Target::Connections { ids, .. } => Ok(Page {
                ids: ids.clone(),
                next: None,
            }),
        }
    }

    /// Enqueues one `all` job per Scan segment.
    async fn split_scan(&self, job: &Job) -> Result<FanoutStats, JobFailure> {
        let total = self.config.scan_segments;
        for index in 0..total {
            let mut part = job.clone();
            part.segment = Some(Segment { index, total });
            self.queue.enqueue(&part).await?;
        }
        Ok(FanoutStats {
            continuations: u64::from(total),
            ..FanoutStats::default()
        })
    }

    /// Puts back on the queue everything this run did not finish: the rest of the pages, the
    /// posts not started, and the transient failures (as a later attempt).
    async fn hand_off(
        &self,
        job: &Job,
        cursor: Option<String>,
        not_started: Vec<String>,
        transient: Vec<String>,
    ) -> Result<FanoutStats, JobFailure> {
        let mut stats = FanoutStats::default();
        if let Some(cursor) = cursor {
            let mut rest = job.clone();
            rest.cursor = Some(cursor);
            self.queue.enqueue(&rest).await?;
            stats.continuations += 1;
        }
        let room = job.target.room().cloned();
        for (ids, attempt) in [(not_started, job.attempt), (transient, job.attempt + 1)] {
            if ids.is_empty() {
                continue;
            }
            if attempt > self.config.max_job_attempts {
                warn!(
                    count = ids.len(),
                    attempt, "giving up on connections that kept failing"
                );
                stats.failed += ids.len() as u64;
                continue;
            }
            let template = Job {
                attempt,
                ..job.retarget(Target::Connections {
                    ids: Vec::new(),
                    room: room.clone(),
                })
            };
            for chunk in chunk_for_queue(&template, ids) {
                let retry = Job {
                    target: Target::Connections {
                        ids: chunk,
                        room: room.clone(),
                    },
                    ..template.clone()
                };
                self.queue.enqueue(&retry).await?;
                stats.continuations += 1;
            }
        }
        Ok(stats)
    }
}

/// Splits ids into lists that each fit in one queue message alongside the rest of `template`.
fn chunk_for_queue(template: &Job, ids: Vec<String>) -> Vec<Vec<String>> {
    // Room for the ids: the message limit less the job without them, less slack for the
    // separators' rounding.
    let budget = MAX_JOB_BYTES
        .saturating_sub(template.to_json().len() + 64)
        .max(1);
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for id in ids {
        let cost = serde_json::to_string(&id).map_or(id.len() + 3, |quoted| quoted.len() + 1);
        if !current.is_empty() && used + cost > budget {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(id);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests;
