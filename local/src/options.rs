//! Command-line options. The fan-out engine also reads the worker Lambda's environment
//! variables (`FANOUT_CONCURRENCY`, `POST_TIMEOUT_MS`, ...); the flags here override them.

use clap::{Parser, ValueEnum};
use fanout::domain::DeliveryMode;
use std::net::SocketAddr;
use std::time::Duration;

/// Runs the whole WebSocket fan-out pipeline on this machine.
#[derive(Parser, Debug, Clone)]
#[command(name = "fanout-local", version)]
pub struct Options {
    /// Address to listen on for WebSockets, the management API, /metrics and /healthz; port 0
    /// picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The stage in URLs: ws://HOST/STAGE and http://HOST/STAGE/@connections/ID.
    #[arg(long, default_value = "local", value_parser = parse_stage)]
    pub stage: String,

    /// Close connections idle this long (API Gateway: 10 minutes).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Close connections open this long (API Gateway: 2 hours).
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub max_connection_duration: Duration,

    /// Largest WebSocket frame accepted (API Gateway: 32 KB); larger closes with 1009.
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest message accepted (API Gateway: 128 KB); larger closes with 1009.
    #[arg(long, default_value_t = 128 * 1024)]
    pub max_message_bytes: usize,

    /// Where connections and jobs live. `auto` picks `aws` when an endpoint is given (flag
    /// or the SDK's AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS), else
    /// `memory`.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,

    /// DynamoDB and SQS endpoint for the aws backend (for example moto's).
    #[arg(long)]
    pub endpoint_url: Option<String>,

    /// DynamoDB connections table (aws backend).
    #[arg(long, default_value = "fanout-local-connections")]
    pub table: String,

    /// SQS fan-out queue name; its dead-letter queue is NAME-dlq (aws backend).
    #[arg(long, default_value = "fanout-local")]
    pub queue_name: String,

    /// Create the table, its room index and the queues if they do not exist (aws backend).
    #[arg(long)]
    pub create_resources: bool,

    /// Jobs per worker invocation at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,

    /// Gather jobs this long before invoking with a partial batch.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub batching_window: Duration,

    /// The worker's timeout: each invocation's deadline.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub worker_timeout: Duration,

    /// How long a received job stays invisible before redelivery; default 6 × worker timeout.
    #[arg(long, value_parser = parse_duration)]
    pub visibility_timeout: Option<Duration>,

    /// Receives after which a job moves to the dead-letter queue.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_receive_count: u32,

    /// Worker invocations at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub worker_concurrency: u16,

    /// Posts in flight per invocation (overrides FANOUT_CONCURRENCY).
    #[arg(long)]
    pub fanout_concurrency: Option<usize>,

    /// What members receive: envelope or raw (overrides DELIVERY_MODE).
    #[arg(long, value_parser = parse_delivery_mode)]
    pub delivery_mode: Option<DeliveryMode>,

    /// Largest `data` accepted, as JSON text (overrides MAX_DATA_BYTES).
    #[arg(long)]
    pub max_data_bytes: Option<usize>,

    /// Log JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Auto,
    Memory,
    Aws,
}

impl Options {
    /// The defaults, listening on `listen`: what tests start from.
    pub fn listening_on(listen: &str) -> Self {
        Options::parse_from(["fanout-local", "--listen", listen])
    }

    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout.unwrap_or(self.worker_timeout * 6)
    }
}

fn parse_delivery_mode(text: &str) -> Result<DeliveryMode, String> {
    text.parse()
}

fn parse_stage(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("use 1 to 128 of A-Z a-z 0-9 _ -".into())
    }
}

/// `250ms`, `30s`, `10m`, `2h`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 10m or 250ms"))?;
    let millis = match unit {
        "ms" => value,
        "" | "s" => value * 1000,
        "m" => value * 60_000,
        "h" => value * 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn defaults_mirror_api_gateway_and_the_terraform_stack() {
        let options = Options::listening_on("127.0.0.1:0");
        assert_eq!(options.idle_timeout, Duration::from_secs(600));
        assert_eq!(options.max_connection_duration, Duration::from_secs(7200));
        assert_eq!(
            (options.max_frame_bytes, options.max_message_bytes),
            (32768, 131072)
        );
        assert_eq!(options.visibility_timeout(), Duration::from_secs(360));
        assert!(Options::try_parse_from(["fanout-local", "--stage", "a/b"]).is_err());
    }
}
