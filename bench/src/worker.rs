//! The worker side: the real engine (or the naive fan-out) in its own process, against the
//! synthetic store and the simulated endpoint, reporting what it did and what it cost.

use crate::clock::epoch_us;
use crate::jobs::{BoardClient, BoardProgress, Take};
use crate::proc_stats;
use crate::store::SyntheticStore;
use fanout::adapters::aws::static_sdk_config;
use fanout::adapters::management::{ManagementGateway, SdkManagementGateway};
use fanout::adapters::memory::{MemoryProgress, MemoryQueue};
use fanout::domain::{DeliveryMode, Job, RoomName, now_epoch_millis};
use fanout::engine::{BatchItem, Engine, EngineConfig, FanoutStats};
use fanout::ports::{ConnectionGateway, ConnectionStore, PostError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The engine: paged, bounded, retried, paced.
    Ours,
    /// The seed tutorial: one page, every post at once, no retries.
    Naive,
}

/// How the worker posts: the product's signed path, or the SDK's client it replaced (the
/// baseline of the comparison in docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PostPath {
    /// `fanout::adapters::management::ManagementGateway`: aws-sigv4 over one hyper pool.
    Signed,
    /// `SdkManagementGateway`: the SDK's PostToConnection, what every run before it used.
    Sdk,
}

impl PostPath {
    /// Results recorded before the choice existed ran on the SDK's client.
    pub fn recorded_default() -> Self {
        PostPath::Sdk
    }
}

impl std::fmt::Display for PostPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PostPath::Signed => "signed",
            PostPath::Sdk => "sdk",
        })
    }
}

/// Whether a room's messages are fanned out in the order they were sent (`--ordering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// A standard queue: a room's messages run side by side, a big room split over workers.
    #[default]
    None,
    /// SQS FIFO, the room as message group (Terraform's `ordering = "per_room"`): one message
    /// of a room at a time, never split.
    #[value(name = "per_room", alias = "per-room")]
    PerRoom,
}

impl std::fmt::Display for Ordering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ordering::None => "none",
            Ordering::PerRoom => "per_room",
        })
    }
}

/// Workers sharing one job board (see `jobs`): the room is split into as many parts (unless
/// the board keeps order).
#[derive(Debug, Clone, Copy)]
pub struct Shared {
    /// The endpoint's plain port, where the board is.
    pub board_port: u16,
    pub room_split_ways: u32,
    pub account_post_rate: u32,
    pub ordering: Ordering,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Ours => "ours",
            Strategy::Naive => "naive",
        })
    }
}

/// The worker process's tokio runtime. The worker Lambda runs on the current-thread runtime
/// (`functions/src/bin/worker.rs`); multi-thread stays the default here, as the recorded sweeps
/// ran on it (the conservative figure, see docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// `#[tokio::main]`'s default, which the worker Lambda ran on before it moved to one thread.
    #[default]
    MultiThread,
    /// One thread, as the worker Lambda runs (`#[tokio::main(flavor = "current_thread")]`).
    CurrentThread,
}

impl Runtime {
    /// A builder for this runtime.
    pub fn builder(self) -> tokio::runtime::Builder {
        match self {
            Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
            Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::MultiThread => "multi-thread",
            Runtime::CurrentThread => "current-thread",
        })
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub strategy: Strategy,
    pub port: u16,
    pub members: u64,
    pub concurrency: usize,
    pub page_size: usize,
    pub page_latency: Duration,
    pub payload_bytes: usize,
    /// How long each progress-record write takes.
    pub progress_latency: Duration,
    /// HTTPS to `localhost` (the certificate's name), trusted through `SSL_CERT_FILE` only.
    pub tls: bool,
    pub post_path: PostPath,
    /// Each batch's time (a Lambda's timeout).
    pub invocation: Duration,
    /// Jobs from a board shared with other workers, rather than one room job of its own.
    pub shared: Option<Shared>,
}

/// What the worker process prints (one JSON line) when it is done. Its first five counts are the
/// engine's [`FanoutStats`] summed over the batches (`failed` adds `failed_jobs`), kept as fields
/// of their own: `FanoutStats` is not `Serialize`, and the results files have this shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerReport {
    pub delivered: u64,
    pub stale: u64,
    pub failed: u64,
    pub retried: u64,
    pub continuations: u64,
    /// Jobs that kept their message to go on at its next receive (per-room order).
    pub held: u64,
    pub pages: u64,
    /// Batches run: the first job, then whatever it handed back to the queue.
    pub rounds: u32,
    pub store_deletes: u64,
    pub foreign_deletes: u64,
    pub started_us: u64,
    pub finished_us: u64,
    pub elapsed_s: f64,
    /// CPU seconds of the fan-out itself (set-up excluded), and its user and system parts.
    pub cpu_s: f64,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    pub peak_rss_kib: u64,
    /// RSS once the SDK client is built, before the fan-out.
    pub baseline_rss_kib: u64,
    pub frame_bytes: usize,
}

impl WorkerReport {
    /// Several workers' reports as one: counts and CPU added, from the first start to the last
    /// finish, the largest peak of one process.
    pub fn sum(reports: Vec<WorkerReport>) -> WorkerReport {
        let mut reports = reports.into_iter();
        let Some(mut total) = reports.next() else {
            return WorkerReport::default();
        };
        for r in reports {
            total.delivered += r.delivered;
            total.stale += r.stale;
            total.failed += r.failed;
            total.retried += r.retried;
            total.continuations += r.continuations;
            total.held += r.held;
            total.pages += r.pages;
            total.rounds += r.rounds;
            total.store_deletes += r.store_deletes;
            total.foreign_deletes += r.foreign_deletes;
            total.started_us = total.started_us.min(r.started_us);
            total.finished_us = total.finished_us.max(r.finished_us);
            total.cpu_s += r.cpu_s;
            total.cpu_user_s += r.cpu_user_s;
            total.cpu_system_s += r.cpu_system_s;
            total.peak_rss_kib = total.peak_rss_kib.max(r.peak_rss_kib);
            total.baseline_rss_kib = total.baseline_rss_kib.max(r.baseline_rss_kib);
        }
        total.elapsed_s = total.finished_us.saturating_sub(total.started_us) as f64 / 1e6;
        total
    }
}

pub const ROOM: &str = "bench";
/// The benchmark's message ids: this and the message's number, from 1.
pub const MESSAGE_ID_PREFIX: &str = "bench-message-";
pub const STAGE: &str = "bench";

pub async fn run(config: WorkerConfig) -> WorkerReport {
    let room = RoomName::parse(ROOM).expect("valid room");
    let store = Arc::new(SyntheticStore::new(
        room.clone(),
        config.members,
        config.page_size,
        config.page_latency,
    ));
    // Signed with dummy credentials: the endpoint does not check signatures but counts unsigned
    // calls. The gateway takes the endpoint with each call.
    let sdk = static_sdk_config(None).await;
    let gateway: Arc<dyn ConnectionGateway> = match config.post_path {
        PostPath::Signed => {
            Arc::new(ManagementGateway::new(&sdk).expect("the system has root certificates"))
        }
        PostPath::Sdk => Arc::new(SdkManagementGateway::new(&sdk)),
    };
    let endpoint = if config.tls {
        format!("https://localhost:{}/{STAGE}", config.port)
    } else {
        format!("http://127.0.0.1:{}/{STAGE}", config.port)
    };
    let body = first_job(config.payload_bytes);
    let job = Job::parse(&body).expect("the benchmark's job is valid");
    let frame_bytes = job.render(DeliveryMode::Envelope).len();

    let baseline_rss_kib = proc_stats::rss_kib().unwrap_or(0);
    let cpu_before = proc_stats::cpu_seconds().unwrap_or(0.0);
    let (user_before, system_before) = proc_stats::cpu_user_system_seconds().unwrap_or_default();
    let started_us = epoch_us();
    let start = Instant::now();
    let (counts, rounds) = match (config.strategy, config.shared) {
        (Strategy::Ours, Some(shared)) => {
            on_board(&config, shared, store.clone(), gateway, endpoint).await
        }
        (Strategy::Ours, None) => ours(&config, store.clone(), gateway, endpoint, body).await,
        (Strategy::Naive, _) => naive(store.clone(), gateway, &endpoint, &job, &room).await,
    };
    let mut report = WorkerReport {
        delivered: counts.delivered,
        stale: counts.stale,
        failed: counts.failed + counts.failed_jobs,
        retried: counts.retried,
        continuations: counts.continuations,
        held: counts.held,
        rounds,
        ..WorkerReport::default()
    };
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.finished_us = epoch_us();
    report.started_us = started_us;
    report.cpu_s = proc_stats::cpu_seconds().unwrap_or(0.0) - cpu_before;
    let (user, system) = proc_stats::cpu_user_system_seconds().unwrap_or_default();
    report.cpu_user_s = user - user_before;
    report.cpu_system_s = system - system_before;
    report.peak_rss_kib = proc_stats::peak_rss_kib().unwrap_or(0);
    report.baseline_rss_kib = baseline_rss_kib;
    report.store_deletes = store.deleted();
    report.foreign_deletes = store.foreign_deletes();
    report.pages = store.pages();
    report.frame_bytes = frame_bytes;
    report
}

/// The room's message, as sendmessage enqueues it, with `data` of about `payload_bytes`.
pub fn first_job(payload_bytes: usize) -> String {
    message_job(payload_bytes, 1)
}

/// The room's message number `k` (from 1): `first_job` with the id `bench-message-k`, which
/// the endpoint reads back from the frame to check each member's order.
pub fn message_job(payload_bytes: usize, k: u32) -> String {
    let payload = serde_json::json!({
        "text": "x".repeat(payload_bytes.saturating_sub(12)),
    });
    serde_json::json!({
        "v": 1,
        "id": format!("{MESSAGE_ID_PREFIX}{k}"),
        "target": {"room": ROOM},
        "payload": payload,
        "sender": "bench-sender",
        "sentAt": now_epoch_millis(),
    })
    .to_string()
}

/// One of the workers sharing the board: a message at a time (a batch of one), as worker
/// Lambdas take them from SQS, until the board says the fan-out is over. Each message is
/// reported done, or back after the delay the engine asked for (a record it reported failed:
/// on a queue that keeps order, a held job or one behind it).
async fn on_board(
    config: &WorkerConfig,
    shared: Shared,
    store: Arc<SyntheticStore>,
    gateway: Arc<dyn ConnectionGateway>,
    endpoint: String,
) -> (FanoutStats, u32) {
    let ordered = shared.ordering == Ordering::PerRoom;
    let board = Arc::new(BoardClient::new(shared.board_port, ordered));
    let engine = Engine::new(
        store,
        gateway,
        board.clone(),
        // Shared with the other workers: a held job goes on from its record whoever takes it.
        Arc::new(BoardProgress::new(
            shared.board_port,
            config.progress_latency,
        )),
        EngineConfig {
            concurrency: config.concurrency,
            room_split_ways: shared.room_split_ways,
            account_post_rate: shared.account_post_rate,
            ..EngineConfig::default()
        },
        &endpoint,
    );
    let (mut counts, mut rounds) = (FanoutStats::default(), 0);
    loop {
        match board.take().await {
            Ok(Take::Job(taken)) => {
                rounds += 1;
                let group = ordered
                    .then(|| Job::parse(&taken.body).ok().map(|job| job.order_group()))
                    .flatten();
                let item = BatchItem {
                    message_id: taken.id.clone(),
                    body: taken.body,
                    receipt_handle: Some(taken.id.clone()),
                    receive_count: taken.receives,
                    group,
                };
                let deadline = Instant::now() + config.invocation;
                let report = engine.run_batch(vec![item], deadline).await;
                counts += report.stats;
                let failed = report.failed_message_ids.contains(&taken.id);
                // The board must hear it, or the run never ends (the orchestrator's timeout
                // would): a few tries over loopback.
                for _ in 0..50 {
                    let told = if failed {
                        board.back(&taken.id).await
                    } else {
                        board.done(&taken.id).await
                    };
                    if told.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok(Take::Done) => return (counts, rounds),
            // Idle polls cost this worker's CPU (a connection each): 100 a second is little.
            Ok(Take::Wait) | Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The engine, as the worker Lambda runs it: one SQS batch with the job, then (as SQS would
/// deliver them) the batches of whatever it handed back, until nothing is left. Returns the
/// batches' counts and how many batches ran.
async fn ours(
    config: &WorkerConfig,
    store: Arc<SyntheticStore>,
    gateway: Arc<dyn ConnectionGateway>,
    endpoint: String,
    body: String,
) -> (FanoutStats, u32) {
    let queue = Arc::new(MemoryQueue::new());
    // Each write takes as long as DynamoDB's would: checkpointing costs what it would.
    let progress = Arc::new(MemoryProgress::with_latency(config.progress_latency));
    let engine = Engine::new(
        store,
        gateway,
        queue.clone(),
        progress,
        EngineConfig {
            concurrency: config.concurrency,
            ..EngineConfig::default()
        },
        &endpoint,
    );
    let (mut counts, mut rounds) = (FanoutStats::default(), 0);
    let mut items = vec![BatchItem {
        message_id: "bench-1".into(),
        body,
        ..BatchItem::default()
    }];
    // By default far enough that the deadline never interferes: this measures throughput.
    while !items.is_empty() && rounds < 20 {
        rounds += 1;
        let deadline = Instant::now() + config.invocation;
        counts += engine.run_batch(items, deadline).await.stats;
        items = queue
            .drain()
            .into_iter()
            .enumerate()
            .map(|(i, job)| BatchItem {
                message_id: format!("bench-{}-{i}", rounds + 1),
                body: job.to_json(),
                ..BatchItem::default()
            })
            .collect();
    }
    (counts, rounds)
}

/// The seed tutorial's fan-out: read one page, post to all of it at once, no retries; a 410
/// deletes the connection (the seed did that much), any other error is swallowed. One round.
async fn naive(
    store: Arc<SyntheticStore>,
    gateway: Arc<dyn ConnectionGateway>,
    endpoint: &str,
    job: &Job,
    room: &RoomName,
) -> (FanoutStats, u32) {
    let mut counts = FanoutStats::default();
    let page = match store.room_page(room, None, None).await {
        Ok(page) => page,
        Err(_) => return (counts, 1),
    };
    let frame = job.render(DeliveryMode::Envelope);
    let posts = page.ids.iter().map(|id| {
        let (gateway, frame) = (&gateway, frame.clone());
        async move { (id, gateway.post(endpoint, id, frame).await) }
    });
    for (id, result) in futures::future::join_all(posts).await {
        match result {
            Ok(()) => counts.delivered += 1,
            Err(PostError::Gone) => {
                let _ = store.delete(id).await;
                counts.stale += 1;
            }
            Err(_) => counts.failed += 1,
        }
    }
    (counts, 1)
}
