//! The local stack under clients that stop reading: do the others still get everything, and
//! does the stack's memory stay flat?
//!
//! ```sh
//! cargo build --release -p fanout-local --bins --examples
//! target/release/examples/slow_readers --clients 10000 --stalled 100 --seconds 60
//! ```
//!
//! Starts `fanout-local` (from the same target directory, or `--stack-binary`) in its own
//! process, connects `--stalled` clients that complete the handshake and never read (with a
//! 4 KiB receive buffer), then the rest of `--clients`, all in one room. One of the readers
//! sends a message of `--data-bytes` every second for `--seconds`. Every second it samples the
//! stack process's RSS (`VmRSS` in `/proc/PID/status`), its open file descriptors, the
//! machine's TCP buffer memory (`/proc/net/sockstat`) and the stack's `/metrics`. At the end
//! it waits for the readers to get every message, checks whether each non-reader's connection
//! was closed by the server, and prints: messages each reader received, non-readers closed,
//! RSS at the start, at most and at the end. It exits non-zero if a reader missed a message.

use clap::Parser;
use fanout_test_support::http::request;
use fanout_test_support::prometheus::metric;
use fanout_test_support::stack_process::StackProcess;
use fanout_test_support::ws::{Client, Event};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Clients in the room, the non-readers included.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Clients that never read.
    #[arg(long, default_value_t = 100)]
    stalled: usize,
    /// How long to send, one message a second.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Size of each message's padding (its `data` is a little larger); frames are limited to
    /// 32 KB.
    #[arg(long, default_value_t = 16_000)]
    data_bytes: usize,
    /// The `fanout-local` to measure; default: the one next to this example.
    #[arg(long)]
    stack_binary: Option<PathBuf>,
    /// An argument for the stack (repeatable), for example --stack-arg=--write-timeout=2s.
    #[arg(long, allow_hyphen_values = true)]
    stack_arg: Vec<String>,
    /// Handshakes in flight while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// How long the readers have, after the last message, to receive everything.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    drain: Duration,
}

/// One sample of the stack process and the machine.
#[derive(Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    /// The machine's TCP buffer memory, both ends of every loopback connection.
    tcp_kib: u64,
    connections: Option<f64>,
    sockets: Option<f64>,
    dropped: Option<f64>,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line["VmRSS:".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// `TCP: ... mem N` of `/proc/net/sockstat`, in pages of 4 KiB.
fn tcp_kib() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("TCP:"))?;
            let mut words = line.split_whitespace();
            words.find(|word| *word == "mem")?;
            words.next()?.parse::<u64>().ok()
        })
        .map_or(0, |pages| pages * 4)
}

async fn sample(pid: u32, addr: SocketAddr) -> Sample {
    let text = request(addr, "GET", "/metrics", "")
        .await
        .map(|response| response.body)
        .unwrap_or_default();
    let dropped = ["outbound_bytes", "write_timeout"]
        .iter()
        .map(|reason| {
            metric(
                &text,
                &format!("fanout_slow_consumers_total{{reason=\"{reason}\"}}"),
            )
        })
        .sum::<Option<f64>>();
    Sample {
        rss_kib: rss_kib(pid),
        fds: open_fds(pid),
        tcp_kib: tcp_kib(),
        connections: metric(&text, "fanout_connections"),
        sockets: metric(&text, "fanout_sockets"),
        dropped,
    }
}

fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.stalled < args.clients,
        "--stalled must be under --clients"
    );
    let _ = rlimit::increase_nofile_limit(args.clients as u64 + 1000);
    let stack = StackProcess::start(args.stack_binary.clone(), &args.stack_arg);
    let (pid, addr) = (stack.pid(), stack.addr());
    let url = format!("ws://{addr}/local?room=abuse");

    let started = Instant::now();
    let connect = |count: usize, stalled: bool| {
        let url = url.clone();
        futures::stream::iter(0..count)
            .map(move |_| {
                let url = url.clone();
                async move {
                    if stalled {
                        Client::try_connect_with_receive_buffer(&url, 4096).await
                    } else {
                        Client::try_connect(&url).await
                    }
                }
            })
            .buffer_unordered(args.connect_concurrency)
            .collect::<Vec<_>>()
    };
    let mut stalled: Vec<Client> = connect(args.stalled, true)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every non-reader connects (raise ulimit -n if this fails)");
    let readers: Vec<Client> = connect(args.clients - args.stalled - 1, false)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every reader connects (raise ulimit -n if this fails)");
    let (sender, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the sender connects");
    println!(
        "{} clients ({} never read) connected in {:.2?}",
        args.clients,
        args.stalled,
        started.elapsed()
    );

    // Each reader counts the messages it receives; the sender is a reader too.
    let counts: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..readers.len() + 1)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let closed_readers = Arc::new(AtomicUsize::new(0));
    for (i, mut reader) in readers.into_iter().enumerate() {
        let (counts, closed) = (counts.clone(), closed_readers.clone());
        tokio::spawn(async move {
            loop {
                match reader.next(Duration::from_secs(3600)).await {
                    Event::Json(frame) if frame["type"] == "message" => {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                    Event::Closed(_) => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    _ => {}
                }
            }
        });
    }
    let (mut send, mut receive) = sender.split();
    let acks = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    {
        let (counts, acks, refused) = (counts.clone(), acks.clone(), refused.clone());
        let own = counts.len() - 1;
        tokio::spawn(async move {
            while let Some(Ok(frame)) = receive.next().await {
                let Message::Text(text) = frame else { continue };
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                match json["type"].as_str() {
                    Some("message") => counts[own].fetch_add(1, Ordering::Relaxed),
                    Some("ack") => acks.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }

    let baseline = sample(pid, addr).await;
    let mut max_rss = baseline.rss_kib;
    let mut max_tcp = baseline.tcp_kib;
    println!("    t   rss_MiB  fds  tcp_MiB  connections  sockets  dropped  min_received");
    let line = |t: u64, s: &Sample, min: usize| {
        println!(
            "{t:>5}  {:>8.1}  {:>5}  {:>7.1}  {:>11}  {:>7}  {:>7}  {min:>12}",
            mib(s.rss_kib),
            s.fds,
            mib(s.tcp_kib),
            show(s.connections),
            show(s.sockets),
            show(s.dropped)
        )
    };
    let min_received = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    line(0, &baseline, 0);
    let pad = "x".repeat(args.data_bytes);
    let begin = tokio::time::Instant::now();
    for n in 0..args.seconds {
        tokio::time::sleep_until(begin + Duration::from_secs(n)).await;
        let body = serde_json::json!({"action": "sendmessage", "data": {"n": n, "pad": pad}});
        send.send(Message::text(body.to_string()))
            .await
            .expect("the sender sends");
        let now = sample(pid, addr).await;
        max_rss = max_rss.max(now.rss_kib);
        max_tcp = max_tcp.max(now.tcp_kib);
        if n % 5 == 4 {
            line(n + 1, &now, min_received());
        }
    }
    let sent = args.seconds as usize;
    let drain_until = Instant::now() + args.drain;
    let mut t = args.seconds;
    while min_received() < sent && Instant::now() < drain_until {
        tokio::time::sleep_until(begin + Duration::from_secs(t + 1)).await;
        t += 1;
        let now = sample(pid, addr).await;
        max_rss = max_rss.max(now.rss_kib);
        max_tcp = max_tcp.max(now.tcp_kib);
        if t % 10 == 0 {
            line(t, &now, min_received());
        }
    }
    let drained = begin.elapsed();
    let end = sample(pid, addr).await;
    line(drained.as_secs(), &end, min_received());

    // A non-reader reads at last: what its buffers held, then the end, if the server closed
    // it; silence if it is still open.
    let closed = futures::future::join_all(stalled.iter_mut().map(async |client| {
        loop {
            match client.next(Duration::from_secs(2)).await {
                Event::Closed(_) => return true,
                Event::Silence => return false,
                _ => {}
            }
        }
    }))
    .await
    .into_iter()
    .filter(|&closed| closed)
    .count();

    let received: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let complete = received.iter().filter(|&&n| n >= sent).count();
    println!();
    println!(
        "sent {sent} messages of {} bytes (acked {}, refused {})",
        args.data_bytes,
        acks.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "readers: {complete} of {} received all {sent} (fewest {}, most {}); {} were closed; \
         all in {drained:.1?}",
        received.len(),
        received.iter().min().unwrap_or(&0),
        received.iter().max().unwrap_or(&0),
        closed_readers.load(Ordering::Relaxed)
    );
    println!(
        "non-readers closed by the server: {closed} of {}",
        args.stalled
    );
    println!(
        "stack RSS: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB; open fds: start {}, end {}",
        mib(baseline.rss_kib),
        mib(max_rss),
        mib(end.rss_kib),
        baseline.fds,
        end.fds
    );
    println!(
        "machine's TCP buffers: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB",
        mib(baseline.tcp_kib),
        mib(max_tcp),
        mib(end.tcp_kib)
    );
    drop(stack);
    if complete < received.len() {
        std::process::exit(1);
    }
}
