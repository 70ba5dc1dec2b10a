//! Worker Lambda: the SQS event source's batches.

use aws_lambda_events::sqs::SqsEvent;
use fanout::adapters::progress_table::DynamoProgress;
use fanout::adapters::{aws, dynamodb::DynamoStore, management::ManagementGateway, sqs::SqsQueue};
use fanout::config::{ProcessEnv, WorkerSettings};
use fanout::engine::Engine;
use fanout::metrics::EmfSink;
use fanout::{handlers, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

// A post allocates and frees a few dozen small buffers: mimalloc spends about a fifth less CPU
// per delivery than glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: below 1,769 MB a Lambda has less than one vCPU, and the benchmark measured
// 1.2x to 2x less CPU per delivery on one thread than on two (docs/benchmarks.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = WorkerSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let metrics = EmfSink::stdout(settings.metrics);
    let sdk = aws::load_sdk_config().await;
    let gateway = ManagementGateway::new(&sdk).map_err(runtime::startup_error)?;
    let engine = Engine::new(
        Arc::new(DynamoStore::new(&sdk, settings.table)),
        Arc::new(gateway),
        Arc::new(
            SqsQueue::new(&sdk, settings.queue_url)
                .with_dead_letter_queue(settings.dead_letter_url),
        ),
        Arc::new(DynamoProgress::new(&sdk, settings.progress)),
        settings.engine,
        &settings.management_endpoint,
    );
    let (engine, metrics) = (&engine, &metrics);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = runtime::deadline_instant(event.context.deadline);
        Ok::<_, Error>(handlers::worker::handle(engine, metrics, event.payload, deadline).await)
    }))
    .await
}
