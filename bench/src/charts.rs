//! The benchmark's charts, drawn from recorded runs: throughput against concurrency or room
//! size, peak memory, and the throttle's timeline; and the docs' SVGs made of them.

use crate::endpoint::TIMELINE_STEP;
use crate::plot::{self, Chart, PALETTE, Series, XAxis};
use crate::report::{ResultsFile, RunResult, group_runs};
use std::path::Path;

/// What a throughput chart plots along x.
#[derive(Clone, Copy)]
pub enum Axis {
    Concurrency,
    Members,
}

/// Deliveries per second against concurrency or N, one line per strategy and latency, with the
/// bounds dashed.
pub fn throughput_chart(runs: &[RunResult], axis: Axis) -> Chart<'static> {
    let x = |r: &RunResult| match axis {
        Axis::Concurrency => r.spec.concurrency as f64,
        Axis::Members => r.spec.members as f64,
    };
    let groups = group_runs(runs, |run| {
        format!(
            "{} {} throttle {}{}",
            run.spec.strategy,
            run.spec.latency,
            run.spec.throttle_label(),
            if run.spec.tls { " https" } else { "" }
        )
    });
    let mut series = Vec::new();
    for (i, (key, group)) in groups.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        series.push(Series {
            label: format!("measured: {key}"),
            points: points(group.iter().copied(), |r| (x(r), r.deliveries_per_s)),
            color,
            dashed: false,
            markers: true,
        });
        if matches!(axis, Axis::Concurrency) {
            let mean_differs = group
                .iter()
                .any(|r| (r.mean_bound_per_s - r.bound_per_s).abs() > 1.0);
            series.push(Series {
                label: "bound: min(concurrency / median latency, throttle)".into(),
                points: points(group.iter().copied(), |r| (x(r), r.bound_per_s)),
                color: PALETTE[5],
                dashed: true,
                markers: false,
            });
            if mean_differs {
                series.push(Series {
                    label: format!(
                        "ceiling for {}: concurrency / mean latency",
                        group[0].spec.latency
                    ),
                    points: points(group.iter().copied(), |r| (x(r), r.mean_bound_per_s)),
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
        Axis::Concurrency => Chart {
            title: "Deliveries per second against concurrency",
            x_desc: "concurrency (posts in flight)",
            y_desc: "deliveries / s",
            x_axis: XAxis::Log2,
            series,
        },
        Axis::Members => Chart {
            title: "Deliveries per second against room size",
            x_desc: "members in the room (N)",
            y_desc: "deliveries / s",
            x_axis: XAxis::Log10,
            series,
        },
    }
}

fn memory_chart(runs: &[RunResult]) -> Chart<'static> {
    let members = |r: &RunResult| r.spec.members as f64;
    Chart {
        title: "Worker peak memory against room size",
        x_desc: "members in the room (N)",
        y_desc: "MiB",
        x_axis: XAxis::Log10,
        series: vec![
            Series {
                label: "peak RSS (VmHWM) of the worker process".into(),
                points: points(runs, |r| (members(r), r.peak_rss_mib)),
                color: PALETTE[0],
                dashed: false,
                markers: true,
            },
            Series {
                label: "RSS before the fan-out (runtime + SDK client)".into(),
                points: points(runs, |r| (members(r), r.baseline_rss_mib)),
                color: PALETTE[5],
                dashed: true,
                markers: false,
            },
        ],
    }
}

/// `(x, y)` of each run, in the order of x.
fn points<'a>(
    runs: impl IntoIterator<Item = &'a RunResult>,
    xy: impl Fn(&RunResult) -> (f64, f64),
) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = runs.into_iter().map(xy).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// docs/img/bench-concurrency.svg and docs/img/bench-n.svg from the recorded results.
pub fn draw_docs_plots(results_dir: &Path, img_dir: &Path) -> Result<(), String> {
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
fn timeline_chart(runs: &[RunResult]) -> Chart<'static> {
    let per_second = |steps: &[u32]| -> Vec<(f64, f64)> {
        let per = (1.0 / TIMELINE_STEP.as_secs_f64()).round() as usize;
        // Averaged over 500 ms, plotted at the middle of each window.
        let window = (per / 2).max(1);
        steps
            .chunks(window)
            .enumerate()
            .map(|(i, chunk)| {
                let count: u32 = chunk.iter().sum();
                let secs = chunk.len() as f64 * TIMELINE_STEP.as_secs_f64();
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
        let color = PALETTE[i % PALETTE.len()];
        for (status, steps, dashed) in [
            ("200s", &full.timeline_ok, false),
            ("429s", &full.timeline_throttled, true),
        ] {
            series.push(Series {
                label: format!("{status}/s, concurrency {}", run.spec.concurrency),
                points: per_second(steps),
                color,
                dashed,
                markers: false,
            });
        }
    }
    Chart {
        title: "Under a 10,000/s throttle (burst 5,000): accepted and throttled calls",
        x_desc: "seconds since the first call",
        y_desc: "calls / s",
        x_axis: XAxis::Linear,
        series,
    }
}
