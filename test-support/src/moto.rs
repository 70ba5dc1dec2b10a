//! A moto server for tests that talk to DynamoDB and SQS.
//!
//! Uses `AWS_ENDPOINT_URL` when set (CI starts moto and exports it); otherwise starts
//! `moto_server` from PATH or the repository's `.venv` on a free port, for the life of the test
//! process. Without either, tests fail and say how to get moto: they never pass vacuously.

use crate::net::{free_port, wait_for_port};
use aws_config::SdkConfig;
use fanout::adapters::dynamodb::{DynamoStore, TableConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A unique name for a table or queue, so tests can share one moto.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A new connections table in moto, named `{prefix}-{unique}`, made as the stack makes it (the
/// memberships table beside it, `{name}-memberships`), with `page_limit` ids a page; its name and its store.
pub async fn connections_table(
    sdk: &SdkConfig,
    prefix: &str,
    page_limit: Option<i32>,
) -> (String, DynamoStore) {
    let table = unique(prefix);
    let store = DynamoStore::from_client(
        aws_sdk_dynamodb::Client::new(sdk),
        TableConfig {
            table: table.clone(),
            memberships_table: format!("{table}-memberships"),
            page_limit,
        },
    );
    store
        .create_table()
        .await
        .expect("create the connections table in moto");
    (table, store)
}

/// A new queue `name` in moto (plain: no redrive policy, default attributes); its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create a queue in moto")
        .queue_url
        .expect("moto returns the queue URL")
}

/// A new FIFO queue in moto (`ordering = "per_room"`), named `{prefix}-{unique}.fifo` as SQS
/// requires, with content-based deduplication off as Terraform makes it; its URL.
pub async fn create_fifo_queue(client: &aws_sdk_sqs::Client, prefix: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    client
        .create_queue()
        .queue_name(format!("{}.fifo", unique(prefix)))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .expect("create a FIFO queue in moto")
        .queue_url
        .expect("moto returns the queue URL")
}

/// One receive of up to ten messages from the queue at `url`: each body with its message group.
pub async fn receive_with_groups(client: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId;
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageGroupId)
        .send()
        .await
        .expect("receive from moto")
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|message| {
            let group = message
                .attributes
                .and_then(|mut attributes| attributes.remove(&MessageGroupId))
                .unwrap_or_default();
            (message.body.unwrap_or_default(), group)
        })
        .collect()
}

/// The moto endpoint, starting moto if needed.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var("AWS_ENDPOINT_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_moto(),
        })
        .clone()
}

/// SDK configuration pointed at moto, with dummy credentials.
pub async fn moto_sdk_config() -> SdkConfig {
    sdk_config_for(&moto_endpoint()).await
}

pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    fanout::adapters::aws::static_sdk_config(Some(endpoint)).await
}

fn moto_binary() -> Option<String> {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server");
    if std::path::Path::new(venv).exists() {
        return Some(venv.to_owned());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.exists())
            .map(|found| found.display().to_string())
    })
}

fn start_moto() -> String {
    let binary = moto_binary().unwrap_or_else(|| {
        panic!(
            "these tests need moto: run `.ci/run`, or `python3 -m venv .venv && \
             .venv/bin/pip install 'moto[server]'`, or set AWS_ENDPOINT_URL to a running moto_server"
        )
    });
    let port = free_port();
    // moto runs under a shell that kills it when our end of its stdin closes, i.e. when this
    // test process exits, however it exits.
    let script = format!(
        "'{binary}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; echo started; read _; kill $pid"
    );
    let mut child: Child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    wait_for_port(port, Duration::from_secs(30))
        .unwrap_or_else(|error| panic!("moto_server did not start: {error}"));
    // Keep stdin open for the life of the process.
    Box::leak(Box::new(child));
    format!("http://127.0.0.1:{port}")
}
