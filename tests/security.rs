//! The security boundaries end to end, on the local stack with real WebSocket clients: the
//! `$connect` authorizer and its room claims (the same one the deployed stack runs), and the
//! per-connection rate limit (one connection cannot spend the room's capacity); and what keeps
//! a web page the developer visits from driving the local stack (issue 19): the admin token,
//! loopback `Host` names, JSON POSTs, the upgrade's `Origin`, a signed `@connections`.

use e2e::{ADMIN_TOKEN, connection_path, embedded, management};
use fanout::auth::DevToken;
use fanout_test_support::http::{request, request_with};
use fanout_test_support::prometheus::metric;
use fanout_test_support::ws::{Client, Event};
use serde_json::json;
use std::time::{Duration, SystemTime};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

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
    refused_request(url.into_client_request().unwrap()).await
}

/// What a refused handshake request got: its status and body.
async fn refused_request(request: Request) -> (u16, String) {
    let uri = request.uri().clone();
    match Client::try_connect_request(request).await {
        Ok(_) => panic!("{uri} was accepted"),
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("{uri}: {other}"),
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

/// The stack's `/admin` API answers only its run's token, `Authorization: Bearer TOKEN`:
/// nothing, another scheme or another token is a 401, whatever the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_only_the_runs_token() {
    let stack = embedded(&[]).await;
    let wrong = format!("Bearer {}", "x".repeat(ADMIN_TOKEN.len()));
    let basic = format!("Basic {ADMIN_TOKEN}");
    let json = ("content-type", "application/json");
    for authorization in [None, Some(wrong.as_str()), Some(basic.as_str())] {
        let mut headers = vec![json];
        headers.extend(authorization.map(|value| ("authorization", value)));
        for (method, path) in [
            ("GET", "/admin/info"),
            ("GET", "/admin/dlq"),
            ("POST", "/admin/dlq/redrive"),
        ] {
            let answer = request_with(stack.addr(), method, path, &headers, "")
                .await
                .unwrap();
            assert_eq!(
                answer.status, 401,
                "{method} {path} {authorization:?}: {answer:?}"
            );
        }
    }
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let answer = request_with(
        stack.addr(),
        "GET",
        "/admin/info",
        &[("authorization", &bearer)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    stack.shutdown().await;
}

/// DNS rebinding: a page on a name that now resolves to 127.0.0.1 sends its own name as
/// `Host`. Only loopback names and IP addresses reach the stack, on every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_host_names_are_answered() {
    let stack = embedded(&[]).await;
    let port = stack.addr().port();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for host in [
        "rebind.attacker.example",
        "evil.example:8080",
        "localhost.evil.example",
    ] {
        for path in ["/", "/admin/dlq", "/healthz", "/local"] {
            let answer = request_with(
                stack.addr(),
                "GET",
                path,
                &[("host", host), ("authorization", &bearer)],
                "",
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 421, "Host {host}, GET {path}: {answer:?}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        let answer = request_with(stack.addr(), "GET", "/healthz", &[("host", &host)], "")
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "Host {host}: {answer:?}");
    }
    // The WebSocket upgrade too.
    let mut upgrade = stack.websocket_url().into_client_request().unwrap();
    upgrade
        .headers_mut()
        .insert("host", "rebind.attacker.example".parse().unwrap());
    assert_eq!(refused_request(upgrade).await.0, 421);
    stack.shutdown().await;
}

/// A page's no-cors `fetch` can POST `text/plain` without a preflight; JSON it cannot. Every
/// POST of `/admin` and `/publish` must say it is JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_must_be_json() {
    let stack = embedded(&[]).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        for path in ["/admin/dlq/redrive", "/publish"] {
            let mut headers = vec![("authorization", bearer.as_str())];
            headers.extend(content_type.map(|value| ("content-type", value)));
            let answer = request_with(stack.addr(), "POST", path, &headers, r#"{"all":true}"#)
                .await
                .unwrap();
            assert_eq!(answer.status, 415, "{path} {content_type:?}: {answer:?}");
        }
    }
    let answer = request_with(
        stack.addr(),
        "POST",
        "/admin/dlq/redrive",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json; charset=utf-8"),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    stack.shutdown().await;
}

fn with_origin(url: &str, origin: &str) -> Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    request
}

/// Authentication off, a page elsewhere could open sockets in any room as anyone: the upgrade
/// takes no Origin (a program), the stack's own page's, and those `--allowed-origin` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_opened_only_by_the_stacks_own_pages_or_allowed_origins() {
    let stack = embedded(&["--allowed-origin", "http://localhost:3000"]).await;
    let url = format!("{}?room=lobby", stack.websocket_url());
    let port = stack.addr().port();
    for foreign in [
        "https://evil.example",
        "http://127.0.0.1:1",
        "http://localhost:3001",
        "null",
    ] {
        let (status, reason) = refused_request(with_origin(&url, foreign)).await;
        assert_eq!(status, 403, "{foreign}");
        assert!(reason.contains("--allowed-origin"), "{foreign}: {reason}");
    }
    for own in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        "http://localhost:3000".to_owned(),
    ] {
        Client::try_connect_request(with_origin(&url, &own))
            .await
            .unwrap_or_else(|error| panic!("{own}: {error}"));
    }
    Client::connect(&url).await;
    stack.shutdown().await;
}

/// The management API is SigV4-signed in AWS; here too: unsigned, it refuses to post, read or
/// close; signed by a key the stack takes (the publisher's), it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_needs_a_signature() {
    let stack = embedded(&[]).await;
    let mut clients = e2e::join(&stack, "lobby", 1).await;
    clients[0].say(json!("who am i")).await;
    clients[0].next_json(WAIT).await;
    let id = clients[0].next_json(WAIT).await["from"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = connection_path(&id);
    for method in ["POST", "GET", "DELETE"] {
        let answer = request(stack.addr(), method, &path, "\"hi\"")
            .await
            .unwrap();
        assert_eq!(answer.status, 403, "unsigned {method}: {answer:?}");
    }
    let posted = management(&stack, "POST", &id, "\"signed\"").await;
    assert_eq!(posted.status, 200, "{posted:?}");
    assert_eq!(clients[0].next_json(WAIT).await, json!("signed"));
    stack.shutdown().await;
}
