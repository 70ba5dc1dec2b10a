//! Nothing missed across a reconnect, end to end on the local stack: offsets in acks and
//! frames, recovery of what a client missed while away, the room's last messages on joining,
//! and a recovery that history cannot complete.

use e2e::{embedded, on_moto};
use fanout_local::LocalStack;
use fanout_local::faults::FaultKind;
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Client, Event};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn url(stack: &LocalStack, room: &str) -> String {
    format!("{}?room={room}", stack.websocket_url())
}

/// The room's one sender: it counts its own copies, so that a test can wait until every
/// fan-out is done before a client reconnects (what it gets next is then the recovery alone).
struct Sender {
    client: Client,
    sent: usize,
    heard: usize,
}

impl Sender {
    async fn connect(url: &str) -> Self {
        Self {
            client: Client::connect(url).await,
            sent: 0,
            heard: 0,
        }
    }

    /// Sends `data` and returns its ack.
    async fn send(&mut self, data: Value) -> Value {
        self.client.say(data).await;
        self.sent += 1;
        loop {
            let frame = self.client.next_json(WAIT).await;
            match frame["type"].as_str() {
                Some("ack") => return frame,
                Some("message") => self.heard += 1,
                _ => panic!("expected an ack, got {frame}"),
            }
        }
    }

    /// Waits until it has heard every message it sent: their fan-outs are done.
    async fn settle(&mut self) {
        while self.heard < self.sent {
            next_message(&mut self.client).await;
            self.heard += 1;
        }
    }
}

/// The next `message` frame (acks skipped).
async fn next_message(client: &mut Client) -> Value {
    loop {
        let frame = client.next_json(WAIT).await;
        match frame["type"].as_str() {
            Some("message") => return frame,
            Some("ack") => continue,
            _ => panic!("expected a message, got {frame}"),
        }
    }
}

/// Asks to recover and reads the answer: the messages (by their `data.n`), then the
/// `recovered` frame. Live messages that arrive meanwhile are told apart by offset: only those
/// at or below the recovered frame's `to` count as recovered.
async fn recover(client: &mut Client, request: Value) -> (Vec<Value>, Value) {
    let mut body = request;
    body["action"] = json!("recover");
    client.send_text(&body.to_string()).await;
    let mut messages = Vec::new();
    loop {
        let frame = client.next_json(WAIT).await;
        match frame["type"].as_str() {
            Some("message") => messages.push(frame),
            Some("recovered") => return (messages, frame),
            _ => panic!("during a recovery: {frame}"),
        }
    }
}

fn offsets(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["offset"].as_u64().expect("every frame has an offset"))
        .collect()
}

/// A member drops; 50 messages are sent meanwhile; it reconnects with its last offset and epoch
/// and gets exactly those 50, in order, then a complete `recovered` frame, then live messages.
async fn a_client_that_drops_recovers_exactly_what_it_missed(stack: &LocalStack) {
    let room = url(stack, "recover");
    let mut sender = Sender::connect(&room).await;
    let mut member = Client::connect(&room).await;

    let first = sender.send(json!({"n": 0})).await;
    let seen = next_message(&mut member).await;
    assert_eq!(
        seen["offset"], first["offset"],
        "the ack's offset is the frame's"
    );
    assert_eq!(seen["epoch"], first["epoch"]);
    let (last, epoch) = (seen["offset"].as_u64().unwrap(), seen["epoch"].clone());
    member.close().await;

    let mut missed = Vec::new();
    for n in 1..=50 {
        let ack = sender.send(json!({"n": n})).await;
        missed.push(ack["offset"].as_u64().unwrap());
    }
    assert_eq!(
        missed,
        (last + 1..=last + 50).collect::<Vec<_>>(),
        "consecutive offsets"
    );
    sender.settle().await;

    let mut member = Client::connect(&room).await;
    let (messages, done) = recover(&mut member, json!({"offset": last, "epoch": epoch})).await;
    assert_eq!(offsets(&messages), missed, "exactly the 50, in order");
    let data: Vec<Value> = messages.iter().map(|m| m["data"]["n"].clone()).collect();
    assert_eq!(data, (1..=50).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(done["complete"], true, "{done}");
    assert_eq!(
        (done["from"].as_u64(), done["to"].as_u64()),
        (Some(last), Some(last + 50))
    );
    assert_eq!(done["count"], 50);

    let live = sender.send(json!({"n": 51})).await;
    let heard = next_message(&mut member).await;
    assert_eq!(heard["offset"], live["offset"]);
    assert_eq!(
        heard["offset"].as_u64(),
        Some(last + 51),
        "live ones go on from there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_recovers_exactly_what_it_missed_on_the_embedded_default() {
    let stack = embedded(&["--rate-limit-per-second", "0"]).await;
    a_client_that_drops_recovers_exactly_what_it_missed(&stack).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_recovers_exactly_what_it_missed_on_dynamodb_and_sqs() {
    let stack = on_moto(&["--rate-limit-per-second", "0"]).await;
    a_client_that_drops_recovers_exactly_what_it_missed(&stack).await;
    stack.shutdown().await;
}

/// Beyond what history keeps, the client gets what is left and `complete: false`; in another
/// epoch, nothing and `complete: false`; and on joining, the room's last messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_window_recovery_says_so_and_joining_gets_the_last_messages() {
    let stack = embedded(&["--history-size", "10", "--rate-limit-per-second", "0"]).await;
    let room = url(&stack, "window");
    let mut sender = Sender::connect(&room).await;
    let first = sender.send(json!({"n": 0})).await;
    for n in 1..=20 {
        sender.send(json!({"n": n})).await;
    }
    sender.settle().await;
    let epoch = first["epoch"].clone();
    let top = first["offset"].as_u64().unwrap() + 20;

    let mut late = Client::connect(&room).await;
    let (messages, done) = recover(
        &mut late,
        json!({"offset": first["offset"], "epoch": epoch}),
    )
    .await;
    assert_eq!(
        offsets(&messages),
        (top - 9..=top).collect::<Vec<_>>(),
        "the last 10 kept"
    );
    assert_eq!(
        done["complete"], false,
        "history no longer reaches back: {done}"
    );

    let (messages, done) =
        recover(&mut late, json!({"offset": 3, "epoch": "0123456789abcdef"})).await;
    assert!(messages.is_empty());
    assert_eq!(done["complete"], false);
    assert_eq!(done["epoch"], epoch, "the epoch to start over in");

    let mut joining = Client::connect(&room).await;
    let (messages, done) = recover(&mut joining, json!({"last": 5})).await;
    assert_eq!(offsets(&messages), (top - 4..=top).collect::<Vec<_>>());
    assert_eq!(done["complete"], true);
    // More than history keeps gets what it keeps.
    let (messages, done) = recover(&mut joining, json!({"last": 50})).await;
    assert_eq!(offsets(&messages), (top - 9..=top).collect::<Vec<_>>());
    assert_eq!(done["complete"], true);

    let text = fanout_test_support::http::request(stack.addr(), "GET", "/metrics", "")
        .await
        .unwrap()
        .body;
    assert_eq!(
        metric(&text, "fanout_recoveries_total"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "fanout_recoveries_incomplete_total"),
        Some(2.0),
        "{text}"
    );
    stack.shutdown().await;
}

/// A recovery asked for while the management API fails with 503s is retried through it and
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_during_a_management_api_brownout_still_completes() {
    let stack = embedded(&[]).await;
    let room = url(&stack, "brownout");
    let mut sender = Sender::connect(&room).await;
    let first = sender.send(json!({"n": 0})).await;
    for n in 1..=5 {
        sender.send(json!({"n": n})).await;
    }
    sender.settle().await;
    let mut member = Client::connect(&room).await;
    stack.inject_management_fault(FaultKind::Unavailable, Duration::from_secs(2));
    let (messages, done) = recover(
        &mut member,
        json!({"offset": first["offset"], "epoch": first["epoch"]}),
    )
    .await;
    assert_eq!(messages.len(), 5);
    assert_eq!(done["complete"], true, "{done}");
    stack.shutdown().await;
}

/// A ping is answered with a pong and fans out nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_keeps_the_connection_and_costs_no_fan_out() {
    let stack = embedded(&["--idle-timeout", "2s"]).await;
    let room = url(&stack, "quiet");
    let mut pinger = Client::connect(&room).await;
    let mut other = Client::connect(&room).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        pinger.send_text(r#"{"action":"ping"}"#).await;
        assert_eq!(pinger.next_json(WAIT).await, json!({"type":"pong"}));
    }
    assert!(
        matches!(
            other.next(Duration::from_millis(500)).await,
            Event::Closed(Some(1001))
        ),
        "the member that sent nothing was closed as idle"
    );
    pinger.say(json!("still here")).await;
    let ack = pinger.next_json(WAIT).await;
    assert_eq!(
        ack["type"], "ack",
        "3.2 s in, past the 2 s idle timeout: {ack}"
    );
    stack.shutdown().await;
}

/// A member whose post the fan-out gave up on (its id dead-lettered once the retry budget was
/// spent) sees a gap in offsets on its next message, and recovers the missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_delivery_was_dead_lettered_sees_the_gap_and_recovers_it() {
    const DEAD_LETTERED_WITHIN: Duration = Duration::from_secs(240);
    let stack = embedded(&["--retry-budget", "60s"]).await;
    let room = url(&stack, "dead-lettered");
    let mut sender = Sender::connect(&room).await;
    let mut member = Client::connect(&room).await;
    sender.send(json!("before")).await;
    let before = next_message(&mut member).await;
    sender.settle().await;

    // Every post fails until the message's deliveries are dead-lettered: the budget (60 s),
    // spent on retries whose waits grow.
    stack.inject_management_fault(FaultKind::InternalError, DEAD_LETTERED_WITHIN);
    let lost = sender.send(json!("lost")).await;
    let queue = stack.local_queue().expect("the in-memory queue");
    let deadline = tokio::time::Instant::now() + DEAD_LETTERED_WITHIN;
    while queue.dead_letters().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dead-lettered within {DEAD_LETTERED_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let parked = queue.dead_letters();
    assert!(
        parked
            .iter()
            .any(|(body, _)| body.contains(lost["id"].as_str().unwrap())),
        "{parked:?}"
    );
    stack.clear_management_faults();

    let after = sender.send(json!("after")).await;
    let next = next_message(&mut member).await;
    assert_eq!(next["offset"], after["offset"]);
    let gap = next["offset"].as_u64().unwrap() - before["offset"].as_u64().unwrap();
    assert_eq!(gap, 2, "one offset missing: {before} then {next}");

    let (messages, done) = recover(
        &mut member,
        json!({"offset": before["offset"], "epoch": before["epoch"]}),
    )
    .await;
    assert_eq!(done["complete"], true, "{done}");
    let missing: Vec<&Value> = messages
        .iter()
        .filter(|m| m["offset"] == lost["offset"])
        .collect();
    assert_eq!(missing.len(), 1, "{messages:?}");
    assert_eq!(missing[0]["id"], lost["id"]);
    assert_eq!(missing[0]["data"], "lost");
    stack.shutdown().await;
}

/// A room sent to beyond its partition's write rate (emulated: `--room-write-rate`) refuses the
/// excess as `unavailable`, retryable; what it accepts has one offset per message, reaches the
/// room and is recovered as acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_beyond_its_write_rate_refuses_as_unavailable_and_never_reuses_an_offset() {
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let stack = embedded(&["--room-write-rate", "40", "--rate-limit-per-second", "0"]).await;
    let room = url(&stack, "busy");
    let mut listener = Client::connect(&room).await;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(Client::connect(&room).await);
    }
    for (s, sender) in senders.iter_mut().enumerate() {
        for n in 0..EACH {
            sender
                .send_text(
                    &json!({"action": "sendmessage", "data": format!("{s}-{n}")}).to_string(),
                )
                .await;
        }
    }
    let (mut acked, mut refused) = (std::collections::BTreeMap::new(), 0);
    for sender in &mut senders {
        let mut answered = 0;
        while answered < EACH {
            let frame = sender.next_json(WAIT).await;
            match frame["type"].as_str() {
                Some("ack") => {
                    let offset = frame["offset"].as_u64().unwrap();
                    let id = frame["id"].as_str().unwrap().to_owned();
                    assert!(acked.insert(offset, id).is_none(), "offset {offset} twice");
                    answered += 1;
                }
                Some("error") => {
                    assert_eq!(frame["code"], "unavailable", "{frame}");
                    refused += 1;
                    answered += 1;
                }
                Some("message") => {}
                _ => panic!("{frame}"),
            }
        }
    }
    assert!(refused > 0, "beyond the rate, some are refused");
    assert!(!acked.is_empty(), "within it, some are accepted");

    // The listener gets each accepted message once per offset, and never one offset twice.
    let mut heard = std::collections::BTreeMap::new();
    while heard.len() < acked.len() {
        let frame = next_message(&mut listener).await;
        let offset = frame["offset"].as_u64().unwrap();
        let id = frame["id"].as_str().unwrap().to_owned();
        if let Some(earlier) = heard.insert(offset, id.clone()) {
            assert_eq!(earlier, id, "two messages at offset {offset}");
        }
    }
    assert_eq!(heard, acked);

    // A member that joins recovers exactly the accepted ones (the refused took no place).
    let mut late = Client::connect(&room).await;
    let (messages, done) = recover(&mut late, json!({"last": 100})).await;
    assert_eq!(done["complete"], true, "{done}");
    let recovered: std::collections::BTreeMap<u64, String> = messages
        .iter()
        .map(|m| {
            (
                m["offset"].as_u64().unwrap(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recovered, acked);

    // Retryable: a moment later the room takes messages again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    senders[0]
        .send_text(r#"{"action":"sendmessage","data":"again"}"#)
        .await;
    loop {
        let frame = senders[0].next_json(WAIT).await;
        match frame["type"].as_str() {
            Some("ack") => break,
            Some("message") => continue,
            _ => panic!("{frame}"),
        }
    }
    stack.shutdown().await;
}
