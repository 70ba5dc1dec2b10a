//! The ops CLI (`wsfanout --local URL`) against the local stack, with real WebSocket clients:
//! an announcement reaches its room's members and no one else, `status` and `rooms` count
//! them, `kick` closes a socket, and a job parked in the dead-letter queue is listed, shown,
//! and delivered once redriven.

use e2e::{ADMIN_TOKEN, embedded, join, publisher};
use fanout::domain::{RoomName, Target};
use fanout_local::LocalStack;
use fanout_local::faults::FaultKind;
use fanout_test_support::ws::{Client, Event};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::{Instant, sleep};
use wsfanout_ops::backend::{Backend, OpsError, RoomCount, Status};
use wsfanout_ops::local::LocalBackend;
use wsfanout_ops::{Cli, Output, Progress, publish_to};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(500);

fn base_url(stack: &LocalStack) -> String {
    format!("http://{}", stack.addr())
}

fn backend(stack: &LocalStack) -> LocalBackend {
    LocalBackend::new(&base_url(stack))
        .expect("the stack's URL")
        .with_credentials(publisher())
        .with_admin_token(ADMIN_TOKEN)
}

fn room(name: &str) -> Target {
    Target::Room(RoomName::parse(name).unwrap())
}

async fn status(backend: &LocalBackend) -> Status {
    backend
        .status(10, &Progress::hidden())
        .await
        .expect("status")
}

/// Waits until `check` holds for the stack's status, for at most `WAIT`; the status then.
async fn until(backend: &LocalBackend, what: &str, check: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status(backend).await;
        if check(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {now:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Every client's next frame is the announcement `id` with `data`, in `room` (none for all),
/// and from no one.
async fn all_receive(clients: &mut [Client], id: &str, room: Option<&str>, data: &Value) {
    for (i, client) in clients.iter_mut().enumerate() {
        let frame = client.next_json(WAIT).await;
        assert_eq!(frame["type"], "message", "client {i}: {frame}");
        assert_eq!(frame["id"], id, "client {i}: {frame}");
        assert_eq!(&frame["data"], data, "client {i}: {frame}");
        assert_eq!(
            frame.get("room").and_then(Value::as_str),
            room,
            "client {i}: {frame}"
        );
        assert!(frame.get("from").is_none(), "no sender: {frame}");
    }
}

/// Closes the clients, so that shutdown need not wait for their sockets.
async fn leave(clients: Vec<Client>) {
    futures::future::join_all(clients.into_iter().map(Client::close)).await;
}

async fn expect_silence(clients: &mut [Client], who: &str) {
    for (i, client) in clients.iter_mut().enumerate() {
        let event = client.next(QUIET).await;
        assert!(
            matches!(event, Event::Silence),
            "{who} {i} received {event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_the_rooms_members_only_and_status_and_rooms_count_them() {
    let stack = embedded(&[]).await;
    let mut ops = join(&stack, "ops", 3).await;
    let mut others = join(&stack, "other", 2).await;
    let backend = backend(&stack);

    let data = json!({"text": "maintenance at 17:00"});
    let published = publish_to(&backend, room("ops"), &data.to_string(), None)
        .await
        .expect("publish to a room");
    assert_eq!(published.target, "room ops");
    all_receive(&mut ops, &published.id, Some("ops"), &data).await;
    expect_silence(&mut others, "a member of another room").await;

    // The same through the command line, as an operator types it (run on the backend that
    // signs with the stack's publisher key: the CLI itself signs with the SDK's chain).
    let cli = <Cli as clap::Parser>::try_parse_from([
        "wsfanout",
        "--local",
        &base_url(&stack),
        "publish",
        "--all",
        "--data",
        "\"everyone\"",
    ])
    .unwrap();
    let Output::Published(everyone) =
        wsfanout_ops::execute(&backend, &cli.command, &Progress::hidden())
            .await
            .expect("publish --all")
    else {
        panic!("publish answers Published");
    };
    all_receive(&mut ops, &everyone.id, None, &json!("everyone")).await;
    all_receive(&mut others, &everyone.id, None, &json!("everyone")).await;

    let now = until(&backend, "the queue is empty", |s| {
        s.queue.ready + s.queue.in_flight + s.queue.delayed == 0
    })
    .await;
    assert_eq!((now.connections, now.open_sockets), (5, Some(5)), "{now:?}");
    assert_eq!(now.queue.dead, 0);
    assert_eq!(now.queue.oldest_age_ms, None, "nothing is waiting");
    let expected = vec![
        RoomCount {
            room: "ops".into(),
            members: 3,
        },
        RoomCount {
            room: "other".into(),
            members: 2,
        },
    ];
    assert_eq!(now.rooms, expected);
    let rooms = backend.rooms(&Progress::hidden()).await.unwrap();
    assert_eq!((rooms.connections, rooms.rooms), (5, expected));

    let cli = <Cli as clap::Parser>::try_parse_from([
        "wsfanout",
        "status",
        "--json",
        "--top",
        "1",
        "--local",
        &base_url(&stack),
        "--admin-token",
        ADMIN_TOKEN,
    ])
    .unwrap();
    let printed = wsfanout_ops::run(&cli).await.unwrap().render(true);
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["rooms"], json!([{"room": "ops", "members": 3}]));
    assert_eq!(printed["openSockets"], 5);

    // A room name the domain refuses never reaches the stack.
    let refused = <Cli as clap::Parser>::try_parse_from([
        "wsfanout", "publish", "--room", "a/b", "--data", "1",
    ]);
    assert!(refused.is_err());
    leave(ops).await;
    leave(others).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_closes_a_clients_socket() {
    let stack = embedded(&[]).await;
    let mut clients = join(&stack, "lobby", 2).await;
    // A client's id is the `from` of the frames of its messages.
    clients[0].say(json!("who am I")).await;
    let ack = clients[0].next_json(WAIT).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let own = clients[0].next_json(WAIT).await;
    let id = own["from"].as_str().expect("a sender id").to_owned();
    clients[1].next_json(WAIT).await;

    let backend = backend(&stack);
    backend.kick(&id).await.expect("kick");
    match clients[0].next(WAIT).await {
        Event::Closed(code) => assert_eq!(code, Some(1000), "DELETE @connections closes with 1000"),
        other => panic!("expected the socket to close, got {other:?}"),
    }
    let now = until(&backend, "its $disconnect ran", |s| s.connections == 1).await;
    assert_eq!(now.open_sockets, Some(1));
    assert!(matches!(
        backend.kick(&id).await,
        Err(OpsError::NotFound(message)) if message.contains("410")
    ));
    expect_silence(&mut clients[1..], "the other client").await;
    leave(clients).await;
    stack.shutdown().await;
}

/// A valid job parks the way SQS parks one: its worker invocation dies mid-fan-out (killed
/// while the management API hangs), and with `--max-receive-count 1` its next receive moves it
/// to the dead-letter queue. A malformed body is parked by the worker, with its reason.
/// `dlq list` and `dlq show` show both; `dlq redrive --max 1` brings back the oldest, the valid
/// job, which reaches the room's members; a redrive of the rest sends the malformed one back,
/// and the worker parks it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_job_is_listed_shown_and_delivered_once_redriven() {
    const WORKER_TIMEOUT: Duration = Duration::from_secs(8);
    let stack = embedded(&[
        "--max-receive-count",
        "1",
        "--visibility-timeout",
        "1s",
        "--worker-timeout",
        "8s",
        "--worker-concurrency",
        "1",
        "--batch-size",
        "1",
    ])
    .await;
    let mut members = join(&stack, "parked", 2).await;
    let backend = backend(&stack);
    let progress = Progress::hidden();

    stack.inject_management_fault(FaultKind::Hang, Duration::from_secs(3));
    let published = publish_to(&backend, room("parked"), "\"late but delivered\"", None)
        .await
        .unwrap();
    until(&backend, "the worker holds the job", |s| {
        s.queue.in_flight == 1
    })
    .await;
    let taken_at = Instant::now();
    assert_eq!(stack.kill_worker_invocations(), 1, "one invocation to kill");
    until(&backend, "the job is parked", |s| s.queue.dead == 1).await;
    stack
        .local_queue()
        .expect("the in-memory queue")
        .send_raw("{not a job");
    // The worker parks the body, then deletes its receipt: wait for both.
    until(&backend, "the malformed body is parked and deleted", |s| {
        s.queue.dead == 2 && s.queue.ready + s.queue.in_flight == 0
    })
    .await;

    let list = backend.dlq_list(100, &progress).await.unwrap();
    assert_eq!((list.total, list.messages.len()), (2, 2), "{list:?}");
    let (valid, malformed) = (&list.messages[0], &list.messages[1]);
    assert!(valid.body.contains(&published.id), "{valid:?}");
    assert!(
        valid
            .reason
            .as_deref()
            .unwrap()
            .contains("received 1 times"),
        "{valid:?}"
    );
    assert!(valid.parked_at_ms.is_some());
    assert_eq!(malformed.body, "{not a job");
    let shown = backend.dlq_show(&malformed.id, &progress).await.unwrap();
    assert_eq!(&shown, malformed);
    assert!(
        shown.reason.as_deref().unwrap().contains("JSON"),
        "the worker's reason: {shown:?}"
    );
    assert!(matches!(
        backend.dlq_show("no-such-id", &progress).await,
        Err(OpsError::NotFound(_))
    ));
    expect_silence(&mut members, "a member before the redrive").await;

    // The killed run holds the job's progress record until its deadline: redrive after it.
    sleep(
        (taken_at + WORKER_TIMEOUT + Duration::from_secs(1))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    let redrive = backend
        .dlq_redrive(Some(1), Duration::from_secs(10), &progress)
        .await
        .unwrap();
    assert_eq!(
        (redrive.moved, redrive.remaining),
        (1, Some(1)),
        "{redrive:?}"
    );
    all_receive(
        &mut members,
        &published.id,
        Some("parked"),
        &json!("late but delivered"),
    )
    .await;

    let rest = backend
        .dlq_redrive(None, Duration::from_secs(10), &progress)
        .await
        .unwrap();
    assert_eq!((rest.moved, rest.remaining), (1, Some(0)));
    let now = until(&backend, "the malformed body is parked again", |s| {
        s.queue.dead == 1 && s.queue.ready + s.queue.in_flight == 0
    })
    .await;
    assert_eq!(now.connections, 2);
    let list = backend.dlq_list(100, &progress).await.unwrap();
    assert_eq!(list.messages[0].body, "{not a job");
    expect_silence(&mut members, "a member after the delivery").await;
    leave(members).await;
    stack.shutdown().await;
}
