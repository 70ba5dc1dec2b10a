//! The shared AWS SDK configuration.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_apigatewaymanagement::config::{Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// One HTTPS client for every SDK: hyper 1 with rustls on ring (builds anywhere zig can link,
/// no C toolchain for aws-lc).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A hyper 1 client over rustls (ring) for the calls made without the SDK (the management
/// posts, the issuer's JWKS): https or http, HTTP/1.1, roots of trust from the system's store
/// (`SSL_CERT_FILE` overrides it), `TCP_NODELAY`, each connect bounded by `connect_timeout`,
/// idle pooled connections dropped after `idle_timeout`. Fails only if the store has no roots.
pub fn hyper_https_client<B>(
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> std::io::Result<Client<HttpsConnector<HttpConnector>, B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .build(https))
}

/// Every DynamoDB and SQS call is bounded: a hung connection or a silent endpoint fails the
/// attempt, and the SDK's retries end with the operation. DynamoDB and SQS answer in
/// milliseconds; these leave room for a slow moment, not for a hang. (The management client
/// turns them off: the engine times each post itself.)
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// Region, credentials and endpoints from the standard sources: in Lambda, its environment;
/// elsewhere `AWS_REGION`, `AWS_PROFILE`, and the SDK's `AWS_ENDPOINT_URL` /
/// `AWS_ENDPOINT_URL_<SERVICE>` variables (how tests point the SDKs at moto).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts())
        .load()
        .await
}

/// A configuration with fixed dummy credentials and region `us-east-1`, for endpoints that do
/// not check signatures: moto in tests, the benchmark's simulated endpoint (the local stack's
/// management API checks them: its worker swaps in a key of its own). `endpoint_url`, when
/// given, overrides every service's endpoint.
pub async fn static_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// A readable error message from an SDK error, with its source chain.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Turns on a DynamoDB table's TTL on `expiresAt`, as Terraform does, for tables the local
/// stack and tests create. Best effort: a store without TTL still works, since every reader
/// filters by expiry or outlives it.
pub async fn enable_expiry(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::TimeToLiveSpecification;
    let _ = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expiresAt")
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await;
}
