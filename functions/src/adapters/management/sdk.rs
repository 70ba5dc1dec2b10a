//! `PostToConnection` through the SDK's client.

use super::wire::classify;
use crate::adapters::aws::describe;
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

/// Posts through the SDK's client. The engine does its own retries (with a shared pacer and
/// a deadline), so the SDK's are off.
pub struct SdkManagementGateway {
    sdk: aws_config::SdkConfig,
    /// One client per endpoint (`https://{domain}/{stage}`); in practice there is one.
    clients: RwLock<HashMap<String, Client>>,
}

impl SdkManagementGateway {
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

/// Maps an SDK failure to what the engine does about it.
fn classify_sdk<E>(error: SdkError<E, HttpResponse>) -> PostError
where
    E: std::error::Error + 'static,
{
    match error.raw_response().map(|r| r.status().as_u16()) {
        Some(status) => classify(status, || describe(&error)),
        None => PostError::Transport(describe(&error)),
    }
}

#[async_trait]
impl ConnectionGateway for SdkManagementGateway {
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
            .map_err(classify_sdk)?;
        Ok(())
    }
}
