//! The worker loop: what Lambda's SQS event source mapping does, calling the worker handler;
//! and killing its invocations mid-run, as Lambda kills a process that crashes or runs out of
//! memory.

use crate::queue::JobSource;
use aws_lambda_events::sqs::SqsEvent;
use fanout::engine::Engine;
use fanout::handlers;
use fanout::metrics::MetricsSink;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The event source mapping's settings, from the command line (`--batch-size`,
/// `--batching-window`, `--worker-timeout`, `--worker-concurrency`), whose defaults mirror the
/// Terraform stack.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Records per invocation at most.
    pub batch_size: usize,
    /// How long to gather records before invoking with fewer than `batch_size`.
    pub batching_window: Duration,
    /// The worker function's timeout: each invocation's deadline.
    pub timeout: Duration,
    /// Invocations at once (`maximum_concurrency`); at least 1, as `--worker-concurrency`
    /// ensures: with 0 nothing would ever be invoked.
    pub concurrency: usize,
    /// `--kill-worker-after`: kill the invocations in flight once, this long after the first
    /// job is received.
    pub kill_after: Option<Duration>,
}

/// The invocations in flight, so that they can be killed.
pub struct Invocations {
    running: Mutex<Vec<AbortHandle>>,
    killed: Counter,
}

impl Invocations {
    /// `killed` counts the invocations killed (a `/metrics` counter).
    pub fn new(killed: Counter) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::default(),
            killed,
        })
    }

    fn track(&self, invocation: AbortHandle) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|handle| !handle.is_finished());
        running.push(invocation);
    }

    /// Kills every invocation in flight, as Lambda kills a process: its future is dropped
    /// wherever it is, posts in flight included, and nothing more runs (no hand-off, no delete),
    /// so its messages come back after the visibility timeout. The worker loop goes on. How
    /// many it killed.
    pub fn kill_all(&self) -> usize {
        let running: Vec<AbortHandle> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .filter(|handle| !handle.is_finished())
            .collect();
        for handle in &running {
            handle.abort();
        }
        self.killed.inc_by(running.len() as u64);
        warn!(
            killed = running.len(),
            "worker invocations killed; their messages come back after the visibility timeout"
        );
        running.len()
    }
}

/// Polls `source` until `shutdown` turns true, then waits for the invocations in flight: a
/// job that started is finished (or handed back to the queue) before this returns, by its
/// deadline. `running` is where invocations are tracked, for killing them.
pub async fn run(
    source: Arc<dyn JobSource>,
    engine: Arc<Engine>,
    metrics: Arc<dyn MetricsSink>,
    settings: WorkerSettings,
    running: Arc<Invocations>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut invocations = JoinSet::new();
    let mut killer = None;
    let poll = Duration::from_secs(1);
    loop {
        while invocations.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let records = tokio::select! {
            received = gather(&*source, &settings, poll) => received,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        if records.is_empty() {
            continue;
        }
        if let (Some(after), None) = (settings.kill_after, &killer) {
            info!(
                ?after,
                "--kill-worker-after: the invocations in flight will be killed"
            );
            let running = running.clone();
            killer = Some(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                running.kill_all();
            }));
        }
        let (source, engine, metrics, timeout) = (
            source.clone(),
            engine.clone(),
            metrics.clone(),
            settings.timeout,
        );
        let invocation = invocations.spawn(async move {
            let _slot = slot;
            invoke(&*source, &engine, &*metrics, records, timeout).await;
        });
        running.track(invocation);
    }
    // A kill still to come would lose the last invocations' work at shutdown.
    if let Some(killer) = killer {
        killer.abort();
    }
    while invocations.join_next().await.is_some() {}
}

/// One batch: the first records within `poll`, then more until the batch is full or the
/// batching window closes.
async fn gather(
    source: &dyn JobSource,
    settings: &WorkerSettings,
    poll: Duration,
) -> Vec<aws_lambda_events::sqs::SqsMessage> {
    let mut records = match source.receive(settings.batch_size, poll).await {
        Ok(records) => records,
        Err(error) => {
            warn!(%error, "could not receive from the queue; retrying in a second");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Vec::new();
        }
    };
    let window_end = Instant::now() + settings.batching_window;
    while !records.is_empty() && records.len() < settings.batch_size {
        let left = window_end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match source
            .receive(settings.batch_size - records.len(), left)
            .await
        {
            Ok(more) if !more.is_empty() => records.extend(more),
            _ => break,
        }
    }
    records
}

async fn invoke(
    source: &dyn JobSource,
    engine: &Engine,
    metrics: &dyn MetricsSink,
    records: Vec<aws_lambda_events::sqs::SqsMessage>,
    timeout: Duration,
) {
    let receipts: Vec<(Option<String>, Option<String>)> = records
        .iter()
        .map(|record| (record.message_id.clone(), record.receipt_handle.clone()))
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    let response = handlers::worker::handle(engine, metrics, event, Instant::now() + timeout).await;
    let failed: HashSet<String> = response
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect();
    // As the event source mapping does: delete what succeeded; failures reappear when the
    // engine asked (`retry_later`), or else after the visibility timeout.
    let done: Vec<String> = receipts
        .into_iter()
        .filter(|(id, _)| id.as_ref().is_none_or(|id| !failed.contains(id)))
        .filter_map(|(_, receipt)| receipt)
        .collect();
    debug!(
        deleted = done.len(),
        failed = failed.len(),
        "invocation done"
    );
    if let Err(error) = source.delete(done).await {
        warn!(%error, "could not delete processed messages; they will be delivered again");
    }
}
