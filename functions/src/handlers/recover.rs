//! `recover`: a reconnecting client asks for what its room's history holds after the last
//! offset it saw (or for its room's last messages, on joining); it gets each of those messages
//! as its members got them, in offset order, then one `recovered` frame that says whether
//! history reached back (docs/contracts.md, "Offsets, history and recovery").
//!
//! The frames are posted through the management API, one after the other, each retried with
//! backoff while the invocation has time; the connection is open (it just sent the request), so
//! a 410 means it left and the recovery stops. What it reads is bounded: at most the history's
//! size, in pages.

use super::reply::{connection_id, error_response, response, sender};
use crate::domain::history::{HistoryConfig, Recovered, parse_recover};
use crate::domain::{ClientError, ErrorCode, Frame, Recovery, epoch_millis};
use crate::engine::backoff::full_jitter;
use crate::metrics::RecoverMetrics;
use crate::ports::{ConnectionGateway, ConnectionStore, History, PostError, by};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bytes::Bytes;
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, timeout_at};
use tracing::{error, info, warn};

/// The recover handler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverConfig {
    /// What rooms keep (`HISTORY_SIZE`, `HISTORY_TTL_SECONDS`).
    pub history: HistoryConfig,
    /// Each post gives up after this long (`POST_TIMEOUT_MS`, as the worker's).
    pub post_timeout: Duration,
}

impl Default for RecoverConfig {
    fn default() -> Self {
        Self {
            history: HistoryConfig::default(),
            post_timeout: Duration::from_secs(3),
        }
    }
}

/// Entries read from history at a time.
const PAGE: usize = 100;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// The ports the recover handler uses.
pub struct RecoverMessages<'a> {
    pub store: &'a dyn ConnectionStore,
    pub history: &'a dyn History,
    /// The management API the frames are posted through.
    pub gateway: &'a dyn ConnectionGateway,
    /// `https://{domain}/{stage}`: this API's management endpoint (`MANAGEMENT_ENDPOINT`).
    pub endpoint: &'a str,
    pub config: &'a RecoverConfig,
    pub metrics: &'a dyn RecoverMetrics,
}

/// Why a recovery stopped before its `recovered` frame.
enum Stopped {
    /// The client's error frame: its request was refused, or a dependency failed.
    Refused(ClientError),
    /// The connection is gone (410): no one to answer.
    Gone,
}

impl From<ClientError> for Stopped {
    fn from(error: ClientError) -> Self {
        Stopped::Refused(error)
    }
}

impl RecoverMessages<'_> {
    /// Sends the recovery, then answers nothing (every frame went through the management API,
    /// in order), or an error frame. Posts stop at `deadline`.
    pub async fn handle(
        &self,
        request: ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
        deadline: Instant,
    ) -> ApiGatewayProxyResponse {
        match self.recover(&request, now, deadline).await {
            Ok(done) => {
                info!(connection_id = ?connection_id(&request), room = %done.room, count = done.count, complete = done.complete, "recovered");
                self.metrics.recovered(&done);
                response(200, None)
            }
            Err(Stopped::Gone) => {
                info!(connection_id = ?connection_id(&request), "the connection left during its recovery");
                response(200, None)
            }
            Err(Stopped::Refused(refusal)) => {
                info!(connection_id = ?connection_id(&request), code = ?refusal.code, "recovery refused");
                if refusal.code == ErrorCode::Unavailable {
                    self.metrics.failed();
                }
                error_response(&refusal)
            }
        }
    }

    async fn recover(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        now: SystemTime,
        deadline: Instant,
    ) -> Result<Recovered, Stopped> {
        let history = &self.config.history;
        let asked = parse_recover(
            request.body.as_deref(),
            request.is_base64_encoded,
            history.size,
        )?;
        let id = sender(request)?;
        let room = match by(deadline, self.store.get(id)).await {
            Ok(Some(connection)) => connection.room_for(asked.room)?,
            Ok(None) => {
                return Err(ClientError::new(
                    ErrorCode::NotConnected,
                    "this connection is not registered (expired?); reconnect and recover again",
                )
                .into());
            }
            Err(failure) => {
                error!(connection_id = id, error = %failure, "store lookup failed");
                return Err(unavailable().into());
            }
        };
        let now_ms = epoch_millis(now);
        let top = by(
            deadline,
            self.history.position(&room, now_ms.div_euclid(1000)),
        )
        .await
        .map_err(|failure| {
            error!(%room, error = %failure, "could not read the room's position");
            unavailable()
        })?;
        let mut recovery = Recovery::plan(top, &asked.what, history.size);
        if let (Some((mut from, to)), Some(epoch)) =
            (recovery.range(), recovery.epoch().map(str::to_owned))
        {
            while from <= to {
                let read = self.history.read(&room, &epoch, (from, to), PAGE, now_ms);
                let entries = by(deadline, read).await.map_err(|failure| {
                    error!(%room, error = %failure, "could not read history");
                    unavailable()
                })?;
                for entry in &entries {
                    if recovery.read(entry.offset, entry.expires_at, now_ms.div_euclid(1000)) {
                        self.post(id, entry.frame(&room).into(), deadline).await?;
                    }
                }
                match entries.last() {
                    Some(last) if entries.len() == PAGE => from = last.offset + 1,
                    _ => break,
                }
            }
        }
        let done = recovery.finish(&room);
        self.post(id, Frame::Recovered(&done).to_json().into(), deadline)
            .await?;
        Ok(done)
    }

    /// Posts one frame, retrying what may pass (429, 5xx, no answer) with backoff until
    /// `deadline`.
    async fn post(&self, id: &str, frame: Bytes, deadline: Instant) -> Result<(), Stopped> {
        let mut retry = 0;
        loop {
            let answer_by = (Instant::now() + self.config.post_timeout).min(deadline);
            let result = timeout_at(
                answer_by,
                self.gateway.post(self.endpoint, id, frame.clone()),
            )
            .await
            .unwrap_or_else(|_| Err(PostError::Transport("no answer in time".into())));
            let error = match result {
                Ok(()) => return Ok(()),
                Err(PostError::Gone) => return Err(Stopped::Gone),
                Err(error) if error.is_transient() => error,
                Err(error) => {
                    error!(connection_id = id, %error, "the management API refuses the recovery");
                    return Err(unavailable().into());
                }
            };
            retry += 1;
            let wait = full_jitter(BACKOFF_BASE, BACKOFF_CAP, retry);
            if Instant::now() + wait >= deadline {
                warn!(connection_id = id, %error, retries = retry, "out of time for the recovery");
                return Err(unavailable().into());
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn unavailable() -> ClientError {
    ClientError::new(
        ErrorCode::Unavailable,
        "the recovery could not be completed right now; ask again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryGateway, MemoryHistory, MemoryStore};
    use crate::domain::{HistoryEntry, Job, Position, RoomName, Target};
    use crate::handlers::fixtures::{body_json, connect_client, websocket, with_body};
    use serde_json::{Value, json};

    const CLIENT: &str = "Dx4sXe1ZoAMCJvw=";

    /// Recoveries as reported.
    #[derive(Default)]
    struct Reported(std::sync::Mutex<Vec<Option<Recovered>>>);

    impl RecoverMetrics for Reported {
        fn recovered(&self, outcome: &Recovered) {
            self.0.lock().unwrap().push(Some(outcome.clone()));
        }
        fn failed(&self) {
            self.0.lock().unwrap().push(None);
        }
    }

    struct Fixture {
        store: MemoryStore,
        history: MemoryHistory,
        gateway: MemoryGateway,
        config: RecoverConfig,
        reported: Reported,
    }

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    impl Fixture {
        /// The fixture's client in `general`, whose history keeps `size` messages, `count` of
        /// them published.
        async fn with(size: u64, count: usize) -> (Self, Vec<Position>) {
            let store = MemoryStore::new();
            connect_client(&store).await;
            let f = Self {
                store,
                history: MemoryHistory::new(size),
                gateway: MemoryGateway::new(),
                config: RecoverConfig {
                    history: HistoryConfig {
                        size,
                        ..HistoryConfig::default()
                    },
                    ..RecoverConfig::default()
                },
                reported: Reported::default(),
            };
            let mut published = Vec::new();
            for n in 0..count {
                published.push(f.publish(n).await);
            }
            (f, published)
        }

        /// Publishes message `n` to `general` as sendmessage does.
        async fn publish(&self, n: usize) -> Position {
            let now_ms = crate::domain::now_epoch_millis();
            let history = &self.config.history;
            let position = self
                .history
                .next_position(&general(), now_ms / 1000, history.sequence_expiry(now_ms))
                .await
                .unwrap();
            let job = Job::message(
                Target::Room(general()),
                serde_json::value::RawValue::from_string(json!({"n": n}).to_string()).unwrap(),
                Some("sender".into()),
                None,
                now_ms,
            )
            .at(position.clone());
            let entry = HistoryEntry::of(&job, history.entry_expiry(now_ms)).unwrap();
            self.history.append(&general(), &entry).await.unwrap();
            position
        }

        async fn recover(&self, body: Value) -> Option<Value> {
            let handler = RecoverMessages {
                store: &self.store,
                history: &self.history,
                gateway: &self.gateway,
                endpoint: "https://example.execute-api.eu-west-1.amazonaws.com/dev",
                config: &self.config,
                metrics: &self.reported,
            };
            let request = with_body(websocket("sendmessage"), &body.to_string());
            let deadline = Instant::now() + Duration::from_secs(25);
            let response = handler.handle(request, SystemTime::now(), deadline).await;
            response.body.is_some().then(|| body_json(&response))
        }

        /// What the client received, in order.
        fn received(&self) -> Vec<Value> {
            self.gateway
                .delivered_to(CLIENT)
                .iter()
                .map(|frame| serde_json::from_slice(frame).unwrap())
                .collect()
        }

        /// The offsets of the messages received, and the final `recovered` frame.
        fn recovered(&self) -> (Vec<u64>, Value) {
            let mut frames = self.received();
            let last = frames.pop().expect("a recovered frame");
            assert_eq!(last["type"], "recovered", "{last}");
            let offsets = frames
                .iter()
                .map(|frame| {
                    assert_eq!(frame["type"], "message", "{frame}");
                    frame["offset"].as_u64().unwrap()
                })
                .collect();
            (offsets, last)
        }
    }

    #[tokio::test]
    async fn a_client_gets_what_it_missed_in_order_then_the_recovered_frame() {
        let (f, published) = Fixture::with(100, 8).await;
        let epoch = &published[0].epoch;
        assert_eq!(
            f.recover(json!({"action":"recover","offset":3,"epoch":epoch}))
                .await,
            None
        );
        let (offsets, done) = f.recovered();
        assert_eq!(offsets, [4, 5, 6, 7, 8]);
        assert_eq!(
            done,
            json!({"type":"recovered","room":"general","from":3,"to":8,"epoch":epoch,"complete":true,"count":5})
        );
        let frames = f.received();
        assert_eq!(
            frames[0]["data"],
            json!({"n": 3}),
            "the message as it was sent"
        );
        assert_eq!(frames[0]["room"], "general");
        assert_eq!(frames[0]["epoch"], epoch.as_str());
        let reported = f.reported.0.lock().unwrap().clone();
        assert_eq!(reported.len(), 1);
        assert!(
            reported[0]
                .as_ref()
                .is_some_and(|r| r.complete && r.count == 5)
        );
    }

    #[tokio::test]
    async fn beyond_the_window_or_in_another_epoch_the_client_is_told_to_reload() {
        let (f, published) = Fixture::with(5, 10).await;
        let epoch = &published[0].epoch;
        f.recover(json!({"action":"recover","offset":1,"epoch":epoch}))
            .await;
        let (offsets, done) = f.recovered();
        assert_eq!(offsets, [6, 7, 8, 9, 10], "what history still has");
        assert_eq!(done["complete"], false);

        f.gateway.clear_deliveries();
        f.recover(json!({"action":"recover","offset":4,"epoch":"0000000000000000"}))
            .await;
        let (offsets, done) = f.recovered();
        assert!(offsets.is_empty());
        assert_eq!(
            (done["complete"].clone(), done["to"].clone()),
            (json!(false), json!(10))
        );
        assert_eq!(
            done["epoch"],
            epoch.as_str(),
            "the epoch to start over from"
        );
    }

    #[tokio::test]
    async fn state_on_joining_is_the_rooms_last_messages() {
        let (f, _) = Fixture::with(100, 10).await;
        f.recover(json!({"action":"recover","last":3})).await;
        let (offsets, done) = f.recovered();
        assert_eq!(offsets, [8, 9, 10]);
        assert_eq!(
            (done["from"].clone(), done["complete"].clone()),
            (json!(7), json!(true))
        );

        let (empty, _) = Fixture::with(100, 0).await;
        empty.recover(json!({"action":"recover","last":3})).await;
        let (offsets, done) = empty.recovered();
        assert!(offsets.is_empty());
        assert_eq!(
            (done["to"].clone(), done["complete"].clone()),
            (json!(0), json!(true))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_management_api_brownout_is_ridden_through() {
        let (f, published) = Fixture::with(100, 4).await;
        f.gateway.script(
            CLIENT,
            [
                PostError::Server(503),
                PostError::Throttled,
                PostError::Transport("reset".into()),
                PostError::Server(500),
            ],
        );
        let epoch = &published[0].epoch;
        assert_eq!(
            f.recover(json!({"action":"recover","offset":0,"epoch":epoch}))
                .await,
            None
        );
        let (offsets, done) = f.recovered();
        assert_eq!(
            (offsets, done["complete"].clone()),
            (vec![1, 2, 3, 4], json!(true))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_brownout_past_the_deadline_answers_unavailable_and_is_counted() {
        let (f, published) = Fixture::with(100, 2).await;
        f.gateway
            .script(CLIENT, vec![PostError::Server(503); 10_000]);
        let epoch = &published[0].epoch;
        let started = Instant::now();
        let answer = f
            .recover(json!({"action":"recover","offset":0,"epoch":epoch}))
            .await;
        assert_eq!(answer.unwrap()["code"], "unavailable");
        assert!(
            started.elapsed() <= Duration::from_secs(25),
            "bounded by the deadline"
        );
        assert_eq!(*f.reported.0.lock().unwrap(), [None]);
    }

    #[tokio::test]
    async fn a_client_that_leaves_mid_recovery_ends_it_quietly() {
        let (f, published) = Fixture::with(100, 5).await;
        f.gateway.mark_gone(CLIENT);
        let epoch = &published[0].epoch;
        assert_eq!(
            f.recover(json!({"action":"recover","offset":0,"epoch":epoch}))
                .await,
            None
        );
        assert_eq!(f.gateway.calls(), 1, "one 410 ends it");
    }

    #[tokio::test]
    async fn a_request_for_another_room_or_a_malformed_one_is_refused() {
        let (f, published) = Fixture::with(100, 2).await;
        let epoch = &published[0].epoch;
        let answer = f
            .recover(json!({"action":"recover","room":"ops","offset":0,"epoch":epoch}))
            .await
            .unwrap();
        assert_eq!(answer["code"], "not_in_room", "{answer}");
        let answer = f
            .recover(json!({"action":"recover","last":-1}))
            .await
            .unwrap();
        assert_eq!(answer["code"], "invalid_message", "{answer}");
        assert!(f.received().is_empty());
    }
}
