//! `recover` Lambda: a reconnecting client's missed messages, from its room's history.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::history_table::DynamoHistory;
use fanout::adapters::{aws, dynamodb::DynamoStore, management::ManagementGateway};
use fanout::config::{ProcessEnv, RecoverSettings};
use fanout::handlers::recover::RecoverMessages;
use fanout::metrics::EmfSink;
use fanout::runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::{Duration, SystemTime};

/// Posts stop this long before the invocation's deadline, leaving time to answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = RecoverSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let sdk = aws::load_sdk_config().await;
    let store = DynamoStore::new(&sdk, settings.table);
    let history = DynamoHistory::new(&sdk, settings.history_table);
    let gateway = ManagementGateway::new(&sdk).map_err(runtime::startup_error)?;
    let metrics = EmfSink::stdout(settings.metrics);
    let handler = RecoverMessages {
        store: &store,
        history: &history,
        gateway: &gateway,
        endpoint: &settings.management_endpoint,
        config: &settings.recover,
        metrics: &metrics,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let deadline = runtime::deadline_instant(event.context.deadline);
            let deadline = deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline);
            Ok::<_, Error>(
                handler
                    .handle(event.payload, SystemTime::now(), deadline)
                    .await,
            )
        },
    ))
    .await
}
