//! `publish`: the door for backends (`POST /publish` on an HTTP API, IAM-authorized). A message
//! to a room takes the room's next offset and is kept in its history like one from a client;
//! the same idempotency key within a day answers the first answer and publishes nothing again.

use super::sequence::{CALL_TIMEOUT, Sequencer, unavailable};
use crate::domain::history::HistoryConfig;
use crate::domain::{
    ClientError, ErrorCode, IdempotencyKey, Job, Published, Target, epoch_millis, parse_publish,
};
use crate::metrics::SendMetrics;
use crate::ports::{JobQueue, KeyState, PublishLog, QueueError, Settled, StoreError, by};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::HeaderValue;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// The publish endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishConfig {
    /// `MAX_DATA_BYTES`, as sendmessage reads it.
    pub max_data_bytes: usize,
    /// `HISTORY_SIZE` and `HISTORY_TTL_SECONDS`, as sendmessage reads them.
    pub history: HistoryConfig,
}

impl PublishConfig {
    /// How long a publish holds its idempotency key before another try with the key may take
    /// it over: past the longest an HTTP API waits for its integration (30 s), so a publish
    /// still running is never taken over.
    pub const LEASE: Duration = Duration::from_secs(35);
}

/// The ports publish uses.
pub struct Publish<'a> {
    pub queue: &'a dyn JobQueue,
    pub history: &'a dyn crate::ports::History,
    pub keys: &'a dyn PublishLog,
    pub config: &'a PublishConfig,
    pub metrics: &'a dyn SendMetrics,
}

/// A refusal and its HTTP status.
struct Refusal {
    status: i64,
    error: ClientError,
    retry_after: Option<Duration>,
}

impl From<ClientError> for Refusal {
    fn from(error: ClientError) -> Self {
        let status = match error.code {
            ErrorCode::Unavailable => 503,
            ErrorCode::MessageTooLarge => 413,
            ErrorCode::InProgress => 409,
            ErrorCode::KeyReused => 422,
            _ => 400,
        };
        Self {
            status,
            error,
            retry_after: None,
        }
    }
}

impl Publish<'_> {
    /// Answers 200 `{"id":...,"offset":...,"epoch":...}` once the message is in its room's
    /// history and its job on the queue (no offset for `all`), or an error status with
    /// `{"error":{"code":...,"message":...}}`.
    pub async fn handle(
        &self,
        request: ApiGatewayV2httpRequest,
        now: SystemTime,
    ) -> ApiGatewayV2httpResponse {
        let caller = caller(&request);
        match self.publish(&request, now).await {
            Ok(published) => {
                self.metrics.accepted();
                info!(caller, message_id = %published.id, offset = ?published.offset, "published");
                json_response(200, serde_json::to_string(&published).unwrap_or_default())
            }
            Err(refusal) => {
                info!(caller, code = ?refusal.error.code, "publish refused");
                self.metrics.refused(refusal.error.code);
                let body = serde_json::json!({
                    "error": { "code": refusal.error.code, "message": refusal.error.message }
                });
                let mut response = json_response(refusal.status, body.to_string());
                if let Some(wait) = refusal.retry_after {
                    let seconds = wait.as_secs().max(1).to_string();
                    if let Ok(value) = HeaderValue::from_str(&seconds) {
                        response.headers.insert(RETRY_AFTER, value);
                    }
                }
                response
            }
        }
    }

    async fn publish(
        &self,
        request: &ApiGatewayV2httpRequest,
        now: SystemTime,
    ) -> Result<Published, Refusal> {
        let body = body_text(request)?;
        let publish = parse_publish(Some(&body), self.config.max_data_bytes)?;
        let job = Job::message(publish.target, publish.data, None, None, epoch_millis(now));
        match publish.idempotency_key {
            None => {
                let job = self.place(job, now).await?;
                match self.enqueue(&job).await {
                    Ok(()) => Ok(Published::of(&job)),
                    Err(refusal) => {
                        if refusal.refused_for_certain {
                            self.forget(&job).await;
                        }
                        Err(unavailable().into())
                    }
                }
            }
            Some(key) => self.publish_once(&key, job, now).await,
        }
    }

    /// Publishes `job` under `key`, unless a publish with the key already did or is doing so.
    /// This publish is the key's claimant under its message's id.
    async fn publish_once(
        &self,
        key: &IdempotencyKey,
        job: Job,
        now: SystemTime,
    ) -> Result<Published, Refusal> {
        let now_ms = epoch_millis(now);
        let lease_until_ms = now_ms + millis(PublishConfig::LEASE);
        let expires_at = now_ms.div_euclid(1000) + IdempotencyKey::KEPT_SECONDS;
        let me = job.id.clone();
        let claimed = by(
            deadline(),
            self.keys
                .claim(key, &me, now_ms, lease_until_ms, expires_at),
        )
        .await
        .map_err(|failure| store_failed(key, "claim", &failure))?;
        match claimed {
            KeyState::Claimed => {}
            KeyState::Held { lease_until_ms } => return Err(in_progress(lease_until_ms - now_ms)),
            KeyState::Placed { job: first, .. } if !same_message(&first, &job) => {
                return Err(ClientError::new(
                    ErrorCode::KeyReused,
                    format!(
                        "idempotencyKey {:?} was used within the last day for another message (id {})",
                        key.as_str(),
                        first.id
                    ),
                )
                .into());
            }
            KeyState::Placed {
                job: first,
                enqueued: true,
                ..
            } => {
                info!(key = key.as_str(), message_id = %first.id, "a publish repeated: answered as the first time");
                return Ok(Published::of(&first));
            }
            KeyState::Placed { lease_until_ms, .. } if lease_until_ms > now_ms => {
                return Err(in_progress(lease_until_ms - now_ms));
            }
            KeyState::Placed { job: first, .. } => {
                // Its publish ended without knowing whether the queue took the job: take the
                // key over and enqueue the same job again. If both land, members get one id
                // and offset twice, which the contract's duplicates already allow; one
                // takeover at a time, so the copies are bounded by the tries, not by the
                // requests at once.
                let retaken = by(
                    deadline(),
                    self.keys.retake(key, &me, now_ms, lease_until_ms),
                )
                .await
                .map_err(|failure| store_failed(key, "take over", &failure))?;
                if !retaken {
                    return Err(in_progress(millis(PublishConfig::LEASE)));
                }
                warn!(key = key.as_str(), message_id = %first.id, "enqueuing again a job whose first enqueue is unknown");
                return self.enqueue_under(key, &me, &first, Attempt::Again).await;
            }
        }
        let job = match self.place(job, now).await {
            Ok(job) => job,
            Err(refusal) => {
                self.release(key, &me).await;
                return Err(refusal);
            }
        };
        match by(deadline(), self.keys.place(key, &me, &job)).await {
            Ok(true) => self.enqueue_under(key, &me, &job, Attempt::First).await,
            Ok(false) => {
                // Only a claim older than its lease is taken over: this publish ran past it.
                self.forget(&job).await;
                Err(in_progress(0))
            }
            Err(failure) => {
                self.forget(&job).await;
                self.release(key, &me).await;
                Err(store_failed(key, "record", &failure))
            }
        }
    }

    /// Enqueues the job placed under `key` and records how that ended.
    async fn enqueue_under(
        &self,
        key: &IdempotencyKey,
        me: &str,
        job: &Job,
        attempt: Attempt,
    ) -> Result<Published, Refusal> {
        let settled = match self.enqueue(job).await {
            Ok(()) => Settled::Enqueued,
            // Only a first enqueue refused for certain leaves nothing on the queue: an earlier
            // one may have landed before this one was refused.
            Err(failure) if failure.refused_for_certain && attempt == Attempt::First => {
                self.forget(job).await;
                self.release(key, me).await;
                return Err(unavailable().into());
            }
            Err(_) => Settled::Unsure,
        };
        if let Err(failure) = by(deadline(), self.keys.settle(key, me, settled)).await {
            // The key stays held until its lease ends; a try after that enqueues the job again.
            warn!(key = key.as_str(), error = %failure, "could not record how the publish ended");
        }
        match settled {
            Settled::Enqueued => Ok(Published::of(job)),
            Settled::Unsure => Err(unavailable().into()),
        }
    }

    async fn place(&self, job: Job, now: SystemTime) -> Result<Job, Refusal> {
        let Target::Room(room) = job.target.clone() else {
            // `all` reaches every room: it is in no room's sequence.
            return Ok(job);
        };
        Ok(self.sequencer().place(&room, job, now).await?)
    }

    async fn forget(&self, job: &Job) {
        if let Target::Room(room) = &job.target {
            self.sequencer().forget(room, job).await;
        }
    }

    async fn release(&self, key: &IdempotencyKey, me: &str) {
        if let Err(failure) = by(deadline(), self.keys.release(key, me)).await {
            warn!(key = key.as_str(), error = %failure, "could not release an idempotency key; it frees itself when its lease ends");
        }
    }

    async fn enqueue(&self, job: &Job) -> Result<(), EnqueueFailed> {
        match by(deadline(), self.queue.enqueue(job, Duration::ZERO)).await {
            Ok(()) => Ok(()),
            Err(failure) => {
                error!(message_id = %job.id, error = %failure, "enqueue failed");
                Err(EnqueueFailed {
                    refused_for_certain: matches!(
                        failure,
                        QueueError::Full(_) | QueueError::TooLarge(_)
                    ),
                })
            }
        }
    }

    fn sequencer(&self) -> Sequencer<'_> {
        Sequencer {
            history: self.history,
            config: &self.config.history,
        }
    }
}

/// Whether an enqueue is the job's first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    First,
    /// Again after an enqueue whose answer was lost.
    Again,
}

struct EnqueueFailed {
    /// The queue refused the job: it is not on the queue.
    refused_for_certain: bool,
}

fn deadline() -> Instant {
    Instant::now() + CALL_TIMEOUT
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The first publish under a key and this one carry the same message.
fn same_message(first: &Job, this: &Job) -> bool {
    first.target == this.target && first.payload.get() == this.payload.get()
}

fn in_progress(wait_ms: i64) -> Refusal {
    Refusal {
        retry_after: Some(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))),
        ..ClientError::new(
            ErrorCode::InProgress,
            "a publish with this idempotencyKey is still running; ask again shortly for its answer",
        )
        .into()
    }
}

fn store_failed(key: &IdempotencyKey, what: &str, failure: &StoreError) -> Refusal {
    error!(key = key.as_str(), error = %failure, "could not {what} an idempotency key");
    unavailable().into()
}

/// The request's body as text: HTTP APIs base64-encode a body they do not take for text.
fn body_text(request: &ApiGatewayV2httpRequest) -> Result<String, ClientError> {
    let body = request.body.clone().unwrap_or_default();
    if !request.is_base64_encoded {
        return Ok(body);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ClientError::new(ErrorCode::InvalidJson, "the body is not UTF-8 JSON text"))
}

/// Who called, as IAM authorized them (the user's or role's ARN), for the log.
fn caller(request: &ApiGatewayV2httpRequest) -> Option<&str> {
    request
        .request_context
        .authorizer
        .as_ref()?
        .iam
        .as_ref()?
        .user_arn
        .as_deref()
}

fn json_response(status: i64, body: String) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body));
    response
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
