use super::*;
use crate::adapters::memory::{MemoryHistory, MemoryPublishLog, MemoryQueue};
use crate::domain::RoomName;
use crate::ports::History;
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A queue that answers with `failures` (in order) before it takes jobs into `inner`.
struct Flaky {
    inner: MemoryQueue,
    failures: Mutex<Vec<QueueError>>,
    /// Jobs a lost answer put on the queue all the same.
    landed_anyway: AtomicUsize,
}

impl Flaky {
    fn new(failures: Vec<QueueError>) -> Self {
        Self {
            inner: MemoryQueue::new(),
            failures: Mutex::new(failures),
            landed_anyway: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl JobQueue for Flaky {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        let failure = {
            let mut failures = self.failures.lock().unwrap();
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        match failure {
            // A lost answer: the job is on the queue, the caller cannot know.
            Some(QueueError::Unavailable(why)) => {
                self.landed_anyway.fetch_add(1, Ordering::SeqCst);
                self.inner.enqueue(job, delay).await?;
                Err(QueueError::Unavailable(why))
            }
            Some(failure) => Err(failure),
            None => self.inner.enqueue(job, delay).await,
        }
    }
    async fn dead_letter(&self, _: &str, _: &str) -> Result<(), QueueError> {
        unreachable!("publish never dead-letters")
    }
    async fn retry_later(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        unreachable!("publish receives nothing")
    }
}

struct Fixture {
    queue: Flaky,
    history: MemoryHistory,
    keys: MemoryPublishLog,
    config: PublishConfig,
    outcomes: Outcomes,
}

impl Fixture {
    fn new() -> Self {
        Self::with_queue(Flaky::new(Vec::new()))
    }

    fn with_queue(queue: Flaky) -> Self {
        Self {
            queue,
            history: MemoryHistory::new(10),
            keys: MemoryPublishLog::default(),
            config: PublishConfig {
                max_data_bytes: 64,
                history: HistoryConfig::default(),
            },
            outcomes: Outcomes::default(),
        }
    }

    async fn publish_at(&self, body: &str, now: SystemTime) -> (i64, serde_json::Value) {
        let handler = Publish {
            queue: &self.queue,
            history: &self.history,
            keys: &self.keys,
            config: &self.config,
            metrics: &self.outcomes,
        };
        let mut request = ApiGatewayV2httpRequest::default();
        request.body = Some(body.to_owned());
        let response = handler.handle(request, now).await;
        assert_eq!(
            response.headers.get(CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let Some(Body::Text(text)) = &response.body else {
            panic!("{response:?}")
        };
        (response.status_code, serde_json::from_str(text).unwrap())
    }

    async fn publish(&self, body: &str) -> (i64, serde_json::Value) {
        self.publish_at(body, SystemTime::now()).await
    }

    fn jobs(&self) -> Vec<Job> {
        self.queue.inner.drain()
    }

    async fn kept(&self, room: &str) -> Vec<u64> {
        let room = RoomName::parse(room).unwrap();
        let now = now_ms();
        let Some(top) = self.history.position(&room, now / 1000).await.unwrap() else {
            return Vec::new();
        };
        self.history
            .read(&room, &top.epoch, (1, top.offset), 100, now)
            .await
            .unwrap()
            .iter()
            .map(|entry| entry.offset)
            .collect()
    }
}

fn now_ms() -> i64 {
    epoch_millis(SystemTime::now())
}

#[tokio::test]
async fn a_message_to_a_room_takes_its_offset_and_is_kept_in_history() {
    let f = Fixture::new();
    let (status, first) = f.publish(r#"{"room":"news","data":{"t":1}}"#).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = f.publish(r#"{"room":"news","data":{"t":2}}"#).await;
    assert_eq!(
        (first["offset"].as_u64(), second["offset"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(first["epoch"], second["epoch"]);
    let jobs = f.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].id, first["id"].as_str().unwrap());
    assert_eq!(
        (jobs[0].offset, jobs[0].epoch.as_deref()),
        (Some(1), first["epoch"].as_str())
    );
    assert_eq!(
        jobs[0].target,
        Target::Room(RoomName::parse("news").unwrap())
    );
    assert_eq!(jobs[0].payload.get(), r#"{"t":1}"#);
    assert_eq!(
        (jobs[0].sender.as_deref(), jobs[0].user.as_deref()),
        (None, None)
    );
    assert_eq!(f.kept("news").await, vec![1, 2]);
    assert_eq!(*f.outcomes.0.lock().unwrap(), vec![Ok(()), Ok(())]);
}

#[tokio::test]
async fn a_message_to_all_has_no_offset() {
    let f = Fixture::new();
    let (status, answer) = f.publish(r#"{"all":true,"data":"maintenance at 5"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.get("offset").is_none() && answer.get("epoch").is_none(),
        "{answer}"
    );
    let jobs = f.jobs();
    assert_eq!(
        (jobs.len(), &jobs[0].target, jobs[0].offset),
        (1, &Target::All, None)
    );
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_reason_and_publish_nothing() {
    let f = Fixture::new();
    for (body, status, code) in [
        ("", 400, "empty_body"),
        ("not json", 400, "invalid_json"),
        (r#"{"data":1}"#, 400, "invalid_message"),
        (r#"{"room":"a/b","data":1}"#, 400, "invalid_message"),
        (r#"{"room":"a"}"#, 400, "missing_data"),
        (
            &format!(r#"{{"room":"a","data":"{}"}}"#, "x".repeat(80)),
            413,
            "message_too_large",
        ),
    ] {
        let (got, answer) = f.publish(body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(f.jobs().is_empty());
    assert!(f.kept("a").await.is_empty());
}

#[tokio::test]
async fn a_base64_body_is_read_as_text() {
    let f = Fixture::new();
    let handler = Publish {
        queue: &f.queue,
        history: &f.history,
        keys: &f.keys,
        config: &f.config,
        metrics: &f.outcomes,
    };
    let mut request = ApiGatewayV2httpRequest::default();
    request.body =
        Some(base64::engine::general_purpose::STANDARD.encode(r#"{"room":"a","data":1}"#));
    request.is_base64_encoded = true;
    assert_eq!(
        handler.handle(request, SystemTime::now()).await.status_code,
        200
    );
    assert_eq!(f.jobs().len(), 1);
}

#[tokio::test]
async fn the_same_key_answers_the_first_answer_and_publishes_once() {
    let f = Fixture::new();
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"order-17"}"#;
    let (status, first) = f.publish(body).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = f.publish(body).await;
    assert_eq!((status, &again), (200, &first));
    assert_eq!(f.jobs().len(), 1);
    assert_eq!(f.kept("news").await, vec![1]);

    let (status, other) = f
        .publish(r#"{"room":"news","data":"other","idempotencyKey":"order-17"}"#)
        .await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (422, Some("key_reused")),
        "{other}"
    );
    let (status, fresh) = f
        .publish(r#"{"room":"news","data":"hi","idempotencyKey":"order-18"}"#)
        .await;
    assert_eq!((status, fresh["offset"].as_u64()), (200, Some(2)));
}

#[tokio::test]
async fn a_key_is_forgotten_after_a_day() {
    let f = Fixture::new();
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    let start = SystemTime::now();
    let (_, first) = f.publish_at(body, start).await;
    let a_day_later =
        start + Duration::from_secs(u64::try_from(IdempotencyKey::KEPT_SECONDS).unwrap() + 1);
    let (status, second) = f.publish_at(body, a_day_later).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["id"], second["id"]);
    assert_eq!(f.jobs().len(), 2);
}

#[tokio::test]
async fn a_key_another_publish_holds_answers_in_progress_until_its_lease_ends() {
    let f = Fixture::new();
    let key = IdempotencyKey::parse("k").unwrap();
    let now = now_ms();
    let lease = now + millis(PublishConfig::LEASE);
    // Another publish claimed the key and has not placed its message yet.
    assert!(matches!(
        f.keys
            .claim(&key, "another", now, lease, now / 1000 + 60)
            .await
            .unwrap(),
        KeyState::Claimed
    ));
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    let handler = Publish {
        queue: &f.queue,
        history: &f.history,
        keys: &f.keys,
        config: &f.config,
        metrics: &f.outcomes,
    };
    let mut request = ApiGatewayV2httpRequest::default();
    request.body = Some(body.to_owned());
    let response = handler.handle(request, SystemTime::now()).await;
    assert_eq!(response.status_code, 409);
    let wait: u64 = response.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((30..=35).contains(&wait), "{wait}");
    assert!(f.jobs().is_empty());

    // That publish died: past its lease the key is free, and this one publishes.
    let later = SystemTime::now() + PublishConfig::LEASE + Duration::from_secs(1);
    let (status, answer) = f.publish_at(body, later).await;
    assert_eq!(
        (status, answer["offset"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(f.jobs().len(), 1);
}

#[tokio::test]
async fn a_queue_that_refused_frees_the_key_and_takes_the_message_back_out_of_history() {
    let f = Fixture::with_queue(Flaky::new(vec![QueueError::Full("full".into())]));
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    let (status, answer) = f.publish(body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(
        f.kept("news").await.is_empty(),
        "no one recovers a refused message"
    );
    let (status, answer) = f.publish(body).await;
    assert_eq!(
        (status, answer["offset"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    assert_eq!(f.jobs().len(), 1);
}

#[tokio::test]
async fn after_a_lost_queue_answer_the_same_key_enqueues_the_same_job_again() {
    let f = Fixture::with_queue(Flaky::new(vec![QueueError::Unavailable("timeout".into())]));
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    let (status, _) = f.publish(body).await;
    assert_eq!(status, 503);
    assert_eq!(f.queue.landed_anyway.load(Ordering::SeqCst), 1);
    // The try after it enqueues the same job at once: same id and offset, which members drop
    // as a duplicate; nothing new takes an offset.
    let (status, answer) = f.publish(body).await;
    assert_eq!(
        (status, answer["offset"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let jobs = f.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0].id.as_str(), jobs[0].offset),
        (jobs[1].id.as_str(), jobs[1].offset)
    );
    assert_eq!(jobs[0].id, answer["id"].as_str().unwrap());
    assert_eq!(f.kept("news").await, vec![1]);
    // And from then on the key answers without enqueuing.
    assert_eq!(f.publish(body).await.1, answer);
    assert!(f.jobs().is_empty());
}

#[tokio::test]
async fn publishes_at_once_with_one_key_publish_one_message() {
    let f = std::sync::Arc::new(Fixture::new());
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    let tries = futures::future::join_all((0..16).map(|_| f.publish(body))).await;
    let accepted: Vec<_> = tries.iter().filter(|(status, _)| *status == 200).collect();
    assert!(!accepted.is_empty());
    for (status, answer) in &tries {
        assert!(
            *status == 200 && answer["offset"].as_u64() == Some(1)
                || *status == 409 && answer["error"]["code"] == "in_progress",
            "{status} {answer}"
        );
    }
    assert_eq!(f.jobs().len(), 1);
    assert_eq!(f.kept("news").await, vec![1]);
}

#[tokio::test]
async fn a_refused_enqueue_again_keeps_the_key_and_the_entry_of_the_job_that_may_have_landed() {
    let f = Fixture::with_queue(Flaky::new(vec![
        QueueError::Unavailable("timeout".into()),
        QueueError::Full("full".into()),
    ]));
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    assert_eq!(f.publish(body).await.0, 503);
    // The first job is on the queue; enqueuing it again is refused: the key and the history
    // entry stay, for the job that landed.
    assert_eq!(f.publish(body).await.0, 503);
    assert_eq!(f.kept("news").await, vec![1]);
    let (status, answer) = f.publish(body).await;
    assert_eq!(
        (status, answer["offset"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let ids: std::collections::BTreeSet<String> = f.jobs().into_iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 1, "one message under one key");
}

#[tokio::test]
async fn tries_at_once_after_a_lost_queue_answer_enqueue_the_job_once_more_not_once_each() {
    let f = std::sync::Arc::new(Fixture::with_queue(Flaky::new(vec![
        QueueError::Unavailable("timeout".into()),
    ])));
    let body = r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#;
    assert_eq!(f.publish(body).await.0, 503);
    let tries = futures::future::join_all((0..8).map(|_| f.publish(body))).await;
    for (status, answer) in &tries {
        assert!(
            *status == 200 && answer["offset"].as_u64() == Some(1) || *status == 409,
            "{status} {answer}"
        );
    }
    assert_eq!(f.jobs().len(), 2, "the first and one more");
}

/// A history whose appends land and then answer an error (a timeout, a lost answer).
struct LostAppends(MemoryHistory);

#[async_trait]
impl History for LostAppends {
    async fn next_position(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<crate::domain::Position, StoreError> {
        self.0.next_position(room, now, keep_until).await
    }
    async fn position(
        &self,
        room: &RoomName,
        now: i64,
    ) -> Result<Option<crate::domain::Position>, StoreError> {
        self.0.position(room, now).await
    }
    async fn append(
        &self,
        room: &RoomName,
        entry: &crate::domain::HistoryEntry,
    ) -> Result<(), StoreError> {
        self.0.append(room, entry).await?;
        Err(StoreError::Unavailable("no answer in time".into()))
    }
    async fn remove(&self, room: &RoomName, offset: u64) -> Result<(), StoreError> {
        self.0.remove(room, offset).await
    }
    async fn read(
        &self,
        room: &RoomName,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<crate::domain::HistoryEntry>, StoreError> {
        self.0.read(room, epoch, range, limit, now_ms).await
    }
}

#[tokio::test]
async fn a_history_write_that_landed_but_failed_is_taken_back_out() {
    let f = Fixture::new();
    let history = LostAppends(MemoryHistory::new(10));
    let handler = Publish {
        queue: &f.queue,
        history: &history,
        keys: &f.keys,
        config: &f.config,
        metrics: &f.outcomes,
    };
    let mut request = ApiGatewayV2httpRequest::default();
    request.body = Some(r#"{"room":"news","data":"hi","idempotencyKey":"k"}"#.into());
    let response = handler.handle(request, SystemTime::now()).await;
    assert_eq!(response.status_code, 503);
    assert_eq!(history.0.kept(&RoomName::parse("news").unwrap()), 0);
    assert!(f.jobs().is_empty());
}
