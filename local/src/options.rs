//! Command-line options: the one place the local stack's defaults live. The fan-out engine also
//! reads the worker Lambda's environment variables (`FANOUT_CONCURRENCY`, `POST_TIMEOUT_MS`,
//! ...); the flags of [`SETTING_FLAGS`] override them, take their bounds from the same
//! definition (`fanout::config::settings`), and are refused, naming the flag, where the variable
//! would be refused.

use crate::access::{ADMIN_TOKEN_ENV, AdminToken, parse_allowed_origin};
use crate::auth::{AccessKey, AuthOptions, TokenOptions};
use crate::faults::FaultSpec;
use crate::queue::MAX_VISIBILITY_TIMEOUT;
use clap::{Parser, Subcommand, ValueEnum};
use fanout::config::settings::{self, Setting};
use fanout::domain::DeliveryMode;
use fanout::engine::EngineConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// The flags that set what a Lambda's variable sets, each with its setting: the flag takes the
/// setting's bounds, and its default is the variable's value, else the setting's default.
pub const SETTING_FLAGS: &[(&str, &Setting)] = &[
    ("--history-size", &settings::HISTORY_SIZE),
    ("--history-ttl", &settings::HISTORY_TTL_SECONDS),
    ("--retry-budget", &settings::RETRY_BUDGET_SECONDS),
    ("--fanout-concurrency", &settings::FANOUT_CONCURRENCY),
    ("--page-limit", &settings::PAGE_LIMIT),
    ("--room-split-ways", &settings::ROOM_SPLIT_WAYS),
    ("--max-data-bytes", &settings::MAX_DATA_BYTES),
    ("--rate-limit-per-second", &settings::RATE_LIMIT_PER_SECOND),
    ("--rate-limit-burst", &settings::RATE_LIMIT_BURST),
];
/// `--max-outbound-bytes` at least: one post of the largest size fits an empty queue.
const MIN_OUTBOUND_BYTES: u64 = crate::management::MAX_POST_BYTES as u64;
/// `--max-outbound-bytes` at most: 1 GiB.
const MAX_OUTBOUND_BYTES: u64 = 1 << 30;
/// `--max-receive-count`'s default with `--ordering none`: a failed job comes back after a wait
/// that grows with its receives, so 5 reach the dead-letter queue within about a minute (the
/// Terraform stack's `max_receive_count`, terraform/variables.tf, is 11: 15 to 25 minutes).
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
/// `--max-receive-count`'s default with `--ordering per_room`, as the Terraform stack computes
/// `ordered_max_receive_count` (terraform/queue.tf): a FIFO job keeps its message until it is
/// done, so it is received once per invocation that holds it (about the retry budget over the
/// worker timeout, plus 10 growing waits), and the messages of its room behind it in each batch
/// are received with it. SQS's maximum is 1000.
pub fn ordered_max_receive_count(
    batch_size: u16,
    worker_timeout: Duration,
    budget: Duration,
) -> u32 {
    let timeout = worker_timeout.as_secs().max(1);
    let held = budget.as_secs().div_ceil(timeout) + 10;
    let batch = u64::from(batch_size.min(10));
    u32::try_from((batch * held).min(1000)).unwrap_or(1000)
}

/// Runs the whole WebSocket fan-out pipeline on this machine.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "fanout-local",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "DURATION is a number with its unit: 250ms, 30s, 10m, 2h, or combined as in \
                  1h30m (humantime's format). A bare number is refused: write 30s, not 30."
)]
pub struct Options {
    /// Address to listen on for WebSockets, the management API, /metrics and /healthz; port 0
    /// picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The stage in URLs: ws://HOST/STAGE and http://HOST/STAGE/@connections/ID.
    #[arg(long, default_value = "local", value_parser = parse_stage)]
    pub stage: String,

    /// Close connections idle this long, for example 90s or 10m (API Gateway: 10 minutes).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Close connections open this long, for example 30m or 2h (API Gateway: 2 hours).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    pub max_connection_duration: Duration,

    /// Largest WebSocket frame accepted (API Gateway: 32 KB); larger closes with 1009.
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest message accepted (API Gateway: 128 KB); larger closes with 1009.
    #[arg(long, default_value_t = 128 * 1024)]
    pub max_message_bytes: usize,

    /// Bytes queued for one client, not yet written to its socket, at most: a post beyond
    /// closes the connection as a slow consumer (1001) and is answered 410. At least 131072
    /// (one message of 128 KB).
    #[arg(long, value_name = "N", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(MIN_OUTBOUND_BYTES..=MAX_OUTBOUND_BYTES))]
    pub max_outbound_bytes: u64,

    /// A write to a client's socket that takes longer drops the connection (the client is not
    /// reading): it is gone at once (posts answer 410), $disconnect runs, the socket is
    /// released. For example 500ms or 5s (at most 10m).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_write_timeout)]
    pub write_timeout: Duration,

    /// The kernel's send buffer of each accepted socket (SO_SNDBUF; Linux doubles it for its
    /// bookkeeping): what a client that does not read holds in the kernel before a write blocks.
    /// 0 leaves it to the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum, 4 MiB on most
    /// systems). Otherwise 4096 to 67108864.
    #[arg(long, value_name = "N", default_value_t = 256 * 1024, value_parser = parse_socket_send_buffer)]
    pub socket_send_buffer: usize,

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

    /// DynamoDB table of the worker's job progress records, PROGRESS_TABLE in AWS (aws
    /// backend; the memory backend keeps them in memory).
    #[arg(long, value_name = "NAME", default_value = "fanout-local-progress")]
    pub progress_table: String,

    /// DynamoDB table of rooms' sequences and history, HISTORY_TABLE in AWS (aws backend);
    /// default: the connections table's name followed by `-history`.
    #[arg(long, value_name = "NAME")]
    pub history_table: Option<String>,

    #[arg(long, value_name = "N", help = setting_help(&settings::HISTORY_SIZE),
          value_parser = clap::value_parser!(u64).range(settings::HISTORY_SIZE.bounds()))]
    pub history_size: Option<u64>,

    /// Emulates DynamoDB's limit on one partition: each room's history writes (an offset, a
    /// message: a unit per KB) at most N a second; beyond, they are refused as DynamoDB
    /// throttles them, and the sender is told `unavailable`. DynamoDB's is about 1000. Default:
    /// no limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub room_write_rate: Option<u32>,

    #[arg(long, value_name = "DURATION", help = setting_help(&settings::HISTORY_TTL_SECONDS),
          value_parser = history_ttl)]
    pub history_ttl: Option<Duration>,

    /// SQS fan-out queue name; its dead-letter queue is NAME-dlq (aws backend). With
    /// --ordering per_room, NAME.fifo and NAME-dlq.fifo.
    #[arg(long, default_value = "fanout-local")]
    pub queue_name: String,

    /// Create the tables (connections, memberships, history, progress) and the queues if they
    /// do not exist (aws backend).
    #[arg(long)]
    pub create_resources: bool,

    /// Jobs per worker invocation at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,

    /// Gather jobs this long before invoking with a partial batch, for example 0s or 300ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub batching_window: Duration,

    /// The worker's timeout: each invocation's deadline, for example 60s or 15m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub worker_timeout: Duration,

    /// How long a received job stays invisible before redelivery, for example 30s or 6m (at
    /// most 12h, as SQS; whole seconds on SQS); default 6 × worker timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_visibility_timeout)]
    pub visibility_timeout: Option<Duration>,

    /// Messages the in-memory queue holds at most (waiting, delayed or in flight): a new
    /// message beyond is refused, and its sender told `unavailable` (the queue is full). The
    /// worker's hand-offs of messages already accepted are never refused.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_queue_depth: u64,

    /// Receives after which a job moves to the dead-letter queue.
    #[arg(long, help = max_receive_count_help(), value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_receive_count: Option<u32>,

    /// Order of a room's messages, as the Terraform stack's `ordering`. none: a standard queue;
    /// jobs run side by side, so two messages to a room may reach its members in either order.
    /// per_room: a FIFO queue whose message groups are the rooms (SQS FIFO on the aws backend),
    /// so a room's messages are fanned out one after another in the order they were accepted;
    /// rooms are never split (--room-split-ways must be 1).
    #[arg(long, value_enum, default_value_t = MessageOrder::None)]
    pub ordering: MessageOrder,

    /// Worker invocations at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub worker_concurrency: u16,

    #[arg(long, value_name = "DURATION", help = setting_help(&settings::RETRY_BUDGET_SECONDS),
          value_parser = retry_budget)]
    pub retry_budget: Option<Duration>,

    #[arg(long, help = setting_help(&settings::FANOUT_CONCURRENCY),
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(settings::FANOUT_CONCURRENCY.bounds()))]
    pub fanout_concurrency: Option<usize>,

    #[arg(long, help = setting_help(&settings::PAGE_LIMIT),
          value_parser = clap::value_parser!(u32).range(settings::PAGE_LIMIT.flag_range()))]
    pub page_limit: Option<u32>,

    #[arg(long, help = setting_help(&settings::ROOM_SPLIT_WAYS),
          value_parser = clap::value_parser!(u32).range(settings::ROOM_SPLIT_WAYS.flag_range()))]
    pub room_split_ways: Option<u32>,

    /// What members receive: envelope or raw (overrides DELIVERY_MODE).
    #[arg(long, value_parser = parse_delivery_mode)]
    pub delivery_mode: Option<DeliveryMode>,

    #[arg(long, help = setting_help(&settings::MAX_DATA_BYTES),
          value_parser = clap::value_parser!(u32).range(settings::MAX_DATA_BYTES.flag_range()))]
    pub max_data_bytes: Option<u32>,

    #[arg(long, help = setting_help(&settings::RATE_LIMIT_PER_SECOND),
          value_parser = clap::value_parser!(u32).range(settings::RATE_LIMIT_PER_SECOND.flag_range()))]
    pub rate_limit_per_second: Option<u32>,

    #[arg(long, help = setting_help(&settings::RATE_LIMIT_BURST),
          value_parser = clap::value_parser!(u32).range(settings::RATE_LIMIT_BURST.flag_range()))]
    pub rate_limit_burst: Option<u32>,

    /// Fault injection: the management API answers KIND from START after start-up for
    /// DURATION. KIND is 500, 503, 429, 403 or hang (hold each request unanswered until the period
    /// ends, then answer 504). Repeatable; where periods overlap, the one that started last
    /// applies. For example 500@5s+30s or hang@40s+5s.
    #[arg(long, value_name = "KIND@START+DURATION", value_parser = parse_fault)]
    pub management_fault: Vec<FaultSpec>,

    /// Every management API request waits this long before it is answered, for example 20ms
    /// (at most 60s): slows fan-outs down, so that faults land mid-way.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_latency)]
    pub management_latency: Duration,

    /// Fault injection: kill every worker invocation in flight, once, this long after the
    /// first job is received, as Lambda kills a crashed process: no hand-off is written, and
    /// the jobs come back after the visibility timeout. The worker goes on.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kill_worker_after: Option<Duration>,

    /// Log JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,

    #[command(flatten)]
    pub auth: AuthOptions,

    /// The access key `POST /publish` takes, as ACCESS_KEY_ID:SECRET_ACCESS_KEY: requests must
    /// be signed with it (SigV4, service execute-api). Default: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY from the environment; with neither, every publish is refused.
    #[arg(long, value_name = "KEY:SECRET", value_parser = AccessKey::parse)]
    pub publish_credentials: Option<AccessKey>,

    /// The token /admin takes, as Authorization: Bearer TOKEN (16 characters or more, visible
    /// ASCII). Default: a random one, printed at start. wsfanout --local reads the same
    /// variable.
    #[arg(long, value_name = "TOKEN", env = ADMIN_TOKEN_ENV, hide_env_values = true,
          value_parser = AdminToken::parse)]
    pub admin_token: Option<AdminToken>,

    /// A web page at this origin may use the stack too (open WebSockets above all), as the
    /// browser writes it: SCHEME://HOST[:PORT], for example http://localhost:3000, or null.
    /// Repeatable. The stack's own page (http://localhost:PORT, http://127.0.0.1:PORT) always
    /// may; a page elsewhere is refused (403).
    #[arg(long, value_name = "ORIGIN", value_parser = parse_allowed_origin)]
    pub allowed_origin: Vec<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `fanout-local` does instead of running the stack.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print a development token (HS256, signed with --jwt-secret) for a stack started with the
    /// same --jwt-secret: `fanout-local token --jwt-secret S --sub alice --rooms 'lobby,team-42:*'`.
    Token(TokenOptions),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Auto,
    Memory,
    Aws,
}

/// `--ordering`: the values of the Terraform stack's `ordering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageOrder {
    /// A standard queue.
    None,
    /// A FIFO queue, each room a message group.
    #[value(name = "per_room")]
    PerRoom,
}

impl MessageOrder {
    /// A FIFO queue keeps order by room; any other does not.
    pub fn of_queue(keeps_order: bool) -> Self {
        if keeps_order {
            Self::PerRoom
        } else {
            Self::None
        }
    }

    /// As `--ordering` and the Terraform stack spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PerRoom => "per_room",
        }
    }
}

fn max_receive_count_help() -> String {
    format!(
        "Receives after which a job moves to the dead-letter queue, 1 to 1000 (default \
         {DEFAULT_MAX_RECEIVE_COUNT}; with --ordering per_room, --batch-size × (retry budget / \
         --worker-timeout + 10), at most 1000, where a job is received once per invocation that \
         holds it)"
    )
}

impl Options {
    /// `--history-table`, or the connections table's name followed by `-history`.
    pub fn history_table(&self) -> String {
        self.history_table
            .clone()
            .unwrap_or_else(|| format!("{}-history", self.table))
    }

    /// The memberships table of the aws backend: the connections table's name followed by
    /// `-memberships`.
    pub fn memberships_table(&self) -> String {
        format!("{}-memberships", self.table)
    }

    /// `--max-receive-count`, or its default for `--ordering`.
    pub fn max_receive_count(&self) -> u32 {
        self.max_receive_count.unwrap_or(match self.ordering {
            MessageOrder::None => DEFAULT_MAX_RECEIVE_COUNT,
            MessageOrder::PerRoom => ordered_max_receive_count(
                self.batch_size,
                self.worker_timeout,
                self.retry_budget
                    .unwrap_or(EngineConfig::default().retry_budget),
            ),
        })
    }

    /// The fan-out queue's and its dead-letter queue's names on SQS: `--queue-name` and
    /// NAME-dlq; with `--ordering per_room`, NAME.fifo and NAME-dlq.fifo, since SQS requires a
    /// FIFO queue's name to end so (and SqsQueue tells a FIFO queue by its URL).
    pub fn queue_names(&self) -> (String, String) {
        let name = &self.queue_name;
        match self.ordering {
            MessageOrder::None => (name.clone(), format!("{name}-dlq")),
            MessageOrder::PerRoom => {
                let base = name.strip_suffix(".fifo").unwrap_or(name);
                (format!("{base}.fifo"), format!("{base}-dlq.fifo"))
            }
        }
    }

    /// Refuses what `--ordering per_room` cannot go with: a room split into parts
    /// (`room_split_ways`, from `--room-split-ways` or ROOM_SPLIT_WAYS), which run side by
    /// side and so deliver out of order.
    pub fn check_ordering(&self, room_split_ways: u32) -> Result<(), String> {
        if self.ordering == MessageOrder::PerRoom && room_split_ways > 1 {
            return Err(format!(
                "--ordering per_room runs each room's message as one job, in order, and cannot \
                 split rooms: --room-split-ways (or ROOM_SPLIT_WAYS) must be 1, not \
                 {room_split_ways}"
            ));
        }
        // What Lambda's SQS event source refuses for a FIFO queue, as Terraform does.
        if self.ordering == MessageOrder::PerRoom && self.batch_size > 10 {
            return Err(format!(
                "--ordering per_room reads a FIFO queue, of which Lambda takes at most 10 \
                 messages a batch: --batch-size must be 10 or less, not {}",
                self.batch_size
            ));
        }
        if self.ordering == MessageOrder::PerRoom && !self.batching_window.is_zero() {
            return Err(
                "--ordering per_room reads a FIFO queue, for which Lambda has no batching \
                 window: leave --batching-window at 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// `--visibility-timeout`, or its default: 6 × the worker timeout, as the Terraform stack
    /// sets it (AWS's advice for a Lambda's source queue), at most SQS's 12 hours.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
            .unwrap_or((self.worker_timeout * 6).min(MAX_VISIBILITY_TIMEOUT))
    }
}

/// A humantime duration no longer than `max`.
fn duration_at_most(text: &str, max: Duration, why: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration > max {
        return Err(format!(
            "at most {} ({why})",
            humantime::format_duration(max)
        ));
    }
    Ok(duration)
}

/// The help of a flag of [`SETTING_FLAGS`]: the setting's meaning, bounds, variable and
/// default, as the setting defines them.
fn setting_help(setting: &Setting) -> String {
    let shown = |value: u64| match setting.unit {
        settings::Unit::Seconds | settings::Unit::Millis => {
            humantime::format_duration(setting.duration(value)).to_string()
        }
        settings::Unit::Count | settings::Unit::Bytes => value.to_string(),
    };
    let default = match setting.default {
        Some(value) => format!(
            "{} from the environment, else {}",
            setting.var,
            shown(value)
        ),
        None => format!("{} from the environment, else unset", setting.var),
    };
    let mut meaning = setting.meaning.to_owned();
    meaning[..1].make_ascii_uppercase();
    format!(
        "{meaning}: {} to {} (default: {default})",
        shown(setting.min),
        shown(setting.max)
    )
}

/// A duration flag of a setting in seconds: within its bounds.
fn setting_duration(text: &str, setting: &Setting) -> Result<Duration, String> {
    let max = setting.duration(setting.max);
    let value = duration_at_most(text, max, &format!("{}'s limit", setting.var))?;
    let min = setting.duration(setting.min);
    if value < min {
        return Err(format!("at least {}", humantime::format_duration(min)));
    }
    Ok(value)
}

/// `--retry-budget`: RETRY_BUDGET_SECONDS's bounds.
fn retry_budget(text: &str) -> Result<Duration, String> {
    setting_duration(text, &settings::RETRY_BUDGET_SECONDS)
}

/// `--history-ttl`: HISTORY_TTL_SECONDS's bounds.
fn history_ttl(text: &str) -> Result<Duration, String> {
    setting_duration(text, &settings::HISTORY_TTL_SECONDS)
}

fn parse_visibility_timeout(text: &str) -> Result<Duration, String> {
    duration_at_most(text, MAX_VISIBILITY_TIMEOUT, "SQS's longest")
}

fn parse_write_timeout(text: &str) -> Result<Duration, String> {
    let timeout = duration_at_most(text, Duration::from_secs(600), "the default idle timeout")?;
    if timeout.is_zero() {
        return Err("must be more than 0s".into());
    }
    Ok(timeout)
}

fn parse_socket_send_buffer(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|error| format!("{error}"))?;
    if bytes == 0 || (4096..=64 << 20).contains(&bytes) {
        Ok(bytes)
    } else {
        Err("0 (the kernel's autotuning) or 4096 to 67108864".into())
    }
}

fn parse_latency(text: &str) -> Result<Duration, String> {
    duration_at_most(
        text,
        Duration::from_secs(60),
        "longer than any post's timeout",
    )
}

fn parse_fault(text: &str) -> Result<FaultSpec, String> {
    text.parse()
}

fn parse_delivery_mode(text: &str) -> Result<DeliveryMode, String> {
    text.parse()
}

/// Paths of the stack's own that a stage must not take.
const RESERVED_STAGES: &[&str] = &["publish", "healthz", "metrics", "admin"];

fn parse_stage(text: &str) -> Result<String, String> {
    if RESERVED_STAGES.contains(&text) {
        return Err(format!(
            "/{text} is the stack's own; use another stage (not {})",
            RESERVED_STAGES.join(", ")
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once(&"fanout-local").chain(args))
    }

    #[test]
    fn durations_take_a_unit() {
        let options = parse(&[
            "--idle-timeout",
            "250ms",
            "--max-connection-duration",
            "1h30m",
            "--batching-window",
            "10m",
            "--worker-timeout",
            "2h",
        ])
        .unwrap();
        assert_eq!(options.idle_timeout, Duration::from_millis(250));
        assert_eq!(options.max_connection_duration, Duration::from_secs(5400));
        assert_eq!(options.batching_window, Duration::from_secs(600));
        assert_eq!(options.worker_timeout, Duration::from_secs(7200));
        for refused in ["30", "soon", "5 parsecs"] {
            let error = parse(&["--worker-timeout", refused])
                .unwrap_err()
                .to_string();
            assert!(error.contains("--worker-timeout"), "{refused}: {error}");
        }
    }

    #[test]
    fn a_bad_flag_is_refused_with_a_message_naming_it() {
        let too_much_data = (settings::MAX_DATA_BYTES.max + 1).to_string();
        for (flag, value) in [
            ("--fanout-concurrency", "0"),
            ("--fanout-concurrency", "10001"),
            ("--max-data-bytes", "0"),
            ("--max-data-bytes", too_much_data.as_str()),
            ("--worker-concurrency", "0"),
            ("--room-split-ways", "0"),
            ("--page-limit", "0"),
            ("--room-split-ways", "257"),
            ("--batch-size", "0"),
            ("--max-receive-count", "0"),
            ("--visibility-timeout", "13h"),
            ("--visibility-timeout", "30"),
            ("--management-latency", "2m"),
            ("--management-fault", "500"),
            ("--management-fault", "418@0s+1s"),
            ("--management-fault", "hang@5s+0s"),
            ("--kill-worker-after", "5"),
            ("--max-outbound-bytes", "131071"),
            ("--max-outbound-bytes", "2000000000"),
            ("--max-outbound-bytes", "1MiB"),
            ("--write-timeout", "0s"),
            ("--write-timeout", "5"),
            ("--write-timeout", "11m"),
            ("--max-queue-depth", "0"),
            ("--socket-send-buffer", "100"),
            ("--socket-send-buffer", "67108865"),
            ("--max-queue-depth", "100000001"),
            ("--admin-token", "short"),
            ("--allowed-origin", "localhost:3000"),
        ] {
            let error = parse(&[flag, value])
                .expect_err("out of bounds")
                .to_string();
            assert!(
                error.contains(flag) && error.contains(value),
                "{flag} {value}: {error}"
            );
        }
        let bounds = parse(&[
            "--fanout-concurrency",
            "1000",
            "--max-data-bytes",
            &settings::MAX_DATA_BYTES.max.to_string(),
        ])
        .unwrap();
        assert_eq!(bounds.fanout_concurrency, Some(1_000));
        assert!(parse(&["--fanout-concurrency", "1001"]).is_err());
    }

    /// Each flag of a setting takes exactly the setting's bounds, and names them in its help.
    #[test]
    fn setting_flags_take_their_settings_bounds() {
        use clap::CommandFactory;
        let help = Options::command().render_help().to_string();
        for (flag, setting) in SETTING_FLAGS {
            let shown = |value: u64| match setting.unit {
                settings::Unit::Seconds | settings::Unit::Millis => {
                    humantime::format_duration(setting.duration(value)).to_string()
                }
                settings::Unit::Count | settings::Unit::Bytes => value.to_string(),
            };
            for value in [setting.min, setting.max] {
                assert!(parse(&[flag, &shown(value)]).is_ok(), "{flag} {value}");
            }
            let mut beyond = vec![shown(setting.max + 1)];
            if setting.min > 0 {
                beyond.push(shown(setting.min - 1));
            }
            for value in beyond {
                let error = parse(&[flag, &value]).expect_err("beyond").to_string();
                assert!(error.contains(flag), "{flag} {value}: {error}");
            }
            let bounds = format!("{} to {}", shown(setting.min), shown(setting.max));
            assert!(
                help.contains(&bounds) && help.contains(setting.var),
                "{flag}: {bounds}, {}",
                setting.var
            );
        }
    }

    #[test]
    fn fault_options_are_read() {
        use crate::faults::FaultKind;
        let options = parse(&[
            "--management-fault",
            "500@5s+30s",
            "--management-fault",
            "hang@40s+5s",
            "--management-latency",
            "20ms",
            "--kill-worker-after",
            "1s500ms",
        ])
        .unwrap();
        let kinds: Vec<FaultKind> = options.management_fault.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FaultKind::InternalError, FaultKind::Hang]);
        assert_eq!(options.management_fault[1].start, Duration::from_secs(40));
        assert_eq!(options.management_latency, Duration::from_millis(20));
        assert_eq!(options.kill_worker_after, Some(Duration::from_millis(1500)));
        let error = parse(&["--management-fault", "404@0s+1s"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("500, 503, 429, 403 or hang"), "{error}");
    }

    #[test]
    fn defaults_mirror_api_gateway_and_the_terraform_stack() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.idle_timeout, Duration::from_secs(600));
        assert_eq!(options.max_connection_duration, Duration::from_secs(7200));
        assert_eq!(
            (options.max_frame_bytes, options.max_message_bytes),
            (32768, 131072)
        );
        assert_eq!(options.visibility_timeout(), Duration::from_secs(360));
        assert_eq!(
            (options.batch_size, options.batching_window),
            (10, Duration::ZERO)
        );
        assert_eq!(options.worker_timeout, Duration::from_secs(60));
        assert_eq!(
            (options.worker_concurrency, options.max_receive_count()),
            (2, DEFAULT_MAX_RECEIVE_COUNT)
        );
        assert_eq!(options.ordering, MessageOrder::None);
        assert_eq!(
            options.queue_names(),
            ("fanout-local".into(), "fanout-local-dlq".into())
        );
        assert!(Options::try_parse_from(["fanout-local", "--stage", "a/b"]).is_err());
        assert_eq!(options.progress_table, "fanout-local-progress");
        assert!(options.management_fault.is_empty() && options.kill_worker_after.is_none());
        assert_eq!(options.management_latency, Duration::ZERO);
        assert_eq!(options.max_outbound_bytes, 1024 * 1024);
        assert_eq!(options.write_timeout, Duration::from_secs(5));
        assert_eq!(options.max_queue_depth, 100_000);
        assert_eq!(options.socket_send_buffer, 256 * 1024);
        assert_eq!(
            parse(&["--socket-send-buffer", "0"])
                .unwrap()
                .socket_send_buffer,
            0
        );
    }

    #[test]
    fn per_room_ordering_has_its_receive_count_fifo_queues_and_no_room_split() {
        let options = parse(&["--ordering", "per_room"]).unwrap();
        assert_eq!(options.ordering, MessageOrder::PerRoom);
        // Terraform's default: 10 × (900 s / 60 s + 10).
        assert_eq!(options.max_receive_count(), 250);
        assert_eq!(
            options.queue_names(),
            ("fanout-local.fifo".into(), "fanout-local-dlq.fifo".into())
        );
        let named = parse(&["--ordering", "per_room", "--queue-name", "q.fifo"]).unwrap();
        assert_eq!(named.queue_names().1, "q-dlq.fifo");
        let explicit = parse(&["--ordering", "per_room", "--max-receive-count", "7"]).unwrap();
        assert_eq!(explicit.max_receive_count(), 7);
        assert!(options.check_ordering(1).is_ok());
        let refused = options.check_ordering(4).unwrap_err();
        assert!(
            refused.contains("--room-split-ways") && refused.contains("per_room"),
            "{refused}"
        );
        assert!(parse(&[]).unwrap().check_ordering(4).is_ok());
        for (flag, value) in [("--batch-size", "11"), ("--batching-window", "1s")] {
            let refused = parse(&["--ordering", "per_room", flag, value])
                .unwrap()
                .check_ordering(1)
                .unwrap_err();
            assert!(refused.contains(flag), "{refused}");
            let standard = parse(&[flag, value]).unwrap();
            assert!(standard.check_ordering(1).is_ok());
        }
        for order in [MessageOrder::None, MessageOrder::PerRoom] {
            let value = order.to_possible_value().expect("not skipped");
            assert_eq!(value.get_name(), order.as_str());
        }
        let error = parse(&["--ordering", "per-room"]).unwrap_err().to_string();
        assert!(error.contains("none, per_room"), "{error}");
        use clap::CommandFactory;
        let help = Options::command().render_help().to_string();
        assert!(
            help.contains(&format!("default {DEFAULT_MAX_RECEIVE_COUNT};"))
                && help.contains("with --ordering per_room, --batch-size"),
            "{help}"
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Options::command().debug_assert();
    }
}
