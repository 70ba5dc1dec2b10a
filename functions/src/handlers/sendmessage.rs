//! `sendmessage`: validate, take the room's next offset and keep the message in the room's
//! history, enqueue one job, answer the sender.

use super::reply::{connection_id, error_response, response, sender};
use super::sequence::{Sequencer, unavailable};
use crate::config::settings;
use crate::domain::history::HistoryConfig;
use crate::domain::{
    Allowance, ClientError, ErrorCode, Frame, Job, RateLimit, Target, epoch_millis,
    parse_send_message,
};
use crate::metrics::SendMetrics;
use crate::ports::{Allowances, ConnectionStore, History, JobQueue, QueueError};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use std::time::{Duration, SystemTime};
use tracing::{error, info, warn};

/// sendmessage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendConfig {
    /// `MAX_DATA_BYTES`: the largest `data` accepted, as JSON text.
    pub max_data_bytes: usize,
    /// `RATE_LIMIT_PER_SECOND` and `RATE_LIMIT_BURST`: how fast one connection may send; a
    /// faster one gets `rate_limited`, and the room's other members are not slowed. `None`
    /// (a rate of 0) turns it off.
    pub rate_limit: Option<RateLimit>,
    /// `HISTORY_SIZE` and `HISTORY_TTL_SECONDS`: what each room keeps of its messages.
    pub history: HistoryConfig,
}

impl SendConfig {
    /// `RATE_LIMIT_PER_SECOND` and `RATE_LIMIT_BURST` unset.
    pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
        per_second: settings::RATE_LIMIT_PER_SECOND.default_value() as u32,
        burst: settings::RATE_LIMIT_BURST.default_value() as u32,
    };
    /// How many times a send re-reads an allowance another send of the same connection changed
    /// meanwhile, before it counts as over the limit (only a connection racing itself loses).
    const ALLOWANCE_TRIES: usize = 3;
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            max_data_bytes: settings::MAX_DATA_BYTES.default_value() as usize,
            rate_limit: Some(Self::DEFAULT_RATE_LIMIT),
            history: HistoryConfig::default(),
        }
    }
}

/// The ports sendmessage uses.
pub struct SendMessage<'a> {
    pub store: &'a dyn ConnectionStore,
    /// Where each connection's sending allowance is kept (the same table in practice).
    pub allowances: &'a dyn Allowances,
    pub queue: &'a dyn JobQueue,
    /// Rooms' sequences and history: every accepted message takes its room's next offset and
    /// is kept there before it is enqueued.
    pub history: &'a dyn History,
    pub config: &'a SendConfig,
    /// Every request counts as accepted or refused by code: a refusal is an HTTP 200 carrying an
    /// error frame, invisible to Lambda's and API Gateway's error metrics.
    pub metrics: &'a dyn SendMetrics,
}

impl SendMessage<'_> {
    /// Answers `{"type":"ack","id":...,"offset":...,"epoch":...}` once the message is in its
    /// room's history and its job on the queue, or an error frame; on any error nothing is
    /// enqueued. Takes milliseconds whatever the size of the room.
    pub async fn handle(
        &self,
        request: ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
    ) -> ApiGatewayProxyResponse {
        match self.enqueue(&request, now).await {
            Ok(job) => {
                self.metrics.accepted();
                let ack = Frame::Ack {
                    id: &job.id,
                    offset: job.offset,
                    epoch: job.epoch.as_deref(),
                };
                response(200, Some(ack.to_json()))
            }
            Err(refusal) => {
                info!(connection_id = ?connection_id(&request), code = ?refusal.code, "refused message");
                self.metrics.refused(refusal.code);
                error_response(&refusal)
            }
        }
    }

    async fn enqueue(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
    ) -> Result<Job, ClientError> {
        let outgoing = parse_send_message(
            request.body.as_deref(),
            request.is_base64_encoded,
            self.config.max_data_bytes,
        )?;
        let sender = sender(request)?;
        let connection = match self.store.get(sender).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return Err(not_registered()),
            Err(failure) => {
                error!(connection_id = sender, error = %failure, "store lookup failed");
                return Err(unavailable());
            }
        };
        let room = connection.room_for(outgoing.room)?;
        if let Some(limit) = self.config.rate_limit {
            self.spend_allowance(sender, connection.allowance, limit, epoch_millis(now))
                .await?;
        }
        let job = Job::message(
            Target::Room(room.clone()),
            outgoing.data,
            Some(sender.to_owned()),
            connection.principal,
            epoch_millis(now),
        );
        let job = self.sequencer().place(&room, job, now).await?;
        match self.queue.enqueue(&job, Duration::ZERO).await {
            Ok(()) => {}
            Err(QueueError::Full(why)) => {
                warn!(connection_id = sender, %why, "queue full: message refused");
                // Refused for certain: no member receives it, so no one may recover it.
                self.sequencer().forget(&room, &job).await;
                return Err(ClientError::new(
                    ErrorCode::Unavailable,
                    "the queue is full; send the message again in a moment",
                ));
            }
            Err(failure) => {
                // Perhaps enqueued after all (an answer lost on the way back): its entry stays,
                // so that a member it reached live and one who recovers it agree.
                error!(connection_id = sender, error = %failure, "enqueue failed");
                return Err(unavailable());
            }
        }
        info!(connection_id = sender, message_id = %job.id, offset = ?job.offset, "message accepted");
        Ok(job)
    }

    fn sequencer(&self) -> Sequencer<'_> {
        Sequencer {
            history: self.history,
            config: &self.config.history,
        }
    }
}

impl SendMessage<'_> {
    /// Takes one message from the sender's allowance, or refuses with `rate_limited`.
    async fn spend_allowance(
        &self,
        sender: &str,
        mut current: Option<Allowance>,
        limit: RateLimit,
        now_ms: i64,
    ) -> Result<(), ClientError> {
        for _ in 0..SendConfig::ALLOWANCE_TRIES {
            let Some(next) = limit.take(current, now_ms) else {
                return Err(rate_limited(limit));
            };
            match self.allowances.swap_allowance(sender, current, next).await {
                Ok(true) => return Ok(()),
                // Another send of this connection went first: read what it left.
                Ok(false) => match self.store.get(sender).await {
                    Ok(Some(connection)) => current = connection.allowance,
                    Ok(None) => return Err(not_registered()),
                    Err(failure) => {
                        error!(connection_id = sender, error = %failure, "store lookup failed");
                        return Err(unavailable());
                    }
                },
                Err(failure) => {
                    error!(connection_id = sender, error = %failure, "allowance update failed");
                    return Err(unavailable());
                }
            }
        }
        Err(rate_limited(limit))
    }
}

fn rate_limited(limit: RateLimit) -> ClientError {
    ClientError::new(
        ErrorCode::RateLimited,
        format!(
            "more than {} messages a second (bursts of {}); wait a moment and send again",
            limit.per_second, limit.burst
        ),
    )
}

fn not_registered() -> ClientError {
    ClientError::new(
        ErrorCode::NotConnected,
        "this connection is not registered (expired?); reconnect and send again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryHistory, MemoryQueue, MemoryStore};
    use crate::auth::Claims;
    use crate::domain::frame::MAX_FRAME_BYTES;
    use crate::domain::history::MAX_EPOCH_BYTES;

    /// Data at the largest MAX_DATA_BYTES allows, in an envelope with every field at its
    /// longest (the token's `sub` all quotes, each escaped to two bytes): still a frame API
    /// Gateway delivers, so a message acked is never too big to post.
    #[test]
    fn the_largest_message_fits_a_frame_whatever_its_sender() {
        let data = format!(
            "\"{}\"",
            "x".repeat(settings::MAX_DATA_BYTES.max as usize - 2)
        );
        let data = serde_json::value::RawValue::from_string(data).unwrap();
        let frame = Frame::Message {
            id: &uuid::Uuid::now_v7().to_string(),
            room: Some(&"r".repeat(64)),
            from: Some(&"c".repeat(crate::domain::job::MAX_CONNECTION_ID_BYTES)),
            user: Some(&"\"".repeat(Claims::MAX_SUB_BYTES)),
            sent_at: i64::MIN,
            offset: Some(u64::MAX),
            epoch: Some(&"e".repeat(MAX_EPOCH_BYTES)),
            data: &data,
        };
        let bytes = frame.to_json().len();
        assert!(bytes <= MAX_FRAME_BYTES, "{bytes} bytes");
    }
    use crate::domain::{HistoryEntry, RoomName};
    use crate::handlers::fixtures::{body_json, connect_client, websocket, with_body};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// What the handler reported, in order.
    #[derive(Default)]
    struct Outcomes(Mutex<Vec<Result<(), ErrorCode>>>);

    impl SendMetrics for Outcomes {
        fn accepted(&self) {
            self.0.lock().unwrap().push(Ok(()));
        }
        fn refused(&self, code: ErrorCode) {
            self.0.lock().unwrap().push(Err(code));
        }
    }

    impl Outcomes {
        fn take(&self) -> Vec<Result<(), ErrorCode>> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    struct Fixture {
        store: MemoryStore,
        queue: MemoryQueue,
        history: MemoryHistory,
        config: SendConfig,
        outcomes: Outcomes,
    }

    impl Fixture {
        async fn connected() -> Self {
            let store = MemoryStore::new();
            connect_client(&store).await;
            Self {
                store,
                queue: MemoryQueue::new(),
                history: MemoryHistory::new(10),
                config: SendConfig {
                    max_data_bytes: 64,
                    ..SendConfig::default()
                },
                outcomes: Outcomes::default(),
            }
        }

        async fn send(&self, request: ApiGatewayWebsocketProxyRequest) -> serde_json::Value {
            self.send_at(request, SystemTime::now(), &self.store).await
        }

        /// Sends the fixture's message through another queue.
        async fn send_through(&self, queue: &dyn JobQueue) -> serde_json::Value {
            let handler = SendMessage {
                store: &self.store,
                allowances: &self.store,
                queue,
                history: &self.history,
                config: &self.config,
                metrics: &self.outcomes,
            };
            body_json(
                &handler
                    .handle(websocket("sendmessage"), SystemTime::now())
                    .await,
            )
        }

        async fn send_at(
            &self,
            request: ApiGatewayWebsocketProxyRequest,
            now: SystemTime,
            allowances: &dyn Allowances,
        ) -> serde_json::Value {
            let handler = SendMessage {
                store: &self.store,
                allowances,
                queue: &self.queue,
                history: &self.history,
                config: &self.config,
                metrics: &self.outcomes,
            };
            let response = handler.handle(request, now).await;
            assert_eq!(response.status_code, 200);
            body_json(&response)
        }
    }

    /// Another instance of sendmessage sends for the same connection just before each of the
    /// first `races` swaps.
    struct Racing<'a> {
        store: &'a MemoryStore,
        races: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl Allowances for Racing<'_> {
        async fn swap_allowance(
            &self,
            id: &str,
            expected: Option<Allowance>,
            new: Allowance,
        ) -> Result<bool, crate::ports::StoreError> {
            use std::sync::atomic::Ordering;
            if self
                .races
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let limit = SendConfig::DEFAULT_RATE_LIMIT;
                let theirs = limit.take(expected, new.at).unwrap();
                assert!(self.store.swap_allowance(id, expected, theirs).await?);
            }
            self.store.swap_allowance(id, expected, new).await
        }
    }

    const SENDER: &str = "Dx4sXe1ZoAMCJvw=";

    /// The connections table refuses every allowance update (throttled, or down).
    struct AllowancesDown;

    #[async_trait]
    impl Allowances for AllowancesDown {
        async fn swap_allowance(
            &self,
            _: &str,
            _: Option<Allowance>,
            _: Allowance,
        ) -> Result<bool, crate::ports::StoreError> {
            Err(crate::ports::StoreError::Unavailable(
                "ProvisionedThroughputExceededException".into(),
            ))
        }
    }

    #[tokio::test]
    async fn an_allowance_that_cannot_be_updated_is_a_retryable_refusal_and_nothing_is_sent() {
        let f = Fixture::connected().await;
        let frame = f
            .send_at(websocket("sendmessage"), SystemTime::now(), &AllowancesDown)
            .await;
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], "unavailable", "{frame}");
        let message = frame["message"].as_str().unwrap();
        assert!(
            !message.contains("Provisioned"),
            "the table's own text stays in the log: {message}"
        );
        assert!(f.queue.is_empty(), "no job without a counted send");
        assert_eq!(f.outcomes.take(), [Err(ErrorCode::Unavailable)]);
    }

    fn other_member() -> ApiGatewayWebsocketProxyRequest {
        let mut request = websocket("sendmessage");
        request.request_context.connection_id = Some("Other00000000A0=".into());
        request
    }

    #[tokio::test]
    async fn a_fast_sender_is_rate_limited_and_the_room_is_not() {
        let f = Fixture::connected().await;
        let mut joining = websocket("connect");
        joining.request_context.connection_id = Some("Other00000000A0=".into());
        let joined = crate::handlers::connect::handle(
            &f.store,
            &crate::handlers::connect::ConnectConfig::default(),
            joining,
            SystemTime::now(),
        )
        .await;
        assert_eq!(joined.status_code, 200);
        let start = SystemTime::now();
        let mut codes = Vec::new();
        for _ in 0..30 {
            let frame = f.send_at(websocket("sendmessage"), start, &f.store).await;
            codes.push(frame["code"].as_str().unwrap_or("ack").to_owned());
        }
        let acked = codes.iter().filter(|c| *c == "ack").count();
        assert_eq!(acked, 20, "a burst of 20: {codes:?}");
        assert!(codes[20..].iter().all(|c| c == "rate_limited"), "{codes:?}");
        let refused = f.send_at(websocket("sendmessage"), start, &f.store).await;
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("10 messages a second"),
            "{refused}"
        );

        // The other member is not slowed.
        let theirs = f.send_at(other_member(), start, &f.store).await;
        assert_eq!(theirs["type"], "ack", "{theirs}");
        // A second later the sender has ten more.
        let later = start + Duration::from_secs(1);
        let mut again = 0;
        for _ in 0..15 {
            if f.send_at(websocket("sendmessage"), later, &f.store).await["type"] == "ack" {
                again += 1;
            }
        }
        assert_eq!(again, 10);
        assert_eq!(
            f.queue.drain().len(),
            20 + 1 + 10,
            "refused sends enqueue nothing"
        );
        let outcomes = f.outcomes.take();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Err(ErrorCode::RateLimited))
                .count(),
            10 + 1 + 5
        );
    }

    #[tokio::test]
    async fn a_send_racing_another_instance_reads_again_and_both_count() {
        let f = Fixture::connected().await;
        let now = SystemTime::now();
        let racing = Racing {
            store: &f.store,
            races: 1.into(),
        };
        assert_eq!(
            f.send_at(websocket("sendmessage"), now, &racing).await["type"],
            "ack"
        );
        let left = f
            .store
            .get(SENDER)
            .await
            .unwrap()
            .unwrap()
            .allowance
            .unwrap();
        assert_eq!(left.milli, 18_000, "both sends took a token");

        // A connection racing itself on every try is over its limit.
        let racing = Racing {
            store: &f.store,
            races: SendConfig::ALLOWANCE_TRIES.into(),
        };
        let frame = f.send_at(websocket("sendmessage"), now, &racing).await;
        assert_eq!(frame["code"], "rate_limited", "{frame}");
    }

    #[tokio::test]
    async fn no_rate_limit_writes_nothing() {
        let mut f = Fixture::connected().await;
        f.config.rate_limit = None;
        for _ in 0..50 {
            assert_eq!(f.send(websocket("sendmessage")).await["type"], "ack");
        }
        assert_eq!(f.store.get(SENDER).await.unwrap().unwrap().allowance, None);
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
        assert_eq!(job.endpoint, None, "the worker posts to its own endpoint");
        // The job on the queue is a valid v1 job.
        assert!(Job::parse(&job.to_json()).is_ok());
        assert_eq!(f.outcomes.take(), [Ok(())]);
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
        let outcomes = f.outcomes.take();
        assert_eq!(outcomes.len(), cases.len() + 2, "one per request");
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
        assert_eq!(outcomes.last(), Some(&Err(ErrorCode::BinaryNotSupported)));
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

    /// A queue whose every enqueue fails with the error its function makes.
    struct Refusing(fn() -> QueueError);

    #[async_trait]
    impl JobQueue for Refusing {
        async fn enqueue(&self, _: &Job, _: Duration) -> Result<(), QueueError> {
            Err((self.0)())
        }
        async fn dead_letter(&self, _: &str, _: &str) -> Result<(), QueueError> {
            unreachable!("sendmessage never dead-letters")
        }
        async fn retry_later(&self, _: &str, _: Duration) -> Result<(), QueueError> {
            unreachable!("sendmessage receives nothing")
        }
    }

    #[tokio::test]
    async fn a_full_queue_is_reported_as_retryable_and_said_to_be_full() {
        let f = Fixture::connected().await;
        let full = Refusing(|| QueueError::Full("100000 messages held".into()));
        let frame = f.send_through(&full).await;
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "unavailable");
        let message = frame["message"].as_str().unwrap();
        assert!(message.contains("queue is full"), "{message}");
        assert!(
            !message.contains("100000"),
            "the queue's own text stays in the log: {message}"
        );
        assert_eq!(f.outcomes.take(), [Err(ErrorCode::Unavailable)]);
        let general = RoomName::parse("general").unwrap();
        assert_eq!(
            f.history.kept(&general),
            0,
            "refused for certain: taken back out of history"
        );
    }

    #[tokio::test]
    async fn a_queue_outage_is_reported_as_retryable() {
        let f = Fixture::connected().await;
        let down = Refusing(|| QueueError::Unavailable("connection refused".into()));
        let frame = f.send_through(&down).await;
        assert_eq!(frame["code"], "unavailable");
        assert_eq!(
            f.outcomes.take(),
            [Err(ErrorCode::Unavailable)],
            "what the alarm on refusals for lack of the queue counts"
        );
        let general = RoomName::parse("general").unwrap();
        assert_eq!(
            f.history.kept(&general),
            1,
            "an outage may have enqueued it after all: its entry stays"
        );
    }

    #[tokio::test]
    async fn each_message_takes_its_rooms_next_offset_and_is_kept_before_it_is_enqueued() {
        let mut f = Fixture::connected().await;
        f.config.rate_limit = None;
        let mut offsets = Vec::new();
        for _ in 0..3 {
            let ack = f.send(websocket("sendmessage")).await;
            assert_eq!(ack["type"], "ack", "{ack}");
            offsets.push((ack["offset"].as_u64().unwrap(), ack["epoch"].clone()));
        }
        assert_eq!(
            offsets.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(offsets.iter().all(|(_, e)| *e == offsets[0].1));
        let jobs = f.queue.drain();
        let general = RoomName::parse("general").unwrap();
        for (job, (offset, epoch)) in jobs.iter().zip(&offsets) {
            assert_eq!(job.offset, Some(*offset));
            assert_eq!(job.epoch.as_deref(), epoch.as_str());
            let kept = f
                .history
                .read(&general, epoch.as_str().unwrap(), (*offset, *offset), 1, 0)
                .await
                .unwrap();
            assert_eq!(kept.len(), 1);
            assert_eq!(kept[0].id, job.id);
            assert_eq!(kept[0].payload.get(), job.payload.get());
            assert_eq!(
                kept[0].frame(&general),
                String::from_utf8(job.render(crate::domain::DeliveryMode::Envelope).to_vec())
                    .unwrap(),
                "a recovered frame is the delivered one"
            );
        }
    }

    #[tokio::test]
    async fn with_history_off_offsets_still_number_the_messages_and_nothing_is_kept() {
        let mut f = Fixture::connected().await;
        f.config.history.size = 0;
        let ack = f.send(websocket("sendmessage")).await;
        assert_eq!(ack["offset"], 1);
        assert_eq!(f.history.kept(&RoomName::parse("general").unwrap()), 0);
    }

    /// A history table that refuses every write (throttled past the SDK's retries: a room
    /// beyond one partition's write rate).
    struct HistoryDown;

    #[async_trait]
    impl History for HistoryDown {
        async fn next_position(
            &self,
            _: &RoomName,
            _: i64,
            _: i64,
        ) -> Result<crate::domain::Position, crate::ports::StoreError> {
            Err(crate::ports::StoreError::Unavailable(
                "ThrottlingException".into(),
            ))
        }
        async fn position(
            &self,
            _: &RoomName,
            _: i64,
        ) -> Result<Option<crate::domain::Position>, crate::ports::StoreError> {
            unreachable!("sendmessage does not read positions")
        }
        async fn append(
            &self,
            _: &RoomName,
            _: &HistoryEntry,
        ) -> Result<(), crate::ports::StoreError> {
            unreachable!("no offset, no entry")
        }
        async fn remove(&self, _: &RoomName, _: u64) -> Result<(), crate::ports::StoreError> {
            unreachable!("nothing was kept")
        }
        async fn read(
            &self,
            _: &RoomName,
            _: &str,
            _: (u64, u64),
            _: usize,
            _: i64,
        ) -> Result<Vec<HistoryEntry>, crate::ports::StoreError> {
            unreachable!("sendmessage does not read history")
        }
    }

    #[tokio::test]
    async fn a_room_whose_sequence_cannot_be_written_refuses_as_retryable_and_enqueues_nothing() {
        let f = Fixture::connected().await;
        let handler = SendMessage {
            store: &f.store,
            allowances: &f.store,
            queue: &f.queue,
            history: &HistoryDown,
            config: &f.config,
            metrics: &f.outcomes,
        };
        let frame = body_json(
            &handler
                .handle(websocket("sendmessage"), SystemTime::now())
                .await,
        );
        assert_eq!(frame["code"], "unavailable", "{frame}");
        assert!(f.queue.drain().is_empty(), "no job without an offset");
    }
}
