//! The backends' door, `POST /publish`, on the local stack: signed with SigV4 or refused; a
//! message to a room takes the room's sequence with its members' messages, is delivered with
//! the offset its answer gave, and is recoverable; the same idempotency key publishes once.

use e2e::{embedded, on_moto, publisher};
use fanout::domain::{IdempotencyKey, Published, RoomName, Target};
use fanout_local::LocalStack;
use fanout_test_support::http::request_with;
use fanout_test_support::ws::{Client, Event};
use serde_json::{Value, json};
use std::time::Duration;
use wsfanout_ops::publish::{request_body, send};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(500);

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

fn news() -> Target {
    Target::Room(RoomName::parse("news").unwrap())
}

/// Publishes `data` to the news room as a backend would, signed with `credentials`.
async fn publish(
    stack: &LocalStack,
    credentials: &aws_credential_types::Credentials,
    data: &str,
    key: &IdempotencyKey,
) -> Result<Published, String> {
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let body = request_body(&news(), data, key).map_err(|e| e.to_string())?;
    send(&sdk, Some(credentials), &stack.publish_url(), body)
        .await
        .map_err(|e| e.to_string())
}

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

async fn the_door_is_signed_idempotent_and_in_the_rooms_sequence(stack: &LocalStack) {
    let url = format!("{}?room=news", stack.websocket_url());
    let mut member = Client::connect(&url).await;

    // Unsigned, and signed with a key the stack does not take: refused, nothing delivered.
    let unsigned = request_with(
        stack.addr(),
        "POST",
        "/publish",
        &[("content-type", "application/json")],
        r#"{"room":"news","data":1}"#,
    )
    .await
    .unwrap();
    assert_eq!(unsigned.status, 403, "{unsigned:?}");
    assert!(unsigned.body.contains("Authorization"), "{unsigned:?}");
    let stranger = aws_credential_types::Credentials::new("publisher", "wrong", None, None, "t");
    let refused = publish(stack, &stranger, "1", &key("k0"))
        .await
        .unwrap_err();
    assert!(
        refused.contains("403") && refused.contains("does not match"),
        "{refused}"
    );
    assert!(matches!(member.next(QUIET).await, Event::Silence));

    // Signed: the answer's offset is the delivered frame's.
    let first = publish(
        stack,
        &publisher(),
        r#"{"text":"breaking"}"#,
        &key("story-1"),
    )
    .await
    .unwrap();
    assert_eq!(first.offset, Some(1));
    let frame = next_message(&mut member).await;
    assert_eq!(frame["id"], first.id.as_str());
    assert_eq!(frame["offset"], 1);
    assert_eq!(frame["epoch"], first.epoch.as_deref().unwrap());
    assert_eq!(frame["data"], json!({"text":"breaking"}));
    assert!(frame.get("from").is_none(), "{frame}");

    // A member's message comes next in the same sequence.
    member
        .send_text(r#"{"action":"sendmessage","data":"reply"}"#)
        .await;
    let reply = next_message(&mut member).await;
    assert_eq!(
        (reply["offset"].as_u64(), &reply["epoch"]),
        (Some(2), &frame["epoch"])
    );

    // The same key again: the first answer, nothing published.
    let again = publish(
        stack,
        &publisher(),
        r#"{"text":"breaking"}"#,
        &key("story-1"),
    )
    .await
    .unwrap();
    assert_eq!(again, first);
    assert!(matches!(member.next(QUIET).await, Event::Silence));
    let reused = publish(stack, &publisher(), r#"{"text":"other"}"#, &key("story-1"))
        .await
        .unwrap_err();
    assert!(
        reused.contains("422") && reused.contains("key_reused"),
        "{reused}"
    );

    // A member that joins later recovers the published message with the rest.
    let mut late = Client::connect(&url).await;
    late.send_text(r#"{"action":"recover","last":10}"#).await;
    let recovered: Vec<Value> = {
        let mut frames = Vec::new();
        loop {
            let frame = late.next_json(WAIT).await;
            if frame["type"] == "recovered" {
                assert_eq!(frame["complete"], true, "{frame}");
                break frames;
            }
            frames.push(frame);
        }
    };
    let ids: Vec<&str> = recovered
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![first.id.as_str(), reply["id"].as_str().unwrap()]);
    member.close().await;
    late.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_door_on_the_embedded_default() {
    let stack = embedded(&[]).await;
    the_door_is_signed_idempotent_and_in_the_rooms_sequence(&stack).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_door_on_dynamodb_and_sqs() {
    let stack = on_moto(&[]).await;
    the_door_is_signed_idempotent_and_in_the_rooms_sequence(&stack).await;
    stack.shutdown().await;
}
