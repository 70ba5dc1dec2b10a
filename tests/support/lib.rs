//! What only the end-to-end tests need: the local stack's options, the stack on them, and
//! clients joined to a room. What the tests of every crate share (moto, the HTTP and WebSocket
//! clients, reading Prometheus metrics) is in `fanout-test-support`.

use fanout_local::{LocalStack, Options};
use fanout_test_support::moto::{moto_sdk_config, unique};
use fanout_test_support::ws::Client;

/// The access key the stacks of [`options`] take on `POST /publish`.
pub const PUBLISH_CREDENTIALS: &str = "publisher:publisher-secret";

/// Those credentials, for a client that signs publishes.
pub fn publisher() -> aws_credential_types::Credentials {
    let (id, secret) = PUBLISH_CREDENTIALS.split_once(':').unwrap();
    aws_credential_types::Credentials::new(id, secret, None, None, "test")
}

/// The `/admin` token the stacks of [`options`] take (a run's own is random).
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// The local stack's options on the embedded backend and a free port, with `extra` flags.
pub fn options(extra: &[&str]) -> Options {
    let mut args = vec![
        "fanout-local",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "memory",
        "--publish-credentials",
        PUBLISH_CREDENTIALS,
        "--admin-token",
        ADMIN_TOKEN,
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

/// `method /local/@connections/{id}` with `body`, signed with SigV4 by the [`publisher`]'s key,
/// as a backend's SDK client signs it.
pub async fn management(
    stack: &LocalStack,
    method: &str,
    connection_id: &str,
    body: &str,
) -> fanout_test_support::http::Response {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    let path = connection_path(connection_id);
    let host = stack.addr().to_string();
    let identity: Identity = publisher().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        format!("http://{host}{path}"),
        [("host", host.as_str())].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let headers: Vec<(&str, &str)> = instructions.headers().collect();
    fanout_test_support::http::request_with(stack.addr(), method, &path, &headers, body)
        .await
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}
