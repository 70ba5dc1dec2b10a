//! The connection gateway on API Gateway's management API (`POST @connections/{id}`).

use super::aws::describe;
use crate::ports::{ConnectionGateway, PostError};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::RwLock;

/// Posts through the real SDK client. The engine does its own retries (with a shared pacer and
/// a deadline), so the SDK's are off.
pub struct ManagementGateway {
    sdk: aws_config::SdkConfig,
    /// One client per endpoint (`https://{domain}/{stage}`); in practice there is one.
    clients: RwLock<HashMap<String, Client>>,
}

impl ManagementGateway {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            clients: RwLock::default(),
        }
    }

    fn client(&self, endpoint: &str) -> Client {
        if let Some(client) = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            return client.clone();
        }
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::disabled())
            .build();
        let client = Client::from_conf(config);
        self.clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint.to_owned())
            .or_insert(client)
            .clone()
    }
}

/// Maps an SDK failure to what the engine does about it, by HTTP status as API Gateway
/// documents: 410 GoneException, 429 LimitExceededException, 403 ForbiddenException, 5xx, other 4xx.
fn classify<E>(error: SdkError<E, HttpResponse>) -> PostError
where
    E: std::error::Error + 'static,
{
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    match status {
        Some(410) => PostError::Gone,
        Some(429) => PostError::Throttled,
        Some(403) => PostError::Forbidden(describe(&error)),
        Some(status) if status >= 500 => PostError::Server(status),
        Some(status) => PostError::Rejected {
            status,
            reason: describe(&error),
        },
        None => PostError::Transport(describe(&error)),
    }
}

#[async_trait]
impl ConnectionGateway for ManagementGateway {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        frame: Bytes,
    ) -> Result<(), PostError> {
        self.client(endpoint)
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.to_vec()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
