//! `sendmessage` Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::history_table::DynamoHistory;
use fanout::adapters::{aws, dynamodb::DynamoStore, sqs::SqsQueue};
use fanout::config::{ProcessEnv, SendSettings};
use fanout::handlers::sendmessage::SendMessage;
use fanout::metrics::EmfSink;
use fanout::runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = SendSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let sdk = aws::load_sdk_config().await;
    let (store, queue, history) = (
        DynamoStore::new(&sdk, settings.table),
        SqsQueue::new(&sdk, settings.queue_url),
        DynamoHistory::new(&sdk, settings.history_table),
    );
    let metrics = EmfSink::stdout(settings.metrics);
    let handler = SendMessage {
        store: &store,
        allowances: &store,
        queue: &queue,
        history: &history,
        config: &settings.send,
        metrics: &metrics,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handler.handle(event.payload, SystemTime::now()).await)
        },
    ))
    .await
}
