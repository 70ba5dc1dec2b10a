//! Many rooms on one connection, end to end on the local stack (embedded and on moto): `join`
//! and `leave` over the socket, each room's messages reaching exactly its members.

use e2e::{embedded, join, on_moto};
use fanout_local::LocalStack;
use fanout_test_support::ws::{Client, Event};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(500);

/// Sends `frame` and returns the answer the route gives back.
async fn ask(client: &mut Client, frame: Value) -> Value {
    client.send_text(&frame.to_string()).await;
    client.next_json(WAIT).await
}

/// `sender` says `text` in its only room; `hearer` receives it, from that room.
async fn heard_in(sender: &mut Client, hearer: &mut Client, room: &str, text: &str) {
    sender.say(json!({ "text": text })).await;
    let ack = sender.next_json(WAIT).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let frame = hearer.next_json(WAIT).await;
    assert_eq!(frame["type"], "message", "{frame}");
    assert_eq!(frame["room"], room, "{frame}");
    assert_eq!(frame["data"]["text"], text, "{frame}");
}

async fn one_socket_in_three_rooms(stack: &LocalStack) {
    // Joins no room at connect, then three.
    let mut multi = Client::connect(&format!("{}?room=", stack.websocket_url())).await;
    let mut others = Vec::new();
    for room in ["red", "green", "blue"] {
        let answer = ask(&mut multi, json!({"action": "join", "room": room})).await;
        assert_eq!(answer, json!({"type": "joined", "room": room}));
        others.push((room, join(stack, room, 1).await.remove(0)));
    }
    let mut outsider = join(stack, "grey", 1).await.remove(0);

    for (room, other) in &mut others {
        heard_in(other, &mut multi, room, &format!("hello {room}")).await;
        other.next_json(WAIT).await; // its own copy
    }
    // Its own sends name their room, or are refused with the choice.
    let refused = ask(&mut multi, json!({"action": "sendmessage", "data": 1})).await;
    assert_eq!(refused["code"], "room_required", "{refused}");
    let refused = ask(
        &mut multi,
        json!({"action": "sendmessage", "room": "grey", "data": 1}),
    )
    .await;
    assert_eq!(refused["code"], "not_in_room", "{refused}");
    let ack = ask(
        &mut multi,
        json!({"action": "sendmessage", "room": "green", "data": "to green"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(multi.next_json(WAIT).await["room"], "green");
    let (_, green) = &mut others[1];
    let frame = green.next_json(WAIT).await;
    assert_eq!(
        (frame["room"].clone(), frame["data"].clone()),
        (json!("green"), json!("to green"))
    );

    // Leaving red stops red's messages; the others still come.
    let left = ask(&mut multi, json!({"action": "leave", "room": "red"})).await;
    assert_eq!(left, json!({"type": "left", "room": "red"}));
    let (_, red) = &mut others[0];
    red.say(json!({"text": "after"})).await;
    assert_eq!(red.next_json(WAIT).await["type"], "ack");
    assert_eq!(red.next_json(WAIT).await["type"], "message");
    let (_, blue) = &mut others[2];
    heard_in(blue, &mut multi, "blue", "still here").await;
    assert!(
        matches!(multi.next(QUIET).await, Event::Silence),
        "red's message came after leave"
    );
    assert!(
        matches!(outsider.next(QUIET).await, Event::Silence),
        "grey heard another room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_in_three_rooms_on_the_embedded_default() {
    let stack = embedded(&[]).await;
    one_socket_in_three_rooms(&stack).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_in_three_rooms_on_dynamodb_and_sqs() {
    let stack = on_moto(&[]).await;
    one_socket_in_three_rooms(&stack).await;
    stack.shutdown().await;
}

/// The default limit is 100 rooms a connection: the 101st join is refused and changes nothing;
/// after a leave, a join fits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_join_is_refused() {
    let stack = embedded(&[]).await;
    let mut client = join(&stack, "r0", 1).await.remove(0);
    for i in 1..100 {
        let answer = ask(
            &mut client,
            json!({"action": "join", "room": format!("r{i}")}),
        )
        .await;
        assert_eq!(answer["type"], "joined", "room {i}: {answer}");
    }
    let refused = ask(&mut client, json!({"action": "join", "room": "r100"})).await;
    assert_eq!(refused["code"], "too_many_rooms", "{refused}");
    assert_eq!(
        ask(&mut client, json!({"action": "leave", "room": "r0"})).await["type"],
        "left"
    );
    let answer = ask(&mut client, json!({"action": "join", "room": "r100"})).await;
    assert_eq!(answer["type"], "joined", "{answer}");
    stack.shutdown().await;
}
