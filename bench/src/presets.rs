//! The recorded presets (`sweep`): the runs behind each table and plot of docs/benchmarks.md,
//! and the targets they are checked against.

use crate::charts::draw_docs_plots;
use crate::cli::{Conditions, Preset, SweepArgs};
use crate::orchestrator::{default_concurrency, run_all, spec};
use crate::proc_stats;
use crate::report::{RunResult, RunSpec, group_runs};
use crate::worker::{Runtime, Strategy};
use std::time::Duration;

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
        progress_latency: Duration::from_millis(10),
        worker_runtime: Runtime::MultiThread,
        tls: false,
    }
}

const API_GATEWAY_THROTTLE: (f64, f64) = (10_000.0, 5_000.0);
const DEFAULT_LATENCY: &str = "lognormal:20ms:100ms";

pub async fn sweep(args: SweepArgs) -> Result<(), String> {
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
        let (name, specs) = preset_runs(preset, concurrency, scale);
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

/// One preset's name (its results file) and runs; `scale` divides the rooms' sizes.
fn preset_runs(preset: Preset, concurrency: usize, scale: u64) -> (&'static str, Vec<RunSpec>) {
    match preset {
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
        Preset::All => unreachable!("`all` is the list of the others"),
    }
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
            let groups = group_runs(runs, |r| (r.spec.worker_runtime, r.spec.concurrency));
            for ((runtime, conc), group) in groups {
                let mut values: Vec<f64> = group.iter().map(|r| r.deliveries_per_cpu_s).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_its_runs_with_latencies_that_parse_back() {
        for (preset, name, runs) in [
            (Preset::Concurrency, "concurrency", 12),
            (Preset::Throttle, "throttle", 2),
            (Preset::N, "n", 7),
            (Preset::Naive, "naive", 6),
            (Preset::Cpu, "cpu", 16),
        ] {
            let (named, specs) = preset_runs(preset, 256, 1);
            assert_eq!((named, specs.len()), (name, runs));
            for spec in &specs {
                assert_eq!(spec.latency().to_string(), spec.latency, "{name}");
                assert_eq!(spec.page_latency_ms, 20.0, "{name}");
            }
        }
        // Quick: rooms 10x smaller, none under 1,000.
        let (_, specs) = preset_runs(Preset::N, 256, 10);
        assert_eq!(specs.len(), 5);
    }
}
