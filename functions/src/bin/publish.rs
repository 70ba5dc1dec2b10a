//! `publish` Lambda: `POST /publish` on the HTTP API, for backends.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use fanout::adapters::history_table::DynamoHistory;
use fanout::adapters::publish_log_table::DynamoPublishLog;
use fanout::adapters::{aws, sqs::SqsQueue};
use fanout::config::{ProcessEnv, PublishSettings};
use fanout::handlers::publish::Publish;
use fanout::metrics::EmfSink;
use fanout::runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = PublishSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let sdk = aws::load_sdk_config().await;
    let (queue, history, keys) = (
        SqsQueue::new(&sdk, settings.queue_url),
        DynamoHistory::new(&sdk, settings.history_table.clone()),
        DynamoPublishLog::new(&sdk, settings.history_table),
    );
    let metrics = EmfSink::stdout(settings.metrics);
    let handler = Publish {
        queue: &queue,
        history: &history,
        keys: &keys,
        config: &settings.publish,
        metrics: &metrics,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(handler.handle(event.payload, SystemTime::now()).await)
        },
    ))
    .await
}
