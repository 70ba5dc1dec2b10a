//! One run's figures, the results file, and the terminal table.

use crate::cgroup::{self, CgroupReport};
use crate::endpoint::{EndpointStats, TIMELINE_STEP};
use crate::latency::Latency;
use crate::proc_stats::Machine;
use crate::worker::{Ordering, PostPath, Runtime, Strategy, WorkerReport};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The conditions of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSpec {
    pub strategy: Strategy,
    /// Members of the room (N).
    pub members: u64,
    /// The engine's in-flight limit (`FANOUT_CONCURRENCY`); for `naive`, the page size, since it
    /// posts to a whole page at once.
    pub concurrency: usize,
    pub latency: String,
    pub throttle_rate: Option<f64>,
    pub throttle_burst: Option<f64>,
    pub gone_fraction: f64,
    /// Ids per store page.
    pub page_size: usize,
    pub page_latency_ms: f64,
    pub payload_bytes: usize,
    /// Each progress-record write; absent (0) in results recorded before checkpoints existed.
    #[serde(default)]
    pub progress_latency_ms: f64,
    #[serde(default)]
    pub worker_runtime: Runtime,
    /// `--memory-mb`: the worker held to this Lambda memory size's CPU; absent if unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// `--tls`: HTTPS to the endpoint; absent (false) in results recorded before it existed.
    #[serde(default)]
    pub tls: bool,
    /// `--post-path`; absent in results recorded before it existed, which ran on the SDK.
    #[serde(default = "PostPath::recorded_default")]
    pub post_path: PostPath,
    /// `--workers`: worker processes sharing the room's parts; absent (1) in older results.
    #[serde(default = "one")]
    pub workers: u32,
    /// `--messages`: messages to the room, back to back; absent (1) in older results.
    #[serde(default = "one")]
    pub messages: u32,
    /// `--ordering`; absent (none) in older results.
    #[serde(default)]
    pub ordering: Ordering,
    /// `--invocation`: each batch's time, in seconds; absent for a day (nothing cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_s: Option<f64>,
}

fn one() -> u32 {
    1
}

impl RunSpec {
    pub fn latency(&self) -> Latency {
        self.latency.parse().expect("specs hold valid latencies")
    }

    /// `min(concurrency / median latency, throttle rate)`, in deliveries per second.
    pub fn bound(&self) -> f64 {
        self.bound_at(self.latency().median())
    }

    /// The same with the mean latency, the true ceiling when the latency varies.
    pub fn mean_bound(&self) -> f64 {
        self.bound_at(self.latency().mean())
    }

    /// `min(concurrency / latency, throttle rate)`.
    fn bound_at(&self, latency: Duration) -> f64 {
        let latency = latency.as_secs_f64();
        // In order, one message of the room at a time: one worker's in-flight limit.
        let workers = match self.ordering {
            Ordering::None => self.workers.max(1),
            Ordering::PerRoom => 1,
        };
        let by_latency = if latency > 0.0 {
            (self.concurrency as f64 * f64::from(workers)) / latency
        } else {
            f64::INFINITY
        };
        by_latency.min(self.throttle_rate.unwrap_or(f64::INFINITY))
    }

    /// Whether the workers take the room's messages from the job board (`jobs`): more than
    /// one worker, more than one message, or per-room order. Otherwise one worker runs the one
    /// message alone, as before the board existed.
    pub fn on_board(&self) -> bool {
        self.workers > 1 || self.messages > 1 || self.ordering == Ordering::PerRoom
    }

    pub fn throttle_label(&self) -> String {
        match (self.throttle_rate, self.throttle_burst) {
            (Some(rate), Some(burst)) => format!("{rate:.0}/s b{burst:.0}"),
            (Some(rate), None) => format!("{rate:.0}/s"),
            _ => "none".into(),
        }
    }

    pub fn transport_label(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub spec: RunSpec,
    /// Members that got the message (at least one 200); with `--messages M`, (member,
    /// message) pairs.
    pub delivered: u64,
    /// Members (pairs) neither gone nor delivered to. Must be 0.
    pub lost: u64,
    /// 200s beyond the first, over all members (pairs).
    pub duplicates: u64,
    /// 200s that reached a member after a later message of the room had (out of order).
    #[serde(default)]
    pub inversions: u64,
    /// Gone members (410) the worker deleted from the store.
    pub stale_removed: u64,
    /// Members the endpoint answers 410 for.
    pub gone_members: u64,
    /// From the start of the fan-out to the last 200 the endpoint sent.
    pub time_to_last_delivery_s: f64,
    pub deliveries_per_s: f64,
    /// Deliveries per second once started and before the tail: over the endpoint's 100 ms
    /// timeline, from the first 429 (the burst spent) or from 10% of the run, to 90% of it.
    pub sustained_per_s: f64,
    /// `min(concurrency / median latency, throttle rate)`.
    pub bound_per_s: f64,
    pub ratio_to_bound: f64,
    /// `min(concurrency / mean latency, throttle rate)`.
    pub mean_bound_per_s: f64,
    pub max_in_flight: u64,
    /// Posts the engine repeated (after a 429, 5xx or timeout).
    pub retries: u64,
    /// Calls the endpoint answered 429.
    pub throttled_calls: u64,
    pub calls: u64,
    pub peak_rss_mib: f64,
    pub baseline_rss_mib: f64,
    pub worker_cpu_s: f64,
    pub deliveries_per_cpu_s: f64,
    pub endpoint_cpu_s: f64,
    pub load_average: Option<f64>,
    /// Cores busy with anything but this run's worker and endpoint, averaged over the run
    /// (another build on the machine shows here).
    pub other_cpu_cores: Option<f64>,
    /// TCP sockets in TIME_WAIT when the run started (left by earlier runs).
    #[serde(default)]
    pub time_wait_at_start: usize,
    /// The worker process's wall clock, from its spawn to its exit (what Lambda would bill).
    #[serde(default)]
    pub worker_wall_s: f64,
    /// With `--memory-mb`: `memory_mb / 1,024 x worker_wall_s x 1e6 / delivered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gb_s_per_million: Option<f64>,
    /// With `--memory-mb`: the worker's cgroup, its quota and how often it bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupReport>,
    pub worker: WorkerReport,
    pub endpoint: EndpointStats,
}

impl RunResult {
    /// Sets the worker's wall clock and, for a memory size, its cost in GB-seconds.
    pub fn set_worker_wall(&mut self, wall_s: f64) {
        self.worker_wall_s = wall_s;
        self.gb_s_per_million = self
            .spec
            .memory_mb
            .and_then(|mb| cgroup::gb_seconds_per_million(mb, wall_s, self.delivered));
    }

    pub fn new(
        spec: RunSpec,
        worker: WorkerReport,
        endpoint: EndpointStats,
        load_average: Option<f64>,
        machine_busy_s: Option<f64>,
    ) -> Self {
        let full = endpoint.full.clone().unwrap_or_default();
        let time = if endpoint.last_ok_us > worker.started_us {
            (endpoint.last_ok_us - worker.started_us) as f64 / 1e6
        } else {
            0.0
        };
        let delivered = endpoint.distinct_delivered;
        let deliveries_per_s = if time > 0.0 {
            delivered as f64 / time
        } else {
            0.0
        };
        let bound = spec.bound();
        let sustained_per_s = sustained(&full.timeline_ok, &full.timeline_throttled);
        Self {
            sustained_per_s,
            delivered,
            lost: full.lost,
            duplicates: full.duplicates,
            inversions: endpoint.inversions,
            stale_removed: worker.store_deletes,
            gone_members: full.gone_members,
            time_to_last_delivery_s: time,
            deliveries_per_s,
            bound_per_s: bound,
            ratio_to_bound: if bound.is_finite() && bound > 0.0 {
                deliveries_per_s / bound
            } else {
                0.0
            },
            mean_bound_per_s: spec.mean_bound(),
            max_in_flight: endpoint.max_in_flight,
            retries: worker.retried,
            throttled_calls: endpoint.throttled,
            calls: endpoint.calls,
            peak_rss_mib: worker.peak_rss_kib as f64 / 1024.0,
            baseline_rss_mib: worker.baseline_rss_kib as f64 / 1024.0,
            worker_cpu_s: worker.cpu_s,
            deliveries_per_cpu_s: if worker.cpu_s > 0.0 {
                delivered as f64 / worker.cpu_s
            } else {
                0.0
            },
            endpoint_cpu_s: endpoint.cpu_s,
            load_average,
            time_wait_at_start: 0,
            worker_wall_s: 0.0,
            gb_s_per_million: None,
            cgroup: None,
            other_cpu_cores: machine_busy_s.map(|busy| {
                ((busy - worker.cpu_s - endpoint.cpu_s) / worker.elapsed_s.max(1e-3)).max(0.0)
            }),
            spec,
            worker,
            endpoint,
        }
    }
}

/// The 200s per second over the steady part of a run (see [`RunResult::sustained_per_s`]).
pub fn sustained(ok: &[u32], throttled: &[u32]) -> f64 {
    let steps = ok.len();
    if steps < 10 {
        return 0.0;
    }
    let first_throttle = throttled.iter().position(|&n| n > 0);
    let start = first_throttle.unwrap_or(steps / 10).min(steps * 9 / 10 - 1);
    let end = steps * 9 / 10;
    let total: u64 = ok[start..end].iter().map(|&n| u64::from(n)).sum();
    total as f64 / ((end - start) as f64 * TIMELINE_STEP.as_secs_f64())
}

/// Runs grouped by `key`, groups and runs in the order they come.
pub fn group_runs<K: PartialEq>(
    runs: &[RunResult],
    key: impl Fn(&RunResult) -> K,
) -> Vec<(K, Vec<&RunResult>)> {
    let mut groups: Vec<(K, Vec<&RunResult>)> = Vec::new();
    for run in runs {
        let k = key(run);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, group)) => group.push(run),
            None => groups.push((k, vec![run])),
        }
    }
    groups
}

/// A results file: every run of one command, with the machine it ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    pub name: String,
    pub command: String,
    pub machine: Machine,
    pub git_commit: Option<String>,
    pub started_at_epoch_s: u64,
    pub runs: Vec<RunResult>,
}

impl ResultsFile {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = serde_json::to_string_pretty(self).expect("results serialize");
        text.push('\n');
        std::fs::write(path, text)
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

const COLUMNS: [&str; 30] = [
    "strategy",
    "runtime",
    "mem MB",
    "N",
    "conc",
    "latency",
    "throttle",
    "transport",
    "post",
    "W",
    "M",
    "order",
    "deliv",
    "lost",
    "dup",
    "inversions",
    "stale",
    "t_last s",
    "deliv/s",
    "sustained/s",
    "bound/s",
    "ratio",
    "max infl",
    "retries",
    "429s",
    "peak MiB",
    "CPU s",
    "deliv/CPU-s",
    "GB-s/M",
    "other cores",
];

pub fn row(run: &RunResult) -> Vec<String> {
    vec![
        run.spec.strategy.to_string(),
        run.spec.worker_runtime.to_string(),
        run.spec
            .memory_mb
            .map_or_else(|| "-".into(), |mb| mb.to_string()),
        run.spec.members.to_string(),
        if run.spec.strategy == Strategy::Naive {
            "all".into()
        } else {
            run.spec.concurrency.to_string()
        },
        run.spec.latency.clone(),
        run.spec.throttle_label(),
        run.spec.transport_label().into(),
        run.spec.post_path.to_string(),
        run.spec.workers.to_string(),
        run.spec.messages.to_string(),
        run.spec.ordering.to_string(),
        run.delivered.to_string(),
        run.lost.to_string(),
        run.duplicates.to_string(),
        run.inversions.to_string(),
        run.stale_removed.to_string(),
        format!("{:.2}", run.time_to_last_delivery_s),
        format!("{:.0}", run.deliveries_per_s),
        if run.sustained_per_s > 0.0 {
            format!("{:.0}", run.sustained_per_s)
        } else {
            "-".into()
        },
        format!("{:.0}", run.bound_per_s),
        format!("{:.3}", run.ratio_to_bound),
        run.max_in_flight.to_string(),
        run.retries.to_string(),
        run.throttled_calls.to_string(),
        format!("{:.1}", run.peak_rss_mib),
        format!("{:.2}", run.worker_cpu_s),
        format!("{:.0}", run.deliveries_per_cpu_s),
        run.gb_s_per_million
            .map_or_else(|| "-".into(), |g| format!("{g:.1}")),
        run.other_cpu_cores
            .map_or_else(|| "?".into(), |c| format!("{c:.2}")),
    ]
}

/// A plain aligned table for the terminal.
pub fn table(runs: &[RunResult]) -> String {
    let rows: Vec<Vec<String>> = runs.iter().map(row).collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 12 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(COLUMNS.iter().map(|s| s.to_string()).collect());
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    for r in rows {
        out.push('\n');
        out.push_str(&line(r));
    }
    out
}

/// The same as a Markdown table, for docs/benchmarks.md.
pub fn markdown(runs: &[RunResult]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for run in runs {
        out.push_str(&format!("| {} |\n", row(run).join(" | ")));
    }
    out
}

/// Markdown tables of every recorded results file, for docs/benchmarks.md.
pub fn print_markdown(results_dir: &Path) -> Result<(), String> {
    for name in [
        "concurrency",
        "throttle",
        "n",
        "naive",
        "cpu",
        "cpu-repeat",
        "engine-before",
        "engine-after",
        "memory",
        "post-path",
        "memory-tls",
        "memory-tls-small",
        "huge-rooms",
        "ordering",
    ] {
        let path = results_dir.join(format!("{name}.json"));
        if path.exists() {
            let results = ResultsFile::read(&path)?;
            println!("### {name}\n\n`{}`\n", results.command);
            println!("{}", markdown(&results.runs));
        }
    }
    Ok(())
}
