//! `fanout-bench`: the fan-out benchmark. The real worker engine (and the seed tutorial's naive
//! fan-out, for contrast) posts one message to every member of a room of N, over real HTTP on
//! loopback, to a simulated API Gateway management API with latency, a throttle and gone
//! connections. See docs/benchmarks.md.
//!
//! Three processes per run: this one (orchestrator: progress bar, table, JSON, plots), the
//! endpoint (`fanout-bench endpoint`), and the worker (`fanout-bench worker`), so that the
//! worker's peak memory and CPU time are its own.

mod endpoint;
mod ids;
mod plot;
mod proc_stats;
mod report;
mod store;
mod worker;

use clap::{Args, Parser, Subcommand, ValueEnum};
use endpoint::{EndpointConfig, EndpointStats, Latency, parse_duration};
use fanout::engine::EngineConfig;
use indicatif::{ProgressBar, ProgressStyle};
use report::{ResultsFile, RunResult, RunSpec};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command as Process;
use worker::{Strategy, WorkerConfig};

#[derive(Parser)]
#[command(
    name = "fanout-bench",
    about = "Fan-out benchmark: the real worker engine over loopback HTTP against a simulated API Gateway management API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the given conditions (lists run every combination) and reports them.
    Run(RunArgs),
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
struct Conditions {
    /// Per-call latency of the endpoint: `lognormal:MEDIAN[:P99]` (p99 defaults to 5 x the
    /// median), `fixed:20ms` or `none`.
    #[arg(long, default_value = "lognormal:20ms:100ms")]
    latency: Latency,
    /// Account throttle in requests per second (API Gateway's default is 10000); none if unset.
    #[arg(long)]
    throttle_rate: Option<f64>,
    /// Throttle burst (API Gateway's default is 5000); half the rate if unset.
    #[arg(long)]
    throttle_burst: Option<f64>,
    /// Fraction of members whose connection is gone (410).
    #[arg(long, default_value_t = 0.01)]
    gone_fraction: f64,
    /// Ids per store page; default: as many KEYS_ONLY index items as fit in 1 MB.
    #[arg(long)]
    page_limit: Option<usize>,
    /// How long each store page read takes.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    page_latency: Duration,
    /// Size of the message's `data`, in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// The worker process's tokio runtime (the worker Lambda's is multi-thread).
    #[arg(long, value_enum, default_value = "multi-thread")]
    worker_runtime: Runtime,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyChoice {
    Ours,
    Naive,
    Both,
}

#[derive(Args)]
struct RunArgs {
    /// Members of the room (a comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    n: Vec<u64>,
    /// The engine's in-flight limit (a list runs each); default: the engine's default.
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// `ours` (the engine), `naive` (the seed tutorial's fan-out) or `both`.
    #[arg(long, value_enum, default_value = "ours")]
    strategy: StrategyChoice,
    #[command(flatten)]
    conditions: Conditions,
    /// Names the results file.
    #[arg(long, default_value = "run")]
    name: String,
    /// JSON results file; default bench/results/<name>.json.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also draw throughput against concurrency and N into this SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Add the runs to the results file instead of replacing it (for interleaved comparisons).
    #[arg(long)]
    append: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// Throughput against concurrency, no throttle, 20 ms latency (fixed and log-normal).
    Concurrency,
    /// API Gateway's throttle: 10,000/s, burst 5,000.
    Throttle,
    /// Room size from 1,000 to 1,000,000: throughput, loss and peak memory.
    N,
    /// The seed tutorial's fan-out against ours, same conditions.
    Naive,
    /// Deliveries per CPU-second, repeated (the machine is noisy), on tokio's multi-thread
    /// runtime (as the worker Lambda runs) and on one thread.
    Cpu,
    /// All of the above.
    All,
}

#[derive(Args)]
struct SweepArgs {
    #[arg(value_enum)]
    preset: Preset,
    /// The concurrency for the throttle, N and naive presets; default: the engine's default.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Rooms 10x smaller, for a quick check (not for the record).
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_os_t = default_results_dir())]
    results_dir: PathBuf,
    #[arg(long, default_value_os_t = default_img_dir())]
    img_dir: PathBuf,
    /// Before starting, wait (up to --max-wait) while the 1-minute load average is above this.
    #[arg(long, default_value_t = 1.5)]
    max_load: f64,
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    max_wait: Duration,
}

#[derive(Args)]
struct PlotArgs {
    /// Also print the recorded results as Markdown tables.
    #[arg(long)]
    markdown: bool,
    #[arg(long, default_value_os_t = default_results_dir())]
    results_dir: PathBuf,
    #[arg(long, default_value_os_t = default_img_dir())]
    img_dir: PathBuf,
}

#[derive(Args)]
struct EndpointArgs {
    #[arg(long, default_value_t = 0)]
    port: u16,
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
}

#[derive(Args)]
struct WorkerArgs {
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
    #[arg(long, value_enum, default_value = "multi-thread")]
    runtime: Runtime,
}

/// The worker process's tokio runtime.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// `#[tokio::main]`'s default, as the worker Lambda runs.
    #[default]
    MultiThread,
    /// One thread.
    CurrentThread,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::MultiThread => "multi-thread",
            Runtime::CurrentThread => "current-thread",
        })
    }
}

fn default_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn default_img_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img")
}

fn default_concurrency() -> usize {
    EngineConfig::default().concurrency
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Endpoint(args) => run_endpoint(args),
        Command::Worker(args) => run_worker(args),
        Command::Run(args) => orchestrate(|| run_command(args)),
        Command::Sweep(args) => orchestrate(|| sweep(args)),
        Command::Plot(args) => draw_docs_plots(&args.results_dir, &args.img_dir).and_then(|()| {
            if args.markdown {
                print_markdown(&args.results_dir)
            } else {
                Ok(())
            }
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fanout-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_endpoint(args: EndpointArgs) -> Result<(), String> {
    let throttle = args
        .throttle_rate
        .map(|rate| (rate, args.throttle_burst.unwrap_or(rate / 2.0)));
    let config = EndpointConfig {
        members: args.members,
        latency: args.latency,
        throttle,
        gone_fraction: args.gone_fraction,
        stage: worker::STAGE.into(),
    };
    // One thread: the endpoint shares the machine with the worker it measures, and a single
    // thread spends the least CPU per call (no cross-thread wake-ups).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(endpoint::serve(config, args.port))
        .map_err(|e| format!("endpoint: {e}"))
}

fn run_worker(args: WorkerArgs) -> Result<(), String> {
    let config = WorkerConfig {
        strategy: args.strategy,
        port: args.port,
        members: args.members,
        concurrency: args.concurrency,
        page_size: args.page_size,
        page_latency: Duration::from_secs_f64(args.page_latency_ms / 1e3),
        payload_bytes: args.payload_bytes,
    };
    // The worker Lambda's `#[tokio::main]` is the multi-threaded runtime: the default here too.
    let mut runtime = match args.runtime {
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    let report = runtime
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(worker::run(config));
    println!(
        "{}",
        serde_json::to_string(&report).expect("report serializes")
    );
    Ok(())
}

fn orchestrate<F: Future<Output = Result<(), String>>>(
    f: impl FnOnce() -> F,
) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(f())
}

fn page_size(conditions: &Conditions) -> usize {
    conditions
        .page_limit
        .unwrap_or_else(|| store::items_per_page(worker::ROOM))
}

fn spec(strategy: Strategy, members: u64, concurrency: usize, c: &Conditions) -> RunSpec {
    let page_size = page_size(c);
    RunSpec {
        strategy,
        members,
        concurrency: match strategy {
            Strategy::Ours => concurrency,
            Strategy::Naive => page_size.min(members as usize).max(1),
        },
        latency: c.latency.to_string(),
        throttle_rate: c.throttle_rate,
        throttle_burst: c
            .throttle_rate
            .map(|rate| c.throttle_burst.unwrap_or(rate / 2.0)),
        gone_fraction: c.gone_fraction,
        page_size,
        page_latency_ms: c.page_latency.as_secs_f64() * 1e3,
        payload_bytes: c.payload_bytes,
        worker_runtime: c.worker_runtime,
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p fanout-bench -- {}", args.join(" "))
}

fn new_results(name: &str) -> ResultsFile {
    ResultsFile {
        name: name.into(),
        command: command_line(),
        machine: proc_stats::Machine::describe(),
        git_commit: std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        started_at_epoch_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        runs: Vec::new(),
    }
}

async fn run_command(args: RunArgs) -> Result<(), String> {
    let concurrencies = if args.concurrency.is_empty() {
        vec![default_concurrency()]
    } else {
        args.concurrency.clone()
    };
    let strategies: &[Strategy] = match args.strategy {
        StrategyChoice::Ours => &[Strategy::Ours],
        StrategyChoice::Naive => &[Strategy::Naive],
        StrategyChoice::Both => &[Strategy::Ours, Strategy::Naive],
    };
    let mut specs = Vec::new();
    for &members in &args.n {
        for &strategy in strategies {
            for &concurrency in &concurrencies {
                specs.push(spec(strategy, members, concurrency, &args.conditions));
                if strategy == Strategy::Naive {
                    break; // naive has no concurrency setting
                }
            }
        }
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_results_dir().join(format!("{}.json", args.name)));
    let results = run_all(&args.name, specs, &output, args.append).await?;
    if let Some(path) = &args.plot {
        let mut charts = Vec::new();
        if concurrencies.len() > 1 {
            charts.push(throughput_chart(&results.runs, Axis::Concurrency));
        }
        if args.n.len() > 1 {
            charts.push(throughput_chart(&results.runs, Axis::Members));
        }
        if charts.is_empty() {
            charts.push(throughput_chart(&results.runs, Axis::Concurrency));
        }
        plot::render(path, &charts)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// Runs the specs one after the other, rewriting the results file after each, and prints the
/// table.
async fn run_all(
    name: &str,
    specs: Vec<RunSpec>,
    output: &Path,
    append: bool,
) -> Result<ResultsFile, String> {
    let mut results = new_results(name);
    if append && output.exists() {
        let earlier = ResultsFile::read(output)?;
        results.runs = earlier.runs;
        // Every command that added runs, one a line, oldest first.
        if !earlier.command.lines().any(|line| line == results.command) {
            results.command = format!("{}\n{}", earlier.command, results.command);
        } else {
            results.command = earlier.command;
        }
    }
    let total = specs.len();
    for (i, spec) in specs.into_iter().enumerate() {
        let label = format!(
            "[{}/{total}] {} N={} c={} {} throttle={}",
            i + 1,
            spec.strategy,
            spec.members,
            spec.concurrency,
            spec.latency,
            spec.throttle_label()
        );
        let run = run_one(&spec, &label).await?;
        eprintln!(
            "{label}: {:.0} deliveries/s ({:.1}% of bound), lost {}, dup {}, peak {:.1} MiB",
            run.deliveries_per_s,
            run.ratio_to_bound * 100.0,
            run.lost,
            run.duplicates,
            run.peak_rss_mib
        );
        results.runs.push(run);
        results
            .write(output)
            .map_err(|e| format!("{}: {e}", output.display()))?;
    }
    println!("\n{}\n", report::table(&results.runs));
    println!("results: {}", output.display());
    Ok(results)
}

/// One run: a fresh endpoint process, a fresh worker process, a progress bar fed by the
/// endpoint's counts.
async fn run_one(spec: &RunSpec, label: &str) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut endpoint_cmd = Process::new(&exe);
    endpoint_cmd
        .args(["endpoint", "--members", &spec.members.to_string()])
        .args(["--latency", &spec.latency])
        .args(["--gone-fraction", &spec.gone_fraction.to_string()]);
    if let (Some(rate), Some(burst)) = (spec.throttle_rate, spec.throttle_burst) {
        endpoint_cmd.args(["--throttle-rate", &rate.to_string()]);
        endpoint_cmd.args(["--throttle-burst", &burst.to_string()]);
    }
    let mut endpoint = endpoint_cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the endpoint: {e}"))?;
    let mut lines = BufReader::new(endpoint.stdout.take().expect("piped")).lines();
    let port: u16 = lines
        .next_line()
        .await
        .ok()
        .flatten()
        .and_then(|line| line.strip_prefix("listening ")?.parse().ok())
        .ok_or("the endpoint did not start")?;

    let load = proc_stats::load_average();
    let time_wait = proc_stats::time_wait_sockets();
    let busy_before = proc_stats::machine_busy_seconds();
    let mut worker = Process::new(&exe)
        .args(["worker", "--port", &port.to_string()])
        .args(["--members", &spec.members.to_string()])
        .args(["--strategy", &spec.strategy.to_string()])
        .args(["--concurrency", &spec.concurrency.to_string()])
        .args(["--page-size", &spec.page_size.to_string()])
        .args(["--page-latency-ms", &spec.page_latency_ms.to_string()])
        .args(["--payload-bytes", &spec.payload_bytes.to_string()])
        .args(["--runtime", &spec.worker_runtime.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the worker: {e}"))?;
    let mut out = worker.stdout.take().expect("piped");
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text).await;
        text
    });

    let bar = ProgressBar::new(spec.members);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:32}] {pos}/{len} {per_sec} {elapsed_precise} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let status = loop {
        tokio::select! {
            status = worker.wait() => break status.map_err(|e| e.to_string())?,
            _ = tick.tick() => {
                if let Ok(stats) = get_stats(port, false).await {
                    bar.set_position((stats.distinct_delivered + stats.gone_calls).min(spec.members));
                    bar.set_message(format!("in flight {} · 429s {}", stats.in_flight, stats.throttled));
                }
            }
        }
    };
    let busy = proc_stats::machine_busy_seconds()
        .zip(busy_before)
        .map(|(after, before)| after - before);
    bar.finish_and_clear();
    let text = reading.await.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the worker failed ({status})"));
    }
    let report = text
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("the worker printed no report: {text:?}"))?;
    let stats = get_stats(port, true).await?;
    let _ = endpoint.kill().await;
    // The endpoint's CPU counts from its start, a moment before the worker's: close enough.
    let mut result = RunResult::new(spec.clone(), report, stats, load, busy);
    result.time_wait_at_start = time_wait;
    Ok(result)
}

/// `GET /stats` on the endpoint, over a plain HTTP/1.1 connection.
async fn get_stats(port: u16, full: bool) -> Result<EndpointStats, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let path = if full { "/stats?full=1" } else { "/stats" };
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or("no HTTP body from the endpoint")?;
    serde_json::from_str(body).map_err(|e| format!("endpoint stats: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Presets

const SWEEP_CONCURRENCY: [usize; 6] = [64, 128, 256, 512, 1024, 2048];
const SWEEP_N: [u64; 7] = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000];
const NAIVE_N: [u64; 3] = [1_000, 10_000, 100_000];
const CPU_REPEATS: usize = 5;

fn conditions(latency: &str, throttle: Option<(f64, f64)>, gone_fraction: f64) -> Conditions {
    Conditions {
        latency: latency.parse().expect("preset latencies are valid"),
        throttle_rate: throttle.map(|t| t.0),
        throttle_burst: throttle.map(|t| t.1),
        gone_fraction,
        page_limit: None,
        page_latency: Duration::from_millis(20),
        payload_bytes: 100,
        worker_runtime: Runtime::MultiThread,
    }
}

const API_GATEWAY_THROTTLE: (f64, f64) = (10_000.0, 5_000.0);
const DEFAULT_LATENCY: &str = "lognormal:20ms:100ms";

async fn sweep(args: SweepArgs) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + args.max_wait;
    while let Some(load) = proc_stats::load_average().filter(|&load| load > args.max_load) {
        if tokio::time::Instant::now() >= give_up {
            eprintln!("load average still {load:.2}; starting anyway (recorded per run)");
            break;
        }
        eprintln!(
            "load average {load:.2} > {:.2}: waiting 30 s for the machine to calm down",
            args.max_load
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let scale = if args.quick { 10 } else { 1 };
    let concurrency = args.concurrency.unwrap_or_else(default_concurrency);
    let presets: &[Preset] = match args.preset {
        Preset::All => &[
            Preset::Concurrency,
            Preset::Throttle,
            Preset::N,
            Preset::Naive,
            Preset::Cpu,
        ],
        ref one => std::slice::from_ref(one),
    };
    let suffix = if args.quick { "-quick" } else { "" };
    for &preset in presets {
        let (name, specs) = match preset {
            Preset::Concurrency => {
                let mut specs = Vec::new();
                for latency in ["fixed:20ms", DEFAULT_LATENCY] {
                    let c = conditions(latency, None, 0.0);
                    for &conc in &SWEEP_CONCURRENCY {
                        specs.push(spec(Strategy::Ours, 100_000 / scale, conc, &c));
                    }
                }
                ("concurrency", specs)
            }
            Preset::Throttle => {
                let c = conditions(DEFAULT_LATENCY, Some(API_GATEWAY_THROTTLE), 0.0);
                let mut concs = vec![concurrency, 1024];
                concs.dedup();
                let specs = concs
                    .into_iter()
                    .map(|conc| spec(Strategy::Ours, 200_000 / scale, conc, &c))
                    .collect();
                ("throttle", specs)
            }
            Preset::N => {
                let c = conditions(DEFAULT_LATENCY, None, 0.01);
                let specs = SWEEP_N
                    .iter()
                    .map(|&n| n / scale)
                    .filter(|&n| n >= 1_000)
                    .map(|n| spec(Strategy::Ours, n, concurrency, &c))
                    .collect();
                ("n", specs)
            }
            Preset::Naive => {
                let c = conditions(DEFAULT_LATENCY, Some(API_GATEWAY_THROTTLE), 0.01);
                let mut specs = Vec::new();
                for &n in &NAIVE_N {
                    for strategy in [Strategy::Naive, Strategy::Ours] {
                        specs.push(spec(strategy, n, concurrency, &c));
                    }
                }
                ("naive", specs)
            }
            Preset::Cpu => {
                let mut specs = Vec::new();
                for runtime in [Runtime::MultiThread, Runtime::CurrentThread] {
                    let c = Conditions {
                        worker_runtime: runtime,
                        ..conditions("fixed:20ms", None, 0.0)
                    };
                    for (conc, repeats) in [(256, CPU_REPEATS), (1024, 3)] {
                        for _ in 0..repeats {
                            specs.push(spec(Strategy::Ours, 50_000 / scale, conc, &c));
                        }
                    }
                }
                ("cpu", specs)
            }
            Preset::All => unreachable!(),
        };
        let file = args.results_dir.join(format!("{name}{suffix}.json"));
        let results = run_all(name, specs, &file, false).await?;
        for line in check_targets(name, &results.runs) {
            println!("{line}");
        }
    }
    if !args.quick {
        draw_docs_plots(&args.results_dir, &args.img_dir)?;
    }
    Ok(())
}

/// The targets, checked against a preset's runs.
fn check_targets(name: &str, runs: &[RunResult]) -> Vec<String> {
    let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
    let mut lines = Vec::new();
    match name {
        "concurrency" => {
            for run in runs.iter().filter(|r| r.spec.latency.starts_with("fixed")) {
                if (64..=1024).contains(&run.spec.concurrency) {
                    lines.push(format!(
                        "target: concurrency {} at fixed 20 ms reaches {:.1}% of concurrency/latency (>= 90%): {}",
                        run.spec.concurrency,
                        run.ratio_to_bound * 100.0,
                        verdict(run.ratio_to_bound >= 0.9)
                    ));
                }
            }
        }
        "throttle" => {
            for run in runs {
                let rate = run.spec.throttle_rate.unwrap_or(f64::INFINITY);
                lines.push(format!(
                    "target: concurrency {} under {rate:.0}/s: sustained {:.0}/s = {:.1}% of it (>= 90%; {:.0}/s overall with the burst), lost {}, retries {} ({:.2}% of deliveries): {}",
                    run.spec.concurrency,
                    run.sustained_per_s,
                    run.sustained_per_s * 100.0 / rate,
                    run.deliveries_per_s,
                    run.lost,
                    run.retries,
                    run.retries as f64 * 100.0 / run.delivered.max(1) as f64,
                    verdict(run.sustained_per_s >= 0.9 * rate && run.lost == 0)
                ));
            }
        }
        "n" => {
            let at = |n: u64| runs.iter().find(|r| r.spec.members == n);
            if let (Some(small), Some(large)) = (at(10_000), at(1_000_000)) {
                let ratio = large.peak_rss_mib / small.peak_rss_mib;
                lines.push(format!(
                    "target: N=1,000,000 lost {} and peak memory {:.1} MiB = {:.2} x N=10,000's {:.1} MiB (<= 1.5x): {}",
                    large.lost,
                    large.peak_rss_mib,
                    ratio,
                    small.peak_rss_mib,
                    verdict(large.lost == 0 && ratio <= 1.5)
                ));
            }
        }
        "cpu" => {
            let mut groups: Vec<((String, usize), Vec<f64>)> = Vec::new();
            for run in runs {
                let key = (run.spec.worker_runtime.to_string(), run.spec.concurrency);
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => values.push(run.deliveries_per_cpu_s),
                    None => groups.push((key, vec![run.deliveries_per_cpu_s])),
                }
            }
            for ((runtime, conc), mut values) in groups {
                values.sort_by(f64::total_cmp);
                lines.push(format!(
                    "cpu: {runtime}, concurrency {conc}: median {:.0} deliveries per CPU-second (min {:.0}, max {:.0}, {} runs)",
                    values[values.len() / 2],
                    values[0],
                    values[values.len() - 1],
                    values.len()
                ));
            }
        }
        _ => {}
    }
    lines
}

#[derive(Clone, Copy)]
enum Axis {
    Concurrency,
    Members,
}

/// Deliveries per second against concurrency or N, one line per strategy and latency, with the
/// bounds dashed.
fn throughput_chart(runs: &[RunResult], axis: Axis) -> plot::Chart<'static> {
    let x = |r: &RunResult| match axis {
        Axis::Concurrency => r.spec.concurrency as f64,
        Axis::Members => r.spec.members as f64,
    };
    let mut groups: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for run in runs {
        let key = format!(
            "{} {} throttle {}",
            run.spec.strategy,
            run.spec.latency,
            run.spec.throttle_label()
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(run),
            None => groups.push((key, vec![run])),
        }
    }
    let mut series = Vec::new();
    for (i, (key, group)) in groups.iter().enumerate() {
        let color = plot::PALETTE[i % plot::PALETTE.len()];
        let mut points: Vec<(f64, f64)> =
            group.iter().map(|r| (x(r), r.deliveries_per_s)).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(plot::Series {
            label: format!("measured: {key}"),
            points,
            color,
            dashed: false,
            markers: true,
        });
        if matches!(axis, Axis::Concurrency) {
            let mut bound: Vec<(f64, f64)> = group.iter().map(|r| (x(r), r.bound_per_s)).collect();
            bound.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mean_differs = group
                .iter()
                .any(|r| (r.mean_bound_per_s - r.bound_per_s).abs() > 1.0);
            series.push(plot::Series {
                label: "bound: min(concurrency / median latency, throttle)".into(),
                points: bound,
                color: plot::PALETTE[5],
                dashed: true,
                markers: false,
            });
            if mean_differs {
                let mut mean: Vec<(f64, f64)> =
                    group.iter().map(|r| (x(r), r.mean_bound_per_s)).collect();
                mean.sort_by(|a, b| a.0.total_cmp(&b.0));
                series.push(plot::Series {
                    label: format!(
                        "ceiling for {}: concurrency / mean latency",
                        group[0].spec.latency
                    ),
                    points: mean,
                    color,
                    dashed: true,
                    markers: false,
                });
            }
        }
    }
    // The median bound is the same for every group: keep one.
    let mut seen_bound = false;
    series.retain(|s| {
        if s.label.starts_with("bound:") {
            let keep = !seen_bound;
            seen_bound = true;
            keep
        } else {
            true
        }
    });
    match axis {
        Axis::Concurrency => plot::Chart {
            title: "Deliveries per second against concurrency",
            x_desc: "concurrency (posts in flight)",
            y_desc: "deliveries / s",
            x_axis: plot::XAxis::Log2,
            series,
        },
        Axis::Members => plot::Chart {
            title: "Deliveries per second against room size",
            x_desc: "members in the room (N)",
            y_desc: "deliveries / s",
            x_axis: plot::XAxis::Log10,
            series,
        },
    }
}

fn memory_chart(runs: &[RunResult]) -> plot::Chart<'static> {
    let mut peak: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| (r.spec.members as f64, r.peak_rss_mib))
        .collect();
    peak.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut baseline: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| (r.spec.members as f64, r.baseline_rss_mib))
        .collect();
    baseline.sort_by(|a, b| a.0.total_cmp(&b.0));
    plot::Chart {
        title: "Worker peak memory against room size",
        x_desc: "members in the room (N)",
        y_desc: "MiB",
        x_axis: plot::XAxis::Log10,
        series: vec![
            plot::Series {
                label: "peak RSS (VmHWM) of the worker process".into(),
                points: peak,
                color: plot::PALETTE[0],
                dashed: false,
                markers: true,
            },
            plot::Series {
                label: "RSS before the fan-out (runtime + SDK client)".into(),
                points: baseline,
                color: plot::PALETTE[5],
                dashed: true,
                markers: false,
            },
        ],
    }
}

/// docs/img/bench-concurrency.svg and docs/img/bench-n.svg from the recorded results.
fn draw_docs_plots(results_dir: &Path, img_dir: &Path) -> Result<(), String> {
    let concurrency = results_dir.join("concurrency.json");
    if concurrency.exists() {
        let results = ResultsFile::read(&concurrency)?;
        let path = img_dir.join("bench-concurrency.svg");
        plot::render(&path, &[throughput_chart(&results.runs, Axis::Concurrency)])?;
        println!("plot: {}", path.display());
    }
    let n = results_dir.join("n.json");
    if n.exists() {
        let results = ResultsFile::read(&n)?;
        let path = img_dir.join("bench-n.svg");
        plot::render(
            &path,
            &[
                throughput_chart(&results.runs, Axis::Members),
                memory_chart(&results.runs),
            ],
        )?;
        println!("plot: {}", path.display());
    }
    let throttle = results_dir.join("throttle.json");
    if throttle.exists() {
        let results = ResultsFile::read(&throttle)?;
        let path = img_dir.join("bench-throttle.svg");
        plot::render(&path, &[timeline_chart(&results.runs)])?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// 200s and 429s per second over time, one pair of lines per run (the throttle preset).
fn timeline_chart(runs: &[RunResult]) -> plot::Chart<'static> {
    let per_second = |steps: &[u32]| -> Vec<(f64, f64)> {
        let per = (1.0 / endpoint::TIMELINE_STEP.as_secs_f64()).round() as usize;
        // Averaged over 500 ms, plotted at the middle of each window.
        let window = (per / 2).max(1);
        steps
            .chunks(window)
            .enumerate()
            .map(|(i, chunk)| {
                let count: u32 = chunk.iter().sum();
                let secs = chunk.len() as f64 * endpoint::TIMELINE_STEP.as_secs_f64();
                (
                    (i * window) as f64 / per as f64 + secs / 2.0,
                    f64::from(count) / secs,
                )
            })
            .collect()
    };
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(full) = &run.endpoint.full else {
            continue;
        };
        let color = plot::PALETTE[i % plot::PALETTE.len()];
        series.push(plot::Series {
            label: format!("200s/s, concurrency {}", run.spec.concurrency),
            points: per_second(&full.timeline_ok),
            color,
            dashed: false,
            markers: false,
        });
        series.push(plot::Series {
            label: format!("429s/s, concurrency {}", run.spec.concurrency),
            points: per_second(&full.timeline_throttled),
            color,
            dashed: true,
            markers: false,
        });
    }
    plot::Chart {
        title: "Under a 10,000/s throttle (burst 5,000): accepted and throttled calls",
        x_desc: "seconds since the first call",
        y_desc: "calls / s",
        x_axis: plot::XAxis::Linear,
        series,
    }
}

/// Markdown tables of every recorded results file, for docs/benchmarks.md.
fn print_markdown(results_dir: &Path) -> Result<(), String> {
    for name in [
        "concurrency",
        "throttle",
        "n",
        "naive",
        "cpu",
        "cpu-repeat",
        "engine-before",
        "engine-after",
    ] {
        let path = results_dir.join(format!("{name}.json"));
        if path.exists() {
            let results = ResultsFile::read(&path)?;
            println!("### {name}\n\n`{}`\n", results.command);
            println!("{}", report::markdown(&results.runs));
        }
    }
    Ok(())
}
