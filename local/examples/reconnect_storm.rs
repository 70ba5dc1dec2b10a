//! A reconnect storm on the local stack: `--clients` members of one room are cut off at once
//! (a deploy, API Gateway's 2-hour cut), `--missed` messages are sent to the room meanwhile,
//! then every member reconnects at the same moment and asks to recover from the last offset it
//! saw (`{"action":"recover","offset":P,"epoch":E}`).
//!
//! ```sh
//! cargo build --release -p fanout-local --bins --examples
//! target/release/examples/reconnect_storm --clients 10000 --missed 20
//! ```
//!
//! Starts `fanout-local` in its own process (`--rate-limit-per-second 0`, `--history-size` at
//! least `--missed`), on the embedded backend or, with `--endpoint-url`, on DynamoDB and SQS
//! there (moto). Reports, per client, the time from the storm's start until it holds its missed
//! messages and a `recovered` frame with `complete: true` (median, 90th and 99th percentiles,
//! largest), the time until the last client is done, incomplete recoveries, error frames (each
//! answered by asking again after `--retry-wait`, as a client would), reconnects, and the
//! stack's recovery counters from its `/metrics` before and after. The local stack does not
//! count store reads: the reads are computed from what the recover handler does (one
//! strongly consistent `GetItem` of the connection, one of the room's sequence, then `Query`
//! pages of at most 100 entries). API Gateway's throttle of the `recover` route is not
//! emulated: this is the unthrottled worst case. `--storm-concurrency` bounds the handshakes in
//! flight during the storm (API Gateway paces new connections too: 500 a second per account
//! and region by default); without it, the local listener's backlog overflows and the kernel's
//! SYN retransmissions, not the recoveries, set the pace. `--stack-log` keeps the stack's log.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use fanout_test_support::http;
use fanout_test_support::net::{free_port, wait_for_port};
use fanout_test_support::ws::{Client, Event};
use futures::StreamExt;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// Entries the recover handler reads from history at a time (functions/src/handlers/recover.rs).
const PAGE: u64 = 100;
/// How long a phase may take before the run gives up.
const PHASE_WAIT: Duration = Duration::from_secs(300);

#[derive(Parser)]
struct Args {
    /// The `fanout-local` to measure.
    #[arg(long, default_value = "target/release/fanout-local")]
    stack_binary: PathBuf,
    /// Members of the room.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Messages sent while the members are away.
    #[arg(long, default_value_t = 20)]
    missed: u64,
    /// DynamoDB and SQS endpoint (moto); default: the embedded backend.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Handshakes in flight while the members first connect (before the storm).
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Handshakes in flight during the storm; 0: every client at once (the worst case). The
    /// local stack's listener queues 1,024 handshakes (tokio's backlog): beyond, the kernel
    /// drops SYNs and clients retransmit them after 1, 3, 7, 15... seconds.
    #[arg(long, default_value_t = 0)]
    storm_concurrency: usize,
    /// How long a client waits after an error frame or a failed handshake before it tries
    /// again, for example 200ms.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    retry_wait: Duration,
    /// `--history-size` of the stack; default: `--missed`, at least 100 (the default).
    #[arg(long)]
    history_size: Option<u64>,
    /// Write the stack's log (stdout, RUST_LOG=warn) to this file; default: discard it.
    #[arg(long)]
    stack_log: Option<PathBuf>,
    /// Characters of filler in each missed message's `data` (`{"n":N,"text":"xx..."}`; 0:
    /// `{"n":N}`), for the read units of bigger messages.
    #[arg(long, default_value_t = 0)]
    data_bytes: usize,
}

struct Stack {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &Args, history_size: u64) -> Stack {
    let port = free_port();
    let mut command = Command::new(&args.stack_binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--rate-limit-per-second", "0"])
        .args(["--history-size", &history_size.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(match &args.stack_log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create --stack-log")),
            None => Stdio::null(),
        });
    let prefix = format!("storm-{}", std::process::id());
    common::backend(&mut command, args.endpoint_url.as_deref(), &prefix);
    let child = command.spawn().expect("start fanout-local");
    let stack = Stack {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_for_port(port, Duration::from_secs(60)).expect("fanout-local listens");
    stack
}

/// The stack's `/metrics`.
async fn metrics(addr: SocketAddr) -> String {
    http::request(addr, "GET", "/metrics", "")
        .await
        .map(|response| response.body)
        .unwrap_or_default()
}

/// The samples of `/metrics` whose name holds `word`, by name.
fn samples(text: &str, word: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains(word))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The process's CPU time (user and system), from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process's resident memory in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The process's open file descriptors, from /proc.
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summary(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(sorted, 0.5),
        percentile(sorted, 0.9),
        percentile(sorted, 0.99),
        percentile(sorted, 1.0)
    )
}

/// Reads the sender's frames until the ack; returns its offset and epoch. The offsets of the
/// sender's own deliveries read meanwhile go to `delivered`.
async fn ack(sender: &mut Client, delivered: &mut BTreeSet<u64>) -> (u64, String) {
    loop {
        let frame = sender.next_json(Duration::from_secs(30)).await;
        match frame["type"].as_str() {
            Some("ack") => {
                return (
                    frame["offset"].as_u64().expect("an ack with an offset"),
                    frame["epoch"]
                        .as_str()
                        .expect("an ack with an epoch")
                        .to_owned(),
                );
            }
            Some("message") => {
                delivered.extend(frame["offset"].as_u64());
            }
            _ => panic!("expected an ack, got {frame}"),
        }
    }
}

/// What one client's recovery took.
#[derive(Default)]
struct Outcome {
    /// From the storm's start until it held every missed message and a complete `recovered`.
    done: Option<Duration>,
    /// From the storm's start until its (last) handshake finished.
    opened: Option<Duration>,
    /// Handshakes that failed and were tried again, by error.
    failed_handshakes: BTreeMap<String, u32>,
    /// Times the server closed the connection mid-recovery, and it reconnected.
    reconnects: u32,
    /// Recover requests sent: the first, and each one again after an error frame, a short
    /// or incomplete answer, or a reconnect.
    asks: u32,
    /// Error frames by code.
    errors: BTreeMap<String, u32>,
    /// `recovered` frames with `complete: false`.
    incomplete: u32,
    /// `recovered` frames whose `count` was not `--missed`.
    wrong_count: u32,
    /// Missed messages received more than once.
    duplicates: u32,
    /// Frames of any other kind (or messages outside the missed range).
    other: u32,
    /// Why it gave up, if it did.
    gave_up: Option<String>,
}

/// One member's side of the storm: connect, ask to recover from `(offset, epoch)`, read until
/// every missed message and a complete `recovered` frame came.
async fn recover(
    url: String,
    request: String,
    missed: (u64, u64),
    storm: Instant,
    retry_wait: Duration,
    handshakes: Option<Arc<Semaphore>>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut got = BTreeSet::new();
    let deadline = storm + PHASE_WAIT;
    'connect: loop {
        if Instant::now() >= deadline {
            outcome.gave_up = Some("out of time".into());
            return outcome;
        }
        let permit = match &handshakes {
            Some(handshakes) => Some(handshakes.acquire().await.expect("open semaphore")),
            None => None,
        };
        let connected = Client::try_connect(&url).await;
        drop(permit);
        let mut client = match connected {
            Ok(client) => client,
            Err(error) => {
                *outcome
                    .failed_handshakes
                    .entry(error.to_string())
                    .or_default() += 1;
                tokio::time::sleep(retry_wait).await;
                continue;
            }
        };
        outcome.opened = Some(storm.elapsed());
        outcome.asks += 1;
        if client.send(Message::text(request.clone())).await.is_err() {
            outcome.reconnects += 1;
            continue;
        }
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match client.next(wait).await {
                Event::Json(frame) => match frame["type"].as_str() {
                    Some("message") => match frame["offset"].as_u64() {
                        Some(offset) if (missed.0..=missed.1).contains(&offset) => {
                            if !got.insert(offset) {
                                outcome.duplicates += 1;
                            }
                        }
                        _ => outcome.other += 1,
                    },
                    Some("recovered") => {
                        if frame["complete"] != json!(true) {
                            outcome.incomplete += 1;
                        }
                        if frame["count"].as_u64() != Some(missed.1 - missed.0 + 1) {
                            outcome.wrong_count += 1;
                        }
                        if frame["complete"] == json!(true)
                            && got.len() as u64 == missed.1 - missed.0 + 1
                        {
                            outcome.done = Some(storm.elapsed());
                            return outcome;
                        }
                        // Incomplete or short: ask again, as a client would after a gap.
                        tokio::time::sleep(retry_wait).await;
                        outcome.asks += 1;
                        if client.send(Message::text(request.clone())).await.is_err() {
                            outcome.reconnects += 1;
                            continue 'connect;
                        }
                    }
                    Some("error") => {
                        let code = frame["code"].as_str().unwrap_or("?").to_owned();
                        *outcome.errors.entry(code).or_default() += 1;
                        tokio::time::sleep(retry_wait).await;
                        outcome.asks += 1;
                        if client.send(Message::text(request.clone())).await.is_err() {
                            outcome.reconnects += 1;
                            continue 'connect;
                        }
                    }
                    _ => outcome.other += 1,
                },
                Event::Text(_) => outcome.other += 1,
                Event::Closed(_) => {
                    outcome.reconnects += 1;
                    continue 'connect;
                }
                Event::Silence => {
                    outcome.gave_up = Some("out of time".into());
                    return outcome;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // The clients' sockets, twice over while closed ones linger, and some spare.
    let open_files = rlimit::increase_nofile_limit(2 * args.clients as u64 + 1000).unwrap_or(0);
    if open_files < args.clients as u64 + 100 {
        eprintln!("warning: open-file limit {open_files}; raise it (ulimit -n) for --clients");
    }
    let history_size = args.history_size.unwrap_or(args.missed.max(100));
    assert!(
        history_size >= args.missed,
        "--history-size must hold --missed messages"
    );
    let stack = start(&args, history_size);
    let pid = stack.child.id();
    let url = format!("ws://{}/local?room=storm", stack.addr);
    println!(
        "fanout-local {} (pid {pid}) on {}, {} backend, history size {history_size}; load {}",
        args.stack_binary.display(),
        stack.addr,
        if args.endpoint_url.is_some() {
            "aws (moto)"
        } else {
            "memory"
        },
        load()
    );

    // 1. The room: the members, then the sender.
    let started = Instant::now();
    let members = futures::stream::iter(0..args.clients)
        .map(|_| {
            let url = url.clone();
            async move { Client::try_connect(&url).await }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every member connects (raise ulimit -n if this fails)");
    let mut sender = Client::connect(&url).await;
    println!(
        "{} members and a sender connected in {:.2?}",
        members.len(),
        started.elapsed()
    );

    // 2. One message every member sees: its offset P and epoch E are where they stand.
    sender.say(json!({"n": 0})).await;
    let (seen, epoch) = ack(&mut sender, &mut BTreeSet::new()).await;
    let started = Instant::now();
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            tokio::spawn(async move {
                loop {
                    match member.next(PHASE_WAIT).await {
                        Event::Json(frame)
                            if frame["type"] == "message"
                                && frame["offset"].as_u64() == Some(seen) =>
                        {
                            return Some(member);
                        }
                        Event::Json(_) | Event::Text(_) => continue,
                        Event::Closed(_) | Event::Silence => return None,
                    }
                }
            })
        })
        .collect();
    let mut members = Vec::with_capacity(readers.len());
    for reader in readers {
        members.push(
            reader
                .await
                .expect("a reader")
                .expect("every member receives the first message"),
        );
    }
    println!(
        "every member has offset {seen} of epoch {epoch} ({:.2?} after its ack)",
        started.elapsed()
    );

    // 3. The cut: every member goes away; the stack runs $disconnect for each.
    let started = Instant::now();
    futures::stream::iter(members)
        .map(Client::close)
        .buffer_unordered(1000)
        .collect::<Vec<()>>()
        .await;
    loop {
        let text = metrics(stack.addr).await;
        let open = fanout_test_support::prometheus::metric(&text, "fanout_connections");
        if open == Some(1.0) || started.elapsed() > PHASE_WAIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} members closed in {:.2?}; the sender is the room's only connection",
        args.clients,
        started.elapsed()
    );

    // 4. What they miss: `--missed` messages, acked one after the other; then the sender's own
    // deliveries of them, so that their fan-outs are over before the storm.
    let filler = "x".repeat(args.data_bytes);
    let mut delivered = BTreeSet::new();
    let mut offsets = Vec::with_capacity(args.missed as usize);
    for n in 1..=args.missed {
        let data = if args.data_bytes == 0 {
            json!({"n": n})
        } else {
            json!({"n": n, "text": filler})
        };
        sender.say(data).await;
        let (offset, acked_epoch) = ack(&mut sender, &mut delivered).await;
        assert_eq!(acked_epoch, epoch, "the room's epoch held");
        offsets.push(offset);
    }
    let missed = (seen + 1, seen + args.missed);
    assert_eq!(
        offsets,
        (missed.0..=missed.1).collect::<Vec<_>>(),
        "the missed messages took the next offsets"
    );
    delivered.retain(|offset| (missed.0..=missed.1).contains(offset));
    while (delivered.len() as u64) < args.missed {
        match sender.next(Duration::from_secs(30)).await {
            Event::Json(frame) if frame["type"] == "message" => {
                delivered.extend(frame["offset"].as_u64().filter(|o| *o >= missed.0));
            }
            Event::Json(_) | Event::Text(_) => {}
            other => panic!("the sender's own deliveries: {other:?}"),
        }
    }
    println!(
        "{} messages missed: offsets {}..={}",
        args.missed, missed.0, missed.1
    );

    // 5. The storm: every member reconnects at once and asks to recover.
    let before = metrics(stack.addr).await;
    let cpu_before = cpu_seconds(pid);
    let request = json!({"action": "recover", "offset": seen, "epoch": epoch}).to_string();
    let handshakes =
        (args.storm_concurrency > 0).then(|| Arc::new(Semaphore::new(args.storm_concurrency)));
    let storm = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            tokio::spawn(recover(
                url.clone(),
                request.clone(),
                missed,
                storm,
                args.retry_wait,
                handshakes.clone(),
            ))
        })
        .collect();
    // Sample the load and the stack's memory while it runs.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(async move {
        let (mut peak_rss, mut peak_load, mut peak_fds) = (0.0_f64, 0.0_f64, 0);
        loop {
            peak_rss = peak_rss.max(rss_mib(pid).unwrap_or(0.0));
            peak_fds = peak_fds.max(open_fds(pid).unwrap_or(0));
            let one_minute = load().split(' ').next().and_then(|l| l.parse().ok());
            peak_load = peak_load.max(one_minute.unwrap_or(0.0));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
        (peak_rss, peak_load, peak_fds)
    });
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a client's task"));
    }
    let storm_took = storm.elapsed();
    let _ = stop.send(true);
    let (peak_rss, peak_load, peak_fds) = sampler.await.unwrap_or((f64::NAN, f64::NAN, 0));
    let cpu_after = cpu_seconds(pid);
    // The stack's counters settle once its last recovered frame is posted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = metrics(stack.addr).await;

    // 6. What it took.
    let mut done: Vec<Duration> = outcomes.iter().filter_map(|o| o.done).collect();
    done.sort();
    let mut opened: Vec<Duration> = outcomes.iter().filter_map(|o| o.opened).collect();
    opened.sort();
    // From its (last) open, as it asked, until it was done: the recovery itself.
    let mut recovering: Vec<Duration> = outcomes
        .iter()
        .filter_map(|o| Some(o.done? - o.opened?))
        .collect();
    recovering.sort();
    let mut handshake_errors: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in &outcomes {
        for (error, count) in &outcome.failed_handshakes {
            *handshake_errors.entry(error.clone()).or_default() += u64::from(*count);
        }
    }
    let sum = |f: fn(&Outcome) -> u32| outcomes.iter().map(f).map(u64::from).sum::<u64>();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in &outcomes {
        for (code, count) in &outcome.errors {
            *errors.entry(code.clone()).or_default() += u64::from(*count);
        }
    }
    let gave_up = outcomes.iter().filter(|o| o.gave_up.is_some()).count();
    println!(
        "storm: {} of {} clients recovered {} messages each; the last after {:.0} ms",
        done.len(),
        args.clients,
        args.missed,
        storm_took.as_secs_f64() * 1000.0
    );
    println!("  done:   {}", summary(&done));
    println!("  opened: {}", summary(&opened));
    println!("  from open to done: {}", summary(&recovering));
    println!(
        "  recovered complete=false: {}; wrong count: {}; error frames: {:?}; retries: {}; \
         reconnects: {}; failed handshakes: {:?}; duplicates: {}; other frames: {}; \
         gave up: {gave_up}",
        sum(|o| o.incomplete),
        sum(|o| o.wrong_count),
        errors,
        sum(|o| o.asks) - args.clients as u64,
        sum(|o| o.reconnects),
        handshake_errors,
        sum(|o| o.duplicates),
        sum(|o| o.other),
    );
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!(
            "  stack CPU during the storm: {:.2} s ({:.2} cores over {:.2} s)",
            b - a,
            (b - a) / storm_took.as_secs_f64(),
            storm_took.as_secs_f64()
        );
    }
    println!(
        "  stack peaks during the storm: RSS {peak_rss:.0} MiB, {peak_fds} open files; load \
         average (1 min) peak {peak_load:.2}, now {}",
        load()
    );

    // The store's reads, as the recover handler makes them (not counted by the local stack).
    let recoveries = sum(|o| o.asks);
    let pages = args.missed.div_ceil(PAGE).max(1);
    // Each kept entry: its data, and about 150 bytes of keys, ids and times
    // (docs/contracts.md, "What a message costs"). A strongly consistent read unit is 4 KB.
    let entry_bytes = 150 + 10 + args.data_bytes as u64;
    let page_units: u64 = (0..pages)
        .map(|page| {
            let entries = (args.missed - page * PAGE).min(PAGE);
            (entries * entry_bytes).div_ceil(4096).max(1)
        })
        .sum();
    println!(
        "  store reads per recovery (computed): 1 GetItem of the connection + 1 GetItem of the \
         room's sequence + {pages} Query page(s), all strongly consistent: {} read units \
         ({page_units} for the pages at ~{entry_bytes} B an entry); for {recoveries} recover \
         requests sent: {} requests, {} read units, {} of them on the room's partition",
        2 + page_units,
        recoveries * (2 + pages),
        recoveries * (2 + page_units),
        recoveries * (1 + page_units),
    );

    let (before, after) = (samples(&before, "recover"), samples(&after, "recover"));
    println!("  /metrics (recover), before -> after:");
    for (name, value) in &after {
        println!(
            "    {name} {} -> {value}",
            before.get(name).copied().unwrap_or(0.0)
        );
    }
    for outcome in outcomes.iter().filter(|o| o.gave_up.is_some()).take(5) {
        println!(
            "  gave up: {:?} after {:?}, errors {:?}",
            outcome.gave_up, outcome.opened, outcome.errors
        );
    }
}
