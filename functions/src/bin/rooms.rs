//! The rooms Lambda: the `join` and `leave` routes.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::{aws, dynamodb::DynamoStore};
use fanout::config::{ProcessEnv, RoomsSettings};
use fanout::{handlers, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = RoomsSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let store = DynamoStore::new(&aws::load_sdk_config().await, settings.table);
    let (store, config) = (&store, &settings.rooms);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::rooms::handle(store, config, event.payload).await)
        },
    ))
    .await
}
