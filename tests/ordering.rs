//! Per-room order end to end (`--ordering per_room`: the fan-out queue is FIFO, each room a
//! message group): every member of a room receives its messages in the order sendmessage
//! accepted them, through a management API brownout and invocations too short to finish their
//! batch, and a busy room does not hold another room up.

use e2e::{embedded, join, options};
use fanout_local::LocalStack;
use fanout_local::faults::FaultKind;
use fanout_local::options::BackendKind;
use fanout_test_support::http::{request, request_with};
use fanout_test_support::moto::{moto_sdk_config, unique};
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Client, Event};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(60);

/// A member reading in a task of its own: the ids of the messages it receives, in the order
/// received, duplicates included.
struct Listener {
    heard: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<Vec<Value>>,
}

impl Listener {
    /// Reads `client` until `stop`, after the ids it `already` heard. Returns any frame that is
    /// not a message.
    fn start(mut client: Client, already: Vec<String>, mut stop: watch::Receiver<bool>) -> Self {
        let heard = Arc::new(Mutex::new(already));
        let task = tokio::spawn({
            let heard = heard.clone();
            async move {
                let mut other = Vec::new();
                loop {
                    let event = tokio::select! {
                        event = client.next(WAIT) => event,
                        _ = stop.wait_for(|stop| *stop) => break,
                    };
                    match event {
                        Event::Json(frame) if frame["type"] == "message" => {
                            let id = frame["id"].as_str().unwrap_or_default().to_owned();
                            heard.lock().unwrap().push(id);
                        }
                        Event::Silence => {}
                        Event::Closed(code) => {
                            other.push(json!({ "closed": code }));
                            break;
                        }
                        Event::Json(frame) => other.push(frame),
                        Event::Text(text) => other.push(Value::String(text)),
                    }
                }
                other
            }
        });
        Self { heard, task }
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }

    /// Distinct messages heard so far.
    fn distinct(&self) -> usize {
        let mut heard = self.heard();
        heard.sort();
        heard.dedup();
        heard.len()
    }
}

/// Sends `count` messages from `sender` one after the other, each once the previous one's ack
/// came: the order sendmessage accepted them in. Returns their ids in that order, and the ids
/// of the messages the sender received meanwhile (it is a member of the room too).
async fn send_in_turn(
    sender: &mut Client,
    count: usize,
    label: &str,
) -> (Vec<String>, Vec<String>) {
    let (mut accepted, mut heard) = (Vec::new(), Vec::new());
    for n in 0..count {
        sender.say(json!({ "label": label, "n": n })).await;
        loop {
            let frame = sender.next_json(WAIT).await;
            let id = frame["id"].as_str().unwrap_or_default().to_owned();
            match frame["type"].as_str() {
                Some("ack") => {
                    accepted.push(id);
                    break;
                }
                Some("message") => heard.push(id),
                _ => panic!("message {n}: expected an ack, got {frame}"),
            }
        }
    }
    (accepted, heard)
}

/// Waits until every listener heard `count` distinct messages, for at most `WAIT`.
async fn until_everyone_heard(listeners: &[Listener], count: usize, what: &str) {
    let deadline = Instant::now() + WAIT;
    while listeners.iter().any(|listener| listener.distinct() < count) {
        let progress: Vec<usize> = listeners.iter().map(Listener::distinct).collect();
        assert!(
            Instant::now() < deadline,
            "{what}: not everyone heard {count} messages: {progress:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// The fewest and the most distinct messages a listener heard so far.
fn progress(listeners: &[Listener]) -> (usize, usize) {
    let counts = listeners.iter().map(Listener::distinct);
    (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0))
}

/// `heard` is `accepted` in order, nothing missing and nothing else; a message may come twice
/// only right after itself (a post in flight when an invocation had to stop is posted again
/// when the job goes on, before the room's next message starts). How many came twice.
fn assert_in_order(who: &str, heard: &[String], accepted: &[String]) -> usize {
    let mut once = heard.to_vec();
    once.dedup();
    assert_eq!(
        once, accepted,
        "{who} heard the room's messages out of order, or not all of them:\n heard    {heard:?}\n accepted {accepted:?}"
    );
    heard.len() - once.len()
}

/// `GET path` of the operators' API, as JSON.
async fn admin(stack: &LocalStack, path: &str) -> Value {
    let bearer = format!("Bearer {}", e2e::ADMIN_TOKEN);
    let response = request_with(stack.addr(), "GET", path, &[("authorization", &bearer)], "")
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    serde_json::from_str(&response.body).unwrap_or_else(|error| panic!("{path}: {error}"))
}

async fn metrics(stack: &LocalStack) -> String {
    request(stack.addr(), "GET", "/metrics", "")
        .await
        .expect("GET /metrics")
        .body
}

/// Thirty messages sent back to back into a room of six, while the management API answers 500
/// for 1.5 s, and later 429 for 1 s, with a 100 ms latency on every post and invocations that
/// have 1 s to run (a 6 s timeout less the 5 s `DEADLINE_MARGIN_MS`): a batch of a room's
/// messages never finishes in one invocation, so jobs are held, their room waits, and they go
/// on when received again. Every member gets every message in the order accepted. A message
/// to another room, sent while the first still has most of its backlog, reaches that room
/// before the first room's backlog is through: one room's order does not hold the others up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_a_rooms_messages_in_order_through_a_brownout_and_other_rooms_go_on() {
    const MESSAGES: usize = 30;
    let began = Instant::now();
    let stack = embedded(&[
        "--ordering",
        "per_room",
        "--worker-timeout",
        "6s",
        "--visibility-timeout",
        "10s",
        "--management-latency",
        "100ms",
        "--fanout-concurrency",
        "4",
        "--rate-limit-per-second",
        "0",
    ])
    .await;
    let mut members = join(&stack, "ordered", 6).await;
    let others = join(&stack, "other", 3).await;
    let (stop, stopped) = watch::channel(false);

    // The brownout starts as the messages are sent: the first jobs cannot post.
    stack.inject_management_fault(FaultKind::InternalError, Duration::from_millis(1500));
    let mut sender = members.remove(0);
    let (accepted, sender_heard) = send_in_turn(&mut sender, MESSAGES, "ordered").await;
    let mut listeners = vec![Listener::start(sender, sender_heard, stopped.clone())];
    listeners.extend(
        members
            .into_iter()
            .map(|member| Listener::start(member, Vec::new(), stopped.clone())),
    );
    let mut others = others.into_iter();
    let mut other_sender = others.next().expect("three in the other room");
    let other_listeners: Vec<Listener> = others
        .map(|member| Listener::start(member, Vec::new(), stopped.clone()))
        .collect();

    // Throttled for a second once the room got going.
    until_everyone_heard(&listeners, 3, "before the 429s").await;
    stack.inject_management_fault(FaultKind::Throttled, Duration::from_secs(1));
    sleep(Duration::from_secs(1)).await;

    // The other room, while this one has most of its messages still to go (each takes at
    // least the 100 ms latency, one after the other).
    let (_, before) = progress(&listeners);
    assert!(
        before <= MESSAGES / 2,
        "the room is already through {before} of {MESSAGES}: the test would prove nothing"
    );
    let (other_accepted, other_sender_heard) = send_in_turn(&mut other_sender, 1, "other").await;
    let mut other_listeners = other_listeners;
    other_listeners.push(Listener::start(
        other_sender,
        other_sender_heard,
        stopped.clone(),
    ));
    until_everyone_heard(&other_listeners, 1, "the other room").await;
    let (_, when_other_arrived) = progress(&listeners);
    assert!(
        when_other_arrived < MESSAGES,
        "the other room's message waited for this room's {MESSAGES} ({before} before it was sent)"
    );

    until_everyone_heard(&listeners, MESSAGES, "the ordered room").await;
    // Anything more (a late duplicate) would show up now.
    sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let mut twice = 0;
    for (i, listener) in listeners.into_iter().enumerate() {
        twice += assert_in_order(&format!("member {i}"), &listener.heard(), &accepted);
        let other = listener.task.await.expect("a listener panicked");
        assert!(other.is_empty(), "member {i} got {other:?}");
    }
    for (i, listener) in other_listeners.into_iter().enumerate() {
        assert_in_order(&format!("other {i}"), &listener.heard(), &other_accepted);
        let other = listener.task.await.expect("a listener panicked");
        assert!(other.is_empty(), "other {i} got {other:?}");
    }

    let info = admin(&stack, "/admin/info").await;
    assert_eq!(info["ordering"], "per_room", "{info}");
    let status = admin(&stack, "/admin/status").await;
    assert_eq!(status["queue"]["ordering"], "per_room", "{status}");
    let text = metrics(&stack).await;
    let count = |name: &str| metric(&text, name).unwrap_or(0.0);
    let queue = stack.local_queue().expect("the embedded queue");
    let dead = queue.dead_letters();
    stack.shutdown().await;
    eprintln!(
        "ordering: {MESSAGES} messages to 6 members in order, {twice} received twice; the other \
         room's message arrived with this room at {when_other_arrived} of {MESSAGES} (at \
         {before} when sent); jobs held {}, faults answered (500, 429) ({}, {}); {:?}",
        count("fanout_jobs_held_total"),
        count(r#"fanout_management_faults_total{kind="500"}"#),
        count(r#"fanout_management_faults_total{kind="429"}"#),
        began.elapsed()
    );
    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    assert!(
        count("fanout_jobs_held_total") > 0.0,
        "jobs were held across invocations: {text}"
    );
    assert_eq!(
        count("fanout_continuations_total"),
        0.0,
        "a held job keeps its message; it hands nothing on: {text}"
    );
    assert!(
        count(r#"fanout_management_faults_total{kind="500"}"#) > 0.0
            && count(r#"fanout_management_faults_total{kind="429"}"#) > 0.0,
        "both faults landed: {text}"
    );
}

/// On DynamoDB and SQS in moto: `--create-resources` makes FIFO queues (`NAME.fifo` and its
/// dead-letter queue `NAME-dlq.fifo`), and a room's messages arrive in order through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_fifo_queues_a_rooms_messages_arrive_in_order() {
    const MESSAGES: usize = 10;
    let (table, queue) = (unique("connections"), unique("ordered"));
    let mut options = options(&[
        "--ordering",
        "per_room",
        "--create-resources",
        "--table",
        &table,
        "--queue-name",
        &queue,
        "--rate-limit-per-second",
        "0",
        "--management-latency",
        "20ms",
    ]);
    options.backend = BackendKind::Aws;
    let stack = LocalStack::start_with(options, Some(moto_sdk_config().await))
        .await
        .expect("start on moto");
    assert!(
        stack.description().contains(&format!("{queue}.fifo")),
        "{}",
        stack.description()
    );
    let mut members = join(&stack, "ordered", 3).await;
    let (stop, stopped) = watch::channel(false);
    let mut sender = members.remove(0);
    let (accepted, sender_heard) = send_in_turn(&mut sender, MESSAGES, "moto").await;
    let mut listeners = vec![Listener::start(sender, sender_heard, stopped.clone())];
    listeners.extend(
        members
            .into_iter()
            .map(|member| Listener::start(member, Vec::new(), stopped.clone())),
    );
    until_everyone_heard(&listeners, MESSAGES, "on moto").await;
    let _ = stop.send(true);
    for (i, listener) in listeners.into_iter().enumerate() {
        assert_in_order(&format!("member {i}"), &listener.heard(), &accepted);
        listener.task.await.expect("a listener panicked");
    }
    stack.shutdown().await;
}

/// A room split into parts would have them deliver side by side, out of order: refused, and
/// the message says why and what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_room_order_refuses_a_room_split() {
    let refused = LocalStack::start_with(
        options(&["--ordering", "per_room", "--room-split-ways", "2"]),
        None,
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(
        refused.contains("--room-split-ways") && refused.contains("per_room"),
        "{refused}"
    );
}
