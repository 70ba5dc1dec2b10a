//! The worker: an SQS batch in, the records to redeliver out.

use crate::engine::{BatchItem, Engine};
use crate::metrics::MetricsSink;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tokio::time::Instant;
use tracing::{error, info};

/// Runs the batch's jobs and reports the ones SQS should redeliver (`ReportBatchItemFailures`).
pub async fn handle(
    engine: &Engine,
    metrics: &dyn MetricsSink,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let items = event
        .records
        .into_iter()
        .filter_map(|record| match record.message_id {
            Some(message_id) => Some(BatchItem {
                message_id,
                body: record.body.unwrap_or_default(),
                receive_count: record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1),
                group: record.attributes.get("MessageGroupId").cloned(),
                receipt_handle: record.receipt_handle,
            }),
            None => {
                // Without an id it cannot be reported; SQS redelivers it after the visibility
                // timeout only if the whole batch fails, so say so loudly.
                error!("SQS record without a messageId; skipped");
                None
            }
        })
        .collect();
    let report = engine.run_batch(items, deadline).await;
    metrics.record(&report.stats);
    info!(
        delivered = report.stats.delivered,
        stale = report.stats.stale,
        failed = report.stats.failed,
        retried = report.stats.retried,
        continuations = report.stats.continuations,
        failed_jobs = report.stats.failed_jobs,
        "batch done"
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = report
        .failed_message_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryGateway, MemoryProgress, MemoryQueue, MemoryStore};
    use crate::domain::Checkpoint;
    use crate::engine::{EngineConfig, FanoutStats};
    use crate::handlers::fixtures::connect_client;
    use crate::ports::StoreError;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A real SQS event of two records from `tests/fixtures/`: a job and a malformed body.
    fn sqs_batch() -> SqsEvent {
        let path = format!(
            "{}/tests/fixtures/sqs-batch.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The worker's endpoint: the one the fixture's job names.
    const OWN_ENDPOINT: &str = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/dev";

    #[derive(Default)]
    struct Recorded(Mutex<Vec<FanoutStats>>);

    impl MetricsSink for Recorded {
        fn record(&self, stats: &FanoutStats) {
            self.0.lock().unwrap().push(*stats);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_good_jobs_and_dead_letters_the_bad_record() {
        let store = Arc::new(MemoryStore::new());
        connect_client(&*store).await;
        let gateway = Arc::new(MemoryGateway::new());
        let queue = Arc::new(MemoryQueue::new());
        let engine = Engine::new(
            store,
            gateway.clone(),
            queue.clone(),
            Arc::new(MemoryProgress::new()),
            EngineConfig::default(),
            OWN_ENDPOINT,
        );
        let event = sqs_batch();
        let metrics = Recorded::default();

        let response = handle(
            &engine,
            &metrics,
            event,
            Instant::now() + Duration::from_secs(30),
        )
        .await;

        assert!(response.batch_item_failures.is_empty());
        let dead = queue.dead_letters();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("job"), "{}", dead[0].reason);
        let frames = gateway.delivered_to("Dx4sXe1ZoAMCJvw=");
        assert_eq!(frames.len(), 1);
        let frame: serde_json::Value = serde_json::from_slice(&frames[0]).unwrap();
        assert_eq!(frame["data"], "Hello World");
        assert_eq!(frame["id"], "01937a4e-8f2b-7c3d-9e4f-5a6b7c8d9e0f");
        let recorded = metrics.0.lock().unwrap();
        assert_eq!(
            (
                recorded.len(),
                recorded[0].delivered,
                recorded[0].dead_lettered
            ),
            (1, 1, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_cannot_run_now_is_reported_as_lambda_expects() {
        struct Down;
        #[async_trait::async_trait]
        impl crate::ports::ProgressStore for Down {
            async fn claim(
                &self,
                _: &str,
                _: &str,
                _: i64,
                _: i64,
            ) -> Result<crate::ports::Claim, StoreError> {
                Err(StoreError::Unavailable("down".into()))
            }
            async fn save(
                &self,
                _: &str,
                _: &str,
                _: u64,
                _: &Checkpoint,
            ) -> Result<(), StoreError> {
                Err(StoreError::Unavailable("down".into()))
            }
            async fn release(&self, _: &str, _: &str) -> Result<(), StoreError> {
                Err(StoreError::Unavailable("down".into()))
            }
        }
        let queue = Arc::new(MemoryQueue::new());
        let engine = Engine::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryGateway::new()),
            queue.clone(),
            Arc::new(Down),
            EngineConfig::default(),
            OWN_ENDPOINT,
        );
        let event = sqs_batch();
        let good = event.records[0].message_id.clone().unwrap();

        let response = handle(
            &engine,
            &Recorded::default(),
            event,
            Instant::now() + Duration::from_secs(30),
        )
        .await;

        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json["batchItemFailures"][0]["itemIdentifier"],
            good.as_str()
        );
        assert_eq!(json["batchItemFailures"].as_array().unwrap().len(), 1);
        // It comes back soon, not after the queue's visibility timeout.
        assert_eq!(queue.retried_later().len(), 1);
    }
}
