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
use futures::{SinkExt, StreamExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

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

/// Stops the stack this run started.
struct Stack(Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_stack() -> (Stack, String) {
    let binary = std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("fanout-local"))
        .filter(|path| path.exists())
        .expect("fanout-local is not built: cargo build --release -p fanout-local --examples");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backend",
            "memory",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start fanout-local");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "fanout-local did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Stack(child), format!("ws://127.0.0.1:{port}/local"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(args.clients as u64 + 1000);
    let (_stack, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (stack, url) = start_stack();
            (Some(stack), url)
        }
    };
    let room_url = format!("{url}?room=reach");

    let started = Instant::now();
    let mut sockets = futures::stream::iter(0..args.clients)
        .map(|_| {
            let url = room_url.clone();
            async move { connect_async(&url).await.map(|(socket, _)| socket) }
        })
        .buffer_unordered(args.connect_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every client connects (raise ulimit -n if this fails)");
    println!(
        "{} clients connected in {:.2?}",
        sockets.len(),
        started.elapsed()
    );

    let mut sender = sockets.pop().expect("at least one client");
    // Each member reads on its own task and reports when a message arrives, so arrivals are
    // timed as they happen rather than when one reader gets round to them.
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    for socket in sockets {
        let arrived = arrived.clone();
        tokio::spawn(async move {
            let (_, mut stream) = socket.split();
            // A member that loses its connection stops reporting; the round then says so.
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(_) = frame {
                    let _ = arrived.send(Instant::now());
                }
            }
        });
    }
    let members = args.clients - 1;
    println!("round  ack_ms  first_ms  p50_ms  p99_ms  last_ms");
    for round in 0..args.rounds {
        let sent = Instant::now();
        let text = serde_json::json!({"action":"sendmessage","data":{"round":round}}).to_string();
        sender.send(Message::text(text)).await.expect("send");
        // The sender gets its ack and its own copy; members get one frame each.
        let mut ack_at = None;
        let mut own_at = None;
        while ack_at.is_none() || own_at.is_none() {
            let frame = sender
                .next()
                .await
                .expect("sender open")
                .expect("sender frame");
            let json: serde_json::Value =
                serde_json::from_str(frame.to_text().unwrap_or("{}")).unwrap_or_default();
            match json["type"].as_str() {
                Some("ack") => ack_at = Some(sent.elapsed()),
                Some("message") => own_at = Some(sent.elapsed()),
                _ => panic!("unexpected frame {json}"),
            }
        }
        let mut times = Vec::with_capacity(members + 1);
        while times.len() < members {
            match tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await {
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
