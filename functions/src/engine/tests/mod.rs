//! Engine behaviour on the in-memory adapters, with tokio's paused clock so that latencies,
//! backoffs and deadlines are exact and instant.

mod faults;
mod order;
mod properties;
mod review;
mod sim;
mod split;

use super::*;
use crate::adapters::memory::{
    GatewayBehaviour, MemoryGateway, MemoryProgress, MemoryQueue, MemoryStore,
};
use crate::domain::frame::MAX_FRAME_BYTES;
use crate::domain::job::MAX_JOB_BYTES;
use crate::domain::{Connection, Job, RoomName, Segment, Target};
use crate::ports::{ConnectionGateway, ConnectionStore, Page, PostError};
use async_trait::async_trait;
use bytes::Bytes;
use handoff::chunk_for_queue;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const ENDPOINT: &str = "https://example.execute-api.eu-west-1.amazonaws.com/test";
const LATENCY: Duration = Duration::from_millis(10);

struct Fixture {
    store: Arc<MemoryStore>,
    gateway: Arc<MemoryGateway>,
    queue: Arc<MemoryQueue>,
    progress: Arc<MemoryProgress>,
    engine: Engine,
}

fn fixture(page_size: usize, config: EngineConfig) -> Fixture {
    fixture_on(MemoryQueue::new(), page_size, config)
}

fn fixture_on(queue: MemoryQueue, page_size: usize, config: EngineConfig) -> Fixture {
    fixture_with(queue, MemoryProgress::new(), page_size, config)
}

fn fixture_with(
    queue: MemoryQueue,
    progress: MemoryProgress,
    page_size: usize,
    config: EngineConfig,
) -> Fixture {
    let store = Arc::new(MemoryStore::with_page_size(page_size));
    let gateway = Arc::new(MemoryGateway::with_latency(LATENCY));
    let queue = Arc::new(queue);
    let progress = Arc::new(progress);
    let engine = Engine::new(
        store.clone(),
        gateway.clone(),
        queue.clone(),
        progress.clone(),
        config,
        ENDPOINT,
    );
    Fixture {
        store,
        gateway,
        queue,
        progress,
        engine,
    }
}

fn config(concurrency: usize) -> EngineConfig {
    EngineConfig {
        concurrency,
        ..EngineConfig::default()
    }
}

impl Fixture {
    /// Members `{room}-{i:04}` for i in 0..count.
    async fn join(&self, room: &str, count: usize) -> BTreeSet<String> {
        self.join_ids(room, (0..count).map(|i| format!("{room}-{i:04}")))
            .await
    }

    /// These members in `room`, long connected.
    async fn join_ids(
        &self,
        room: &str,
        ids: impl IntoIterator<Item = String>,
    ) -> BTreeSet<String> {
        let mut joined = BTreeSet::new();
        for id in ids {
            self.store
                .put(&Connection::in_room(
                    id.clone(),
                    RoomName::parse(room).unwrap(),
                    0,
                    0,
                ))
                .await
                .unwrap();
            joined.insert(id);
        }
        joined
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
                ..BatchItem::default()
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

    /// Runs whatever the engine put back on the queue until it is empty, each job after the
    /// delay it was sent with.
    async fn drain_queue(&self) -> FanoutStats {
        let mut stats = FanoutStats::default();
        loop {
            let queued = self.queue.drain_with_delays();
            let Some(longest) = queued.iter().map(|(_, delay)| *delay).max() else {
                return stats;
            };
            tokio::time::sleep(longest).await;
            let jobs: Vec<String> = queued.iter().map(|(job, _)| job.to_json()).collect();
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

/// The jobs in the dead-letter queue, each given up on after 403s past the retry budget (its
/// reason says so).
fn parked_after_403s(fixture: &Fixture) -> Vec<Job> {
    let dead_letters = fixture.queue.dead_letters();
    for dead in &dead_letters {
        assert!(
            dead.reason.contains("retry budget") && dead.reason.contains("403"),
            "{}",
            dead.reason
        );
    }
    dead_letters
        .iter()
        .map(|dead| Job::parse(&dead.body).unwrap())
        .collect()
}

/// The connection ids of `connections` jobs, one after the other: an id in two jobs is there
/// twice.
fn ids_of(jobs: Vec<Job>) -> Vec<String> {
    jobs.into_iter()
        .flat_map(|job| match job.target {
            Target::Connections { ids, .. } => ids,
            other => panic!("not a connections job: {other:?}"),
        })
        .collect()
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
async fn a_malformed_job_is_dead_lettered_with_its_reason_and_the_rest_delivered() {
    let f = fixture(10, config(4));
    let members = f.join("room-a", 30).await;
    let bodies = [
        "not json".to_owned(),
        job("good", json!({"room":"room-a"})),
        json!({"v":9,"id":"x","target":{"all":true},"payload":1,"sentAt":1}).to_string(),
        json!({"v":1,"id":"x","target":{"room":"no spaces"},"payload":1,"sentAt":1}).to_string(),
    ];

    let report = f.run(&bodies).await;

    assert!(report.failed_message_ids.is_empty());
    assert_eq!(report.stats.dead_lettered, 3);
    let dead = f.queue.dead_letters();
    let bodies_parked: Vec<&str> = dead.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies_parked, vec![&bodies[0], &bodies[2], &bodies[3]]);
    assert!(
        dead[0].reason.contains("not valid JSON"),
        "{}",
        dead[0].reason
    );
    assert!(dead[1].reason.contains("version 9"), "{}", dead[1].reason);
    assert!(dead[2].reason.contains("room"), "{}", dead[2].reason);
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
async fn a_connection_that_keeps_failing_goes_to_the_dead_letter_queue_after_the_budget() {
    let f = fixture(
        10,
        EngineConfig {
            max_post_attempts: 1,
            retry_budget: Duration::from_secs(120),
            ..config(4)
        },
    );
    f.join("room-a", 3).await;
    f.gateway
        .script("room-a-0001", vec![PostError::Server(500); 1000]);

    let start = Instant::now();
    let first = f.run(&[job("m1", json!({"room":"room-a"}))]).await;
    let rest = f.drain_queue().await;

    assert_eq!(first.stats.delivered + rest.delivered, 2);
    assert_eq!(rest.abandoned, 1, "given up, not dropped");
    assert_eq!(rest.dead_lettered, 1);
    let dead = f.queue.dead_letters();
    assert_eq!(dead.len(), 1);
    let parked = Job::parse(&dead[0].body).unwrap();
    assert_eq!(
        parked.target,
        Target::Connections {
            ids: vec!["room-a-0001".into()],
            room: Some(RoomName::parse("room-a").unwrap())
        }
    );
    assert!(
        dead[0].reason.contains("retry budget"),
        "{}",
        dead[0].reason
    );
    // Retried for the budget, not for a handful of quick attempts.
    assert!(
        start.elapsed() >= Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(400),
        "{:?}",
        start.elapsed()
    );
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
        Arc::new(MemoryProgress::new()),
        config(2),
        ENDPOINT,
    );
    let f = Fixture {
        store,
        gateway: Arc::new(MemoryGateway::new()),
        queue: Arc::new(MemoryQueue::new()),
        progress: Arc::new(MemoryProgress::new()),
        engine,
    };
    f.join("room-a", 3).await;

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert_eq!((report.stats.delivered, report.stats.retried), (3, 1));
    assert_eq!(gateway.inner.delivered_to("room-a-0001").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_first_hands_the_job_back_later_as_a_new_attempt() {
    let (f, faults) = sim::faulty(10, config(4));
    f.join("room-a", 3).await;
    faults.set(|s| s.pages_fail_after = Some(0));

    let report = f.run(&[job("m1", json!({"room":"room-a"}))]).await;

    assert!(report.failed_message_ids.is_empty());
    assert_eq!(f.gateway.calls(), 0);
    let queued = f.queue.drain_with_delays();
    assert_eq!(queued.len(), 1);
    let (again, delay) = &queued[0];
    assert_eq!(
        (again.attempt, again.target.clone()),
        (1, Target::Room(RoomName::parse("room-a").unwrap()))
    );
    assert!(
        again.retry_since.is_some() && *delay >= Duration::from_millis(500),
        "{delay:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_naming_another_endpoint_is_dead_lettered_and_posts_nothing() {
    let f = fixture(10, config(4));
    let members = f.join("room-a", 3).await;
    let mut elsewhere = Job::parse(&job("m1", json!({"room":"room-a"}))).unwrap();
    elsewhere.endpoint = Some("https://attacker.example/prod".into());
    let mut own = Job::parse(&job("m2", json!({"room":"room-a"}))).unwrap();
    own.endpoint = Some(format!("{ENDPOINT}/"));

    let report = f.run(&[elsewhere.to_json(), own.to_json()]).await;

    assert!(report.failed_message_ids.is_empty());
    let dead = f.queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("attacker.example") && dead[0].reason.contains("not this worker's"),
        "{}",
        dead[0].reason
    );
    assert_eq!(Job::parse(&dead[0].body).unwrap().id, "m1");
    // Only m2, to its own endpoint (a trailing slash is the same endpoint).
    assert_exactly_once(&f, &members);
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
