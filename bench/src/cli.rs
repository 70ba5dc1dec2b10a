//! The command line: `run`, `sweep` and `plot` for people, `endpoint` and `worker` for the
//! processes `run` starts.

use crate::cgroup;
use crate::endpoint::EndpointConfig;
use crate::latency::Latency;
use crate::worker::{self, Ordering, PostPath, Runtime, Shared, Strategy, WorkerConfig};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fanout-bench",
    about = "Fan-out benchmark: the real worker engine over loopback HTTP against a simulated API Gateway management API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the given conditions (lists run every combination) and reports them.
    Run(Box<RunArgs>),
    /// Runs a recorded preset: the tables and plots of docs/benchmarks.md.
    Sweep(SweepArgs),
    /// Redraws the docs plots from the recorded results.
    Plot(PlotArgs),
    /// The simulated management API (started by `run`).
    #[command(hide = true)]
    Endpoint(EndpointArgs),
    /// One worker run (started by `run`); prints a JSON report.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args, Clone)]
pub struct Conditions {
    /// Per-call latency of the endpoint: `lognormal:MEDIAN[:P99]` (p99 defaults to 5 x the
    /// median), `fixed:20ms` or `none`.
    #[arg(long, default_value = "lognormal:20ms:100ms")]
    pub latency: Latency,
    /// Account throttle in requests per second (API Gateway's default is 10000); none if unset.
    #[arg(long)]
    pub throttle_rate: Option<f64>,
    /// Throttle burst (API Gateway's default is 5000); half the rate if unset.
    #[arg(long)]
    pub throttle_burst: Option<f64>,
    /// Fraction of members whose connection is gone (410).
    #[arg(long, default_value_t = 0.01)]
    pub gone_fraction: f64,
    /// Ids per store page; default: as many KEYS_ONLY index items as fit in 1 MB.
    #[arg(long)]
    pub page_limit: Option<usize>,
    /// How long each store page read takes.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub page_latency: Duration,
    /// Size of the message's `data`, in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// How long each write of a job's progress record takes (a DynamoDB UpdateItem).
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub progress_latency: Duration,
    /// The worker process's tokio runtime (the worker Lambda's is current-thread; multi-thread,
    /// the default, is what the recorded sweeps ran on).
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub worker_runtime: Runtime,
    /// HTTPS to the endpoint, with a self-signed certificate the worker trusts through
    /// `SSL_CERT_FILE` (the native root store, as in Lambda): the handshakes and encryption cost
    /// CPU on both sides.
    #[arg(long)]
    pub tls: bool,
}

impl Conditions {
    /// Rate and burst, if throttled.
    pub fn throttle(&self) -> Option<(f64, f64)> {
        throttle(self.throttle_rate, self.throttle_burst)
    }
}

/// A throttle's rate and burst; the burst is half the rate unless given.
fn throttle(rate: Option<f64>, burst: Option<f64>) -> Option<(f64, f64)> {
    rate.map(|rate| (rate, burst.unwrap_or(rate / 2.0)))
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyChoice {
    Ours,
    Naive,
    Both,
}

#[derive(Args)]
pub struct RunArgs {
    /// Members of the room (a comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    pub n: Vec<u64>,
    /// The engine's in-flight limit (a list runs each); default: the engine's default.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Lambda memory size in MB, 128 to 10240 (a list runs each, alternating): holds the worker
    /// process to M / 1,769 of one CPU, as Lambda does, with a cgroup v1 cpu quota (needs root
    /// and /sys/fs/cgroup/cpu); unlimited if unset.
    #[arg(long, value_delimiter = ',', value_parser = cgroup::parse_memory_mb)]
    pub memory_mb: Vec<u32>,
    /// How the worker posts: `signed` (the product's path) or `sdk` (the SDK's client it
    /// replaced); a list runs each, alternating, for a back-to-back comparison.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "signed")]
    pub post_path: Vec<PostPath>,
    /// Worker processes sharing one job board (a list runs each): above 1, the room is split
    /// into that many parts (`ROOM_SPLIT_WAYS`), each started at its share of the throttle
    /// rate (`ACCOUNT_POST_RATE`; 10,000 unthrottled), and each worker is held to
    /// `--memory-mb` on its own.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: Vec<u32>,
    /// Messages to the room, sent back to back (`bench-message-1` to `-M`); above 1, the
    /// workers take them from the job board.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages: u32,
    /// `none` (a standard queue: a room's messages side by side) or `per_room` (SQS FIFO, the
    /// room as message group: one message of a room at a time, the room never split); a list
    /// runs each, alternating, for a back-to-back comparison.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
    pub ordering: Vec<Ordering>,
    /// Each batch's time (a worker Lambda's timeout): a job that cannot finish in it hands its
    /// rest on (continuations) or, in order, keeps its message and goes on at its next receive.
    /// Default: a day, so that nothing is cut short.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub invocation: Option<Duration>,
    /// `ours` (the engine), `naive` (the seed tutorial's fan-out) or `both`.
    #[arg(long, value_enum, default_value = "ours")]
    pub strategy: StrategyChoice,
    #[command(flatten)]
    pub conditions: Conditions,
    /// Names the results file.
    #[arg(long, default_value = "run")]
    pub name: String,
    /// JSON results file; default bench/results/<name>.json.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also draw throughput against concurrency and N into this SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Add the runs to the results file instead of replacing it (for interleaved comparisons).
    #[arg(long)]
    pub append: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Throughput against concurrency, no throttle, 20 ms latency (fixed and log-normal).
    Concurrency,
    /// API Gateway's throttle: 10,000/s, burst 5,000.
    Throttle,
    /// Room size from 1,000 to 1,000,000: throughput, loss and peak memory.
    N,
    /// The seed tutorial's fan-out against ours, same conditions.
    Naive,
    /// Deliveries per CPU-second, repeated (the machine is noisy), on tokio's multi-thread
    /// runtime (what the recorded sweeps ran on) and on one thread (as the worker Lambda runs).
    Cpu,
    /// All of the above.
    All,
}

#[derive(Args)]
pub struct SweepArgs {
    #[arg(value_enum)]
    pub preset: Preset,
    /// The concurrency for the throttle, N and naive presets; default: the engine's default.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Rooms 10x smaller, for a quick check (not for the record).
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value_os_t = default_results_dir())]
    pub results_dir: PathBuf,
    #[arg(long, default_value_os_t = default_img_dir())]
    pub img_dir: PathBuf,
    /// Before starting, wait (up to --max-wait) while the 1-minute load average is above this.
    #[arg(long, default_value_t = 1.5)]
    pub max_load: f64,
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,
}

#[derive(Args)]
pub struct PlotArgs {
    /// Also print the recorded results as Markdown tables.
    #[arg(long)]
    pub markdown: bool,
    #[arg(long, default_value_os_t = default_results_dir())]
    pub results_dir: PathBuf,
    #[arg(long, default_value_os_t = default_img_dir())]
    pub img_dir: PathBuf,
}

#[derive(Args)]
pub struct EndpointArgs {
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[arg(long)]
    members: u64,
    #[arg(long)]
    latency: Latency,
    #[arg(long)]
    throttle_rate: Option<f64>,
    #[arg(long)]
    throttle_burst: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    gone_fraction: f64,
    /// Messages to the room: deliveries are counted per member and message.
    #[arg(long, default_value_t = 1)]
    messages: u32,
    /// The job board keeps each room's messages in order (SQS FIFO).
    #[arg(long)]
    pub per_room_order: bool,
    /// Serve HTTPS with a fresh self-signed certificate, its PEM written to this new file.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
}

impl EndpointArgs {
    pub fn config(&self) -> EndpointConfig {
        EndpointConfig {
            members: self.members,
            messages: self.messages.max(1),
            ordered: self.per_room_order,
            latency: self.latency,
            throttle: throttle(self.throttle_rate, self.throttle_burst),
            gone_fraction: self.gone_fraction,
            stage: worker::STAGE.into(),
        }
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    members: u64,
    #[arg(long, value_enum)]
    strategy: Strategy,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    page_size: usize,
    #[arg(long, default_value_t = 0.0)]
    page_latency_ms: f64,
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    #[arg(long, default_value_t = 0.0)]
    progress_latency_ms: f64,
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Runtime,
    /// `https://localhost:PORT`, trusted through `SSL_CERT_FILE` (the endpoint's `--tls`).
    #[arg(long)]
    tls: bool,
    #[arg(long, value_enum, default_value = "signed")]
    post_path: PostPath,
    /// Take jobs from the board on this port, shared with other workers.
    #[arg(long)]
    board_port: Option<u16>,
    #[arg(long, default_value_t = 1)]
    room_split_ways: u32,
    #[arg(long, default_value_t = 10_000)]
    account_post_rate: u32,
    #[arg(long, value_enum, default_value = "none")]
    ordering: Ordering,
    /// Each batch's deadline from its start, in milliseconds; a day if unset.
    #[arg(long)]
    invocation_ms: Option<f64>,
}

impl WorkerArgs {
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            strategy: self.strategy,
            port: self.port,
            members: self.members,
            concurrency: self.concurrency,
            page_size: self.page_size,
            page_latency: Duration::from_secs_f64(self.page_latency_ms / 1e3),
            payload_bytes: self.payload_bytes,
            progress_latency: Duration::from_secs_f64(self.progress_latency_ms / 1e3),
            tls: self.tls,
            post_path: self.post_path,
            invocation: self
                .invocation_ms
                .map_or(Duration::from_secs(24 * 3600), |ms| {
                    Duration::from_secs_f64(ms / 1e3)
                }),
            shared: self.board_port.map(|board_port| Shared {
                board_port,
                room_split_ways: self.room_split_ways,
                account_post_rate: self.account_post_rate,
                ordering: self.ordering,
            }),
        }
    }
}

pub fn default_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn default_img_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img")
}
