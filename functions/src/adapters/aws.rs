//! The shared AWS SDK configuration.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_apigatewaymanagement::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// One HTTPS client for every SDK: hyper 1 with rustls on ring (builds anywhere zig can link,
/// no C toolchain for aws-lc).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Region, credentials and endpoints from the standard sources: in Lambda, its environment;
/// elsewhere `AWS_REGION`, `AWS_PROFILE`, and the SDK's `AWS_ENDPOINT_URL` /
/// `AWS_ENDPOINT_URL_<SERVICE>` variables (how tests point the SDKs at moto).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
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
