//! Engine behaviour on the in-memory adapters, with tokio's paused clock so that latencies,
//! backoffs and deadlines are exact and instant.

use super::*;
use crate::adapters::memory::{GatewayBehaviour, MemoryGateway, MemoryQueue, MemoryStore};
use crate::domain::{Connection, RoomName};
use crate::ports::PostError;
use async_trait::async_trait;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const ENDPOINT: &str = "https://example.execute-api.eu-west-1.amazonaws.com/test";
const LATENCY: Duration = Duration::from_millis(10);

struct Fixture {
    store: Arc<MemoryStore>,
    gateway: Arc<MemoryGateway>,
    queue: Arc<MemoryQueue>,
    engine: Engine,
}

fn fixture(page_size: usize, config: EngineConfig) -> Fixture {
    let store = Arc::new(MemoryStore::with_page_size(page_size));
    let gateway = Arc::new(MemoryGateway::with_latency(LATENCY));
    let queue = Arc::new(MemoryQueue::new());
    let engine = Engine::new(store.clone(), gateway.clone(), queue.clone(), config);
    Fixture {
        store,
        gateway,
        queue,
        engine,
    }
}

fn config(concurrency: usize) -> EngineConfig {
    EngineConfig {
        concurrency,
        management_endpoint: Some(ENDPOINT.into()),
        ..EngineConfig::default()
    }
}

impl Fixture {
    /// Members `{room}-{i:04}` for i in 0..count.
    async fn join(&self, room: &str, count: usize) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for i in 0..count {
            let id = format!("{room}-{i:04}");
            self.store
                .put(&Connection {
                    connection_id: id.clone(),
                    room: RoomName::parse(room).unwrap(),
                    connected_at: 0,
                    expires_at: 0,
                    principal: None,
                })
                .await
                .unwrap();
            ids.insert(id);
        }
        ids
    }

    async fn run(&self, bodies: &[String]) -> BatchReport {
        self.run_until(bodies, Instant::now() + Duration::from_secs(60))
            .await
    }

    async fn run_until(&self, bodies: &[String], deadline: Instant) -> BatchReport {
        let items = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| BatchItem {
                message_id: format!("sqs-{i}"),
                body: body.clone(),
            })
            .collect();
        self.engine.run_batch(items, deadline).await
    }

    /// How many frames each connection received.
    fn received(&self) -> HashMap<String, usize> {
        self.gateway
            .deliveries()
            .into_iter()
            .map(|(id, frames)| (id, frames.len()))
            .collect()
    }

    fn received_ids(&self) -> BTreeSet<String> {
        self.received().into_keys().collect()
    }

    /// Runs whatever the engine put back on the queue until it is empty.
    async fn drain_queue(&self) -> FanoutStats {
        let mut stats = FanoutStats::default();
        loop {
            let jobs: Vec<String> = self.queue.drain().iter().map(Job::to_json).collect();
            if jobs.is_empty() {
                return stats;
            }
            let report = self.run(&jobs).await;
            assert!(report.failed_message_ids.is_empty());
            stats += report.stats;
        }
    }
}

fn job(id: &str, target: serde_json::Value) -> String {
    json!({"v":1,"id":id,"target":target,"payload":{"text":"hi"},"sender":"room-a-0000","sentAt":1})
        .to_string()
}

fn assert_exactly_once(fixture: &Fixture, expected: &BTreeSet<String>) {
    let received = fixture.received();
    let duplicates: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "received more than once: {duplicates:?}"
    );
    let got: BTreeSet<String> = received.into_keys().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert!(extra.is_empty(), "received but not targeted: {extra:?}");
}

#[tokio::test(start_paused = true)]
async fn a_room_over_many_pages_gets_the_message_exactly_once_within_the_limit() {
    let f = fixture(50, config(16));
    let members = f.join("room-a", 275).await;
    f.join("room-b", 40).await;

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert!(report.failed_message_ids.is_empty());
    assert_eq!(report.stats.pages, 6, "275 members at 50 a page");
    assert_eq!(report.stats.delivered, 275);
    assert_exactly_once(&f, &members);
    assert_eq!(
        f.gateway.max_in_flight(),
        16,
        "the limit is reached and never exceeded"
    );
    assert!(f.queue.is_empty(), "nothing left over");
    let frame: serde_json::Value =
        serde_json::from_slice(&f.gateway.delivered_to("room-a-0000")[0]).unwrap();
    assert_eq!(
        frame,
        json!({"type":"message","id":"m1","room":"room-a","from":"room-a-0000","sentAt":1,"data":{"text":"hi"}})
    );
}

#[tokio::test(start_paused = true)]
async fn posts_carry_on_across_page_boundaries_without_draining() {
    // 10 pages of 10 at 4 in flight and 10 ms a post: draining at each page boundary would take
    // 10 x ceil(10 / 4) x 10 ms = 300 ms; a pipeline that keeps 4 in flight takes 25 x 10 ms.
    let f = fixture(10, config(4));
    let members = f.join("room-a", 100).await;

    let start = Instant::now();
    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert_eq!(report.stats.delivered, 100);
    assert_eq!(report.stats.pages, 10);
    assert_exactly_once(&f, &members);
    assert_eq!(f.gateway.max_in_flight(), 4);
    assert!(
        start.elapsed() <= Duration::from_millis(260),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_limit_holds_across_every_job_of_a_batch() {
    let f = fixture(20, config(8));
    let mut everyone = f.join("r1", 100).await;
    everyone.extend(f.join("r2", 100).await);
    everyone.extend(f.join("r3", 100).await);

    let report = f
        .run(&[
            job("a", json!({"room":"r1"})),
            job("b", json!({"room":"r2"})),
            job("c", json!({"room":"r3"})),
        ])
        .await;

    assert_eq!(report.stats.delivered, 300);
    assert_exactly_once(&f, &everyone);
    assert_eq!(f.gateway.max_in_flight(), 8);
}

#[tokio::test(start_paused = true)]
async fn gone_connections_are_deleted_and_no_one_else() {
    let f = fixture(10, config(4));
    let members = f.join("room-a", 30).await;
    let gone = ["room-a-0003", "room-a-0017", "room-a-0029"];
    for id in gone {
        f.gateway.mark_gone(id);
    }

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert_eq!(report.stats.stale, 3);
    assert_eq!(report.stats.delivered, 27);
    for id in &members {
        assert_eq!(f.store.contains(id), !gone.contains(&id.as_str()), "{id}");
    }
    assert!(f.store.contains("room-a-0000"), "the sender stays");
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_throttles_is_retried_and_nothing_is_lost() {
    let f = fixture(25, config(10));
    let members = f.join("room-a", 200).await;
    f.gateway
        .set_behaviour(GatewayBehaviour { throttle_next: 60 });

    let first = f.run(&[job("m1", json!({"room":"room-a"}))]).await;
    // Posts still throttled after their last retry come back as a retry job.
    let rest = f.drain_queue().await;

    assert_eq!(first.stats.delivered + rest.delivered, 200);
    assert_eq!(
        f.gateway.calls(),
        260,
        "each 429 was followed by exactly one more post"
    );
    assert!(first.stats.retried > 0);
    assert_eq!(first.stats.failed + rest.failed, 0);
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_mid_room_hands_exactly_the_rest_to_a_continuation() {
    let f = fixture(10, config(4));
    let members = f.join("room-a", 100).await;
    // A page of 10 at 4 in flight and 10 ms a post takes 30 ms: stop during the third page.
    let margin = f.engine.config().deadline_margin;
    let deadline = Instant::now() + margin + Duration::from_millis(75);

    let report = f
        .run_until(&[job("m1", json!({"room":"room-a"}))], deadline)
        .await;

    let first_run = f.received_ids();
    assert!(report.failed_message_ids.is_empty());
    assert!(
        !first_run.is_empty() && first_run.len() < 100,
        "{} delivered",
        first_run.len()
    );
    assert_eq!(report.stats.delivered as usize, first_run.len());
    let handed_off = f.queue.drain();
    assert!(
        handed_off.iter().any(|job| job.cursor.is_some()),
        "a continuation with a cursor"
    );

    // Running what was handed off covers exactly the members not yet reached.
    f.gateway.clear_deliveries();
    let rest: Vec<String> = handed_off.iter().map(Job::to_json).collect();
    let report = f.run(&rest).await;
    assert!(report.failed_message_ids.is_empty());
    let second_run = f.received_ids();
    assert!(first_run.is_disjoint(&second_run), "no one gets it twice");
    let mut everyone = first_run;
    everyone.extend(second_run);
    assert_eq!(everyone, members);
    assert!(f.received().values().all(|n| *n == 1));
    assert!(f.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_malformed_job_is_reported_and_the_rest_of_the_batch_is_delivered() {
    let f = fixture(10, config(4));
    let members = f.join("room-a", 30).await;
    let bodies = [
        "not json".to_owned(),
        job("good", json!({"room":"room-a"})),
        json!({"v":9,"id":"x","target":{"all":true},"payload":1,"sentAt":1}).to_string(),
        json!({"v":1,"id":"x","target":{"room":"no spaces"},"payload":1,"sentAt":1}).to_string(),
    ];

    let report = f.run(&bodies).await;

    assert_eq!(report.failed_message_ids, vec!["sqs-0", "sqs-2", "sqs-3"]);
    assert_eq!(report.stats.failed_jobs, 3);
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn an_all_job_reaches_every_connection_in_every_room() {
    let f = fixture(7, config(5));
    let mut everyone = f.join("r1", 20).await;
    everyone.extend(f.join("r2", 13).await);
    everyone.extend(f.join("r3", 1).await);

    let report = f.run(&[job("m1", json!({"all":true}))]).await;

    assert_eq!(report.stats.delivered, 34);
    assert_exactly_once(&f, &everyone);
    let frame: serde_json::Value =
        serde_json::from_slice(&f.gateway.delivered_to("r3-0000")[0]).unwrap();
    assert!(frame.get("room").is_none(), "a broadcast names no room");
}

#[tokio::test(start_paused = true)]
async fn an_all_job_split_into_segments_reaches_everyone_once() {
    let f = fixture(
        5,
        EngineConfig {
            scan_segments: 4,
            ..config(5)
        },
    );
    let mut everyone = f.join("r1", 40).await;
    everyone.extend(f.join("r2", 23).await);

    let report = f.run(&[job("m1", json!({"all":true}))]).await;
    assert_eq!(report.stats.continuations, 4);
    assert_eq!(f.queue.len(), 4);
    f.drain_queue().await;

    assert_exactly_once(&f, &everyone);
}

#[tokio::test(start_paused = true)]
async fn a_connections_job_reaches_exactly_those_ids() {
    let f = fixture(10, config(4));
    f.join("room-a", 30).await;
    let chosen: BTreeSet<String> = ["room-a-0001", "room-a-0013", "room-a-0025"]
        .into_iter()
        .map(String::from)
        .collect();

    let report = f
        .run(&[job(
            "m1",
            json!({"connections": chosen.iter().collect::<Vec<_>>(), "room":"room-a"}),
        )])
        .await;

    assert_eq!(report.stats.delivered, 3);
    assert_exactly_once(&f, &chosen);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_past_retries_come_back_as_a_later_attempt() {
    let f = fixture(
        10,
        EngineConfig {
            max_post_attempts: 2,
            ..config(4)
        },
    );
    let members = f.join("room-a", 10).await;
    f.gateway.script(
        "room-a-0004",
        [PostError::Server(500), PostError::Server(503)],
    );
    f.gateway
        .script("room-a-0007", vec![PostError::Transport("reset".into()); 2]);

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;
    assert_eq!(report.stats.delivered, 8);
    assert_eq!(report.stats.retried, 2);
    let retry = f.queue.drain();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt, 1);
    let Target::Connections { ids, room } = &retry[0].target else {
        panic!("{retry:?}")
    };
    let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ids, BTreeSet::from(["room-a-0004", "room-a-0007"]));
    assert_eq!(room.as_ref().map(RoomName::as_str), Some("room-a"));

    f.run(&[retry[0].to_json()]).await;
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_keeps_failing_is_given_up_after_the_job_attempts() {
    let f = fixture(
        10,
        EngineConfig {
            max_post_attempts: 1,
            max_job_attempts: 2,
            ..config(4)
        },
    );
    f.join("room-a", 3).await;
    f.gateway
        .script("room-a-0001", vec![PostError::Server(500); 10]);

    let first = f.run(&[job("m1", json!({"room":"room-a"}))]).await;
    let rest = f.drain_queue().await;

    assert_eq!(first.stats.delivered + rest.delivered, 2);
    assert_eq!(rest.failed, 1, "given up after two re-enqueued attempts");
    assert_eq!(first.stats.continuations + rest.continuations, 2);
}

#[tokio::test(start_paused = true)]
async fn other_client_errors_are_failed_without_retry() {
    let f = fixture(10, config(4));
    f.join("room-a", 3).await;
    f.gateway.script(
        "room-a-0002",
        [PostError::Rejected {
            status: 403,
            reason: "Forbidden".into(),
        }],
    );

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert_eq!(
        (
            report.stats.delivered,
            report.stats.failed,
            report.stats.retried
        ),
        (2, 1, 0)
    );
    assert!(f.queue.is_empty());
    assert!(
        f.store.contains("room-a-0002"),
        "a 403 is not a reason to delete"
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_that_hangs_times_out_and_is_retried() {
    /// Never answers the first post to one connection.
    struct HangsOnce {
        inner: MemoryGateway,
        hung: std::sync::atomic::AtomicBool,
    }
    #[async_trait]
    impl ConnectionGateway for HangsOnce {
        async fn post(&self, endpoint: &str, id: &str, frame: Bytes) -> Result<(), PostError> {
            if id == "room-a-0001" && !self.hung.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.inner.post(endpoint, id, frame).await
        }
    }
    let store = Arc::new(MemoryStore::with_page_size(10));
    let gateway = Arc::new(HangsOnce {
        inner: MemoryGateway::new(),
        hung: Default::default(),
    });
    let engine = Engine::new(
        store.clone(),
        gateway.clone(),
        Arc::new(MemoryQueue::new()),
        config(2),
    );
    let f = Fixture {
        store,
        gateway: Arc::new(MemoryGateway::new()),
        queue: Arc::new(MemoryQueue::new()),
        engine,
    };
    f.join("room-a", 3).await;

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert_eq!((report.stats.delivered, report.stats.retried), (3, 1));
    assert_eq!(gateway.inner.delivered_to("room-a-0001").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_first_reports_the_job_for_redelivery() {
    struct Down;
    #[async_trait]
    impl ConnectionStore for Down {
        async fn put(&self, _: &Connection) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn get(&self, _: &str) -> Result<Option<Connection>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn room_page(&self, _: &RoomName, _: Option<&str>) -> Result<Page, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn scan_page(&self, _: Segment, _: Option<&str>) -> Result<Page, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
    }
    let gateway = Arc::new(MemoryGateway::new());
    let engine = Engine::new(
        Arc::new(Down),
        gateway.clone(),
        Arc::new(MemoryQueue::new()),
        config(4),
    );
    let items = vec![BatchItem {
        message_id: "sqs-0".into(),
        body: job("m1", json!({"room":"a"})),
    }];

    let report = engine
        .run_batch(items, Instant::now() + Duration::from_secs(60))
        .await;

    assert_eq!(report.failed_message_ids, vec!["sqs-0"]);
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_job_without_an_endpoint_is_reported() {
    let f = fixture(
        10,
        EngineConfig {
            management_endpoint: None,
            ..config(4)
        },
    );
    f.join("room-a", 3).await;
    let mut with_endpoint = Job::parse(&job("m2", json!({"room":"room-a"}))).unwrap();
    with_endpoint.endpoint = Some(ENDPOINT.into());

    let report = f
        .run(&[job("m1", json!({"room":"room-a"})), with_endpoint.to_json()])
        .await;

    assert_eq!(report.failed_message_ids, vec!["sqs-0"]);
    assert_eq!(report.stats.delivered, 3);
}

#[test]
fn retry_jobs_are_split_to_fit_the_queue() {
    let template = Job::parse(&job("m1", json!({"connections":[]}))).unwrap();
    let ids: Vec<String> = (0..40_000)
        .map(|i| format!("connection-id-{i:08}"))
        .collect();
    let chunks = chunk_for_queue(&template, ids.clone());
    assert!(chunks.len() > 1);
    assert_eq!(chunks.concat(), ids);
    for chunk in chunks {
        let job = Job {
            target: Target::Connections {
                ids: chunk,
                room: None,
            },
            ..template.clone()
        };
        assert!(job.to_json().len() <= MAX_JOB_BYTES);
    }
}
