//! `$default` Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::{handlers, runtime};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handlers::default::handle(event.payload))
        },
    ))
    .await
}
