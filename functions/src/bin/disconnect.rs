//! `$disconnect` Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::dynamodb::TableConfig;
use fanout::adapters::{aws, dynamodb::DynamoStore};
use fanout::config::ProcessEnv;
use fanout::{handlers, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let table = TableConfig::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let store = DynamoStore::new(&aws::load_sdk_config().await, table);
    let store = &store;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::disconnect::handle(store, event.payload).await)
        },
    ))
    .await
}
