//! `$connect` Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::{aws, dynamodb::DynamoStore};
use fanout::config::{ConnectSettings, ProcessEnv};
use fanout::{handlers, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = ConnectSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let store = DynamoStore::new(&aws::load_sdk_config().await, settings.table);
    let (store, config) = (&store, &settings.connect);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(
                handlers::connect::handle(store, config, event.payload, SystemTime::now()).await,
            )
        },
    ))
    .await
}
