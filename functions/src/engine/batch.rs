//! The engine and one SQS batch: the shared in-flight limit, pacer and deadlines every job of
//! the batch runs under, what a batch reports back, and how a job that can never run is parked.

use super::config::EngineConfig;
use super::handoff;
use super::pacer::Pacer;
use super::stats::FanoutStats;
use crate::domain::{Job, now_epoch_millis};
use crate::ports::{
    ConnectionGateway, ConnectionStore, JobQueue, MAX_QUEUE_DELAY, ProgressStore, QueueError,
    StoreError,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, info_span, warn};

/// The last moments before the deadline belong to the runtime: returning the response.
const RETURN_SLACK: Duration = Duration::from_millis(200);

/// What every job of a batch shares.
pub(super) struct Batch {
    /// The in-flight limit for the whole batch: a post runs only while holding a permit.
    pub(super) permits: Arc<Semaphore>,
    /// Slows every post down together once API Gateway throttles.
    pub(super) pacer: Arc<Pacer>,
    /// Past this instant no post starts and no page is taken.
    pub(super) stop_at: Instant,
    /// Posts still running now are abandoned: the hand-off needs the rest of the time.
    pub(super) cutoff: Instant,
    /// Every call of the hand-off ends by now, so the invocation returns before its deadline.
    pub(super) finish_by: Instant,
    /// The invocation's deadline in epoch ms: how long its progress records are held.
    pub(super) lease_until: i64,
}

impl Batch {
    pub(super) fn stopping(&self) -> bool {
        Instant::now() >= self.stop_at
    }
}

/// One SQS record, as the engine needs it.
#[derive(Debug, Clone, Default)]
pub struct BatchItem {
    pub message_id: String,
    pub body: String,
    /// To make a failed record visible again soon (`ChangeMessageVisibility`).
    pub receipt_handle: Option<String>,
    /// SQS's `ApproximateReceiveCount`: grows the wait before a failed record comes back.
    pub receive_count: u32,
    /// SQS's `MessageGroupId`, on a FIFO queue's records: a batch runs one group's records
    /// one after another, in order.
    pub group: Option<String>,
}

/// What a batch did: the records SQS should redeliver, and the counts.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub failed_message_ids: Vec<String>,
    pub stats: FanoutStats,
}

/// What a job's run came to.
#[derive(Debug, Default)]
pub(super) struct Ran {
    pub stats: FanoutStats,
    /// On a queue that keeps order: the job keeps its message and goes on when it is received
    /// again, after this long (see `engine::hold`).
    pub held: Option<Duration>,
}

impl From<FanoutStats> for Ran {
    fn from(stats: FanoutStats) -> Self {
        Self { stats, held: None }
    }
}

/// Why a job could not be processed now; SQS redelivers it.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error("progress record unavailable: {0}")]
    Progress(#[source] StoreError),
    #[error("another run holds the job's progress record")]
    Busy,
    #[error("another run took over the job's progress record")]
    LeaseLost,
    #[error("could not hand the rest of the job back to the queue: {0}")]
    Handoff(#[source] QueueError),
    #[error("could not park the job in the dead-letter queue: {0}")]
    DeadLetter(#[source] QueueError),
    #[error("the invocation had no time: its deadline is within DEADLINE_MARGIN_MS")]
    NoTime,
    /// On a queue that keeps order: an earlier message of the record's group did not finish
    /// in this batch, so this one waits its turn and comes back after it.
    #[error("an earlier message of its group is not done; it waits its turn")]
    Behind { delay: Duration },
}

/// On a queue that keeps order, a failed record's wait grows with its receives only this far:
/// a held job is received once per invocation it needs, and one failure late in a long room
/// must not hold the room back for SQS's 15 minutes. Still growing with the receives, so that a
/// lasting outage spends `maxReceiveCount` over hours, not minutes.
const ORDERED_FAILURE_DELAY_CAP: Duration = Duration::from_secs(60);

/// The worker's fan-out engine: the ports it works through and its tuning. One per process,
/// shared by every invocation; each [`Engine::run_batch`] brings its own deadline.
pub struct Engine {
    pub(super) store: Arc<dyn ConnectionStore>,
    pub(super) gateway: Arc<dyn ConnectionGateway>,
    pub(super) queue: Arc<dyn JobQueue>,
    pub(super) progress: Arc<dyn ProgressStore>,
    pub(super) config: EngineConfig,
    /// The management API the worker posts to: its own API's, never one a job names (a closed
    /// job boundary: docs/contracts.md).
    pub(super) endpoint: Arc<str>,
    /// Numbers every progress-record write of this process, in order (see
    /// [`ProgressStore::save`]).
    pub(super) writes: std::sync::atomic::AtomicU64,
    /// Wall-clock time as tokio's clock counts it (epoch ms at `origin`), so that leases and
    /// retry budgets follow paused time in tests exactly as deadlines do.
    pub(super) origin: (Instant, i64),
}

impl Engine {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        gateway: Arc<dyn ConnectionGateway>,
        queue: Arc<dyn JobQueue>,
        progress: Arc<dyn ProgressStore>,
        config: EngineConfig,
        endpoint: &str,
    ) -> Self {
        if queue.keeps_order() && config.room_split_ways > 1 {
            tracing::warn!(
                ways = config.room_split_ways,
                "the queue keeps each room's order: rooms are not split (ROOM_SPLIT_WAYS ignored)"
            );
        }
        Self {
            store,
            gateway,
            queue,
            progress,
            config,
            endpoint: endpoint.into(),
            writes: std::sync::atomic::AtomicU64::new(0),
            origin: (Instant::now(), now_epoch_millis()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Epoch milliseconds at `at`, on the engine's clock.
    fn epoch_ms(&self, at: Instant) -> i64 {
        let (origin, epoch) = self.origin;
        let since =
            i64::try_from(at.saturating_duration_since(origin).as_millis()).unwrap_or(i64::MAX);
        epoch.saturating_add(since)
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.epoch_ms(Instant::now())
    }

    /// Runs a batch of jobs; returns before `deadline` (the Lambda's), whatever hangs.
    pub async fn run_batch(&self, items: Vec<BatchItem>, deadline: Instant) -> BatchReport {
        let before = |margin: Duration| deadline.checked_sub(margin).unwrap_or_else(Instant::now);
        let batch = Batch {
            permits: Arc::new(Semaphore::new(self.config.concurrency.max(1))),
            pacer: Arc::new(Pacer::new()),
            stop_at: before(self.config.deadline_margin),
            cutoff: before(self.config.handoff_reserve),
            finish_by: before(RETURN_SLACK.min(self.config.handoff_reserve / 2)),
            lease_until: self.epoch_ms(deadline),
        };
        // An invocation whose deadline is already within the margin (a function timeout
        // shorter than DEADLINE_MARGIN_MS) would hand every job straight back: report them,
        // so they come back later and the queue's redrive ends the loop.
        let no_time = batch.stopping();
        if no_time {
            tracing::error!(
                "the invocation's time is shorter than DEADLINE_MARGIN_MS; nothing can run"
            );
        }
        // Drawn once per record: those behind a failed one in its group come back with it.
        let comebacks_after_failure: Vec<Duration> =
            items.iter().map(|item| self.failure_delay(item)).collect();
        let results = if self.ordered() {
            self.run_in_order(&batch, &items, &comebacks_after_failure, no_time)
                .await
        } else {
            let runs = items
                .iter()
                .map(|item| self.run_traced(&batch, item, no_time));
            futures::future::join_all(runs).await
        };
        let mut report = BatchReport::default();
        let mut comebacks = Vec::new();
        for ((item, result), after_failure) in
            items.iter().zip(results).zip(comebacks_after_failure)
        {
            let delay = match result {
                Ok(Ran { stats, held: None }) => {
                    report.stats += stats;
                    continue;
                }
                Ok(Ran {
                    stats,
                    held: Some(delay),
                }) => {
                    report.stats += stats;
                    report.stats.held += 1;
                    delay
                }
                Err(JobFailure::Behind { delay }) => delay,
                Err(failure) => {
                    warn!(message_id = %item.message_id, error = %failure, "job failed; SQS will redeliver it");
                    report.stats.failed_jobs += 1;
                    if matches!(failure, JobFailure::Handoff(_) | JobFailure::DeadLetter(_)) {
                        report.stats.handoffs_failed += 1;
                    }
                    after_failure
                }
            };
            report.failed_message_ids.push(item.message_id.clone());
            if let Some(receipt) = &item.receipt_handle {
                comebacks.push(self.queue.retry_later(receipt, delay));
            }
        }
        // Best effort: without it the record comes back after the queue's visibility timeout.
        if let Err(_elapsed) =
            timeout_at(batch.finish_by, futures::future::join_all(comebacks)).await
        {
            warn!("could not shorten the visibility of failed records in time");
        }
        report
    }

    /// Whether jobs keep their queue message until done, so that a room's messages are fanned
    /// out in the order they were accepted (see `engine::hold`).
    pub(super) fn ordered(&self) -> bool {
        self.queue.keeps_order()
    }

    /// How long a failed record stays away before SQS gives it out again.
    fn failure_delay(&self, item: &BatchItem) -> Duration {
        let cap = match self.ordered() {
            true => ORDERED_FAILURE_DELAY_CAP,
            false => MAX_QUEUE_DELAY,
        };
        handoff::retry_delay_within(self.config.retry_delay_base, item.receive_count, cap)
    }

    async fn run_traced(
        &self,
        batch: &Batch,
        item: &BatchItem,
        no_time: bool,
    ) -> Result<Ran, JobFailure> {
        if no_time {
            return Err(JobFailure::NoTime);
        }
        let span = info_span!("job", message_id = %item.message_id);
        self.run_item(batch, item).instrument(span).await
    }

    /// A queue that keeps order gives out a group's messages in order: run each group's records
    /// one after another (groups side by side), and once one is not done, report the group's
    /// later records as not done either, to come back with it (Lambda deletes the records not
    /// reported, which would let them overtake it).
    async fn run_in_order(
        &self,
        batch: &Batch,
        items: &[BatchItem],
        after_failure: &[Duration],
        no_time: bool,
    ) -> Vec<Result<Ran, JobFailure>> {
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            // A record without its group (a source that leaves the attribute out) is grouped
            // as its job would be sent: a room's records must never run side by side.
            let group = item
                .group
                .clone()
                .or_else(|| Job::parse(&item.body).ok().map(|job| job.order_group()));
            match groups
                .iter_mut()
                .find(|(name, _)| group.is_some() && *name == group)
            {
                Some((_, members)) => members.push(index),
                None => groups.push((group, vec![index])),
            }
        }
        let runs = groups.into_iter().map(|(_, members)| async move {
            let mut results = Vec::with_capacity(members.len());
            let mut waiting = None;
            for index in members {
                let item = &items[index];
                let result = match waiting {
                    Some(delay) => Err(JobFailure::Behind { delay }),
                    None => self.run_traced(batch, item, no_time).await,
                };
                waiting = match &result {
                    Ok(ran) => ran.held,
                    Err(JobFailure::Behind { delay }) => Some(*delay),
                    Err(_) => Some(after_failure[index]),
                };
                results.push((index, result));
            }
            results
        });
        let mut results: Vec<_> = futures::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect();
        results.sort_by_key(|(index, _)| *index);
        results.into_iter().map(|(_, result)| result).collect()
    }

    async fn run_item(&self, batch: &Batch, item: &BatchItem) -> Result<Ran, JobFailure> {
        match Job::parse(&item.body) {
            // Each run holds its progress record under an owner of its own, so that the same
            // job twice in one batch is run once.
            Ok(job) => {
                self.run_job(batch, &uuid::Uuid::now_v7().to_string(), job)
                    .await
            }
            Err(invalid) => self
                .park(batch, &item.body, &invalid.to_string())
                .await
                .map(Ran::from),
        }
    }

    /// Sends a message that can never be delivered to the dead-letter queue with the reason.
    pub(super) async fn park(
        &self,
        batch: &Batch,
        body: &str,
        reason: &str,
    ) -> Result<FanoutStats, JobFailure> {
        warn!(reason, "dead-lettering a job");
        let retryable = QueueError::is_transient;
        handoff::with_retries(batch.finish_by, self.config.backoff_base, retryable, || {
            self.queue.dead_letter(body, reason)
        })
        .await
        .map_err(JobFailure::DeadLetter)?;
        Ok(FanoutStats {
            dead_lettered: 1,
            ..FanoutStats::default()
        })
    }
}
