//! `sendmessage` Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::{aws, dynamodb::DynamoStore, sqs::SqsQueue};
use fanout::config::{self, ProcessEnv, SendConfig, TableConfig};
use fanout::handlers::sendmessage::SendMessage;
use fanout::runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let table = TableConfig::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let queue_url = config::queue_url(&ProcessEnv).map_err(runtime::startup_error)?;
    let config = SendConfig::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let sdk = aws::load_sdk_config().await;
    let (store, queue) = (
        DynamoStore::new(&sdk, table),
        SqsQueue::new(&sdk, queue_url),
    );
    let handler = SendMessage {
        store: &store,
        queue: &queue,
        config: &config,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handler.handle(event.payload, SystemTime::now()).await)
        },
    ))
    .await
}
