//! `$connect` authorizer Lambda (a WebSocket REQUEST authorizer).

use fanout::adapters::{aws, jwks::HttpKeyFetcher, secrets};
use fanout::auth::Verifier;
use fanout::config::{AuthorizerKeys, AuthorizerSettings, ProcessEnv};
use fanout::handlers::authorizer::{self, AuthorizerRequest};
use fanout::runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    runtime::init_logging();
    let settings = AuthorizerSettings::from_env(&ProcessEnv).map_err(runtime::startup_error)?;
    let verifier = match settings.keys {
        AuthorizerKeys::Jwks(jwks) => {
            let fetcher = HttpKeyFetcher::new(&jwks).map_err(runtime::startup_error)?;
            let verifier = Verifier::jwks(settings.verifier, Arc::new(fetcher), &jwks);
            // During init, so that the first $connect does not wait for the keys; a failure
            // is logged and retried by the first lookup.
            verifier.prefetch().await;
            verifier
        }
        AuthorizerKeys::Secret { arn } => {
            let client = aws_sdk_secretsmanager::Client::new(&aws::load_sdk_config().await);
            let secret = secrets::read_secret(&client, &arn)
                .await
                .map_err(runtime::startup_error)?;
            Verifier::hs256(settings.verifier, &secret).map_err(runtime::startup_error)?
        }
    };
    let verifier = &verifier;
    // A refusal becomes the function's error; its message, "Unauthorized", is API Gateway's 401.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<AuthorizerRequest>| async move {
            authorizer::handle(verifier, event.payload, SystemTime::now()).await
        },
    ))
    .await
}
