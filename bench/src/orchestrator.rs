//! The orchestrator: turns conditions into run specs, runs each (a fresh endpoint process and a
//! fresh worker process, a progress bar fed by the endpoint's counts), and writes the results
//! file and the table. The `run` command is here; the presets build on [`run_all`].

use crate::cgroup::{CgroupReport, CpuCgroup};
use crate::charts::{Axis, throughput_chart};
use crate::cli::{Conditions, RunArgs, StrategyChoice, default_results_dir};
use crate::endpoint::EndpointStats;
use crate::report::{self, ResultsFile, RunResult, RunSpec};
use crate::tls::CertFile;
use crate::worker::{self, Ordering, Strategy, WorkerReport};
use crate::{plot, proc_stats, store};
use fanout::engine::EngineConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command as Process;

pub fn default_concurrency() -> usize {
    EngineConfig::default().concurrency
}

fn page_size(conditions: &Conditions) -> usize {
    conditions
        .page_limit
        .unwrap_or_else(|| store::items_per_page(worker::ROOM))
}

pub fn spec(strategy: Strategy, members: u64, concurrency: usize, c: &Conditions) -> RunSpec {
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
        throttle_burst: c.throttle().map(|(_, burst)| burst),
        gone_fraction: c.gone_fraction,
        page_size,
        page_latency_ms: c.page_latency.as_secs_f64() * 1e3,
        payload_bytes: c.payload_bytes,
        progress_latency_ms: c.progress_latency.as_secs_f64() * 1e3,
        worker_runtime: c.worker_runtime,
        memory_mb: None,
        tls: c.tls,
        post_path: crate::worker::PostPath::Signed,
        workers: 1,
        messages: 1,
        ordering: crate::worker::Ordering::None,
        invocation_s: None,
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
        started_at_epoch_s: u64::try_from(fanout::domain::now_epoch_millis() / 1000).unwrap_or(0),
        runs: Vec::new(),
    }
}

/// The `run` command: every combination of the given conditions, then the plot if asked.
pub async fn run_command(args: RunArgs) -> Result<(), String> {
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
    // Memory sizes, post paths and orderings innermost, so that they alternate.
    let memory_sizes: Vec<Option<u32>> = if args.memory_mb.is_empty() {
        vec![None]
    } else {
        args.memory_mb.iter().copied().map(Some).collect()
    };
    let mut specs = Vec::new();
    for &members in &args.n {
        for &strategy in strategies {
            for &concurrency in &concurrencies {
                for &workers in &args.workers {
                    for &memory_mb in &memory_sizes {
                        for &post_path in &args.post_path {
                            for &ordering in &args.ordering {
                                specs.push(RunSpec {
                                    memory_mb,
                                    post_path,
                                    workers,
                                    messages: args.messages,
                                    ordering,
                                    invocation_s: args.invocation.map(|d| d.as_secs_f64()),
                                    ..spec(strategy, members, concurrency, &args.conditions)
                                });
                            }
                        }
                    }
                }
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
pub async fn run_all(
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
        let memory = spec.memory_mb.map_or_else(String::new, |mb| {
            format!(" {mb} MB ({:.2} vCPU)", crate::cgroup::vcpus(mb))
        });
        let label = format!(
            "[{}/{total}] {} N={} c={} {} throttle={}{memory}{}",
            i + 1,
            spec.strategy,
            spec.members,
            spec.concurrency,
            spec.latency,
            spec.throttle_label(),
            if spec.tls { " https" } else { "" }
        ) + &format!(
            " {} W={} M={} order={}",
            spec.post_path, spec.workers, spec.messages, spec.ordering
        );
        let run = run_one(&spec, &label).await?;
        let cost = run.gb_s_per_million.map_or_else(String::new, |g| {
            format!(", {g:.1} GB-s per million deliveries")
        });
        eprintln!(
            "{label}: {:.0} deliveries/s ({:.1}% of bound), lost {}, dup {}, inversions {}, peak {:.1} MiB, worker CPU {:.2} s{cost}",
            run.deliveries_per_s,
            run.ratio_to_bound * 100.0,
            run.lost,
            run.duplicates,
            run.inversions,
            run.peak_rss_mib,
            run.worker_cpu_s
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
/// endpoint's counts. With TLS, the endpoint writes its certificate to a file that the worker
/// trusts through `SSL_CERT_FILE`, as the native root store is read in Lambda.
async fn run_one(spec: &RunSpec, label: &str) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Dropped (the file removed) after both processes.
    let cert_file = spec.tls.then(CertFile::new);
    let mut endpoint_cmd = Process::new(&exe);
    endpoint_cmd
        .args(["endpoint", "--members", &spec.members.to_string()])
        .args(["--latency", &spec.latency])
        .args(["--gone-fraction", &spec.gone_fraction.to_string()])
        .args(["--messages", &spec.messages.to_string()]);
    if spec.ordering == Ordering::PerRoom {
        endpoint_cmd.arg("--per-room-order");
    }
    if let (Some(rate), Some(burst)) = (spec.throttle_rate, spec.throttle_burst) {
        endpoint_cmd.args(["--throttle-rate", &rate.to_string()]);
        endpoint_cmd.args(["--throttle-burst", &burst.to_string()]);
    }
    if let Some(cert_file) = &cert_file {
        endpoint_cmd.arg("--tls-cert-file").arg(cert_file.path());
    }
    let mut endpoint = endpoint_cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the endpoint: {e}"))?;
    let mut lines = BufReader::new(endpoint.stdout.take().expect("piped")).lines();
    // `listening PORT STATS_PORT`: the worker's port, and a plain-HTTP one for `/stats`.
    let (port, stats_port): (u16, u16) = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .and_then(|line| {
            let (port, stats) = line.strip_prefix("listening ")?.split_once(' ')?;
            Some((port.parse().ok()?, stats.parse().ok()?))
        })
        .ok_or("the endpoint did not start")?;

    let load = proc_stats::load_average();
    let time_wait = proc_stats::time_wait_sockets();
    let busy_before = proc_stats::machine_busy_seconds();
    // Several workers, several messages or per-room order: the workers share the job board
    // on the endpoint's plain port; the room's messages are on it, in order, before they start.
    let shared = spec.on_board();
    if shared {
        let addr = ([127, 0, 0, 1], stats_port).into();
        for k in 1..=spec.messages.max(1) {
            let job = worker::message_job(spec.payload_bytes, k);
            fanout_test_support::http::request(addr, "POST", "/jobs", &job)
                .await
                .map_err(|e| format!("putting message {k} on the board: {e}"))?;
        }
    }
    let mut workers = Vec::new();
    // Each with its own cgroup, made before it so that it is dropped after it (the worker
    // killed first, then the cgroup removed).
    let mut cgroups = Vec::new();
    let spawned = Instant::now();
    for _ in 0..spec.workers.max(1) {
        let cgroup = spec.memory_mb.map(CpuCgroup::create).transpose()?;
        let mut worker_cmd = Process::new(&exe);
        worker_cmd
            .args(["worker", "--port", &port.to_string()])
            .args(["--members", &spec.members.to_string()])
            .args(["--strategy", &spec.strategy.to_string()])
            .args(["--concurrency", &spec.concurrency.to_string()])
            .args(["--page-size", &spec.page_size.to_string()])
            .args(["--page-latency-ms", &spec.page_latency_ms.to_string()])
            .args(["--payload-bytes", &spec.payload_bytes.to_string()])
            .args([
                "--progress-latency-ms",
                &spec.progress_latency_ms.to_string(),
            ])
            .args(["--runtime", &spec.worker_runtime.to_string()])
            .args(["--post-path", &spec.post_path.to_string()]);
        if let Some(seconds) = spec.invocation_s {
            worker_cmd.args(["--invocation-ms", &(seconds * 1e3).to_string()]);
        }
        if shared {
            let rate = spec.throttle_rate.map_or(10_000, |rate| rate as u32);
            worker_cmd
                .args(["--board-port", &stats_port.to_string()])
                .args(["--room-split-ways", &spec.workers.to_string()])
                .args(["--account-post-rate", &rate.to_string()])
                .args(["--ordering", &spec.ordering.to_string()]);
        }
        if let Some(cert_file) = &cert_file {
            // The worker's only trust in the certificate: no code of its own, as in
            // production. Without SSL_CERT_DIR, the file is its whole root store.
            worker_cmd
                .env("SSL_CERT_FILE", cert_file.path())
                .env_remove("SSL_CERT_DIR")
                .arg("--tls");
        }
        let mut worker = worker_cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the worker: {e}"))?;
        // At once: it is still loading, its fan-out starts after its SDK client is built.
        if let Some(cgroup) = &cgroup {
            let pid = worker.id().ok_or("the worker exited as it started")?;
            cgroup.add(pid)?;
        }
        let mut out = worker.stdout.take().expect("piped");
        let reading = tokio::spawn(async move {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text).await;
            text
        });
        cgroups.push(cgroup);
        workers.push((worker, reading));
    }

    let pairs = spec.members * u64::from(spec.messages.max(1));
    let bar = ProgressBar::new(pairs);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:32}] {pos}/{len} {per_sec} {elapsed_precise} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let give_up = tokio::time::sleep(run_timeout(spec));
    tokio::pin!(give_up);
    let statuses = {
        let all_exited =
            futures::future::join_all(workers.iter_mut().map(|(worker, _)| worker.wait()));
        tokio::pin!(all_exited);
        loop {
            tokio::select! {
                statuses = &mut all_exited => break statuses,
                () = &mut give_up => {
                    bar.finish_and_clear();
                    return Err(format!("the workers did not finish within {:?}", run_timeout(spec)));
                }
                _ = tick.tick() => {
                    let polled = tokio::time::timeout(Duration::from_secs(1), get_stats(stats_port, false)).await;
                    if let Ok(Ok(stats)) = polled {
                        bar.set_position((stats.distinct_delivered + stats.gone_calls).min(pairs));
                        let mut message = format!("in flight {} · 429s {}", stats.in_flight, stats.throttled);
                        if stats.inversions > 0 {
                            message.push_str(&format!(" · inversions {}", stats.inversions));
                        }
                        if stats.tls_failures > 0 {
                            // The worker does not trust the certificate: it retries until the timeout.
                            message.push_str(&format!(" · failed TLS handshakes {}", stats.tls_failures));
                        }
                        bar.set_message(message);
                    }
                }
            }
        }
    };
    let worker_wall_s = spawned.elapsed().as_secs_f64();
    let mut cgroup_report: Option<CgroupReport> = None;
    for cgroup in cgroups.iter().flatten() {
        let report = cgroup.report()?;
        cgroup_report = Some(match cgroup_report {
            None => report,
            Some(sum) => sum.add(&report),
        });
    }
    drop(cgroups);
    let busy = proc_stats::machine_busy_seconds()
        .zip(busy_before)
        .map(|(after, before)| after - before);
    bar.finish_and_clear();
    let mut reports = Vec::new();
    for (status, (_, reading)) in statuses.into_iter().zip(workers) {
        let status = status.map_err(|e| e.to_string())?;
        let text = tokio::time::timeout(START_TIMEOUT, reading)
            .await
            .map_err(|_| "the worker's output did not close")?
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the worker failed ({status})"));
        }
        let report: WorkerReport = text
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| format!("the worker printed no report: {text:?}"))?;
        reports.push(report);
    }
    let report = WorkerReport::sum(reports);
    let stats = tokio::time::timeout(START_TIMEOUT, get_stats(stats_port, true))
        .await
        .map_err(|_| "the endpoint's stats did not come")??;
    let _ = endpoint.kill().await;
    // The endpoint's CPU counts from its start, a moment before the worker's: close enough.
    let mut result = RunResult::new(spec.clone(), report, stats, load, busy);
    result.time_wait_at_start = time_wait;
    result.cgroup = cgroup_report;
    // Every worker is billed for its memory over the whole run.
    result.set_worker_wall(worker_wall_s * f64::from(spec.workers.max(1)));
    Ok(result)
}

/// How long a process may take to start, or to hand over its output once done.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker may run before the run is abandoned: ten minutes, plus 5 ms a member (200
/// deliveries/s, below what even 128 MB of Lambda CPU makes).
fn run_timeout(spec: &RunSpec) -> Duration {
    Duration::from_secs(600)
        + Duration::from_millis(5)
            * u32::try_from(spec.members * u64::from(spec.messages.max(1))).unwrap_or(u32::MAX)
}

/// `GET /stats` on the endpoint.
async fn get_stats(port: u16, full: bool) -> Result<EndpointStats, String> {
    let path = if full { "/stats?full=1" } else { "/stats" };
    let response =
        fanout_test_support::http::request(([127, 0, 0, 1], port).into(), "GET", path, "")
            .await
            .map_err(|e| e.to_string())?;
    serde_json::from_str(&response.body).map_err(|e| format!("endpoint stats: {e}"))
}
