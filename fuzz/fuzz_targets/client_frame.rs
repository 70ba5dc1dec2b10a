//! Client frames: `parse_send_message`, `parse_recover` and `parse_publish` (a backend's
//! publish request) on any UTF-8 (text and binary frames), and the same frame through the `$default` and `sendmessage` handlers on the
//! in-memory adapters. Never a panic; always status 200 and an ack or an error frame (a pong for
//! a ping); an ack means exactly one job, which the worker accepts, and carries `data` exactly as
//! sent, with the offset the ack names.

#![no_main]

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use fanout::adapters::memory::{MemoryHistory, MemoryQueue, MemoryStore};
use fanout::domain::history::parse_recover;
use fanout::domain::message::queueable;
use fanout::domain::{Connection, Job, RoomName, Target, parse_publish, parse_send_message};
use fanout::handlers::default;
use fanout::handlers::sendmessage::{SendConfig, SendMessage};
use fanout::metrics::{EmfConfig, EmfSink};
use fanout::ports::ConnectionStore;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::SystemTime;

const SENDER: &str = "Dx4sXe1ZoAMCJvw=";
/// Small, so that the limit is within the fuzzer's reach.
const MAX_DATA_BYTES: usize = 256;

fn store() -> &'static MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = MemoryStore::new();
        futures::executor::block_on(store.put(&Connection::in_room(
            SENDER,
            RoomName::lobby(),
            0,
            0,
        )))
        .unwrap();
        store
    })
}

/// The handlers bound their calls with tokio's timers: they run on a runtime, as in Lambda.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn frame(response: &ApiGatewayProxyResponse) -> serde_json::Value {
    assert_eq!(response.status_code, 200);
    let Some(Body::Text(text)) = &response.body else {
        panic!("no text body: {response:?}");
    };
    serde_json::from_str(text).expect("the answer is JSON")
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks text or binary; the rest is the frame.
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(rest) else {
        return;
    };
    let binary = flags & 1 == 1;
    let parsed = parse_send_message(Some(body), binary, MAX_DATA_BYTES);
    if let Ok(sent) = &parsed {
        let data = &sent.data;
        assert!(data.get().len() <= MAX_DATA_BYTES);
        assert_ne!(data.get(), "null");
        assert!(
            data.get().chars().all(queueable),
            "only what a queue message may hold"
        );
    }
    // The same text as a backend's publish request.
    if let Ok(publish) = parse_publish(Some(body), MAX_DATA_BYTES) {
        assert!(publish.data.get().len() <= MAX_DATA_BYTES);
        assert!(publish.data.get().chars().all(queueable));
        assert!(matches!(publish.target, Target::Room(_) | Target::All));
    }

    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.body = Some(body.to_owned());
    request.is_base64_encoded = binary;
    request.request_context.connection_id = Some(SENDER.into());

    let answer = frame(&default::handle(request.clone()));
    let is_ping = serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|value| !binary && value["action"] == "ping");
    let expected = if is_ping { "pong" } else { "error" };
    assert_eq!(answer["type"], expected, "$default on {body:?}");
    if parse_recover(Some(body), binary, 100).is_ok() {
        assert!(!binary, "a binary frame is never a recovery");
    }

    let queue = MemoryQueue::new();
    // Parsing is what is fuzzed: one sender sends everything, so no rate limit.
    let config = SendConfig {
        max_data_bytes: MAX_DATA_BYTES,
        rate_limit: None,
        ..SendConfig::default()
    };
    static HISTORY: OnceLock<MemoryHistory> = OnceLock::new();
    let history = HISTORY.get_or_init(|| MemoryHistory::new(10));
    let metrics = EmfSink::new(
        EmfConfig {
            namespace: EmfConfig::DEFAULT_NAMESPACE.into(),
            workspace: "fuzz".into(),
            function: "sendmessage".into(),
        },
        std::io::sink(),
    );
    let handler = SendMessage {
        store: store(),
        allowances: store(),
        queue: &queue,
        history,
        config: &config,
        metrics: &metrics,
    };
    let answer = frame(&runtime().block_on(handler.handle(request, SystemTime::now())));
    let jobs = queue.drain();
    // The sender is in the lobby only: a message naming another room is refused.
    let in_its_room = |sent: &fanout::domain::Outgoing| {
        sent.room
            .as_ref()
            .is_none_or(|room| *room == RoomName::lobby())
    };
    match (&parsed, answer["type"].as_str()) {
        (Ok(sent), Some("ack")) if in_its_room(sent) => {
            assert_eq!(jobs.len(), 1);
            assert_eq!(jobs[0].payload.get(), sent.data.get());
            assert!(
                Job::parse(&jobs[0].to_json()).is_ok(),
                "acked a job the worker refuses"
            );
            assert_eq!(answer["offset"], serde_json::json!(jobs[0].offset));
        }
        (Err(_), Some("error")) => assert!(jobs.is_empty()),
        (Ok(sent), Some("error")) if !in_its_room(sent) => {
            assert_eq!(answer["code"], "not_in_room");
            assert!(jobs.is_empty());
        }
        (parsed, answer) => panic!("parser {parsed:?}, handler {answer:?}"),
    }
});
