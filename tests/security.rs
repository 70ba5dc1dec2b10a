//! The security boundaries end to end, on the local stack with real WebSocket clients: the
//! `$connect` authorizer and its room claims (the same one the deployed stack runs), and the
//! per-connection rate limit (one connection cannot spend the room's capacity).

use e2e::embedded;
use fanout::auth::DevToken;
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Client, Event};
use serde_json::json;
use std::time::{Duration, SystemTime};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(20);

/// A client that sends 100 messages at once gets its burst acked and `rate_limited` for the
/// rest, while another member of the room sends and receives as usual throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_rate_limited_and_the_room_goes_on() {
    let stack = embedded(&["--rate-limit-per-second", "10", "--rate-limit-burst", "20"]).await;
    let url = format!("{}?room=busy", stack.websocket_url());
    let (mut flooder, mut member) = (Client::connect(&url).await, Client::connect(&url).await);

    for i in 0..100 {
        flooder.say(json!(format!("flood {i}"))).await;
    }
    member.say(json!("still here")).await;

    // The flooder hears an answer per message (ack or error) and the messages that got through.
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 100 {
        let frame = flooder.next_json(WAIT).await;
        match (frame["type"].as_str(), frame["code"].as_str()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            (Some("message"), _) => {}
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }
    assert!(
        (20..=25).contains(&acks),
        "a burst of 20 (and what refilled while the flood arrived): {acks} acked"
    );
    assert_eq!(limited, 100 - acks);

    // The other member was acked and gets its own message and the flooder's accepted ones.
    let mut member_acked = false;
    let mut heard_mine = false;
    let mut heard_flood = 0;
    while !(member_acked && heard_mine && heard_flood == acks) {
        match member.next(WAIT).await {
            Event::Json(frame) => match frame["type"].as_str() {
                Some("ack") => member_acked = true,
                Some("message") if frame["data"] == "still here" => heard_mine = true,
                Some("message") => heard_flood += 1,
                _ => panic!("the member got {frame}"),
            },
            other => panic!(
                "the member stopped hearing (acked {member_acked}, own {heard_mine}, flood \
                 {heard_flood} of {acks}): {other:?}"
            ),
        }
    }
    stack.shutdown().await;
}

const SECRET: &str = "a development secret of at least 32 bytes";

fn token(sub: &str, rooms: &[&str]) -> String {
    DevToken::new(sub, rooms.iter().map(|r| (*r).to_owned()).collect())
        .mint(SECRET.as_bytes(), SystemTime::now())
        .expect("mint a token")
}

/// The HTTP status and body a refused handshake got.
async fn refused(url: &str) -> (u16, String) {
    match Client::try_connect(url).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("{url}: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_need_a_token_that_grants_their_room_and_frames_name_the_user() {
    let stack = embedded(&["--jwt-secret", SECRET]).await;
    let base = stack.websocket_url();

    let (status, _) = refused(&format!("{base}?room=lobby")).await;
    assert_eq!(status, 401, "no token");
    let forged = DevToken::new("mallory", vec!["lobby".into()])
        .mint(b"another secret, also 32 bytes or more", SystemTime::now())
        .unwrap();
    let (status, _) = refused(&format!("{base}?room=lobby&token={forged}")).await;
    assert_eq!(status, 401, "signed with another secret");
    let alice = token("alice", &["lobby", "team-42:*"]);
    let (status, reason) = refused(&format!("{base}?room=secret&token={alice}")).await;
    assert_eq!(status, 403, "a room outside the claim");
    assert!(
        reason.contains("secret"),
        "the reason names the room: {reason}"
    );

    let mut alice_in = Client::connect(&format!("{base}?room=team-42:ops&token={alice}")).await;
    // A header instead of the query string, as a server-side client may send it.
    let mut request = format!("{base}?room=team-42:ops")
        .into_client_request()
        .unwrap();
    let bob = token("bob", &["team-42:*"]);
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {bob}").parse().unwrap());
    let mut bob_in = Client::try_connect_request(request)
        .await
        .expect("a Bearer header is a token too");

    alice_in.say(json!("hello team")).await;
    assert_eq!(alice_in.next_json(WAIT).await["type"], "ack");
    let heard = bob_in.next_json(WAIT).await;
    assert_eq!(heard["data"], "hello team", "{heard}");
    assert_eq!(
        heard["user"], "alice",
        "frames carry the verified sender: {heard}"
    );
    assert!(heard["from"].is_string(), "{heard}");

    let text = fanout_test_support::http::request(stack.addr(), "GET", "/metrics", "")
        .await
        .unwrap()
        .body;
    assert_eq!(
        metric(&text, "fanout_connects_refused_total"),
        Some(3.0),
        "{text}"
    );
    stack.shutdown().await;
}
