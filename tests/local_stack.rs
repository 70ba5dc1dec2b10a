//! The local stack end to end: real WebSocket clients on 127.0.0.1, the same handlers as the
//! Lambdas, the worker posting through the real management API client.

use e2e::{embedded, join, management, on_moto, options};
use fanout::domain::{Connection, RoomName};
use fanout_local::LocalStack;
use fanout_test_support::http::{Response, request};
use fanout_test_support::moto::{moto_sdk_config, unique};
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Audience, Client, Event};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(500);

/// Each client receives nothing for a while (all waited for at once).
async fn expect_silence(clients: &mut [Client], who: &str) {
    let heard =
        futures::future::join_all(clients.iter_mut().map(|client| client.next(QUIET))).await;
    for (i, event) in heard.into_iter().enumerate() {
        assert!(
            matches!(event, Event::Silence),
            "{who} {i} received {event:?}"
        );
    }
}

/// The embedded default with `extra` options, and `count` clients in `room`.
async fn embedded_with(extra: &[&str], room: &str, count: usize) -> (LocalStack, Vec<Client>) {
    let stack = embedded(extra).await;
    let clients = join(&stack, room, count).await;
    (stack, clients)
}

/// The client's next frame is a close with `code`.
async fn expect_close(client: &mut Client, code: u16, what: &str) {
    match client.next(WAIT).await {
        Event::Closed(got) => assert_eq!(got, Some(code), "{what}"),
        other => panic!("expected {what}, got {other:?}"),
    }
}

/// `method path` on the stack's HTTP port, with no body.
async fn http(stack: &LocalStack, method: &str, path: &str) -> Response {
    request(stack.addr(), method, path, "")
        .await
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}

/// Three rooms of 100: a message in one reaches each of its members exactly once, with the
/// message id, and no one else; the sender gets the ack.
async fn rooms_get_exactly_their_messages(stack: &LocalStack) {
    let mut rooms = HashMap::new();
    for room in ["red", "green", "blue"] {
        rooms.insert(room, join(stack, room, 100).await);
    }

    let green = rooms.get_mut("green").unwrap();
    green[0].say(json!({"text": "hello green"})).await;
    let ack = green[0].next_json(WAIT).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let id = ack["id"]
        .as_str()
        .expect("the ack carries the message id")
        .to_owned();

    for (i, member) in green.iter_mut().enumerate() {
        let frame = member.next_json(WAIT).await;
        assert_eq!(frame["type"], "message", "member {i}: {frame}");
        assert_eq!(frame["id"], id.as_str(), "member {i}");
        assert_eq!(frame["room"], "green");
        assert_eq!(frame["data"], json!({"text": "hello green"}));
    }
    for (room, members) in rooms.iter_mut() {
        expect_silence(members, room).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_get_exactly_their_messages_on_the_embedded_default() {
    let stack = embedded(&[]).await;
    rooms_get_exactly_their_messages(&stack).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_get_exactly_their_messages_on_dynamodb_and_sqs() {
    let stack = on_moto(&[]).await;
    rooms_get_exactly_their_messages(&stack).await;
    stack.shutdown().await;
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_connections_are_deleted_and_disconnects_are_removed() {
    let stack = embedded(&[]).await;
    let store = stack.store();
    let planted = ["Planted000001A=", "Planted000002A=", "Planted000003A="];
    for id in planted {
        store
            .put(&Connection::in_room(
                id,
                RoomName::parse("ops").unwrap(),
                0,
                i64::MAX,
            ))
            .await
            .unwrap();
    }
    let mut clients = join(&stack, "ops", 2).await;
    clients[0].say(json!("ping")).await;
    assert_eq!(clients[0].next_json(WAIT).await["type"], "ack");
    let own = clients[0].next_json(WAIT).await;
    let sender_id = own["from"].as_str().unwrap().to_owned();
    assert_eq!(clients[1].next_json(WAIT).await["id"], own["id"]);

    eventually("the planted connections are deleted", async || {
        let mut left = 0;
        for id in planted {
            left += usize::from(store.get(id).await.unwrap().is_some());
        }
        left == 0
    })
    .await;
    assert!(
        store.get(&sender_id).await.unwrap().is_some(),
        "live connections stay"
    );

    let sender = clients.remove(0);
    sender.close().await;
    eventually("the closed connection is removed", async || {
        store.get(&sender_id).await.unwrap().is_none()
    })
    .await;
    stack.shutdown().await;
}

/// API Gateway takes posts to a connection as soon as its handshake completes. Here the
/// emulator waits a second between a client's 101 and serving its socket: a post made in that
/// window, straight to `@connections` or by a room-mate's message, still reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_has_its_101_gets_what_is_posted_before_its_socket_is_served() {
    let stack = embedded(&[]).await;
    let mut sender = join(&stack, "door", 1).await.remove(0);
    sender.say(json!("hi")).await;
    assert_eq!(sender.next_json(WAIT).await["type"], "ack");
    let sender_id = sender.next_json(WAIT).await["from"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.delay_socket_start(Duration::from_secs(1));
    let url = format!("{}?room=door", stack.websocket_url());
    let mut newcomer = Client::connect(&url).await;

    // At once, inside the window: a post by id, and a room-mate's message.
    let room = RoomName::parse("door").unwrap();
    let page = stack.store().room_page(&room, None, None).await.unwrap();
    let newcomer_id = page.ids.iter().find(|id| **id != sender_id).unwrap();
    let posted = management(&stack, "POST", newcomer_id, r#"{"type":"direct"}"#).await;
    assert_eq!(posted.status, 200, "{posted:?}");
    sender.say(json!("welcome")).await;

    let mut heard = Vec::new();
    for _ in 0..2 {
        heard.push(newcomer.next_json(WAIT).await);
    }
    heard.sort_by_key(|frame| frame["type"].as_str().map(str::to_owned));
    assert_eq!(heard[0]["type"], "direct", "{heard:?}");
    assert_eq!(heard[1]["data"], "welcome", "{heard:?}");
    expect_silence(std::slice::from_mut(&mut newcomer), "the newcomer").await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_answer_and_everyone_else_is_still_served() {
    let (stack, mut bystanders) = embedded_with(&[], "lobby", 3).await;
    let url = format!("{}?room=lobby", stack.websocket_url());
    let mut client = Client::connect(&url).await;

    for (frame, code) in [
        ("hello", "invalid_json"),
        (r#"{"action":"shout","data":1}"#, "unknown_action"),
        (r#"{"action":"sendmessage"}"#, "missing_data"),
        (r#"{"action":"sendmessage","data":null}"#, "missing_data"),
        (r#"{"action":7}"#, "invalid_message"),
        ("", "empty_body"),
    ] {
        client.send_text(frame).await;
        let answer = client.next_json(WAIT).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame:?}: {answer}"
        );
    }
    let unknown = {
        client.send_text(r#"{"action":"shout"}"#).await;
        client.next_json(WAIT).await
    };
    assert!(
        unknown["message"].as_str().unwrap().contains("sendmessage"),
        "names the actions: {unknown}"
    );

    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(client.next_json(WAIT).await["code"], "binary_not_supported");

    // Over the 32 KB frame limit: API Gateway closes with 1009.
    let mut oversized = Client::connect(&url).await;
    let big = json!({"action": "sendmessage", "data": "x".repeat(40 * 1024)}).to_string();
    let _ = oversized.send(Message::text(big)).await;
    expect_close(&mut oversized, 1009, "a 1009 close").await;

    // An invalid room refuses the handshake with 400.
    let refused = Client::try_connect(&format!("{}?room=no%20spaces", stack.websocket_url())).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!(
            "expected a refused handshake, got {:?}",
            other.map(|_| "a connection")
        ),
    }

    expect_silence(&mut bystanders, "bystander").await;
    // And the server still serves: a good message reaches everyone.
    client.say(json!("still here")).await;
    assert_eq!(client.next_json(WAIT).await["type"], "ack");
    for bystander in bystanders.iter_mut() {
        assert_eq!(bystander.next_json(WAIT).await["data"], "still here");
    }
    stack.shutdown().await;
}

/// One batch of four jobs: a malformed one goes to the dead-letter queue at once, with the
/// reason; the same job twice (as SQS may deliver it) reaches each member once; the batch's
/// good jobs are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_job_is_dead_lettered_with_its_reason_while_the_batch_is_delivered() {
    let (stack, mut members) = embedded_with(&["--batching-window", "300ms"], "news", 3).await;
    let queue = stack.local_queue().expect("the embedded queue");

    let job = |id: &str| {
        json!({"v":1,"id":id,"target":{"room":"news"},"payload":id,"sentAt":1}).to_string()
    };
    let broken = r#"{"v":1,"id":"broken","target":{"room":"news"}}"#;
    queue.send_raw(job("first"));
    queue.send_raw(broken);
    queue.send_raw(job("first"));
    queue.send_raw(job("second"));

    for member in members.iter_mut() {
        let mut got = BTreeSet::new();
        for _ in 0..2 {
            got.insert(
                member.next_json(WAIT).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(
            got,
            BTreeSet::from(["first".to_owned(), "second".to_owned()])
        );
    }
    eventually("the invalid job is dead-lettered", async || {
        !queue.dead_letters().is_empty()
    })
    .await;
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (body, reason) = &dead[0];
    assert_eq!(body, broken);
    assert!(reason.contains("job shape"), "{reason}");

    // An invocation's counts are recorded when it returns, after its dead letter is written.
    eventually("the invocations' counts are recorded", async || {
        let Response { status, body: text } = http(&stack, "GET", "/metrics").await;
        status == 200
            && metric(&text, "fanout_dead_lettered_total") == Some(1.0)
            && metric(&text, "fanout_delivered_total") == Some(6.0)
    })
    .await;
    let Response { status, body: text } = http(&stack, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "fanout_dlq_depth"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "fanout_dead_lettered_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "fanout_delivered_total"), Some(6.0), "{text}");
    expect_silence(&mut members, "nothing more, nothing twice: member").await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_management_api_answer_like_api_gateway() {
    let (stack, mut clients) = embedded_with(&[], "lobby", 1).await;
    let Response { status, body } = http(&stack, "GET", "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));

    let client = &mut clients[0];
    client.say(json!("who am i")).await;
    client.next_json(WAIT).await;
    let id = client.next_json(WAIT).await["from"]
        .as_str()
        .unwrap()
        .to_owned();
    let Response { status, body: info } = management(&stack, "GET", &id, "").await;
    assert_eq!(status, 200, "{info}");
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["connectedAt"].as_str().unwrap().ends_with('Z'));

    let text = http(&stack, "GET", "/metrics").await.body;
    assert_eq!(metric(&text, "fanout_connections"), Some(1.0), "{text}");
    assert!(text.contains("fanout_latency_seconds_bucket"), "{text}");
    // sendmessage's outcomes, as its CloudWatch metrics Accepted and Refused by Code.
    client.send_text(r#"{"action":"sendmessage"}"#).await;
    assert_eq!(client.next_json(WAIT).await["code"], "missing_data");
    let text = http(&stack, "GET", "/metrics").await.body;
    assert_eq!(
        metric(&text, "fanout_messages_accepted_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"fanout_messages_refused_total{code="missing_data"}"#
        ),
        Some(1.0),
        "{text}"
    );

    assert_eq!(management(&stack, "DELETE", &id, "").await.status, 204);
    expect_close(client, 1000, "the connection to close").await;
    assert_eq!(management(&stack, "GET", &id, "").await.status, 410);
    assert_eq!(management(&stack, "POST", &id, "").await.status, 410);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_with_1001_and_removed() {
    let (stack, mut clients) = embedded_with(&["--idle-timeout", "300ms"], "lobby", 1).await;
    expect_close(&mut clients[0], 1001, "an idle close").await;
    let store = stack.store();
    eventually("the idle connection is removed", async || {
        store
            .room_page(&RoomName::lobby(), None, None)
            .await
            .unwrap()
            .ids
            .is_empty()
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_socket_with_1001() {
    let (stack, mut clients) = embedded_with(&[], "lobby", 5).await;
    let addr = stack.addr();
    stack.shutdown().await;
    for client in clients.iter_mut() {
        expect_close(client, 1001, "a going-away close").await;
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

/// Shutdown in the middle of a fan-out to a few thousand: the worker stops first and finishes
/// its invocation while the server still answers the management API, so every member gets the
/// message (once) before its socket closes with 1001. (Stopping the server first made the
/// posts fail, and the in-memory queue lost the job handed back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_in_progress_at_shutdown_still_reaches_everyone() {
    const CLIENTS: usize = 3000;
    let (stack, mut clients) = embedded_with(
        &["--fanout-concurrency", "8", "--management-latency", "10ms"],
        "crowd",
        CLIENTS,
    )
    .await;
    clients[0].say(json!("last call")).await;
    let ack = clients[0].next_json(WAIT).await;
    let id = ack["id"].as_str().expect("an ack").to_owned();
    let audience = Audience::listen(clients);
    assert!(
        audience.wait_reached(CLIENTS / 10, WAIT).await,
        "the fan-out started"
    );
    let reached = audience.reached();
    assert!(reached < CLIENTS, "shutdown must come mid-fan-out");

    let stopping = tokio::time::Instant::now();
    stack.shutdown().await;
    let took = stopping.elapsed();
    let heard = audience.finish(WAIT).await;
    for (i, member) in heard.iter().enumerate() {
        assert_eq!(
            member.messages.get(&id),
            Some(&1),
            "member {i} (of {CLIENTS}; {reached} reached at shutdown): {member:?}"
        );
        assert_eq!(member.closed, Some(Some(1001)), "member {i}: {member:?}");
    }
    eprintln!("shutdown at {reached}/{CLIENTS} reached; it took {took:?} and everyone got it");
}

/// A room bigger than a page is split into ranges that several worker invocations take at
/// once; every member still gets the message exactly once, on the embedded default and on
/// DynamoDB (whose room index reads each range between its bounds).
async fn a_big_room_split_across_invocations_reaches_everyone_once(stack: &LocalStack) {
    const MEMBERS: usize = 400;
    let mut clients = join(stack, "crowd", MEMBERS).await;
    clients[0].say(json!("to the crowd")).await;
    let ack = clients[0].next_json(WAIT).await;
    let id = ack["id"].as_str().expect("an ack").to_owned();
    let audience = Audience::listen(clients);
    assert!(
        audience.wait_reached(MEMBERS, WAIT).await,
        "everyone reached"
    );
    // Time for a duplicate to arrive, if any were sent.
    tokio::time::sleep(QUIET).await;
    let heard = audience.finish(WAIT).await;
    for (i, member) in heard.iter().enumerate() {
        assert_eq!(member.messages.get(&id), Some(&1), "member {i}: {member:?}");
    }
    let text = http(stack, "GET", "/metrics").await.body;
    assert_eq!(
        metric(&text, "fanout_rooms_split_total"),
        Some(1.0),
        "{text}"
    );
}

const SPLIT: [&str; 6] = [
    "--page-limit",
    "50",
    "--room-split-ways",
    "4",
    "--worker-concurrency",
    "4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_is_split_across_invocations_on_the_embedded_default() {
    let stack = embedded(&SPLIT).await;
    a_big_room_split_across_invocations_reaches_everyone_once(&stack).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_is_split_across_invocations_on_dynamodb_and_sqs() {
    let (table, queue) = (unique("connections"), unique("fanout"));
    let mut flags = vec![
        "--create-resources",
        "--table",
        &table,
        "--queue-name",
        &queue,
    ];
    flags.extend(SPLIT);
    let mut options = options(&flags);
    options.backend = fanout_local::options::BackendKind::Aws;
    let stack = LocalStack::start_with(options, Some(moto_sdk_config().await))
        .await
        .expect("start on moto");
    a_big_room_split_across_invocations_reaches_everyone_once(&stack).await;
    stack.shutdown().await;
}
