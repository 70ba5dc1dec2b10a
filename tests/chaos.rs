//! Faults end to end: real WebSocket clients in one room, a fan-out through a management API
//! that answers 500s, then 429s, then hangs, and a worker whose invocations are killed mid-run.
//! The contract under test (docs/architecture.md, "What holds under faults"): everyone gets the
//! message at least once; after one crash, at most `FANOUT_CONCURRENCY + CHECKPOINT_EVERY` get
//! it twice; nothing is dead-lettered.

use e2e::{embedded, join};
use fanout_local::LocalStack;
use fanout_local::faults::FaultKind;
use fanout_test_support::http::request;
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Audience, Client, Heard};
use serde_json::json;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(45);

/// Sends from the first client and returns the message id from its ack.
async fn send_from_first(clients: &mut [Client], data: serde_json::Value) -> String {
    clients[0].say(data).await;
    let ack = clients[0].next_json(WAIT).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["id"].as_str().expect("an id").to_owned()
}

async fn metrics(stack: &LocalStack) -> String {
    request(stack.addr(), "GET", "/metrics", "")
        .await
        .expect("GET /metrics")
        .body
}

/// Waits until the queue holds nothing (ready, in flight or delayed), for at most `WAIT`.
async fn until_the_queue_is_empty(stack: &LocalStack) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics(stack).await;
        let depth = |name| metric(&text, name).unwrap_or(f64::NAN);
        let left = depth("fanout_queue_depth")
            + depth("fanout_queue_in_flight")
            + depth("fanout_queue_delayed");
        if left == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never emptied:\n{text}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Everyone heard `id` and nothing else; how many heard it more than once.
fn duplicates(heard: &[Heard], id: &str) -> usize {
    let mut twice = 0;
    for (i, member) in heard.iter().enumerate() {
        let times = member.messages.get(id).copied().unwrap_or(0);
        assert!(times >= 1, "member {i} never got {id}: {member:?}");
        assert_eq!(member.messages.len(), 1, "member {i}: {member:?}");
        assert!(member.other.is_empty(), "member {i}: {member:?}");
        twice += usize::from(times > 1);
    }
    twice
}

/// 800 clients; during the fan-out the management API answers 500 for 3 s, then 429 for 3 s,
/// then hangs for 4 s (longer than a post's 3 s timeout); then, with posts flowing again, the
/// worker's invocation is killed, and the worker goes on. One invocation of one job at a time
/// (`--worker-concurrency 1 --batch-size 1`) makes the kill one crash of one run, which is what
/// the duplicate bound is about; the visibility timeout is just over the worker's timeout, so
/// the killed job comes back once its run's lease has expired, as with SQS's default of 6×.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_through_5xx_429_hangs_and_a_kill_reaches_everyone_within_the_bound() {
    const CLIENTS: usize = 800;
    let began = Instant::now();
    let stack = embedded(&[
        "--fanout-concurrency",
        "16",
        "--management-latency",
        "100ms",
        "--worker-concurrency",
        "1",
        "--batch-size",
        "1",
        "--worker-timeout",
        "10s",
        "--visibility-timeout",
        "11s",
    ])
    .await;
    let config = stack.engine_config();
    let bound = config.concurrency + config.checkpoint_window();
    assert_eq!(bound, 32, "FANOUT_CONCURRENCY 16, CHECKPOINT_EVERY = it");
    let mut clients = join(&stack, "storm", CLIENTS).await;
    let connected = began.elapsed();

    let sent = Instant::now();
    let id = send_from_first(&mut clients, json!("through the storm")).await;
    let audience = Audience::listen(clients);
    assert!(
        audience.wait_reached(CLIENTS / 20, WAIT).await,
        "the fan-out started"
    );
    let at_faults = audience.reached();
    for (kind, secs) in [
        (FaultKind::InternalError, 3),
        (FaultKind::Throttled, 3),
        (FaultKind::Hang, 4),
    ] {
        stack.inject_management_fault(kind, Duration::from_secs(secs));
        sleep(Duration::from_secs(secs)).await;
    }
    let after_faults = audience.reached();
    // Kill while posts flow again, well before the end.
    assert!(
        audience
            .wait_reached((after_faults + 40).min(CLIENTS * 3 / 4), WAIT)
            .await,
        "posts resumed after the faults"
    );
    // Between two invocations nothing is running: try again a moment later.
    let give_up = Instant::now() + Duration::from_secs(5);
    let at_kill = loop {
        let reached = audience.reached();
        if stack.kill_worker_invocations() == 1 {
            break reached;
        }
        assert!(Instant::now() < give_up, "no invocation to kill");
        sleep(Duration::from_millis(5)).await;
    };
    assert!(at_kill < CLIENTS, "the kill must land mid-fan-out");

    assert!(
        audience.wait_reached(CLIENTS, WAIT).await,
        "everyone is reached in the end; {} of {CLIENTS} were",
        audience.reached()
    );
    let everyone = sent.elapsed();
    until_the_queue_is_empty(&stack).await;
    sleep(Duration::from_millis(500)).await;
    let heard = audience.finish(WAIT).await;
    let twice = duplicates(&heard, &id);

    let text = metrics(&stack).await;
    let count = |name: &str| metric(&text, name).unwrap_or(0.0) as u64;
    let faults = [
        count(r#"fanout_management_faults_total{kind="500"}"#),
        count(r#"fanout_management_faults_total{kind="429"}"#),
        count(r#"fanout_management_faults_total{kind="hang"}"#),
    ];
    let queue = stack.local_queue().expect("the embedded queue");
    let dead = queue.dead_letters();
    let (resumed, killed_total) = (
        count("fanout_resumed_total"),
        count("fanout_worker_invocations_killed_total"),
    );
    stack.shutdown().await;
    eprintln!(
        "chaos: {CLIENTS} clients connected in {connected:?}; reached {at_faults} when the \
         faults began, {after_faults} when they ended, {at_kill} at the kill; everyone within \
         {everyone:?} of the send; {twice} got it twice (bound {bound}); faults answered \
         (500, 429, hang): {faults:?}; runs resumed: {resumed}; whole test {:?}",
        began.elapsed()
    );
    assert!(twice <= bound, "{twice} duplicates, over the bound {bound}");
    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    assert!(
        faults.iter().all(|&answered| answered > 0),
        "every fault landed mid-fan-out: {faults:?}\n{text}"
    );
    assert_eq!(killed_total, 1, "{text}");
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "took {:?}",
        began.elapsed()
    );
}

/// The same faults from the command line: `--management-fault` from start-up and
/// `--kill-worker-after` the first job. A message sent while the management API answers 503
/// reaches everyone once the fault is over and the killed job comes back; the kill happens
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_faults_and_a_kill_still_reach_everyone() {
    const CLIENTS: usize = 100;
    let began = Instant::now();
    let stack = embedded(&[
        "--management-fault",
        "503@0s+2s",
        "--management-latency",
        "20ms",
        "--fanout-concurrency",
        "4",
        "--kill-worker-after",
        "1s",
        "--worker-timeout",
        "8s",
        "--visibility-timeout",
        "9s",
    ])
    .await;
    let mut clients = join(&stack, "cli", CLIENTS).await;
    let id = send_from_first(&mut clients, json!("despite it all")).await;
    let audience = Audience::listen(clients);
    assert!(
        audience.wait_reached(CLIENTS, WAIT).await,
        "everyone is reached; {} of {CLIENTS} were",
        audience.reached()
    );
    until_the_queue_is_empty(&stack).await;
    let heard = audience.finish(WAIT).await;
    let config = stack.engine_config();
    let twice = duplicates(&heard, &id);
    assert!(twice <= config.concurrency + config.checkpoint_window());

    let text = metrics(&stack).await;
    assert!(
        metric(&text, r#"fanout_management_faults_total{kind="503"}"#).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "fanout_worker_invocations_killed_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "fanout_dlq_depth"), Some(0.0), "{text}");
    stack.shutdown().await;
    eprintln!(
        "command line: {CLIENTS} clients, {twice} twice, {:?}",
        began.elapsed()
    );
}

/// A management API that refuses the worker (403, as when its role lacks
/// `execute-api:ManageConnections`) stops each job at its first refusal, counts it as
/// `Forbidden` (the metric the alarm watches), not as a failure per member, and once the
/// permission is back the retries reach everyone exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_from_the_management_api_is_one_stop_per_job_and_retried_to_everyone() {
    const CLIENTS: usize = 60;
    let stack = embedded(&[
        "--management-fault",
        "403@0s+3s",
        "--fanout-concurrency",
        "4",
    ])
    .await;
    let mut clients = join(&stack, "locked", CLIENTS).await;
    let id = send_from_first(&mut clients, json!("once allowed")).await;
    let audience = Audience::listen(clients);
    assert!(
        audience.wait_reached(CLIENTS, WAIT).await,
        "everyone is reached once the 403s stop; {} of {CLIENTS} were",
        audience.reached()
    );
    until_the_queue_is_empty(&stack).await;
    let heard = audience.finish(WAIT).await;
    assert_eq!(duplicates(&heard, &id), 0, "no one got it twice");

    let text = metrics(&stack).await;
    let count = |name: &str| metric(&text, name).unwrap_or(0.0);
    let refused = count(r#"fanout_management_faults_total{kind="403"}"#);
    let forbidden = count("fanout_forbidden_total");
    assert!(forbidden > 0.0, "{text}");
    assert_eq!(
        forbidden, refused,
        "every 403 counted once, as Forbidden: {text}"
    );
    assert!(
        forbidden < CLIENTS as f64,
        "each job stops at its first 403s rather than post to every member: {forbidden}"
    );
    assert_eq!(count("fanout_failed_total"), 0.0, "{text}");
    assert_eq!(count("fanout_dlq_depth"), 0.0, "{text}");
    stack.shutdown().await;
}
