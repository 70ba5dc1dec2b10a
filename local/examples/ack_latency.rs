//! sendmessage's ack latency on the local stack: one client sends `--messages` messages one
//! after the other and times each from its send to its ack, for each `--stack-binary` in turn,
//! alternating `--rounds` times (machines here drift, so before and after run back to back).
//!
//! ```sh
//! cargo build --release -p fanout-local --bins --examples
//! target/release/examples/ack_latency --stack-binary OLD/fanout-local \
//!   --stack-binary target/release/fanout-local --endpoint-url http://127.0.0.1:5000
//! ```
//!
//! With `--endpoint-url` each stack runs on DynamoDB and SQS there (moto), on tables and queues
//! of its own (`--create-resources`); without it, on the embedded default. Prints, per stack
//! and round, the median, 90th and 99th percentiles and the largest, in milliseconds.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use fanout_test_support::net::{free_port, wait_for_port};
use fanout_test_support::ws::Client;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// A `fanout-local` to measure (repeatable).
    #[arg(long, required = true)]
    stack_binary: Vec<PathBuf>,
    /// DynamoDB and SQS endpoint (moto); default: the embedded backend.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Messages per measurement.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Measurements per stack, alternating between the stacks.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

struct Stack(Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(binary: &PathBuf, port: u16, endpoint: Option<&str>, run: usize) -> Stack {
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--rate-limit-per-second", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let prefix = format!("ack-{}-{run}", std::process::id());
    common::backend(&mut command, endpoint, &prefix);
    let stack = Stack(command.spawn().expect("start fanout-local"));
    wait_for_port(port, Duration::from_secs(60)).expect("fanout-local listens");
    stack
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut run = 0;
    for round in 1..=args.rounds {
        for binary in &args.stack_binary {
            run += 1;
            let port = free_port();
            let _stack = start(binary, port, args.endpoint_url.as_deref(), run);
            let mut client =
                Client::connect(&format!("ws://127.0.0.1:{port}/local?room=ack")).await;
            let mut took = Vec::with_capacity(args.messages);
            for n in 0..args.messages {
                let sent = Instant::now();
                client.say(json!({"n": n})).await;
                loop {
                    let frame = client.next_json(Duration::from_secs(30)).await;
                    match frame["type"].as_str() {
                        Some("ack") => break,
                        Some("message") => continue,
                        _ => panic!("expected an ack, got {frame}"),
                    }
                }
                took.push(sent.elapsed());
            }
            took.sort();
            println!(
                "round {round} {}: {} acks, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                binary.display(),
                took.len(),
                percentile(&took, 0.5),
                percentile(&took, 0.9),
                percentile(&took, 0.99),
                percentile(&took, 1.0),
            );
        }
    }
}
