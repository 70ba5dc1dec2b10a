//! `fanout-bench`: the fan-out benchmark. The real worker engine (and the seed tutorial's naive
//! fan-out, for contrast) posts one message to every member of a room of N, over real HTTP on
//! loopback, to a simulated API Gateway management API with latency, a throttle and gone
//! connections. See docs/benchmarks.md.
//!
//! Three processes per run: this one (orchestrator: progress bar, table, JSON, plots), the
//! endpoint (`fanout-bench endpoint`), and the worker (`fanout-bench worker`), so that the
//! worker's peak memory and CPU time are its own.
//!
//! - [`cli`]: the commands and their flags.
//! - [`orchestrator`]: the `run` command; one run = an endpoint process and a worker process.
//! - [`presets`]: the `sweep` command's recorded presets and their targets.
//! - [`charts`] over [`plot`]: the SVG charts; [`report`]: results files and tables.
//! - [`endpoint`] with [`latency`] and [`throttle`]: the simulated management API; [`tls`]: its
//!   `--tls` certificate, which the worker trusts through `SSL_CERT_FILE`.
//! - [`worker`] over [`store`] and [`ids`]: the engine (or the naive fan-out) in its process;
//!   [`jobs`]: the job board that several worker processes share (`--workers`).
//! - [`proc_stats`], [`clock`]: what a process used, and the clock both processes stamp with.
//! - [`cgroup`]: `--memory-mb`, Lambda's CPU for a memory size (a cgroup cpu quota).

// The worker Lambda's allocator, so that the worker process here costs what it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cgroup;
mod charts;
mod cli;
mod clock;
mod endpoint;
mod endpoint_stats;
mod ids;
mod jobs;
mod latency;
mod orchestrator;
mod plot;
mod presets;
mod proc_stats;
mod report;
mod store;
mod throttle;
mod tls;
mod worker;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;
use tokio::runtime::Builder;

fn main() -> ExitCode {
    let result =
        match Cli::parse().command {
            // One thread: the endpoint shares the machine with the worker it measures, and a single
            // thread spends the least CPU per call (no cross-thread wake-ups).
            Command::Endpoint(args) => block_on(
                Builder::new_current_thread(),
                endpoint::serve(args.config(), args.port, args.tls_cert_file.as_deref()),
            )
            .and_then(|served| served.map_err(|e| format!("endpoint: {e}"))),
            // Multi-thread unless asked otherwise (see `worker::Runtime`); the worker Lambda runs
            // on the current-thread runtime, which `--worker-runtime current-thread` measures.
            Command::Worker(args) => block_on(args.runtime.builder(), worker::run(args.config()))
                .map(|report| {
                    println!(
                        "{}",
                        serde_json::to_string(&report).expect("report serializes")
                    );
                }),
            Command::Run(args) => block_on(
                Builder::new_current_thread(),
                orchestrator::run_command(*args),
            )
            .flatten(),
            Command::Sweep(args) => {
                block_on(Builder::new_current_thread(), presets::sweep(args)).flatten()
            }
            Command::Plot(args) => charts::draw_docs_plots(&args.results_dir, &args.img_dir)
                .and_then(|()| {
                    if args.markdown {
                        report::print_markdown(&args.results_dir)
                    } else {
                        Ok(())
                    }
                }),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fanout-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `future` to its end on a runtime built from `builder` (with I/O and timers).
fn block_on<F: Future>(mut builder: Builder, future: F) -> Result<F::Output, String> {
    Ok(builder
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(future))
}
