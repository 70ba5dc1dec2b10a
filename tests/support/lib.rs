//! What only the end-to-end tests need: the local stack's options, the stack on them, and
//! clients joined to a room. What the tests of every crate share (moto, the HTTP and WebSocket
//! clients, reading Prometheus metrics) is in `fanout-test-support`.

use fanout_local::{LocalStack, Options};
use fanout_test_support::moto::{moto_sdk_config, unique};
use fanout_test_support::ws::Client;

/// The local stack on the embedded backend and a free port, with `extra` flags.
/// The access key the stacks of [`options`] take on `POST /publish`.
pub const PUBLISH_CREDENTIALS: &str = "publisher:publisher-secret";

/// Those credentials, for a client that signs publishes.
pub fn publisher() -> aws_credential_types::Credentials {
    let (id, secret) = PUBLISH_CREDENTIALS.split_once(':').unwrap();
    aws_credential_types::Credentials::new(id, secret, None, None, "test")
}

pub fn options(extra: &[&str]) -> Options {
    let mut args = vec![
        "fanout-local",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "memory",
        "--publish-credentials",
        PUBLISH_CREDENTIALS,
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

/// The local stack on DynamoDB and SQS in moto, on fresh tables and queues, with `extra` flags.
pub async fn on_moto(extra: &[&str]) -> LocalStack {
    let (table, queue) = (unique("connections"), unique("fanout"));
    let mut args = vec![
        "--create-resources",
        "--table",
        &table,
        "--queue-name",
        &queue,
    ];
    args.extend_from_slice(extra);
    let mut options = options(&args);
    options.backend = fanout_local::options::BackendKind::Aws;
    LocalStack::start_with(options, Some(moto_sdk_config().await))
        .await
        .expect("start the local stack on moto")
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
