//! What only the end-to-end tests need: the local stack's options, the stack on them, and
//! clients joined to a room. What the tests of every crate share (moto, the HTTP and WebSocket
//! clients, reading Prometheus metrics) is in `fanout-test-support`.

use fanout_local::{LocalStack, Options};
use fanout_test_support::ws::Client;

/// The local stack on the embedded backend and a free port, with `extra` flags.
pub fn options(extra: &[&str]) -> Options {
    let mut args = vec![
        "fanout-local",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "memory",
    ];
    args.extend_from_slice(extra);
    clap::Parser::parse_from(args)
}

/// The local stack started on [`options`]`(extra)`; panics if it does not start.
pub async fn embedded(extra: &[&str]) -> LocalStack {
    LocalStack::start_with(options(extra), None)
        .await
        .expect("start the local stack")
}

/// `count` clients connected to `room`, one after the other; panics if one is refused.
pub async fn join(stack: &LocalStack, room: &str, count: usize) -> Vec<Client> {
    let url = format!("{}?room={room}", stack.websocket_url());
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(Client::connect(&url).await);
    }
    clients
}

/// `/local/@connections/{id}`: the management API's path for a connection, its id escaped
/// (API Gateway's ids are base64: `+`, `/` and `=`).
pub fn connection_path(id: &str) -> String {
    let escaped = id
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("/local/@connections/{escaped}")
}
