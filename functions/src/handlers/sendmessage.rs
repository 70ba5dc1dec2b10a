//! `sendmessage`: validate, enqueue one job, answer the sender.

use super::{connection_id, error_response, response};
use crate::domain::frame::MAX_FRAME_BYTES;
use crate::domain::job::JOB_VERSION;
use crate::domain::{ClientError, ErrorCode, Frame, Job, Target, epoch_millis, parse_send_message};
use crate::ports::{ConnectionStore, JobQueue};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use std::time::{Duration, SystemTime};
use tracing::{error, info};

/// sendmessage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendConfig {
    /// `MAX_DATA_BYTES`: the largest `data` accepted, as JSON text.
    pub max_data_bytes: usize,
}

impl SendConfig {
    pub const DEFAULT_MAX_DATA_BYTES: usize = 64 * 1024;
    /// API Gateway's 128 KB message limit less room for the envelope around `data` (id, room,
    /// sender, timestamp and keys take under 300 bytes).
    pub const LIMIT_MAX_DATA_BYTES: usize = MAX_FRAME_BYTES - 1024;
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            max_data_bytes: Self::DEFAULT_MAX_DATA_BYTES,
        }
    }
}

/// The ports sendmessage uses.
pub struct SendMessage<'a> {
    pub store: &'a dyn ConnectionStore,
    pub queue: &'a dyn JobQueue,
    pub config: &'a SendConfig,
}

impl SendMessage<'_> {
    /// Answers `{"type":"ack","id":...}` once the job is on the queue, or an error frame; on any
    /// error nothing is enqueued. Takes milliseconds whatever the size of the room.
    pub async fn handle(
        &self,
        request: ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
    ) -> ApiGatewayProxyResponse {
        match self.enqueue(&request, now).await {
            Ok(id) => response(200, Some(Frame::Ack { id: &id }.to_json())),
            Err(refusal) => {
                info!(connection_id = ?connection_id(&request), code = ?refusal.code, "refused message");
                error_response(&refusal)
            }
        }
    }

    async fn enqueue(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
    ) -> Result<String, ClientError> {
        let payload = parse_send_message(
            request.body.as_deref(),
            request.is_base64_encoded,
            self.config.max_data_bytes,
        )?;
        let sender = connection_id(request).ok_or_else(|| {
            ClientError::new(
                ErrorCode::NotConnected,
                "the event carries no connection id",
            )
        })?;
        let connection = match self.store.get(sender).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                return Err(ClientError::new(
                    ErrorCode::NotConnected,
                    "this connection is not registered (expired?); reconnect and send again",
                ));
            }
            Err(failure) => {
                error!(connection_id = sender, error = %failure, "store lookup failed");
                return Err(unavailable());
            }
        };
        let job = Job {
            v: JOB_VERSION,
            id: uuid::Uuid::now_v7().to_string(),
            target: Target::Room(connection.room),
            payload,
            sender: Some(sender.to_owned()),
            sent_at: epoch_millis(now),
            cursor: None,
            segment: None,
            endpoint: management_endpoint(request),
            attempt: 0,
            retry_since: None,
            hop: None,
        };
        if let Err(failure) = self.queue.enqueue(&job, Duration::ZERO).await {
            error!(connection_id = sender, error = %failure, "enqueue failed");
            return Err(unavailable());
        }
        info!(connection_id = sender, message_id = %job.id, "message accepted");
        Ok(job.id)
    }
}

fn unavailable() -> ClientError {
    ClientError::new(
        ErrorCode::Unavailable,
        "the message could not be accepted right now; send it again",
    )
}

/// `https://{domainName}/{stage}`: where the worker posts for this API.
pub fn management_endpoint(request: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    let context = &request.request_context;
    match (context.domain_name.as_deref(), context.stage.as_deref()) {
        (Some(domain), Some(stage)) if !domain.is_empty() && !stage.is_empty() => {
            Some(format!("https://{domain}/{stage}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryQueue, MemoryStore};
    use crate::handlers::fixtures::{body_json, connect_client, websocket, with_body};
    use crate::ports::QueueError;
    use async_trait::async_trait;

    struct Fixture {
        store: MemoryStore,
        queue: MemoryQueue,
        config: SendConfig,
    }

    impl Fixture {
        async fn connected() -> Self {
            let store = MemoryStore::new();
            connect_client(&store).await;
            Self {
                store,
                queue: MemoryQueue::new(),
                config: SendConfig { max_data_bytes: 64 },
            }
        }

        async fn send(&self, request: ApiGatewayWebsocketProxyRequest) -> serde_json::Value {
            let handler = SendMessage {
                store: &self.store,
                queue: &self.queue,
                config: &self.config,
            };
            let response = handler.handle(request, SystemTime::now()).await;
            assert_eq!(response.status_code, 200);
            body_json(&response)
        }
    }

    #[tokio::test]
    async fn acks_and_enqueues_one_job_for_the_senders_room() {
        let f = Fixture::connected().await;
        let ack = f.send(websocket("sendmessage")).await;
        assert_eq!(ack["type"], "ack");
        let jobs = f.queue.drain();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(ack["id"], job.id.as_str());
        assert_eq!(
            job.target,
            Target::Room(crate::domain::RoomName::parse("general").unwrap())
        );
        assert_eq!(job.payload.get(), "\"Hello World\"");
        assert_eq!(job.sender.as_deref(), Some("Dx4sXe1ZoAMCJvw="));
        assert_eq!(
            job.endpoint.as_deref(),
            Some("https://abcdef1234.execute-api.eu-west-1.amazonaws.com/dev")
        );
        // The job on the queue is a valid v1 job.
        assert!(Job::parse(&job.to_json()).is_ok());
    }

    #[tokio::test]
    async fn bad_input_gets_its_error_frame_and_enqueues_nothing() {
        let f = Fixture::connected().await;
        let cases = [
            ("", "empty_body"),
            ("not json", "invalid_json"),
            ("{\"action\":\"sendmessage\"", "invalid_json"),
            ("42", "invalid_message"),
            (r#"{"action":true,"data":1}"#, "invalid_message"),
            (r#"{"action":"sendmessage"}"#, "missing_data"),
            (r#"{"action":"sendmessage","data":null}"#, "missing_data"),
            (r#"{"action":"other","data":1}"#, "unknown_action"),
        ];
        for (body, code) in cases {
            let frame = f.send(with_body(websocket("sendmessage"), body)).await;
            assert_eq!(
                (frame["type"].as_str(), frame["code"].as_str()),
                (Some("error"), Some(code)),
                "{body:?}"
            );
            assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        let oversized = format!(r#"{{"action":"sendmessage","data":"{}"}}"#, "x".repeat(63));
        assert_eq!(
            f.send(with_body(websocket("sendmessage"), &oversized))
                .await["code"],
            "message_too_large"
        );
        let mut binary = websocket("sendmessage");
        binary.is_base64_encoded = true;
        assert_eq!(f.send(binary).await["code"], "binary_not_supported");
        assert!(f.queue.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_sender_is_told_to_reconnect() {
        let f = Fixture::connected().await;
        f.store.delete("Dx4sXe1ZoAMCJvw=").await.unwrap();
        assert_eq!(
            f.send(websocket("sendmessage")).await["code"],
            "not_connected"
        );
        assert!(f.queue.is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_is_reported_as_retryable() {
        struct Down;
        #[async_trait]
        impl JobQueue for Down {
            async fn enqueue(&self, _: &Job, _: Duration) -> Result<(), QueueError> {
                Err(QueueError::Unavailable("connection refused".into()))
            }
            async fn dead_letter(&self, _: &str, _: &str) -> Result<(), QueueError> {
                unreachable!("sendmessage never dead-letters")
            }
            async fn retry_later(&self, _: &str, _: Duration) -> Result<(), QueueError> {
                unreachable!("sendmessage receives nothing")
            }
        }
        let f = Fixture::connected().await;
        let handler = SendMessage {
            store: &f.store,
            queue: &Down,
            config: &f.config,
        };
        let frame = body_json(
            &handler
                .handle(websocket("sendmessage"), SystemTime::now())
                .await,
        );
        assert_eq!(frame["code"], "unavailable");
    }
}
