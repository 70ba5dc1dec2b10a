//! How long one message takes to reach every member of a big room on the local stack.
//!
//! ```sh
//! cargo build --release -p fanout-local --examples
//! target/release/examples/reach --clients 10000
//! ```
//!
//! Starts `fanout-local` (from the same target directory) in its own process, so each side has
//! its own open-file budget, connects the clients in one room, sends `--rounds` messages from
//! one of them and reports, per round, when the ack came and when the last member received
//! the message. `--url` measures a stack that is already running instead.

use clap::Parser;
use fanout_test_support::stack_process::StackProcess;
use fanout_test_support::ws::{Client, Event};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// How long a member or the sender waits for a message before the round gives up.
const ROUND_WAIT: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Args {
    /// Clients in the room.
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Messages to time, one after the other.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// A running stack's WebSocket URL (ws://HOST:PORT/STAGE); default: start one.
    #[arg(long)]
    url: Option<String>,
    /// Handshakes in flight while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(args.clients as u64 + 1000);
    let (_stack, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let stack = StackProcess::start(None, &[]);
            let url = stack.websocket_url();
            (Some(stack), url)
        }
    };
    let room_url = format!("{url}?room=reach");

    let started = Instant::now();
    let mut clients = futures::stream::iter(0..args.clients)
        .map(|_| {
            let url = room_url.clone();
            async move { Client::try_connect(&url).await }
        })
        .buffer_unordered(args.connect_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every client connects (raise ulimit -n if this fails)");
    println!(
        "{} clients connected in {:.2?}",
        clients.len(),
        started.elapsed()
    );

    let mut sender = clients.pop().expect("at least one client");
    // Each member reads on its own task and reports when a message arrives, so arrivals are
    // timed as they happen rather than when one reader gets round to them.
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    for mut member in clients {
        let arrived = arrived.clone();
        tokio::spawn(async move {
            // A member that loses its connection stops reporting; the round then says so.
            loop {
                match member.next(ROUND_WAIT).await {
                    Event::Json(_) | Event::Text(_) => {
                        let _ = arrived.send(Instant::now());
                    }
                    Event::Silence => {}
                    Event::Closed(_) => break,
                }
            }
        });
    }
    let members = args.clients - 1;
    println!("round  ack_ms  first_ms  p50_ms  p99_ms  last_ms");
    for round in 0..args.rounds {
        let sent = Instant::now();
        sender.say(serde_json::json!({"round": round})).await;
        // The sender gets its ack and its own copy; members get one frame each.
        let mut ack_at = None;
        let mut own_at = None;
        while ack_at.is_none() || own_at.is_none() {
            let json = sender.next_json(ROUND_WAIT).await;
            match json["type"].as_str() {
                Some("ack") => ack_at = Some(sent.elapsed()),
                Some("message") => own_at = Some(sent.elapsed()),
                _ => panic!("unexpected frame {json}"),
            }
        }
        let mut times = Vec::with_capacity(members + 1);
        while times.len() < members {
            match tokio::time::timeout(ROUND_WAIT, arrivals.recv()).await {
                Ok(Some(at)) => times.push(at.duration_since(sent)),
                _ => {
                    eprintln!(
                        "round {round}: {} of {members} members never received it",
                        members - times.len()
                    );
                    std::process::exit(1);
                }
            }
        }
        times.extend(own_at);
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "{round:>5}  {:>6.1}  {:>8.1}  {:>6.1}  {:>6.1}  {:>7.1}",
            ack_at.unwrap().as_secs_f64() * 1000.0,
            at(0.0),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}
